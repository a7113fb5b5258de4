"""Structure: a failing job fails alone, main returns ``optimized_metric``, one home per default and check,
no import cycle, docstrings that name only what exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import logging
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CONF_DIR, PROJECT_ROOT, RUN_SCRIPT, TINY_OVERRIDES
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

SRC = PROJECT_ROOT / "src"
PACKAGE = SRC / "spikenet"
TINY = [*TINY_OVERRIDES, "trainer.num_threads=1", "trainer.save_checkpoint=false"]


def _run_module():
    spec = importlib.util.spec_from_file_location("spikenet_run_entry", RUN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_process_state():
    """Hydra's job logging and the runs' thread setting change process-wide state: put it back."""
    import torch

    root = logging.getLogger()
    handlers, level, threads = list(root.handlers), root.level, torch.get_num_threads()
    yield
    GlobalHydra.instance().clear()
    root.handlers[:] = handlers
    root.setLevel(level)
    torch.set_num_threads(threads)


# --- a failing job fails alone -----------------------------------------------------------------------------
def test_invalid_job_fails_alone_in_a_multirun(tmp_path, monkeypatch, restore_process_state):
    """``-m sampler.p=1.5,0.5,0.2``: job 0 is invalid; jobs 1 and 2 still run and write metrics.json."""
    sweep = tmp_path / "multirun"
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")  # resolve config_path against src/run.py
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", [str(RUN_SCRIPT), "-m", "sampler.p=1.5,0.5,0.2", *TINY,
                                      f"hydra.sweep.dir={sweep}"])
    with pytest.raises(SystemExit) as info:  # Hydra reports the failed job once the sweep is done
        _run_module().main()
    assert info.value.code not in (0, None)
    jobs = {int(p.name): p for p in sweep.iterdir() if p.name.isdigit()}
    assert sorted(jobs) == [0, 1, 2]
    assert not (jobs[0] / "metrics.json").exists()
    errors = [line for line in (jobs[0] / "run.log").read_text().splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "error: sampler.p must be in [0, 1], got 1.5" in errors[0], errors
    for num, p in ((1, 0.5), (2, 0.2)):
        metrics = json.loads((jobs[num] / "metrics.json").read_text())
        assert f"sampler.p={p}" in metrics["overrides"] and len(metrics["history"]) == 1


def _main_value(tmp_path: Path, overrides: list[str]) -> tuple[float, dict]:
    """What ``src/run.py``'s main returns for ``overrides``, and the metrics.json it wrote."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, *overrides], return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(tmp_path)  # what Hydra sets when it launches the job
    cfg.hydra.mode = RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    value = _run_module().main(cfg)  # hydra.main hands a given config straight to the task
    return value, json.loads((tmp_path / "metrics.json").read_text())


def test_main_returns_the_optimized_metric(tmp_path, restore_process_state):
    """``optimized_metric=params`` makes main return the parameter count (an F1 is at most 1)."""
    value, metrics = _main_value(tmp_path, ["optimized_metric=params"])
    assert value == metrics["params"] > 1


def test_optimized_metric_defaults_to_the_tasks_selection_metric(tmp_path, restore_process_state):
    """``optimized_metric: null`` (the default): main returns the task's validation metric, val_micro_f1 for
    node classification, the key that picked the best epoch."""
    assert yaml.safe_load((CONF_DIR / "config.yaml").read_text())["optimized_metric"] is None
    value, metrics = _main_value(tmp_path, ["seed=5"])
    assert metrics["select_metric"] == "val_micro_f1" and value == metrics["val_micro_f1"]


# --- one home per default and per range check -------------------------------------------------------------
def _py_files() -> list[Path]:
    return [*PACKAGE.rglob("*.py"), *SRC.glob("*.py")]


def test_val_size_default_lives_in_one_place():
    """0.05 is written once, in conf/task/node_classification.yaml; code reads cfg.task.val_size."""
    hits = [str(f.relative_to(PROJECT_ROOT)) for f in [*_py_files(), *CONF_DIR.rglob("*.yaml")]
            for line in f.read_text().splitlines() if "val_size" in line and "0.05" in line]
    assert hits == ["conf/task/node_classification.yaml"], hits


