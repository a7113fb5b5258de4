"""Multi-step spiking neurons on SpikingJelly, built from the ``neuron`` and ``surrogate`` configs."""

from __future__ import annotations

from typing import Any

import torch
from spikingjelly.activation_based import neuron as sj_neuron

from spikenet.neurons.adaptive_lif import AdaptiveLIFNode
from spikenet.neurons.sj_compat import patch_spikingjelly_numpy
from spikenet.neurons.surrogates import SURROGATES, SpikeSurrogate, build_surrogate

NEURONS = ("adaptive_lif", "lif", "if", "plif")
BACKENDS = ("auto", "torch", "cupy")

__all__ = ["NEURONS", "SURROGATES", "AdaptiveLIFNode", "SpikeSurrogate", "build_neuron", "build_surrogate",
           "patch_spikingjelly_numpy", "resolve_backend"]


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


def _float32_under_autocast(module: torch.nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook: inside an autocast region, neurons integrate in float32.

    Autocast hands the neurons the linear layers' bf16/fp16 output; thresholds and membrane
    potentials in 8 (bf16) or 11 (fp16) mantissa bits would change which units fire, and the CuPy
    kernels take float32/float16 only. Outside autocast (e.g. an explicitly ``.half()`` node) the
    input's dtype is kept.
    """
    x = args[0]
    if x.dtype != torch.float32 and x.is_floating_point() and torch.is_autocast_enabled(x.device.type):
        return (x.float(), *args[1:])
    return None


def build_neuron(cfg: Any, surrogate: SpikeSurrogate, backend: str) -> torch.nn.Module:
    """One multi-step neuron layer (``step_mode='m'``) for the config group ``neuron``."""
    node = _build_node(cfg, surrogate, backend)
    node.register_forward_pre_hook(_float32_under_autocast)
    return node


def _build_node(cfg: Any, surrogate: SpikeSurrogate, backend: str) -> torch.nn.Module:
    name = cfg.name
    if backend == "cupy":
        patch_spikingjelly_numpy()  # SpikingJelly's CuPy kernels use np.int (gone since numpy 1.24)
    # keys a neuron's config may leave out get the constructor's own default
    common = dict(
        v_threshold=float(cfg.v_threshold),
        v_reset=float(cfg.v_reset),
        surrogate_function=surrogate,
        step_mode="m",
        backend=backend,
        **({"detach_reset": bool(cfg.detach_reset)} if "detach_reset" in cfg else {}),
    )
    if name == "adaptive_lif":
        return AdaptiveLIFNode(
            tau=float(cfg.tau),
            thresh_decay=float(cfg.thresh_decay),
            gamma=float(cfg.gamma),
            **({"fused": bool(cfg.fused)} if "fused" in cfg else {}),
            **common,
        )
    if name in ("lif", "plif") and not float(cfg.tau) > 1.0:  # SpikingJelly asserts it without a message
        raise ValueError(f"neuron.tau must be > 1.0 for SpikingJelly's {name} node, got {cfg.tau}")
    if name == "lif":
        return sj_neuron.LIFNode(tau=float(cfg.tau), decay_input=True, **common)
    if name == "plif":
        return sj_neuron.ParametricLIFNode(init_tau=float(cfg.tau), decay_input=True, **common)
    if name == "if":
        return sj_neuron.IFNode(**common)
    raise ValueError(f"unknown neuron '{name}'; choose one of {NEURONS}")
