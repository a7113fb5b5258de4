"""Multi-step spiking neurons on SpikingJelly, built from the ``neuron`` and ``surrogate`` configs."""

from __future__ import annotations

from typing import Any

import torch
from spikingjelly.activation_based import neuron as sj_neuron

from spikenet.neurons.adaptive_lif import AdaptiveLIFNode
from spikenet.neurons.surrogates import SURROGATES, SpikeSurrogate, build_surrogate

NEURONS = ("adaptive_lif", "lif", "if", "plif")
BACKENDS = ("auto", "torch", "cupy")

__all__ = ["NEURONS", "SURROGATES", "AdaptiveLIFNode", "SpikeSurrogate", "build_neuron", "build_surrogate",
           "resolve_backend"]


def cupy_available() -> bool:
    """True when CuPy imports and sees a CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``cupy`` on CUDA devices when CuPy works, else ``torch``."""
    if backend not in BACKENDS:
        raise ValueError(f"neuron.backend must be one of {BACKENDS}, got '{backend}'")
    if backend == "auto":
        return "cupy" if device.type == "cuda" and cupy_available() else "torch"
    if backend == "cupy" and device.type != "cuda":
        raise ValueError("neuron.backend=cupy needs device=cuda (CuPy kernels run on GPUs only)")
    return backend


def build_neuron(cfg: Any, surrogate: SpikeSurrogate, backend: str) -> torch.nn.Module:
    """One multi-step neuron layer (``step_mode='m'``) for the config group ``neuron``."""
    name = cfg.name
    common = dict(
        v_threshold=float(cfg.v_threshold),
        v_reset=float(cfg.v_reset),
        surrogate_function=surrogate,
        detach_reset=bool(cfg.get("detach_reset", False)),
        step_mode="m",
        backend=backend,
    )
    if name == "adaptive_lif":
        return AdaptiveLIFNode(
            tau=float(cfg.tau),
            thresh_decay=float(cfg.thresh_decay),
            gamma=float(cfg.gamma),
            fused=bool(cfg.get("fused", True)),
            **common,
        )
    if name == "lif":
        return sj_neuron.LIFNode(tau=float(cfg.tau), decay_input=True, **common)
    if name == "plif":
        return sj_neuron.ParametricLIFNode(init_tau=float(cfg.tau), decay_input=True, **common)
    if name == "if":
        return sj_neuron.IFNode(**common)
    raise ValueError(f"unknown neuron '{name}'; choose one of {NEURONS}")