def _yaml_keys() -> set[str]:
    """Every key (at any depth) that a YAML file under conf/ defines, in any group."""
    keys: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(str(k))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for f in CONF_DIR.rglob("*.yaml"):
        walk(yaml.safe_load(f.read_text()))
    return keys - {"defaults"}  # Hydra's composition list, no config key


def _retyped_defaults(files: list[Path], keys: set[str]) -> list[str]:
    """``<cfg>.get("<key>", <default>)`` calls on a config (a receiver naming ``cfg``) for one of ``keys``."""
    found = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) + len(node.keywords) == 2 and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in keys and "cfg" in ast.unparse(node.func.value)):
                found.append(f"{f.relative_to(PROJECT_ROOT)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_trainer_keys_are_read_without_retyped_defaults():
    """No ``cfg.get("<trainer key>", <default>)`` beside the YAML that sets the default."""
    keys = set(yaml.safe_load((CONF_DIR / "trainer" / "default.yaml").read_text()))
    files = [*(PACKAGE / "training").glob("*.py"), PACKAGE / "experiment.py", PACKAGE / "config.py", RUN_SCRIPT]
    assert not _retyped_defaults(files, keys)


def test_no_code_default_for_a_key_any_yaml_defines():
    """In every group (dataset, model, neuron, task, logger, trainer, ...): no ``cfg.get("<key>", <default>)``
    anywhere in src/ for a key that a YAML file under conf/ defines. The YAML holds the default; code reads
    ``cfg.<key>`` (tests compose the real config: conftest's ``compose`` and ``dataset_config``)."""
    keys = _yaml_keys()
    assert {"cache_keep", "min_class_size", "bias", "log_firing_rates", "val_size"} <= keys
    found = _retyped_defaults(_py_files(), keys)
    assert not found, found


def test_config_module_imports_names_instead_of_retyping_them():
    """config.py holds no group's choices or range messages: the constructors own them."""
    from spikenet.models.aggregators import AGGREGATIONS
    from spikenet.neurons import NEURONS, SURROGATES
    from spikenet.sampling import SAMPLERS
    from spikenet.training.trainer import TEST_SCHEDULES

    names = {*AGGREGATIONS, *TEST_SCHEDULES, *NEURONS, *SURROGATES, *SAMPLERS}
    tree = ast.parse((PACKAGE / "config.py").read_text())
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    strings += [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)]
    assert not names & set(strings)
    groups = ("neuron.", "surrogate.", "sampler.", "model.", "trainer.")
    assert not [s for s in strings if s.strip('f"\'').startswith(groups)]


@pytest.mark.parametrize("overrides,source", [
    (["sampler.p=1.5"], "spikenet.sampling:TemporalSampler"),
    (["model.aggr=max"], "spikenet.models.aggregators:SAGEAggregator"),
    (["trainer.test_schedule=never"], "spikenet.training.trainer:Trainer"),
])
def test_validate_reports_the_constructors_own_message(compose, overrides, source):
    """validate runs the consumer's check: its message is the one the constructor raises."""
    from spikenet.config import ConfigError, validate

    with pytest.raises(ConfigError) as info:
        validate(compose(overrides))
    module, name = source.split(":")
    text = Path(importlib.import_module(module).__file__).read_text()
    key = overrides[0].split("=")[0]
    assert str(info.value).startswith(key) and key in text, (info.value, name)


