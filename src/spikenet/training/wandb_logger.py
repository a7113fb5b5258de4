"""Weights & Biases logger (``logger=wandb``).

Logged per run: the resolved config (``wandb.config``); per epoch (``step`` = epoch) the training
loss, every ``val_<metric>`` / ``test_<metric>`` of the trainer's record as ``val/<metric>`` /
``test/<metric>`` (whatever the task's metrics are: Macro-/Micro-F1, AP, MRR, NDCG@10, ...), the
epoch's seconds and the firing rate of every spiking layer at every time step of the validation
split; at the end the summary of ``metrics.json`` (the test scores of the best-validation epoch, the
selection metric, ``epoch_seconds``, ``params``, ...) and the task's baselines as flat keys
``baseline/<predictor>/<split>_<metric>``.

Mode: ``logger.mode`` if set, else ``$WANDB_MODE``, else ``online`` when an API key is configured
(``$WANDB_API_KEY`` or a netrc entry from ``wandb login``) and ``offline`` otherwise, so a run never
waits for a network it does not have. Directory: ``logger.dir`` if set, else ``$WANDB_DIR``, else the
Hydra run directory, so an offline run lands beside ``metrics.json`` as ``wandb/offline-run-*``;
``wandb sync <that dir>`` uploads it later.

This module imports ``wandb``; ``spikenet.training.loggers.build_logger`` imports it only when
``logger=wandb`` is chosen.
"""

from __future__ import annotations

import math
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import wandb

from spikenet.training.loggers import Logger

# Per-epoch record fields (trainer's EpochRecord) with fixed W&B history keys; the scores are derived
# from the record's own keys (``epoch_key``), so every task's metrics are logged without a list here.
FIXED_EPOCH_KEYS = {
    "loss": "train/loss",
    "seconds": "time/epoch_seconds",
    "train_seconds": "time/train_seconds",
    "eval_seconds": "time/eval_seconds",
}
SCORE_SPLITS = ("val", "test")


def epoch_key(field: str) -> str | None:
    """W&B history key of a per-epoch record field: ``val_ap`` -> ``val/ap``, ``loss`` -> ``train/loss``;
    None for fields that are not logged as one scalar (``epoch``, ``firing_rates``, ...)."""
    if field in FIXED_EPOCH_KEYS:
        return FIXED_EPOCH_KEYS[field]
    split, sep, name = field.partition("_")
    return f"{split}/{name}" if sep and name and split in SCORE_SPLITS else None


def epoch_scalars(record: dict) -> dict[str, float]:
    """The record's scalars under their W&B keys (fields without a key, and None values, left out)."""
    out = {}
    for field, value in record.items():
        key = epoch_key(field)
        if key is not None and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    return out


def baseline_summary(baselines: Any) -> dict[str, Any]:
    """``{predictor: {"<split>_<metric>": v}}`` -> ``{"baseline/<predictor>/<split>_<metric>": v}``."""
    if not isinstance(baselines, dict):
        return {}
    return {f"baseline/{predictor}/{key}": value
            for predictor, scores in baselines.items() if isinstance(scores, dict)
            for key, value in scores.items()}


def firing_rate_key(layer: int, step: int | None = None) -> str:
    """History key of a layer's firing rate at one time step (``step=None``: mean over steps)."""
    return f"firing_rate/layer{layer}/" + ("mean" if step is None else f"t{step}")


def api_key_configured() -> bool:
    """Whether W&B could authenticate: ``$WANDB_API_KEY`` or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def resolve_mode(requested: str | None) -> str:
    """``logger.mode`` > ``$WANDB_MODE`` > online with an API key > offline."""
    if requested:
        return str(requested)
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if api_key_configured() else "offline"


def resolve_dir(requested: str | None, run_dir: str) -> str:
    """``logger.dir`` > ``$WANDB_DIR`` > the Hydra run directory."""
    return str(requested or os.environ.get("WANDB_DIR") or run_dir)


def _scalar(value: Any) -> Any:
    """A value W&B's summary stores as-is (NaN and inf become None, as in ``metrics.json``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class WandbLogger(Logger):
    """Sends the trainer's hooks to one W&B run (started at the first hook, finished by ``finish``)."""

    def __init__(self, cfg: Any, run_dir: str) -> None:
        self.cfg = cfg
        self.run_dir = str(run_dir)
        self.wants_spike_rates = bool(cfg.log_firing_rates)
        self.mode = resolve_mode(cfg.get("mode"))
        self.dir = resolve_dir(cfg.get("dir"), self.run_dir)
        self.run = None
        self.defined: set[str] = set()  # history keys given the epoch as their x-axis

    def _start(self, config: dict | None = None) -> Any:
        if self.run is not None:
            return self.run
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        tags = self.cfg.get("tags")
        self.run = wandb.init(
            project=self.cfg.get("project") or "spikenet",
            entity=self.cfg.get("entity") or None,
            group=self.cfg.get("group") or None,
            name=self.cfg.get("run_name") or None,
            notes=self.cfg.get("notes") or None,
            job_type=self.cfg.get("job_type") or None,
            tags=[str(t) for t in tags] if tags else None,
            config=config,
            dir=self.dir,
            mode=self.mode,
            settings=wandb.Settings(console=str(self.cfg.get("console") or "off")),
        )
        # Epoch is the x-axis of every per-epoch chart (the scores' keys are defined at their first epoch).
        self.run.define_metric("epoch")
        self._define([*FIXED_EPOCH_KEYS.values(), "firing_rate/*"])
        return self.run

    def _define(self, keys: list[str]) -> None:
        for key in keys:
            if key not in self.defined:
                self.run.define_metric(key, step_metric="epoch")
                self.defined.add(key)

    def log_config(self, config: dict) -> None:
        if self.run is None:
            self._start(config)
        else:
            self.run.config.update(config, allow_val_change=True)
        self.run.summary["run_dir"] = self.run_dir

    def log_epoch(self, epoch: int, record: dict) -> None:
        run = self._start()
        scalars = epoch_scalars(record)
        self._define(list(scalars))
        data: dict[str, Any] = {"epoch": epoch, **scalars}
        for layer, rates in enumerate(record.get("firing_rates") or []):
            for step, rate in enumerate(rates):
                data[firing_rate_key(layer, step)] = rate
            if rates:
                data[firing_rate_key(layer)] = sum(rates) / len(rates)
        run.log(data, step=epoch)

    def log_summary(self, summary: dict) -> None:
        run = self._start()
        for key, value in {**summary, **baseline_summary(summary.get("baselines"))}.items():
            run.summary[key] = _scalar(value)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
        self.defined = set()  # a later run defines its keys again
