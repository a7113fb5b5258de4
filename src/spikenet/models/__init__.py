"""Encoders: SpikeNet, SiGNN and the dense baselines, each registered in ``ENCODERS`` beside its class.

Every model is a ``spikenet.contracts.Encoder``: ``forward(x_self, x_agg, projected=False)`` takes
layer 0's inputs [T, M, F] of a batch's nodes and returns their embeddings [B, D]; heads, losses
and metrics belong to the task (``spikenet.tasks``). A new model is a class decorated with
``@ENCODERS.register("name")`` plus ``conf/model/name.yaml`` (docs/extending.md); its ``spiking``
attribute says whether it reads the ``neuron`` and ``surrogate`` groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from spikenet.contracts import ENCODERS, Encoder
from spikenet.models.aggregators import SAGEAggregator
from spikenet.models.ann import ANN
from spikenet.models.coding import refuse_coding
from spikenet.models.gru import GRUNet
from spikenet.models.signn import SiGNN
from spikenet.models.spikenet import SpikeNet

__all__ = ["ANN", "ENCODERS", "GRUNet", "SAGEAggregator", "SiGNN", "SpikeNet", "build_model", "check_model_config",
           "is_spiking"]


def is_spiking(name: str) -> bool:
    """Whether ``model=<name>`` has spiking neurons (reads the ``neuron`` and ``surrogate`` groups)."""
    return bool(ENCODERS.get(name).spiking)


def check_model_config(cfg: Any, sizes: list[int]) -> None:
    """The registered encoder's checks of its ``model`` config (no data needed; ``config.validate``); an encoder
    without a ``coding`` argument refuses any coding but ``real``."""
    encoder = ENCODERS.get(str(cfg.name))
    if "coding" in cfg and not encoder.takes_coding():
        refuse_coding(str(cfg.name), cfg.coding)
    encoder.check_config(cfg, sizes)


def build_model(cfg: Any, in_features: int, num_steps: int, sizes: list[int],
                make_neuron: Callable[[int], nn.Module]) -> Encoder:
    """Instantiate the encoder ``cfg.name`` (a model config node) over ``num_steps`` steps."""
    return ENCODERS.get(str(cfg.name)).from_config(cfg, in_features, num_steps, list(sizes), make_neuron)
