"""Shared fixtures: project paths, tiny run overrides, a Hydra ``compose`` helper, a CLI runner and timing-free
summaries (``without_timings``) for comparing runs.

The suite's session rules (CI skips fail, GPU tests deselected without CUDA, per-test time limits, no fork
after torch, children killed with the session) are the hooks of ``guards.py``, imported here; every child
process is started through ``processes.py`` (own process group, always killed when its wait ends).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import processes
import pytest
from guards import (  # noqa: F401 - pytest finds hooks by name in conftest's namespace
    in_ci,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_report_collectionfinish,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_unconfigure,
)

pytest_plugins = ("pytester",)  # tests/project/test_harness.py runs small pytest sessions of its own

_MISSING = object()


def missing(what: str) -> None:
    """A declared tool or data set this test needs is absent: fail in CI, skip (with the reason) elsewhere."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: a missing requirement fails)", pytrace=False)
    pytest.skip(what, allow_module_level=True)


PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
RUN_SCRIPT = PROJECT_ROOT / "src" / "run.py"
DATA_ROOT = PROJECT_ROOT / "data"  # the datasets shipped with the project (data/dblp)
SHARED_DATA = DATA_ROOT  # older name, kept for the tests that import it

if str(PROJECT_ROOT / "src") not in sys.path:  # the package also works uninstalled
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
# children too import this checkout's package, not another one an editable install points at (a submitit
# job or ``python -c`` has no src/ of its own on sys.path)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(PROJECT_ROOT / "src"), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])

# Plugin modules ($SPIKENET_PLUGINS) register their neurons and surrogates before any test module is collected:
# the parity tests parametrise over the registries, so a plugin's parts are tested without editing them.
importlib.import_module("spikenet.registry").load_plugins()

# SpikingJelly 2.x has no auto_cuda CuPy backend: the numpy fix for 0.0.0.0.14's is not collected there
# (deselected, not skipped: CI=true fails skips); test_sj_compat checks 2.x's side.
collect_ignore = ["neurons/test_sj_numpy_fix.py"] if importlib.import_module("spikenet.neurons.sj_compat").SJ2 else []

# A run that finishes in a few seconds on two cores: 300 nodes, 4 steps, small layers, one epoch.
TINY_OVERRIDES: tuple[str, ...] = (
    "trainer.epochs=1",
    "dataset.num_nodes=300",
    "dataset.num_steps=4",
    "model.hids=[16,4]",
    "trainer.progress=false",
    "device=cpu",
)



def load_benchmark(name: str):
    """``benchmarks/<name>.py`` (``name``: ``<group>/<script>``) imported as a module: the benchmarks are scripts,
    not a package. Only for a script's own helpers that must stay in the script (``gpu/gpu_suite.py`` runs
    where the package is not importable yet); what scripts and tests share lives in the package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name.replace('/', '_')}_for_tests",
                                                  PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def conf_dir() -> Path:
    return CONF_DIR


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY_OVERRIDES)


@contextmanager
def _composed(overrides: Sequence[str] = ()) -> Iterator:
    from hydra import compose, initialize_config_dir

    from spikenet.registry import plugin_config_dirs

    plugins = [f"file://{d}" for d in plugin_config_dirs()]  # $SPIKENET_PLUGINS' group options compose too
    search = [f"hydra.searchpath=[{','.join(plugins)}]"] if plugins else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield compose(config_name="config", overrides=[*search, *overrides])


@functools.cache
def _compose_cached(overrides: tuple[str, ...]):
    with _composed(overrides) as cfg:
        return cfg


def _value_overrides(overrides: Sequence[str]) -> tuple[list[str], list[tuple[str, object]]] | None:
    """Split plain ``a.b=value`` changes of existing keys off the rest (group choices, +/~, sweeps), or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    rest, values = [], []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if override.package is not None or override.is_sweep_override():
            return None
        is_group = "." not in key and (CONF_DIR / key).is_dir()
        if override.type == OverrideType.CHANGE and "/" not in key and not is_group:
            values.append((key, override.value()))
        else:
            rest.append(override.input_line)
    return rest, values


def compose_config(overrides: Sequence[str] = ()):
    """The composed ``config.yaml`` with ``overrides`` (no run directory, no ``hydra`` node resolution).

    Hydra's compose takes ~0.3 s, so the group choices are composed once per distinct set (cached) and plain
    value changes of existing keys are applied to a copy afterwards, as Hydra applies command-line values last.
    """
    from omegaconf import OmegaConf

    split = _value_overrides(overrides)
    if split is None:
        return copy.deepcopy(_compose_cached(tuple(overrides)))
    rest, values = split
    cfg = copy.deepcopy(_compose_cached(tuple(rest)))
    for key, value in values:
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:  # a new key: let Hydra decide (it errors)
            return copy.deepcopy(_compose_cached(tuple(overrides)))
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def dataset_config(option: str, **values):
    """The ``dataset`` node of ``dataset=<option>`` as a reader sees it (composed, resolved, detached), with
    ``values`` set as ``dataset.<key>=<value>`` overrides would set them (mappings merged into the group's)."""
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(_compose_cached((f"dataset={option}",)).dataset, resolve=True)
    return OmegaConf.merge(OmegaConf.create(node), OmegaConf.create(values))


