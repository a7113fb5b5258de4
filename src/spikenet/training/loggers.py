"""Experiment loggers: ``logger=none`` logs to the console/run log only; others plug in by name."""

from __future__ import annotations

import importlib
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


Factory = Callable[[Any, str], Logger]  # (cfg.logger, run_dir) -> Logger

# name -> factory, or the "module:attribute" of one, imported only when chosen (``wandb`` stays
# unimported by runs that do not log to it, and the logger modules never import this one's users)
LOGGERS: dict[str, Factory | str] = {
    "none": lambda cfg, run_dir: Logger(),
    "wandb": "spikenet.training.wandb_logger:WandbLogger",
}


def register_logger(name: str) -> Callable:
    """Decorator: make a logger factory ``(cfg.logger, run_dir) -> Logger`` available as ``logger=<name>``."""

    def wrap(factory: Factory) -> Factory:
        LOGGERS[name] = factory
        return factory

    return wrap


def build_logger(cfg: Any, run_dir: str) -> Logger:
    """The logger named by ``cfg.name``."""
    if cfg.name not in LOGGERS:
        raise ValueError(f"unknown logger '{cfg.name}'; choose one of {sorted(LOGGERS)}")
    factory = LOGGERS[cfg.name]
    if isinstance(factory, str):
        module, attribute = factory.split(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory(cfg, run_dir)
