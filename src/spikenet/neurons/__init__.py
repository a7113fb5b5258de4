"""Multi-step spiking neurons on SpikingJelly, built from the ``neuron`` and ``surrogate`` configs."""

from __future__ import annotations

from typing import Any

import torch

from spikenet.neurons.adaptive_lif import AdaptiveLIFNode
from spikenet.neurons.definitions import DEFINITIONS
from spikenet.neurons.nodes import BLIFNode, DefinedNode, IFNode, LIFNode, ParametricLIFNode, SpikingNode
from spikenet.neurons.sj_compat import patch_spikingjelly_numpy
from spikenet.neurons.surrogates import SURROGATES, SpikeSurrogate, build_surrogate

NODES: dict[str, type[SpikingNode]] = {
    "adaptive_lif": AdaptiveLIFNode, "lif": LIFNode, "if": IFNode, "plif": ParametricLIFNode, "blif": BLIFNode,
}
"""The neurons with a hand-written node (a reference step path written out, constructor checks); any other
definition runs as a ``DefinedNode``."""
NEURONS = tuple(DEFINITIONS)
BACKENDS = ("auto", "torch", "cupy")

__all__ = ["NEURONS", "NODES", "SURROGATES", "AdaptiveLIFNode", "BLIFNode", "DefinedNode", "IFNode", "LIFNode",
           "ParametricLIFNode", "SpikeSurrogate", "SpikingNode", "build_neuron", "build_surrogate",
           "check_neuron_config", "patch_spikingjelly_numpy", "resolve_backend"]


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


def build_neuron(cfg: Any, surrogate: SpikeSurrogate, backend: str, channels: int | None = None) -> torch.nn.Module:
    """One multi-step neuron layer (``step_mode='m'``) for the config group ``neuron``; ``channels``: the
    layer's width (the input's last dimension), which neurons with per-channel parameters (blif) need."""
    node = _build_node(cfg, surrogate, backend, channels)
    node.register_forward_pre_hook(_float32_under_autocast)
    return node


def check_neuron_config(cfg: Any) -> None:
    """The ``neuron`` config's range checks, before any data is read (``config.validate``)."""
    _build_node(cfg, build_surrogate("sigmoid", 1.0), "torch", 1)


def _build_node(cfg: Any, surrogate: SpikeSurrogate, backend: str, channels: int | None) -> torch.nn.Module:
    name = cfg.name
    if name not in DEFINITIONS:
        raise ValueError(f"unknown neuron '{name}'; choose one of {tuple(DEFINITIONS)}")
    if backend == "cupy":
        patch_spikingjelly_numpy()  # for SpikingJelly's own CuPy nodes elsewhere in a model (np.int, numpy >= 1.24)
    # keys a neuron's config may leave out get the constructor's own default
    common = dict(
        v_threshold=float(cfg.v_threshold),
        v_reset=float(cfg.v_reset),
        surrogate_function=surrogate,
        step_mode="m",
        backend=backend,
        **({"detach_reset": bool(cfg.detach_reset)} if "detach_reset" in cfg else {}),
        **({"fused": bool(cfg.fused)} if "fused" in cfg else {}),
    )
    if name == "adaptive_lif":
        return AdaptiveLIFNode(tau=float(cfg.tau), thresh_decay=float(cfg.thresh_decay), gamma=float(cfg.gamma),
                               **common)
    if name == "lif":
        return LIFNode(tau=float(cfg.tau), **common)
    if name == "plif":
        return ParametricLIFNode(init_tau=float(cfg.tau), **common)
    if name == "blif":
        if channels is None:
            raise ValueError("neuron=blif has per-channel parameters: build_neuron needs channels (the layer width)")
        return BLIFNode(channels=int(channels), tau_raw=float(cfg.tau_raw), d_raw=float(cfg.d_raw), **common)
    if name == "if":
        return IFNode(**common)
    values = {k: v for k, v in cfg.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return DefinedNode(DEFINITIONS[name], values, channels, **common)
