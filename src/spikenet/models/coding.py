"""Spike-coded input for the spiking encoders (the ``coding`` config group, ``model.coding``; docs/energy.md).

A coder turns the node features of every gathered row of every hop, [T, M_all, F] (``NodeLoader`` with
``hop_rows``), into spikes of the same shape, all T steps at once. The encoder then aggregates the coded
neighbours exactly as it aggregates a layer's spikes for the next layer (``hop_inputs``), so layer 0 reads
spikes, is counted as accumulates at the coder's rate, and its neighbour map is driven by every sampled
neighbour's spikes (the convention of SpikeNet's later layers).

- ``real``: no coder; layer 0 reads the real-valued features (the papers' setting, the default).
- ``rate``: Bernoulli spikes, drawn independently per step, row and feature from the global torch stream
  (seeded by the run's seed, as dropout is), with probability p = max_rate * sigmoid(x / scale). The
  backward pass is the straight-through estimate of the expectation: d s / d x = d p / d x.
- ``threshold``: a learned first spiking layer: u = a * x + b per feature (a = 1, b = ``bias`` at start, trained),
  the same input at every step of a static feature table, then a multi-step neuron of the model's
  ``neuron`` group (width F); its surrogate carries the gradient to a and b.
- Every spike coding has a ``gain``: layer 0 reads gain * spikes, i.e. its weights scaled by gain (folded into
  the stored weights, so a spike still costs accumulates). Binary inputs drive layer 0 far less than
  standardised features do, and without it the coded models barely learn (docs/energy.md).
- ``latency``: one spike per feature over the T steps (time to first spike), at step
  floor((1 - p) * T) (clipped to T - 1) with p = sigmoid(x / scale): larger values fire earlier. It has no
  parameters and passes no gradient (the features are data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

CODINGS = ("real", "rate", "threshold", "latency")


def check_coding(coding: Any) -> None:
    """``model.coding``: ``name`` one of ``CODINGS``; ``scale`` > 0, 0 < ``max_rate`` <= 1 and a finite ``bias``
    where read."""
    name = str(coding["name"])
    if name not in CODINGS:
        raise ValueError(f"model.coding.name must be one of {CODINGS}, got '{name}'")
    if name != "real" and not float(coding["gain"]) > 0:
        raise ValueError(f"model.coding.gain must be > 0, got {coding['gain']}")
    if name in ("rate", "latency") and not float(coding["scale"]) > 0:
        raise ValueError(f"model.coding.scale must be > 0, got {coding['scale']}")
    if name == "threshold" and not math.isfinite(float(coding["bias"])):
        raise ValueError(f"model.coding.bias must be a finite number, got {coding['bias']}")
    if name == "rate" and not 0 < float(coding["max_rate"]) <= 1:
        raise ValueError(f"model.coding.max_rate must be in (0, 1], got {coding['max_rate']}")


def refuse_coding(model: str, coding: Any) -> None:
    """Dense encoders read real-valued features: any coding but ``real`` is an error naming the key."""
    if coding is not None and str(coding["name"]) != "real":
        raise ValueError(f"model={model} reads real-valued features; coding={coding['name']} applies to spiking "
                         "encoders only (spikenet, signn); use coding=real")


class _StraightThroughBernoulli(torch.autograd.Function):
    """s ~ Bernoulli(p) forward; the gradient of p backward (d E[s] / d p = 1)."""

    @staticmethod
    def forward(ctx, p: torch.Tensor) -> torch.Tensor:
        return torch.rand(p.shape, dtype=p.dtype, device=p.device).lt_(p)  # in place: 1.0 where u < p

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class RateCoder(nn.Module):
    """Bernoulli rate code: p = max_rate * sigmoid(x / scale), one independent draw per step, row and feature."""

    name = "rate"
    states = 0

    def __init__(self, scale: float, max_rate: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.max_rate = float(max_rate)

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        return self.max_rate * torch.sigmoid(x / self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[T, M, F] features -> [T, M, F] spikes."""
        return _StraightThroughBernoulli.apply(self.probability(x))


class ThresholdCoder(nn.Module):
    """A learned first spiking layer: a per-feature affine map, then a multi-step neuron (the ``neuron`` group)."""

    name = "threshold"

    def __init__(self, in_features: int, neuron: nn.Module, states: int, bias: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(in_features))
        self.bias = nn.Parameter(torch.full((in_features,), float(bias)))  # b < 0 starts sparser
        self.neuron = neuron
        self.states = states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(torch.addcmul(self.bias, x, self.weight))


class LatencyCoder(nn.Module):
    """Time-to-first-spike code over the T steps: one spike per feature, at step floor((1 - p) * T) (clipped to
    T - 1), p = sigmoid(x / scale); with per-step features each step's own value sets its target step."""

    name = "latency"
    states = 0

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)

    def fire_steps(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        p = torch.sigmoid(x.detach() / self.scale)
        return p.neg_().add_(1).mul_(T).floor_().clamp_(0, T - 1)  # in place: [T, M, F] tables are large

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        steps = torch.arange(T, device=x.device, dtype=x.dtype).view(T, *([1] * (x.dim() - 1)))
        return self.fire_steps(x).eq_(steps)  # in place: 1.0 at the step each value fires


def build_coder(coding: Any, in_features: int, make_neuron: Callable[[int], nn.Module]) -> nn.Module | None:
    """The coder of ``model.coding`` over ``in_features`` features; None for ``real``."""
    check_coding(coding)
    name = str(coding["name"])
    if name == "real":
        return None
    if name == "rate":
        coder = RateCoder(coding["scale"], coding["max_rate"])
    elif name == "latency":
        coder = LatencyCoder(coding["scale"])
    else:
        neuron = make_neuron(in_features)
        coder = ThresholdCoder(in_features, neuron, neuron_states(neuron), coding["bias"])
    coder.gain = float(coding["gain"])
    return coder


def amplify(coder: nn.Module, spikes: torch.Tensor) -> torch.Tensor:
    """The coder's spikes as layer 0 reads them: times ``gain`` (a weight factor folded into layer 0's weights in
    hardware, so each spike still costs accumulates; trained, it is layer 0's learning rate times gain under Adam)."""
    return spikes if coder.gain == 1.0 else spikes * coder.gain


def neuron_states(neuron: nn.Module) -> int:
    """How many state variables per unit a neuron layer reads and writes every step (V; V and a threshold for
    adaptive neurons), for the memory account."""
    definition = getattr(neuron, "definition", None)  # spikenet.neurons' nodes: the states their definition names
    return len(definition.states) if definition is not None else 1


__all__ = ["CODINGS", "LatencyCoder", "RateCoder", "ThresholdCoder", "amplify", "build_coder", "check_coding",
           "neuron_states", "refuse_coding"]
