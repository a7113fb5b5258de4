"""The one place that knows which SpikingJelly is installed (0.0.0.0.14 or 2.x); everything else imports from here.

Supported: ``spikingjelly==0.0.0.0.14`` (the pinned default; it has SpikingJelly's own CuPy nodes) and
``spikingjelly>=2,<3`` (what ``pip install spikingjelly`` gives today; multi-step backends torch, triton and
inductor, no CuPy). What differs, and what this module gives either way (docs/spikingjelly.md):

* ``StepNode``: the base class whose ``single_step_forward`` runs ``neuronal_charge -> neuronal_fire ->
  neuronal_reset`` and whose ``multi_step_forward`` loops it over T (0.0.0.0.14: ``neuron.BaseNode``; 2.x:
  ``neuron.SimpleBaseNode``, since 2.x's ``BaseNode`` is a functional-state node). ``node_kwargs`` gives
  its constructor arguments (2.x has no ``backend``); memories, ``register_memory`` / ``set_reset_value``
  and the hard reset are the same in both.
* ``SurrogateBase``: ``SurrogateFunctionBase`` with one constructor ``(alpha, spiking)`` (0.0.0.0.14 took
  ``(alpha, spiking)`` positionally; 2.x takes ``(spiking, **params)``); ``heaviside``.
* ``reset_net``, ``STEP_MODES``; ``SJ_MULTI_STEP_BACKENDS``: SpikingJelly's own multi-step backends.
* ``require_sj_cupy``: SpikingJelly's own CuPy nodes, or one line naming the version that has them.

It also holds the numpy fix for 0.0.0.0.14's CuPy backend (below; 2.x has no such module, nothing to fix).

SpikingJelly 0.0.0.0.14's CuPy backend on numpy >= 1.24, without changing numpy for anyone else.

``spikingjelly/activation_based/auto_cuda/base.py`` checks kernel arguments in ``CKernel.check_ctypes``
with ``value.dtype == np.int``; numpy 1.24 removed that alias (it was the builtin ``int``), so every
LIF/IF/PLIF launch with ``backend='cupy'`` raises ``AttributeError``. The fix gives that one module a
read-through view of numpy that also answers the removed aliases with the builtins they used to be
(so ``dtype == np.int`` compares against ``dtype(int)`` exactly as under numpy < 1.24). The global
``numpy`` module, and every other module's reference to it, stay untouched.
"""

from __future__ import annotations

import builtins
import importlib.metadata
import types
from typing import Any

import numpy
import torch
from spikingjelly.activation_based import functional as _sj_functional
from spikingjelly.activation_based import neuron as _sj_neuron
from spikingjelly.activation_based import surrogate as _sj_surrogate

SJ_VERSION: str = importlib.metadata.version("spikingjelly")
"""The installed SpikingJelly's version string."""
SJ2: bool = int(SJ_VERSION.split(".")[0]) >= 2
"""True on SpikingJelly 2.x (no CuPy backend, functional-state ``BaseNode``)."""
SJ_CUPY_VERSION = "0.0.0.0.14"
"""The supported SpikingJelly whose own neuron nodes have a CuPy backend."""
STEP_MODES = ("s", "m")

if SJ2:
    StepNode = _sj_neuron.SimpleBaseNode
    SJ_MULTI_STEP_BACKENDS: tuple[str, ...] = ("torch", "triton", "inductor")
else:
    StepNode = _sj_neuron.BaseNode
    SJ_MULTI_STEP_BACKENDS = ("torch", "cupy")

sj_neuron = _sj_neuron
"""SpikingJelly's ``activation_based.neuron`` (its own LIFNode, IFNode, ParametricLIFNode, ...)."""
heaviside = _sj_surrogate.heaviside
reset_net = _sj_functional.reset_net


def node_kwargs(v_threshold: float, v_reset: float, surrogate_function: Any, detach_reset: bool, step_mode: str,
                backend: str) -> dict[str, Any]:
    """``StepNode.__init__``'s keyword arguments. 0.0.0.0.14's ``BaseNode`` also takes ``backend`` and checks it
    against the node's ``supported_backends`` (torch, cupy); 2.x's ``SimpleBaseNode`` has none. The node keeps
    this project's backend itself and runs it (``SpikingNode.multi_step_forward``)."""
    kw = dict(v_threshold=v_threshold, v_reset=v_reset, surrogate_function=surrogate_function,
              detach_reset=detach_reset, step_mode=step_mode)
    if not SJ2:
        kw["backend"] = "torch" if backend not in ("torch", "cupy") else backend
    return kw


class SurrogateBase(_sj_surrogate.SurrogateFunctionBase):
    """SpikingJelly's ``SurrogateFunctionBase`` with one constructor on both versions: ``alpha`` and ``spiking``
    become attributes (2.x also lists ``alpha`` in ``_sg_params``)."""

    def __init__(self, alpha: float, spiking: bool = True) -> None:
        if SJ2:
            super().__init__(spiking=spiking, alpha=alpha)
        else:
            super().__init__(alpha, spiking)


def sj_cupy_message() -> str:
    """The one line saying that SpikingJelly's own CuPy nodes need 0.0.0.0.14."""
    return (f"SpikingJelly's own CuPy neuron nodes need spikingjelly=={SJ_CUPY_VERSION} (installed: {SJ_VERSION}, "
            f"whose multi-step backends are {', '.join(SJ_MULTI_STEP_BACKENDS)})")


def sj_cupy_available() -> bool:
    """True when the installed SpikingJelly has its own CuPy nodes (0.0.0.0.14)."""
    return not SJ2


def require_sj_cupy() -> None:
    """Raise ``RuntimeError`` with ``sj_cupy_message`` where SpikingJelly's own CuPy nodes do not exist."""
    if not sj_cupy_available():
        raise RuntimeError(sj_cupy_message())


