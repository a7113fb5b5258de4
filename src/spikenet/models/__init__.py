"""Models: aggregators and SpikeNet; ``build_model`` maps the ``model`` config to a module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from spikenet.models.aggregators import SAGEAggregator
from spikenet.models.spikenet import SpikeNet

MODELS = ("spikenet",)

__all__ = ["MODELS", "SAGEAggregator", "SpikeNet", "build_model"]


def build_model(cfg: Any, in_features: int, num_classes: int, num_steps: int, sizes: list[int],
                make_neuron: Callable[[], nn.Module]) -> nn.Module:
    """Instantiate ``cfg.name`` (a model config node)."""
    if cfg.name != "spikenet":
        raise ValueError(f"unknown model '{cfg.name}'; choose one of {MODELS}")
    return SpikeNet(
        in_features=in_features,
        hids=[int(h) for h in cfg.hids],
        num_classes=num_classes,
        num_steps=num_steps,
        sizes=sizes,
        make_neuron=make_neuron,
        dropout=float(cfg.dropout),
        aggr=str(cfg.aggr),
        concat=bool(cfg.concat),
        bias=bool(cfg.get("bias", True)),
        chunk_rows=int(cfg.get("chunk_rows", 16384)),
    )
