"""Run folders in the format src/run.py leaves them (``.hydra/config.yaml``, ``.hydra/overrides.yaml``,
``metrics.json`` with the task layer's keys), for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def write_run(path: Path, *, task: str, metrics: list[str], select: str, scores: dict[str, float],
              overrides: list[str], config: dict, baselines: dict | None = None, dataset: str = "synthetic",
              model: str = "spikenet", extra: dict | None = None) -> Path:
    """One finished run: ``scores`` holds its ``val_<m>`` / ``test_<m>`` at the best epoch."""
    history = [{"epoch": 1, "loss": 1.0, "seconds": 0.5, "train_seconds": 0.4, "eval_seconds": 0.1,
                "firing_rates": None, **scores}]
    data = {
        "dataset": dataset, "task": task, "model": model, "neuron": None, "metrics": metrics,
        "select_metric": select, **scores, "best_epoch": 1, "epoch_seconds": 0.5, "baselines": baselines or {},
        "params": 1000, "overrides": overrides, **(extra or {}), "history": history,
    }
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (path / "metrics.json").write_text(json.dumps(data))
    return path
