"""sweeps/*.yaml: valid for W&B's sweep engine (checked offline with the `sweeps` package), every
proposed override composes, and the first proposed run, launched as a W&B agent would, completes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pydantic v1-style config warnings at import
    sweeps = pytest.importorskip("sweeps")

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))
ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def proposals(cfg: dict, n: int) -> list[dict[str, object]]:
    """The engine's next ``n`` runs as {parameter: value}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = sweeps.next_runs(cfg, [], validate=True, n=n)
    return [{k: v["value"] for k, v in run.config.items()} for run in runs if run is not None]


def agent_command(cfg: dict, params: dict[str, object]) -> list[str]:
    """``command`` expanded the way ``wandb agent`` does (macros -> values), with this interpreter."""
    out: list[str] = []
    for chunk in cfg["command"]:
        chunk = ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(chunk))
        if chunk == "${env}":
            continue
        if chunk in ("${interpreter}", "python"):
            out.append(sys.executable)
        elif chunk == "${program}":
            out.append(str(ROOT / cfg["program"]))
        elif chunk == "${args_no_hyphens}":
            out += [f"{k}={v}" for k, v in params.items()]
        else:
            assert not chunk.startswith("${"), f"macro the agent does not know: {chunk}"
            out.append(chunk)
    return out


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
def test_first_proposed_run_completes(path, tmp_path, tiny_overrides):
    cfg = load(path)
    params = proposals(cfg, 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    # what `wandb agent` sets for its runs; offline, since the test has no W&B server
    env.update(
        WANDB_SWEEP_ID=f"test-{path.stem}",
        WANDB_RUN_ID="run0",
        WANDB_MODE="offline",
        NETRC=str(tmp_path / "no-netrc"),
        PYTHONWARNINGS="ignore",
    )
    cmd = [*agent_command(cfg, params), *tiny_overrides]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"

    run_dir = tmp_path / "outputs" / "sweeps" / f"test-{path.stem}" / "run0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key, value in params.items():
        assert f"{key}={value}" in metrics["overrides"]
    # the sweep's metric is in the W&B run's summary, equal to metrics.json's
    from wandb_runs import read_run, wandb_run_dirs

    (wandb_run,) = wandb_run_dirs(run_dir)
    summary = read_run(wandb_run)["summary"]
    metric = cfg["metric"]["name"]
    assert summary[metric] == pytest.approx(metrics[metric])
