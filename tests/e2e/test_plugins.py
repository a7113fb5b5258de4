"""Parts from outside the repository: the plugin package of docs/extending.md, written to a temporary folder.

Its encoder, neuron, task and dataset reader each train one epoch through ``python src/run.py`` with overrides
alone; with ``SPIKENET_PLUGINS`` set, the parity and determinism tests pick its neuron and encoder up from the
registries without an edit; a missing module or an unknown part stops a run with one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import processes
import pytest
from conftest import PROJECT_ROOT, TINY_OVERRIDES, run_cli
from plugin_package import write_json_graph, write_plugin


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugin")
    written = write_plugin(folder / "pkg")
    assert {"mylab/__init__.py", "mylab/encoders.py", "mylab/neurons.py", "mylab/tasks.py", "mylab/readers.py",
            "mylab/conf/model/rate_sage.yaml", "mylab/conf/neuron/soft_lif.yaml", "mylab/conf/task/balanced_nc.yaml",
            "mylab/conf/dataset/jsongraph.yaml"} <= set(written), written
    write_json_graph(folder / "data" / "toy" / "graph.json")
    return folder


@pytest.fixture
def plugin_env(plugin: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plugin's folder on PYTHONPATH (the children of ``run_cli`` inherit it), outside src/."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin / "pkg"), os.environ["PYTHONPATH"]]))
    return plugin


SYNTHETIC = [o for o in TINY_OVERRIDES if not o.startswith("model.")]
PARTS = {  # override -> (metrics.json key, expected value)
    "model=rate_sage": (["model.hidden=8", *SYNTHETIC], "model", "rate_sage"),
    "neuron=soft_lif": ([*TINY_OVERRIDES], "neuron", "soft_lif"),
    "task=balanced_nc": ([*TINY_OVERRIDES], "task", "balanced_nc"),
    "dataset=jsongraph": (["dataset.name=toy", "trainer.epochs=1", "trainer.progress=false", "device=cpu",
                           "model.hids=[16,4]"], "dataset", "toy"),
}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("part", list(PARTS))
def test_each_plugin_part_trains_one_epoch_through_run_py(part: str, plugin_env: Path, tmp_path: Path):
    extra, key, expected = PARTS[part]
    if part.startswith("dataset="):
        extra = [*extra, f"dataset.root={plugin_env / 'data'}", f"dataset.cache_dir={tmp_path / 'cache'}"]
    out = run_cli(["plugins=[mylab]", part, *extra, "trainer.save_checkpoint=false"], tmp_path / "run", timeout=380)
    assert out.returncode == 0, out.explain()
    metrics = out.metrics
    assert metrics[key] == expected and len(metrics["history"]) == 1, metrics
    assert 0.0 <= metrics["test_micro_f1"] <= 1.0


def test_a_missing_plugin_module_is_one_error_line(tmp_path: Path):
    out = run_cli(["plugins=[no_such_lab]", *TINY_OVERRIDES], tmp_path / "run", timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == ["error: plugins: cannot import 'no_such_lab': no module named 'no_such_lab' "
                     "(is its folder on PYTHONPATH?)"], out.explain()
    assert not (tmp_path / "run").exists()


def test_an_unknown_part_names_the_plugin_parts_among_the_choices(plugin_env: Path, tmp_path: Path):
    out = run_cli(["plugins=[mylab]", "model=rate_sag", *SYNTHETIC], tmp_path / "run", timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: unknown model 'rate_sag'; choose one of: ann, gru, rate_sage, signn, spikenet"], out.explain()


def test_a_plugin_part_out_of_range_stops_before_the_data(plugin_env: Path, tmp_path: Path):
    out = run_cli(["plugins=[mylab]", "task=balanced_nc", "task.power=-1", *TINY_OVERRIDES], tmp_path / "run",
                  timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: task.power must be >= 0, got -1"], out.explain()


@pytest.mark.timeout(600)
def test_parity_and_determinism_tests_pick_the_plugin_parts_up_unedited(plugin: Path):
    """The neuron runs through every surrogate's parity tests, the encoder through every task's determinism
    tests and the task with every encoder, selected by name from the registries' parametrisation; nothing in
    the test files names them."""
    for test_file in ("neurons/test_neuron_definitions.py", "training/test_determinism.py"):
        assert "soft_lif" not in (PROJECT_ROOT / "tests" / test_file).read_text()
        assert "rate_sage" not in (PROJECT_ROOT / "tests" / test_file).read_text()
    env = {**os.environ, "SPIKENET_PLUGINS": "mylab",
           "PYTHONPATH": os.pathsep.join([str(plugin / "pkg"), os.environ["PYTHONPATH"]])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
           "tests/neurons/test_neuron_definitions.py::test_generated_paths_match_the_step_loop",
           "tests/training/test_determinism.py", "-k", "soft_lif or rate_sage or balanced_nc"]
    out = processes.run(cmd, cwd=PROJECT_ROOT, env=env, timeout=560)
    assert out.returncode == 0, out.explain()
    passed = [line for line in out.stdout.splitlines() if line.startswith("PASSED")]
    neuron_cases = [line for line in passed if "soft_lif" in line]
    encoder_cases = [line for line in passed if "rate_sage" in line]
    assert len(neuron_cases) >= 5, out.stdout[-3000:]  # one per registered surrogate at least
    assert len(encoder_cases) == 2 * 4, out.stdout[-3000:]  # two checks x four tasks (the plugin's task too)
    assert any("balanced_nc-spikenet" in line for line in passed), out.stdout[-3000:]
