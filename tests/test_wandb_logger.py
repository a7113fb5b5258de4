"""logger=wandb: an offline W&B run (no key, no network) that holds what metrics.json holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wandb_runs import read_run, wandb_run_dirs

from spikenet.training.wandb_logger import (
    EPOCH_KEYS,
    WandbLogger,
    firing_rate_key,
    resolve_dir,
    resolve_mode,
)

ROOT = Path(__file__).resolve().parents[1]


def test_mode_and_dir_resolution(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    assert resolve_mode(None) == "offline"
    assert resolve_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode(None) == "offline"
    assert resolve_mode("online") == "online"  # logger.mode wins
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_MODE")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_mode(None) == "online"

    assert resolve_dir(None, "/runs/a") == "/runs/a"
    monkeypatch.setenv("WANDB_DIR", "/elsewhere")
    assert resolve_dir(None, "/runs/a") == "/elsewhere"
    assert resolve_dir("/mine", "/runs/a") == "/mine"


def test_disabled_mode_is_a_silent_no_op(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "wandb", "mode": "disabled", "dir": str(tmp_path), "tags": ["t"]})
    logger = WandbLogger(cfg, str(tmp_path))
    assert logger.wants_spike_rates
    logger.log_config({"a": 1})
    logger.log_epoch(
        1,
        {
            "loss": 1.0,
            "val_micro_f1": 0.5,
            "test_micro_f1": None,
            "seconds": 0.1,
            "firing_rates": [[0.1, 0.2]],
        },
    )
    logger.log_summary({"val_micro_f1": 0.5, "test_macro_f1": float("nan")})
    logger.finish()
    assert not (tmp_path / "wandb").exists()


def test_wandb_is_imported_only_when_chosen():
    code = (
        "import sys; from omegaconf import OmegaConf; from spikenet.training import build_logger; "
        "build_logger(OmegaConf.create({'name': 'none'}), '.'); assert 'wandb' not in sys.modules, 'imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_offline_run_matches_metrics_json(agent_run):
    """The suite's single run (``conftest.agent_run``): logger=wandb with no API key and no WANDB_MODE."""
    r = agent_run.result
    assert r.returncode == 0, r.explain()
    run_dir = r.run_dir

    metrics = json.loads((run_dir / "metrics.json").read_text())
    runs = wandb_run_dirs(run_dir)
    assert len(runs) == 1 and runs[0].name.startswith("offline-run-"), runs
    assert runs[0].parent == run_dir / "wandb"  # beside metrics.json
    run = read_run(runs[0])
    assert run["tags"] == ["test"]
    # logger.project is passed to wandb.init; under a sweep agent W&B files the run under the sweep's project
    # (offline, without the sweep on a server: "uncategorized"), so the requested one is read from the config
    assert run["config"]["logger"]["project"] == "spikenet"

    # config: the resolved Hydra config
    hydra_cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    for group in ("neuron", "surrogate", "sampler", "model", "trainer"):
        assert run["config"][group] == hydra_cfg[group]
    assert run["config"]["trainer"]["epochs"] == 2

    # summary: every scalar of metrics.json, parameter count included
    summary = run["summary"]
    for key, value in metrics.items():
        if key == "history":
            continue
        assert summary[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert summary["params"] > 0

    # history: one row per epoch with loss, F1s, seconds and every layer's firing rate per step
    rows = {row["epoch"]: row for row in run["history"]}
    assert sorted(rows) == [r["epoch"] for r in metrics["history"]] == [1, 2]
    for record in metrics["history"]:
        row = rows[record["epoch"]]
        for field, key in EPOCH_KEYS.items():
            if record[field] is None:
                assert key not in row
            else:
                assert row[key] == pytest.approx(record[field]), key
        rates = record["firing_rates"]
        assert rates and len(rates) == 2 and all(len(layer) == 4 for layer in rates)  # 2 layers x 4 steps
        for layer, per_step in enumerate(rates):
            for step, rate in enumerate(per_step):
                assert row[firing_rate_key(layer, step)] == pytest.approx(rate)
            assert row[firing_rate_key(layer)] == pytest.approx(sum(per_step) / len(per_step))
