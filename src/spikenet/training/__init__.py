"""Training: splits, the fit/evaluate loop, metrics and loggers."""

from spikenet.training.loader import Batch, NodeLoader
from spikenet.training.loggers import LOGGERS, Logger, build_logger
from spikenet.training.splits import Splits, stratified_splits
from spikenet.training.trainer import Trainer

__all__ = ["LOGGERS", "Batch", "Logger", "NodeLoader", "Splits", "Trainer", "build_logger",
           "stratified_splits"]
