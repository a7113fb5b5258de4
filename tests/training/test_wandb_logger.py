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
    WandbLogger,
    baseline_summary,
    epoch_key,
    epoch_scalars,
    firing_rate_key,
    resolve_dir,
    resolve_mode,
)

ROOT = Path(__file__).resolve().parents[2]


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

    cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "logger" / "wandb.yaml"),
                          {"mode": "disabled", "dir": str(tmp_path), "tags": ["t"]})
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

    # the baselines also as flat keys, one per predictor and score
    for predictor, scores in metrics["baselines"].items():
        for key, value in scores.items():
            assert summary[f"baseline/{predictor}/{key}"] == pytest.approx(value)

    # history: one row per epoch with loss, the task's scores, seconds and every layer's firing rate per step
    rows = {row["epoch"]: row for row in run["history"]}
    assert sorted(rows) == [r["epoch"] for r in metrics["history"]] == [1, 2]
    for record in metrics["history"]:
        row = rows[record["epoch"]]
        for name in metrics["metrics"]:
            assert row[f"val/{name}"] == pytest.approx(record[f"val_{name}"]), name
        for field in ("loss", "seconds", "train_seconds", "eval_seconds", *record):
            key = epoch_key(field)
            if key is None:
                continue
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


# A link-prediction-like epoch record: no F1 anywhere, a metric with '@', a test score not computed this epoch.
LP_RECORD = {"epoch": 3, "loss": 0.69, "val_ap": 0.71, "test_ap": 0.68, "val_mrr": 0.25, "test_mrr": None,
             "val_ndcg@10": 0.4, "seconds": 1.5, "train_seconds": 1.2, "eval_seconds": 0.3, "firing_rates": None}
LP_BASELINES = {"edgebank": {"val_ap": 0.6, "test_ap": 0.58}, "persistence": {"test_mrr": 0.1}}


def test_epoch_keys_follow_the_record():
    assert epoch_scalars(LP_RECORD) == {
        "train/loss": 0.69, "val/ap": 0.71, "test/ap": 0.68, "val/mrr": 0.25, "val/ndcg@10": 0.4,
        "time/epoch_seconds": 1.5, "time/train_seconds": 1.2, "time/eval_seconds": 0.3,
    }
    assert epoch_key("val_micro_f1") == "val/micro_f1" and epoch_key("test_macro_f1") == "test/macro_f1"
    assert epoch_key("epoch") is None and epoch_key("firing_rates") is None and epoch_key("val_") is None
    assert baseline_summary(LP_BASELINES) == {
        "baseline/edgebank/val_ap": 0.6, "baseline/edgebank/test_ap": 0.58, "baseline/persistence/test_mrr": 0.1,
    }
    assert baseline_summary(None) == {}


OFFLINE_SCRIPT = """
import json, sys
from omegaconf import OmegaConf
from spikenet.training.wandb_logger import WandbLogger
out, record, baselines, conf = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
cfg = OmegaConf.merge(OmegaConf.load(conf), {"mode": "offline", "dir": out, "project": "t"})  # conf/logger/wandb.yaml
logger = WandbLogger(cfg, out)
logger.log_config({"task": {"name": "link_prediction"}})
logger.log_epoch(record["epoch"], record)
logger.log_summary({"task": "link_prediction", "select_metric": "val_ap", "val_ap": 0.71, "baselines": baselines})
logger.finish()
"""


def test_offline_run_logs_a_non_f1_task(tmp_path):
    """An offline W&B run (no key, no network) of a record with AP/MRR/NDCG@10: history keys, their epoch
    axis and the flat baseline keys, read back from the run file."""
    from wandb.proto import wandb_internal_pb2 as pb
    from wandb_runs import _records

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # nothing of another W&B process
    env.update(PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="ignore", NETRC=str(tmp_path / "no-netrc"),
               WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"), WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"),
               WANDB_DATA_DIR=str(tmp_path / "wandb-data"))
    proc = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(out), json.dumps(LP_RECORD),
                           json.dumps(LP_BASELINES), str(ROOT / "conf" / "logger" / "wandb.yaml")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = wandb_run_dirs(out)
    run = read_run(run_dir)

    (row,) = [r for r in run["history"] if r.get("epoch") == 3]
    for key, value in epoch_scalars(LP_RECORD).items():
        assert row[key] == pytest.approx(value), key
    assert "test/mrr" not in row and not [k for k in row if "f1" in k]
    assert run["summary"]["baseline/edgebank/test_ap"] == pytest.approx(0.58)
    assert run["summary"]["baseline/persistence/test_mrr"] == pytest.approx(0.1)
    assert run["summary"]["select_metric"] == "val_ap"

    axes = {}
    for raw in _records(next(run_dir.glob("run-*.wandb"))):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "metric":
            axes[rec.metric.name or rec.metric.glob_name] = rec.metric.step_metric
    for key in epoch_scalars(LP_RECORD):
        assert axes.get(key) == "epoch", key
