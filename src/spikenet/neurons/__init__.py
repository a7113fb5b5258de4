"""Multi-step spiking neurons on SpikingJelly, built from the ``neuron`` and ``surrogate`` configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spikenet.neurons.adaptive_lif import AdaptiveLIFNode
from spikenet.neurons.definitions import NEURONS, NeuronDef, define
from spikenet.neurons.nodes import BLIFNode, DefinedNode, IFNode, LIFNode, ParametricLIFNode, SpikingNode
from spikenet.neurons.sj_compat import SJ2, SJ_VERSION, patch_spikingjelly_numpy, sj_triton_node
from spikenet.neurons.surrogates import SURROGATES, SpikeSurrogate, build_surrogate, register_surrogate

BACKENDS = ("auto", "torch", "cupy", "triton")
"""``neuron.backend``: auto (cupy on CUDA where CuPy works, else torch), torch (the generated torch path / CPU
kernel), cupy (the generated CUDA kernels), triton (SpikingJelly 2.x's own fused node, for the neurons it has:
lif, if, plif with surrogate=sigmoid; sj_compat.sj_triton_node)."""

__all__ = ["NEURONS", "SURROGATES", "AdaptiveLIFNode", "BLIFNode", "DefinedNode", "IFNode", "LIFNode", "NeuronDef",
           "ParametricLIFNode", "SpikeSurrogate", "SpikingNode", "build_neuron", "build_surrogate",
           "check_neuron_config", "define", "neuron_config", "node_class", "patch_spikingjelly_numpy",
           "register_surrogate", "resolve_backend"]

CONF_NEURON_DIR = Path(__file__).resolve().parents[3] / "conf" / "neuron"
"""The ``neuron`` config group of this checkout (conf/neuron/<name>.yaml)."""


def node_class(name: str) -> type[SpikingNode]:
    """The node class that builds neuron ``name``: its hand-written class, else ``DefinedNode``."""
    return NEURONS.entry(name).get("node") or DefinedNode


def neuron_config(name: str, **overrides: Any) -> Any:
    """Neuron ``name``'s default config (conf/neuron/<name>.yaml, a plugin's conf/neuron/<name>.yaml, or its
    ``config`` metadata), with ``overrides`` applied: what tests and benchmarks build every registered neuron from."""
    from omegaconf import OmegaConf

    from spikenet.registry import plugin_config_dirs

    entry = NEURONS.entry(name)
    paths = [d / f"{name}.yaml" for d in (CONF_NEURON_DIR, *(c / "neuron" for c in plugin_config_dirs()))]
    path = next((p for p in paths if p.is_file()), None)
    if path is not None:
        cfg = OmegaConf.load(path)
    elif entry.get("config") is not None:
        cfg = OmegaConf.create({"name": name, **entry.get("config")})
    else:
        raise ValueError(f"neuron '{name}' has neither conf/neuron/{name}.yaml nor a config in its registration "
                         f"(define(defn, config={{...}}))")
    return OmegaConf.merge(cfg, OmegaConf.create(overrides))


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
    if backend == "triton" and not SJ2:
        raise ValueError(f"neuron.backend=triton needs SpikingJelly 2.x (installed: {SJ_VERSION})")
    if backend == "triton" and device.type != "cuda":
        raise ValueError("neuron.backend=triton needs device=cuda (SpikingJelly's Triton kernels run on GPUs only)")
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


def check_neuron_config(cfg: Any, backend: str) -> None:
    """The ``neuron`` config's range checks, made by its node class without building a node (``config.validate``,
    before any data is read); the constructor makes the same checks when the model builds its neurons."""
    entry = NEURONS.entry(str(cfg.name))  # an unknown name: one-line ValueError naming the choices
    if backend == "triton":
        check_triton(entry)
        return
    node_class(entry.name).check_config(entry.obj, cfg)


def check_triton(entry: Any) -> None:
    """``neuron.backend=triton`` runs SpikingJelly's own nodes: only for the neurons it has."""
    if not entry.get("sj_node"):
        raise ValueError(f"neuron.backend=triton runs SpikingJelly's own nodes: neuron={entry.name} has none "
                         f"(it has {', '.join(NEURONS.where(sj_node=True))}); use neuron.backend=auto/torch/cupy")


def _build_node(cfg: Any, surrogate: SpikeSurrogate, backend: str, channels: int | None) -> torch.nn.Module:
    entry = NEURONS.entry(cfg.name)  # an unknown name: one-line ValueError naming the choices
    if backend == "triton":
        check_triton(entry)
        return sj_triton_node(entry.name, surrogate, float(cfg.v_threshold), float(cfg.v_reset),
                              float(cfg.tau), bool(cfg.detach_reset))
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
    return node_class(entry.name).from_config(entry.obj, cfg, channels, **common)