# --- package layout ---------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_in_the_package():
    """Static imports (module level or inside functions) between spikenet modules form no cycle.

    An import of a module's own parent package (a plug-in registering itself with its package) is not
    counted: the package imports its modules, never the other way round at import time.
    """
    modules = {_module_name(f): f for f in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names}
        edges[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                cycles.append([*stack[stack.index(v):], v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u)
    assert not cycles, cycles


DATA_FLOORS = ("temporal_graph", "properties", "storage", "formats", "snapshots", "features", "readers", "load")


def test_data_package_reads_top_down():
    """``spikenet.data``'s parts import only the floors below their own (docs/data.md, "Code layout"): the load
    path goes down from ``load`` through readers, features, snapshots, formats to storage, never back up."""
    data = PACKAGE / "data"
    assert sorted(p.stem if p.is_file() else p.name for p in data.iterdir()
                  if p.name != "__pycache__" and p.name != "__init__.py") == sorted(f"{f}" for f in DATA_FLOORS)
    up = []
    for f in data.rglob("*.py"):
        parts = _module_name(f).split(".")
        if len(parts) < 3:
            continue  # spikenet.data itself exports the top
        own = DATA_FLOORS.index(parts[2])
        for node in ast.walk(ast.parse(f.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                target = name.split(".")
                if target[:2] == ["spikenet", "data"] and (len(target) == 2 or DATA_FLOORS.index(target[2]) > own):
                    up.append(f"{_module_name(f)} imports {name}")
    assert not up, up


def test_one_find_runs_and_no_wandb_reader_in_the_package():
    defs = [f"{_module_name(f)}" for f in PACKAGE.rglob("*.py")
            for node in ast.parse(f.read_text()).body if isinstance(node, ast.FunctionDef) and node.name == "find_runs"]
    assert defs == ["spikenet.reporting.collect"], defs
    reader = [f.name for f in PACKAGE.rglob("*.py") if "wandb_internal_pb2" in f.read_text()]
    assert not reader, reader


def test_docstrings_name_only_files_that_exist():
    """Every document a source file cites (``docs/*.md``, ``DESIGN.md``-style names) is in the repository."""
    missing = []
    for f in _py_files():
        for ref in re.findall(r"[\w./-]*\w\.md\b", f.read_text()):
            if ("/" in ref or Path(ref).stem.isupper()) and not (PROJECT_ROOT / ref).is_file():
                missing.append(f"{f.relative_to(PROJECT_ROOT)}: {ref}")
    assert not missing, missing


def _docstrings(tree: ast.Module) -> list[str]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
    return [d for d in (ast.get_docstring(n) for n in nodes) if d]


def test_docstrings_name_only_code_that_exists():
    """``spikenet.x.y`` in any docstring resolves; experiment.py's own names are attributes of it."""
    bad = []
    for f in PACKAGE.rglob("*.py"):
        for doc in _docstrings(ast.parse(f.read_text())):
            for ref in re.findall(r"``(spikenet(?:\.\w+)+)``", doc):
                parts = ref.split(".")
                obj, i = None, len(parts)
                while i > 1:  # the longest importable prefix, then attributes
                    try:
                        obj = importlib.import_module(".".join(parts[:i]))
                        break
                    except ModuleNotFoundError:
                        i -= 1
                for attr in parts[i:]:
                    obj = getattr(obj, attr, None)
                if obj is None:
                    bad.append(f"{f.name}: {ref}")
    experiment = importlib.import_module("spikenet.experiment")
    for ref in re.findall(r"``([A-Za-z_]\w*)(?:\.\w+)*``", experiment.__doc__):
        if ref != "spikenet" and not hasattr(experiment, ref):
            bad.append(f"experiment.py: {ref}")
    assert not bad, bad


def test_benchmark_scripts_import_the_installed_package_and_are_listed():
    """Every script under ``benchmarks/`` imports ``spikenet`` as installed (or from ``PYTHONPATH``), never by
    changing ``sys.path``, sits in a group folder, and ``benchmarks/README.md`` lists it."""
    bench = PROJECT_ROOT / "benchmarks"
    readme = (bench / "README.md").read_text()
    bad = []
    for f in sorted(bench.rglob("*.py")):
        rel = f.relative_to(bench)
        if len(rel.parts) != 2:
            bad.append(f"{rel}: not in a group folder")
        if f"`{rel.name}`" not in readme or f"{rel.parts[0]}/" not in readme:
            bad.append(f"{rel}: not in benchmarks/README.md")
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                bad.append(f"{rel}:{node.lineno}: sys.path")
    assert not bad, bad
