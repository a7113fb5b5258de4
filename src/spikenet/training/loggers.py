"""Experiment loggers: ``logger=none`` logs to the console/run log only; others plug in by name."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from spikenet.registry import Registry

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

LOGGERS: Registry[Factory | str] = Registry("logger", "logger.name")
"""``logger=<name>`` -> a factory ``(cfg.logger, run_dir) -> Logger``, registered with ``@LOGGERS.register("name")``,
or the ``"module:attribute"`` of one, imported only when chosen (``wandb`` stays unimported by runs that do not
log to it, and the logger modules never import this one's users)."""
LOGGERS.add("none", lambda cfg, run_dir: Logger())
LOGGERS.add("wandb", "spikenet.training.wandb_logger:WandbLogger")


def build_logger(cfg: Any, run_dir: str) -> Logger:
    """The logger named by ``cfg.name``."""
    factory = LOGGERS.get(str(cfg.name))
    if isinstance(factory, str):
        module, attribute = factory.split(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory(cfg, run_dir)
