"""sweeps/*.yaml: valid for W&B's sweep engine (checked offline with the `sweeps` package), every
proposed override composes and passes the entry point's checks, and the first proposed run of one sweep,
launched as a W&B agent would, completes (the suite's single run, ``conftest.agent_run``).

All sweeps launch the same program the same way, so one real run covers them; the others are checked
in-process up to the point where the run would start.

W&B's engine (PyPI's ``sweeps``) pins numpy<2 but runs on numpy 2, so no extra can declare it: the README's
install command (the one ``.ci/run`` runs) adds it with ``pip install --no-deps sweeps==0.3.0``. Its name is
also that of this repository's top-level ``sweeps/`` folder of YAML files, which ``python -m pytest`` (the
project root on sys.path) would import as a namespace package when the engine is missing; ``_engine`` tells
the two apart, so a missing engine is a missing requirement (a failure in CI, a skip elsewhere), never an
AttributeError.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import SWEEP_FILE, agent_command, missing

INSTALL = "pip install --no-deps sweeps==0.3.0"


def _engine() -> tuple[object | None, str]:
    """(W&B's sweep engine module, "") or (None, why): the repository's ``sweeps/`` folder does not count."""
    spec = importlib.util.find_spec("sweeps")
    if spec is None or spec.origin is None:  # absent, or a namespace package: a folder without __init__.py
        folders = [] if spec is None else list(spec.submodule_search_locations)
        where = f" (`import sweeps` finds only the folder {folders})" if folders else ""
        return None, f"W&B's sweep engine is not installed{where}: {INSTALL}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic v1-style config warnings at import
        import sweeps
    return sweeps, ""


sweeps, WHY_MISSING = _engine()


@pytest.fixture(scope="session", autouse=True)  # session: set up before the agent run is waited for
def _needs_engine() -> None:
    """Each test of the module fails in CI (skips elsewhere) with the install line when the engine is missing."""
    if sweeps is None:
        missing(WHY_MISSING)


ROOT = Path(__file__).resolve().parents[2]
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def proposals(cfg: dict, n: int) -> list[dict[str, object]]:
    """The engine's next ``n`` runs as {parameter: value}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = sweeps.next_runs(cfg, [], validate=True, n=n)
    return [{k: v["value"] for k, v in run.config.items()} for run in runs if run is not None]


def test_there_are_sweeps():
    names = {p.stem for p in SWEEP_FILES}
    assert {"tau_alpha", "sampler", "neuron", "surrogate", "bayes"} <= names


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_sweep_is_valid_and_every_proposal_composes(path, compose):
    from spikenet.config import validate

    cfg = load(path)
    assert sweeps.schema_violations_from_proposed_config(cfg) == []
    assert cfg["program"] == "src/run.py" and (ROOT / cfg["program"]).is_file()
    cmd = cfg["command"]
    assert cmd[:3] == ["${env}", "python", "${program}"] and cmd[-1] == "${args_no_hyphens}"
    assert "logger=wandb" in cmd  # the agent's runs must report their metric to W&B
    assert cfg["metric"] == {
        "name": "val_micro_f1",
        "goal": "maximize",
    }  # summary key written by logger=wandb
    n = 64 if cfg["method"] == "grid" else 8
    props = proposals(cfg, n)
    if cfg["method"] == "grid":
        grid = 1
        for spec in cfg["parameters"].values():
            grid *= len(spec["values"])
        assert len(props) == grid
    for params in props:
        composed = compose([f"{k}={v}" for k, v in params.items()])
        validate(composed)  # in range for the model (e.g. LIF's tau > 1 from its own group default)
        for key, value in params.items():
            node = composed
            for part in key.split("."):
                node = node[part]
            got = node["name"] if isinstance(value, str) and not isinstance(node, str | int | float) else node
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, key


def test_bayes_proposes_from_finished_runs():
    cfg = load(ROOT / "sweeps" / "bayes.yaml")
    assert cfg["method"] == "bayes"
    assert set(cfg["parameters"]) == {"trainer.lr", "model.dropout", "neuron.tau", "surrogate.alpha"}
    first = proposals(cfg, 3)
    done = [
        sweeps.SweepRun(
            name=f"r{i}",
            state=sweeps.RunState.finished,
            summary_metrics={"val_micro_f1": 0.3 + i / 10},
            config={k: {"value": v} for k, v in p.items()},
        )
        for i, p in enumerate(first)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (nxt,) = sweeps.next_runs(cfg, done, validate=True, n=1)
    for key, spec in cfg["parameters"].items():
        assert spec["min"] <= nxt.config[key]["value"] <= spec["max"]


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_agent_command_passes_the_entry_point_checks(path, capsys):
    from spikenet.cli import check_group_overrides

    cfg = load(path)
    cmd = agent_command(cfg, proposals(cfg, 1)[0])
    assert cmd[1] == str(ROOT / "src" / "run.py")
    check_group_overrides(cmd[2:], ROOT / "conf")  # exits on an unknown group option
    assert capsys.readouterr().err == ""


def test_first_proposed_run_completes(agent_run):
    cfg = load(SWEEP_FILE)
    assert agent_run.params == proposals(cfg, 1)[0], "the run must be the engine's first proposal"
    r = agent_run.result
    assert r.returncode == 0, f"{agent_run.command}\n{r.explain()}"
    metrics = json.loads((r.run_dir / "metrics.json").read_text())
    for key, value in agent_run.params.items():
        assert f"{key}={value}" in metrics["overrides"]
    # the sweep's metric is in the W&B run's summary, equal to metrics.json's
    from wandb_runs import read_run, wandb_run_dirs

    (wandb_run,) = wandb_run_dirs(r.run_dir)
    summary = read_run(wandb_run)["summary"]
    metric = cfg["metric"]["name"]
    assert metric == metrics["select_metric"], "a sweep maximises its task's selection metric"
    assert summary[metric] == pytest.approx(metrics[metric])
