"""Weights & Biases logger (``logger=wandb``).

Logged per run: the resolved config (``wandb.config``); per epoch (``step`` = epoch) the training
loss, val/test Macro- and Micro-F1, the epoch's seconds and the firing rate of every spiking layer
at every time step of the validation split; at the end the summary of ``metrics.json`` (the test
scores of the best-validation epoch, ``val_micro_f1``, ``epoch_seconds``, ``params``, ...).

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

# Per-epoch record field (trainer's EpochRecord) -> W&B history key.
EPOCH_KEYS = {
    "loss": "train/loss",
    "val_macro_f1": "val/macro_f1",
    "val_micro_f1": "val/micro_f1",
    "test_macro_f1": "test/macro_f1",
    "test_micro_f1": "test/micro_f1",
    "seconds": "time/epoch_seconds",
    "train_seconds": "time/train_seconds",
    "eval_seconds": "time/eval_seconds",
}


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
        self.wants_spike_rates = bool(cfg.get("log_firing_rates", True))
        self.mode = resolve_mode(cfg.get("mode"))
        self.dir = resolve_dir(cfg.get("dir"), self.run_dir)
        self.run = None

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
        # Epoch is the x-axis of every per-epoch chart.
        self.run.define_metric("epoch")
        for key in [*EPOCH_KEYS.values(), "firing_rate/*"]:
            self.run.define_metric(key, step_metric="epoch")
        return self.run

    def log_config(self, config: dict) -> None:
        if self.run is None:
            self._start(config)
        else:
            self.run.config.update(config, allow_val_change=True)
        self.run.summary["run_dir"] = self.run_dir

    def log_epoch(self, epoch: int, record: dict) -> None:
        run = self._start()
        data: dict[str, Any] = {"epoch": epoch}
        for field, key in EPOCH_KEYS.items():
            value = record.get(field)
            if value is not None:
                data[key] = value
        for layer, rates in enumerate(record.get("firing_rates") or []):
            for step, rate in enumerate(rates):
                data[firing_rate_key(layer, step)] = rate
            if rates:
                data[firing_rate_key(layer)] = sum(rates) / len(rates)
        run.log(data, step=epoch)

    def log_summary(self, summary: dict) -> None:
        run = self._start()
        for key, value in summary.items():
            run.summary[key] = _scalar(value)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
