"""Encoders: SpikeNet, SiGNN and the dense baselines; ``build_model`` maps the ``model`` config to one.

Every model is a ``spikenet.contracts.Encoder``: ``forward(x_self, x_agg, projected=False)`` takes
layer 0's inputs [T, M, F] of a batch's nodes and returns their embeddings [B, D]; heads, losses
and metrics belong to the task (``spikenet.tasks``). A new model registers a builder with
``register_model``; ``SPIKING`` tells which models have spiking neurons (and so read the ``neuron``
and ``surrogate`` groups).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from spikenet.contracts import Encoder
from spikenet.models.aggregators import SAGEAggregator
from spikenet.models.ann import ANN
from spikenet.models.gru import GRUNet
from spikenet.models.signn import SiGNN
from spikenet.models.spikenet import SpikeNet

# (cfg, in_features, num_steps, sizes, make_neuron) -> encoder
Builder = Callable[[Any, int, int, list[int], Callable[[int], nn.Module]], Encoder]
BUILDERS: dict[str, Builder] = {}
SPIKING: set[str] = set()


def register_model(name: str, spiking: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: make a builder available as ``model=<name>`` (``model.name``); ``spiking`` models use the
    ``neuron`` and ``surrogate`` groups."""

    def wrap(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        if spiking:
            SPIKING.add(name)
        return fn

    return wrap


def _common(cfg: Any) -> dict[str, Any]:
    """The keys every model config shares (conf/model/*.yaml)."""
    return {
        "hids": [int(h) for h in cfg.hids],
        "dropout": float(cfg.dropout),
        "aggr": str(cfg.aggr),
        "concat": bool(cfg.concat),
        "bias": bool(cfg.bias),
        "chunk_rows": int(cfg.chunk_rows),
    }


@register_model("spikenet", spiking=True)
def _spikenet(cfg: Any, in_features: int, num_steps: int, sizes: list[int],
              make_neuron: Callable[[int], nn.Module]) -> Encoder:
    return SpikeNet(in_features=in_features, num_steps=num_steps, sizes=sizes, make_neuron=make_neuron,
                    **_common(cfg))


@register_model("ann")
def _ann(cfg: Any, in_features: int, num_steps: int, sizes: list[int],
         make_neuron: Callable[[int], nn.Module]) -> Encoder:
    return ANN(in_features=in_features, num_steps=num_steps, sizes=sizes, **_common(cfg))


@register_model("gru")
def _gru(cfg: Any, in_features: int, num_steps: int, sizes: list[int],
         make_neuron: Callable[[int], nn.Module]) -> Encoder:
    return GRUNet(in_features=in_features, num_steps=num_steps, sizes=sizes, hidden=int(cfg.hidden),
                  **_common(cfg))


@register_model("signn", spiking=True)
def _signn(cfg: Any, in_features: int, num_steps: int, sizes: list[int],
           make_neuron: Callable[[int], nn.Module]) -> Encoder:
    return SiGNN(in_features=in_features, hids=[int(h) for h in cfg.hids], num_steps=num_steps, sizes=sizes,
                 make_neuron=make_neuron, channels=cfg.channels, dropout=float(cfg.dropout), aggr=str(cfg.aggr),
                 bias=bool(cfg.bias), chunk_rows=int(cfg.chunk_rows))


MODELS = tuple(BUILDERS)

__all__ = ["ANN", "BUILDERS", "MODELS", "SPIKING", "GRUNet", "SAGEAggregator", "SiGNN", "SpikeNet", "build_model",
           "is_spiking", "register_model"]


def is_spiking(name: str) -> bool:
    """Whether ``model=<name>`` has spiking neurons."""
    return name in SPIKING


def build_model(cfg: Any, in_features: int, num_steps: int, sizes: list[int],
                make_neuron: Callable[[int], nn.Module]) -> Encoder:
    """Instantiate the encoder ``cfg.name`` (a model config node) over ``num_steps`` steps."""
    if cfg.name not in BUILDERS:
        raise ValueError(f"unknown model '{cfg.name}'; choose one of {sorted(BUILDERS)}")
    return BUILDERS[cfg.name](cfg, in_features, num_steps, sizes, make_neuron)
