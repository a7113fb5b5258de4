"""Models: aggregators, SpikeNet and its dense baselines; ``build_model`` maps the ``model`` config to a module.

Every model keeps one contract, so the trainer never asks which one it has: ``forward(x_self, x_agg,
projected=False)`` takes layer 0's inputs [T, M, F] and returns logits; ``record_spikes`` /
``spike_rates`` expose per-layer firing rates (empty for dense models); ``op_counts(rates)`` lists
the work per target node for ``spikenet.energy``. A new model registers a builder with
``register_model``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from spikenet.models.aggregators import SAGEAggregator
from spikenet.models.ann import ANN
from spikenet.models.gru import GRUNet
from spikenet.models.spikenet import SpikeNet

# (cfg, in_features, num_classes, num_steps, sizes, make_neuron) -> module
Builder = Callable[[Any, int, int, int, list[int], Callable[[], nn.Module]], nn.Module]
BUILDERS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make a builder available as ``model=<name>`` (``model.name``)."""

    def wrap(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return wrap


def _common(cfg: Any) -> dict[str, Any]:
    """The keys every model config shares (conf/model/*.yaml)."""
    return {
        "hids": [int(h) for h in cfg.hids],
        "dropout": float(cfg.dropout),
        "aggr": str(cfg.aggr),
        "concat": bool(cfg.concat),
        "bias": bool(cfg.get("bias", True)),
        "chunk_rows": int(cfg.get("chunk_rows", 16384)),
    }


@register_model("spikenet")
def _spikenet(cfg: Any, in_features: int, num_classes: int, num_steps: int, sizes: list[int],
              make_neuron: Callable[[], nn.Module]) -> nn.Module:
    return SpikeNet(in_features=in_features, num_classes=num_classes, num_steps=num_steps, sizes=sizes,
                    make_neuron=make_neuron, **_common(cfg))


@register_model("ann")
def _ann(cfg: Any, in_features: int, num_classes: int, num_steps: int, sizes: list[int],
         make_neuron: Callable[[], nn.Module]) -> nn.Module:
    return ANN(in_features=in_features, num_classes=num_classes, num_steps=num_steps, sizes=sizes, **_common(cfg))


@register_model("gru")
def _gru(cfg: Any, in_features: int, num_classes: int, num_steps: int, sizes: list[int],
         make_neuron: Callable[[], nn.Module]) -> nn.Module:
    return GRUNet(in_features=in_features, num_classes=num_classes, num_steps=num_steps, sizes=sizes,
                  hidden=int(cfg.get("hidden", 128)), **_common(cfg))


MODELS = tuple(BUILDERS)

__all__ = ["ANN", "BUILDERS", "MODELS", "GRUNet", "SAGEAggregator", "SpikeNet", "build_model", "register_model"]


def build_model(cfg: Any, in_features: int, num_classes: int, num_steps: int, sizes: list[int],
                make_neuron: Callable[[], nn.Module]) -> nn.Module:
    """Instantiate ``cfg.name`` (a model config node)."""
    if cfg.name not in BUILDERS:
        raise ValueError(f"unknown model '{cfg.name}'; choose one of {sorted(BUILDERS)}")
    return BUILDERS[cfg.name](cfg, in_features, num_classes, num_steps, sizes, make_neuron)
