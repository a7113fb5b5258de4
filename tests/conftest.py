"""Shared fixtures: project paths, tiny run overrides, a Hydra ``compose`` helper and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
RUN_SCRIPT = PROJECT_ROOT / "src" / "run.py"
DATA_ROOT = PROJECT_ROOT / "data"  # the datasets shipped with the project (data/dblp)
SHARED_DATA = DATA_ROOT  # older name, kept for the tests that import it

if str(PROJECT_ROOT / "src") not in sys.path:  # the package also works uninstalled
    sys.path.insert(0, str(PROJECT_ROOT / "src"))

# A run that finishes in a few seconds on two cores: 300 nodes, 4 steps, small layers, one epoch.
TINY_OVERRIDES: tuple[str, ...] = (
    "trainer.epochs=1",
    "dataset.num_nodes=300",
    "dataset.num_steps=4",
    "model.hids=[16,4]",
    "trainer.progress=false",
    "device=cpu",
)


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

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield compose(config_name="config", overrides=list(overrides))


def compose_config(overrides: Sequence[str] = ()):
    """The composed ``config.yaml`` with ``overrides`` (no run directory, no ``hydra`` node resolution)."""
    with _composed(overrides) as cfg:
        return cfg


@pytest.fixture
def compose() -> Callable:
    """``compose(["neuron=lif", ...])`` -> DictConfig, as ``src/run.py`` would see it."""
    return compose_config


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
    """Start ``python src/run.py <args> hydra.run.dir=<run_dir>`` from the project root."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", HYDRA_FULL_ERROR="0", WANDB_MODE="disabled")
    cmd = [sys.executable, str(RUN_SCRIPT), *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, run_dir


def finish(started: tuple[subprocess.Popen, Path], timeout: float = 240) -> RunResult:
    proc, run_dir = started
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return RunResult(proc.returncode, out, err, run_dir)


def run_cli(args: Sequence[str], run_dir: Path, timeout: float = 240) -> RunResult:
    return finish(run_cli_async(args, run_dir), timeout)


@pytest.fixture(scope="session")
def cli() -> Callable[..., RunResult]:
    """``cli(args, run_dir)`` runs the Hydra entry point in a subprocess and returns its outcome."""
    return run_cli
