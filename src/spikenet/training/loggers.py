"""Experiment loggers: ``logger=none`` logs to the console/run log only; others plug in by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Logger:
    """No-op base: the trainer calls these hooks; subclasses send them somewhere."""

    wants_spike_rates = False  # True: the trainer records per-layer, per-step firing rates

    def log_config(self, config: dict) -> None:
        pass

    def log_epoch(self, epoch: int, record: dict) -> None:
        pass

    def log_summary(self, summary: dict) -> None:
        pass

    def finish(self) -> None:
        pass


LOGGERS: dict[str, Callable[[Any, str], Logger]] = {"none": lambda cfg, run_dir: Logger()}


def register_logger(name: str) -> Callable:
    """Decorator: make a logger factory ``(cfg.logger, run_dir) -> Logger`` available as ``logger=<name>``."""

    def wrap(factory: Callable[[Any, str], Logger]) -> Callable[[Any, str], Logger]:
        LOGGERS[name] = factory
        return factory

    return wrap


def build_logger(cfg: Any, run_dir: str) -> Logger:
    """The logger named by ``cfg.name``."""
    if cfg.name == "wandb" and "wandb" not in LOGGERS:
        import spikenet.training.wandb_logger  # noqa: F401  (registers itself; imports wandb only now)
    if cfg.name not in LOGGERS:
        raise ValueError(f"unknown logger '{cfg.name}'; choose one of {sorted(LOGGERS)}")
    return LOGGERS[cfg.name](cfg, run_dir)