@pytest.fixture
def compose() -> Callable:
    """``compose(["neuron=lif", ...])`` -> DictConfig, as ``src/run.py`` would see it."""
    return compose_config


@pytest.fixture
def keep_threads() -> Iterator[None]:
    """Restore torch's thread count after a test that builds an experiment in this process (it sets them)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# Keys of metrics.json and its per-epoch records that measure the machine, not the run.
TIMING_KEYS = frozenset({"epoch_seconds", "train_seconds", "wall_seconds", "peak_rss_mb", "rank_peak_rss_mb",
                         "seconds", "eval_seconds", "final_test_seconds", "peak_device_mb"})


def without_timings(value):
    """``value`` (a summary, history or record) without timings, NaN as None: comparable across runs."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list | tuple):
        return [without_timings(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "metrics.json").read_text())

    def explain(self) -> str:
        return f"rc={self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def run_cli_async(args: Sequence[str], run_dir: Path) -> tuple[subprocess.Popen, Path]:
    """Start ``python src/run.py <args> hydra.run.dir=<run_dir>`` from the project root (own process group)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", HYDRA_FULL_ERROR="0", WANDB_MODE="disabled")
    cmd = [sys.executable, str(RUN_SCRIPT), *args, f"hydra.run.dir={run_dir}"]
    return processes.start(cmd, cwd=PROJECT_ROOT, env=env), run_dir


def finish(started: tuple[subprocess.Popen, Path], timeout: float = 240) -> RunResult:
    """Wait for a started run (its process group is killed when the wait ends, however it ends)."""
    proc, run_dir = started
    done = processes.wait(proc, timeout)
    return RunResult(done.returncode, done.stdout, done.stderr, run_dir)


def run_cli(args: Sequence[str], run_dir: Path, timeout: float = 240) -> RunResult:
    return finish(run_cli_async(args, run_dir), timeout)


@pytest.fixture(scope="session")
def cli() -> Callable[..., RunResult]:
    """``cli(args, run_dir)`` runs the Hydra entry point in a subprocess and returns its outcome."""
    return run_cli


# --- the one single-run subprocess of the suite: a W&B sweep agent's run, offline ----------------------------
SWEEP_FILE = PROJECT_ROOT / "sweeps" / "tau_alpha.yaml"
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


def agent_command(sweep: dict, params: dict[str, object]) -> list[str]:
    """A sweep's ``command`` expanded the way ``wandb agent`` does (macros -> values), with this interpreter."""
    out: list[str] = []
    for chunk in sweep["command"]:
        chunk = _ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(chunk))
        if chunk == "${env}":
            continue
        if chunk in ("${interpreter}", "python"):
            out.append(sys.executable)
        elif chunk == "${program}":
            out.append(str(PROJECT_ROOT / sweep["program"]))
        elif chunk == "${args_no_hyphens}":
            out += [f"{k}={v}" for k, v in params.items()]
        else:
            assert not chunk.startswith("${"), f"macro the agent does not know: {chunk}"
            out.append(chunk)
    return out


@dataclass
class AgentRun:
    """``src/run.py`` launched as a W&B agent launches the first run of ``sweeps/tau_alpha.yaml``, offline."""

    result: RunResult
    params: dict[str, object]
    command: list[str]


_AGENT: dict[str, object] = {}


def _start_agent_run(root: Path) -> None:
    import yaml

    sweep = yaml.safe_load(SWEEP_FILE.read_text())
    # a grid's first run takes every parameter's first value (test_sweeps.py checks this with W&B's engine)
    params = {k: spec["values"][0] for k, spec in sweep["parameters"].items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    # what `wandb agent` sets for its runs; no WANDB_MODE and no API key: the logger must choose offline itself
    env.update(WANDB_SWEEP_ID="test-tau_alpha", WANDB_RUN_ID="run0", NETRC=str(root / "no-netrc"),
               WANDB_CONFIG_DIR=str(root / "wandb-config"), WANDB_CACHE_DIR=str(root / "wandb-cache"),
               PYTHONWARNINGS="ignore")
    cmd = [*agent_command(sweep, params), *TINY_OVERRIDES, "trainer.epochs=2", "logger.tags=[test]",
           "trainer.num_threads=1"]
    proc = processes.start(cmd, cwd=root, env=env)  # killed by guards.pytest_sessionfinish if never waited for
    run_dir = root / "outputs" / "sweeps" / "test-tau_alpha" / "run0"
    _AGENT.update(started=(proc, run_dir), params=params, command=cmd)


def pytest_collection_finish(session) -> None:
    """Start the agent run as soon as a collected test needs it, so it overlaps the in-process tests."""
    if any("agent_run" in getattr(item, "fixturenames", ()) for item in session.items):
        root = Path(session.config._tmp_path_factory.mktemp("agent"))
        _start_agent_run(root)


@pytest.fixture(scope="session")
def agent_run(tmp_path_factory) -> AgentRun:
    if "started" not in _AGENT:  # not started at collection (e.g. requested dynamically)
        _start_agent_run(tmp_path_factory.mktemp("agent"))
    if "result" not in _AGENT:
        _AGENT["result"] = finish(_AGENT["started"], timeout=300)
    return AgentRun(_AGENT["result"], _AGENT["params"], _AGENT["command"])