SJ_SURROGATE_TWINS = {"sigmoid": "Sigmoid"}
"""This project's surrogates whose formula is one of SpikingJelly's own (``sigmoid``: alpha s (1 - s), s =
sigmoid(alpha x), SpikingJelly's ``Sigmoid``; tests/neurons/test_surrogates.py). SpikingJelly 2.x's fused kernels
dispatch on its own surrogate types only; any other surrogate runs its torch reference."""


def sj_surrogate_twin(surrogate: Any) -> Any | None:
    """SpikingJelly's own surrogate with the same formula and alpha as ``surrogate`` (one of this project's),
    or None where SpikingJelly has none."""
    twin = SJ_SURROGATE_TWINS.get(getattr(surrogate, "name", ""))
    return None if twin is None else getattr(_sj_surrogate, twin)(alpha=float(surrogate.alpha))


def sj_triton_node(name: str, surrogate: Any, v_threshold: float, v_reset: float, tau: float,
                   detach_reset: bool) -> torch.nn.Module:
    """``neuron.backend=triton``: SpikingJelly 2.x's own multi-step node for ``name`` (lif, if, plif), with
    SpikingJelly's twin of ``surrogate``, so that its fused CUDA operator (Triton where installed) runs it;
    one-line errors where SpikingJelly is 0.0.0.0.14 or the surrogate has no twin."""
    if not SJ2:
        raise ValueError(f"neuron.backend=triton needs SpikingJelly 2.x (installed: {SJ_VERSION}; "
                         f"pip install -e '.[sj2]'); 0.0.0.0.14's fast path is neuron.backend=cupy")
    twin = sj_surrogate_twin(surrogate)
    if twin is None:
        raise ValueError(f"neuron.backend=triton runs SpikingJelly's own kernels, which know its own surrogates "
                         f"only: surrogate={getattr(surrogate, 'name', surrogate)!r} has no twin there; use "
                         f"surrogate={'/'.join(SJ_SURROGATE_TWINS)} or another neuron.backend")
    return sj_node(name, twin, v_threshold=v_threshold, v_reset=v_reset, tau=tau, detach_reset=detach_reset,
                   backend="triton")


def sj_node(name: str, surrogate_function: Any, v_threshold: float = 1.0, v_reset: float = 0.0,
            tau: float = 2.0, detach_reset: bool = False, backend: str = "torch") -> torch.nn.Module:
    """SpikingJelly's own multi-step ``LIFNode(decay_input=True)`` / ``IFNode`` / ``ParametricLIFNode`` (hard
    reset) on the given SpikingJelly backend: 0.0.0.0.14 ``torch`` or ``cupy``; 2.x ``torch``, ``triton`` or
    ``inductor`` (2.x picks its CUDA kernel per device; ``triton`` there means SpikingJelly's own multi-step
    operator, which uses Triton on CUDA where it is installed and its torch reference elsewhere)."""
    if backend not in SJ_MULTI_STEP_BACKENDS:
        if backend == "cupy":
            raise RuntimeError(sj_cupy_message())
        raise ValueError(f"SpikingJelly {SJ_VERSION} has the multi-step backends {SJ_MULTI_STEP_BACKENDS}, "
                         f"not '{backend}'")
    common = dict(v_threshold=float(v_threshold), v_reset=float(v_reset), surrogate_function=surrogate_function,
                  detach_reset=bool(detach_reset), step_mode="m")
    if not SJ2:
        common["backend"] = backend
    make = {"lif": lambda: _sj_neuron.LIFNode(tau=float(tau), decay_input=True, **common),
            "if": lambda: _sj_neuron.IFNode(**common),
            "plif": lambda: _sj_neuron.ParametricLIFNode(init_tau=float(tau), decay_input=True, **common)}
    if name not in make:
        raise ValueError(f"SpikingJelly has no node of its own for neuron '{name}'; it has {tuple(make)}")
    return make[name]()

SJ_BASE_MODULE = "spikingjelly.activation_based.auto_cuda.base"

REMOVED_ALIASES: dict[str, Any] = {name: getattr(builtins, name)
                                   for name in ("int", "float", "bool", "object", "complex", "str")}
"""numpy aliases of builtins removed in numpy 1.24 (deprecated since 1.20), mapped to what they were."""


class NumpyWithAliases(types.ModuleType):
    """A stand-in for ``numpy`` in one module's globals: numpy's attributes plus the removed aliases."""

    def __init__(self, wrapped: types.ModuleType = numpy) -> None:
        super().__init__(wrapped.__name__, wrapped.__doc__)
        self.__wrapped__ = wrapped

    def __getattr__(self, name: str) -> Any:  # only called for names not set on the proxy itself
        if name in REMOVED_ALIASES:  # numpy's own name if it has one again (numpy 2: np.bool), else the builtin
            return vars(self.__wrapped__).get(name, REMOVED_ALIASES[name])
        return getattr(self.__wrapped__, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__wrapped__)) | set(REMOVED_ALIASES))


def patch_spikingjelly_numpy() -> bool:
    """Give SpikingJelly's ``auto_cuda.base`` the numpy view above; idempotent.

    Returns True when the module's ``np`` is (now) the view, False when nothing needed changing
    (a numpy that still has ``np.int``).
    """
    import importlib

    if SJ2:  # 2.x has no auto_cuda CuPy backend: nothing to fix
        return False
    base = importlib.import_module(SJ_BASE_MODULE)
    current = getattr(base, "np", None)
    if isinstance(current, NumpyWithAliases):
        return True
    if current is None or hasattr(current, "int"):
        return False
    base.np = NumpyWithAliases(current)
    return True
