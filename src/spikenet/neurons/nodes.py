"""SpikingJelly nodes for every neuron of ``definitions.py``: one base class runs the generated paths.

``SpikingNode`` subclasses SpikingJelly's step-by-step base node (``sj_compat.StepNode``: 0.0.0.0.14's
``BaseNode``, 2.x's ``SimpleBaseNode``; not ``LIFNode``, whose eval mode bypasses overridden methods).
Each neuron class keeps SpikingJelly's step-by-step ``neuronal_charge / neuronal_fire / neuronal_reset``
path, written out by hand as the reference, and names its definition;
its multi-step forward then takes, in this order:

* ``backend='cupy'``: the generated CUDA kernels (``cupy_kernels``);
* ``fused`` on CPU with float32 input and one of the surrogates the kernel knows: the compiled CPU kernel
  (``KernelNeuron``; ``cpu_kernel=False`` skips it, ``None``, the default, uses it where it builds),
  with ``fire_and_drop`` folding the following dropout into it and ``fire_drop_pool`` the next layer's
  input pooling as well;
* ``fused``: the generated torch path (``FusedNeuron``, any device and dtype);
* otherwise SpikingJelly's step loop over the reference path.

``DefinedNode`` runs any definition without a hand-written class (see its docstring).

States are SpikingJelly memories, so ``functional.reset_net`` resets them; hard reset only (a number
for ``v_reset``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from spikenet.contracts import FusedFiring, WordMaskDropout
from spikenet.neurons import cpu_kernel
from spikenet.neurons.definitions import BLIF, IF, LIF, NEURONS, PLIF, NeuronDef
from spikenet.neurons.expr import evaluate, sym
from spikenet.neurons.functions import Call, FusedNeuron, KernelFirePool, KernelNeuron, make_call
from spikenet.neurons.program import X, param_sym, state_sym
from spikenet.neurons.sj_compat import StepNode, node_kwargs
from spikenet.neurons.surrogates import Sigmoid, SpikeSurrogate, is_registered

TRANSFORMS = {"sigmoid": torch.sigmoid, "identity": lambda t: t}
"""A parameter's transform (``definitions.Param.transform``): raw value -> the value the step reads."""


def node_for(definition: NeuronDef):
    """Class decorator: ``cls`` is the hand-written node of ``definition`` (its ``NEURONS`` entry's ``node``
    metadata, which ``build_neuron`` constructs through ``cls.from_config``)."""

    def wrap(cls: type[SpikingNode]) -> type[SpikingNode]:
        cls.definition = definition
        entry = NEURONS.entry(definition.name)
        NEURONS.add(definition.name, entry.obj, **{**entry.meta, "node": cls})
        return cls

    return wrap


def config_values(cfg: Any) -> dict[str, float]:
    """A neuron config's numbers (booleans excluded), by key."""
    return {k: v for k, v in cfg.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def check_hard_reset(node: str, v_reset: Any) -> None:
    """``neuron.v_reset``: a number (the nodes here reset hard)."""
    if v_reset is None:
        raise ValueError(f"{node} uses a hard reset: v_reset must be a number")


def check_tau_above_one(name: str, sj_name: str, tau: float) -> None:
    """``neuron.tau`` > 1, as SpikingJelly's LIF and PLIF nodes require."""
    if not tau > 1.0:
        raise ValueError(f"neuron.tau must be > 1.0 for the {name} neuron (SpikingJelly's {sj_name}), got {tau}")


def check_defined_keys(definition: NeuronDef, values: dict[str, float]) -> None:
    """A definition's constants and its parameters' initial values are all in the config."""
    missing = [k for k in (*definition.constants, *(p.raw for p in definition.params)) if k not in values]
    if missing:
        raise ValueError(f"neuron '{definition.name}' needs the keys {missing} (its constants and its "
                         f"parameters' initial values) in its config")


class SpikingNode(StepNode, FusedFiring):
    """Base of the generated neurons (see the module docstring); subclasses set ``definition``, implement
    ``constants`` and the reference step, and return their parameters' kernel values from ``kernel_params``."""

    definition: NeuronDef
    channels: int | None = None  # set by neurons with per-channel parameters

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        surrogate_function: SpikeSurrogate | None = None,
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: str = "torch",
        fused: bool = True,
    ) -> None:
        check_hard_reset(type(self).__name__, v_reset)
        super().__init__(**node_kwargs(float(v_threshold), float(v_reset), surrogate_function or Sigmoid(1.0),
                                       detach_reset, step_mode, backend))
        self.backend = backend  # this project's backend (SpikingJelly 2.x's base node has none)
        self.fused = fused
        self.cpu_kernel: bool | None = None
        for name, init in self.definition.initial:  # where each state starts after a reset
            value = float(getattr(self, init)) if isinstance(init, str) else float(init)
            if name == "v":  # BaseNode registered it at v_reset
                self.set_reset_value("v", value)
                self.v = value
            else:
                self.register_memory(name, value)
        for name in self.definition.states:
            if name not in self._memories:
                self.register_memory(name, 0.0)

    @property
    def supported_backends(self) -> tuple[str, ...]:
        return ("torch",) if self.step_mode == "s" else ("torch", "cupy")

    def extra_repr(self) -> str:  # SpikingJelly 0.0.0.0.14's BaseNode wording, on both versions
        return (f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, detach_reset={self.detach_reset}, "
                f"step_mode={self.step_mode}, backend={self.backend}, fused={self.fused}")

    @classmethod
    def from_config(cls, definition: NeuronDef, cfg: Any, channels: int | None, **common: Any) -> SpikingNode:
        """The node for a ``neuron`` config node (``build_neuron``); ``common``: threshold, reset, surrogate,
        step mode, backend and the optional ``detach_reset`` / ``fused``. Subclasses read their own keys."""
        return cls(**common)

    @classmethod
    def check_config(cls, definition: NeuronDef, cfg: Any) -> None:
        """The range checks the constructor makes of a ``neuron`` config, without building a node (no data needed:
        ``config.validate`` runs them before any data is read). Subclasses add their own keys' checks."""
        check_hard_reset(cls.__name__, cfg.v_reset)

    # --- what the generated paths need ------------------------------------------------------
    def constants(self) -> dict[str, float]:  # pragma: no cover - abstract
        """The definition's constants, by name."""
        raise NotImplementedError

    def kernel_params(self) -> list[torch.Tensor]:
        """The definition's parameters as the step reads them (one per channel, or a scalar): each raw
        nn.Parameter through its transform."""
        return [TRANSFORMS[p.transform](getattr(self, p.raw)) for p in self.definition.params]

    def call(self) -> Call:
        return make_call(self.definition.name, self.constants(), self.surrogate_function, self.detach_reset)

    def _states_to_tensor(self, x: torch.Tensor) -> None:
        for name in self.definition.states:
            if isinstance(getattr(self, name), float):
                setattr(self, name, torch.full_like(x.data, getattr(self, name)))

    def _states(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in self.definition.states]

    def _set_states(self, values: tuple[torch.Tensor, ...]) -> None:
        for name, value in zip(self.definition.states, values, strict=True):
            setattr(self, name, value)

    def _check_input(self, x_seq: torch.Tensor) -> None:
        """Per-channel parameters need the input's last dimension to be the channel count."""
        if self.channels is not None and x_seq.shape[-1] != self.channels:
            raise ValueError(f"{self.definition.name} neuron has {self.channels} channels but its input's last "
                             f"dimension is {x_seq.shape[-1]}")

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        """SpikingJelly's step: states from floats to tensors, then charge -> fire -> reset."""
        self._states_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike

    # --- multi-step: CuPy kernels, compiled CPU kernel, generated torch path, or the step loop -------
    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        self._check_input(x_seq)
        if self.backend == "cupy":
            from spikenet.neurons.cupy_kernels import run_cupy

            self._states_to_tensor(x_seq[0])
            spikes, *states = run_cupy(self, x_seq)
            self._set_states(states)
            return spikes
        if self.fused and self._kernel_applies(x_seq):
            self._states_to_tensor(x_seq[0])
            spikes, *states = KernelNeuron.apply(self.call(), None, 0, 1.0, x_seq, *self._states(),
                                                 *self.kernel_params())
            self._set_states(states)
            return spikes
        if self.fused:
            self._states_to_tensor(x_seq[0])
            spikes, *states = FusedNeuron.apply(self.call(), x_seq, *self._states(), *self.kernel_params())
            self._set_states(states)
            return spikes
        return super().multi_step_forward(x_seq)

    def _kernel_applies(self, x_seq: torch.Tensor) -> bool:
        sg = self.surrogate_function
        return (
            self.cpu_kernel is not False
            and self.step_mode == "m"
            and self.backend == "torch"
            and x_seq.device.type == "cpu"
            and x_seq.dtype == torch.float32
            and is_registered(sg)  # exact types: a subclass may differ
            and cpu_kernel.available(self.definition.name)
        )

    def fire_and_drop(self, x_seq: torch.Tensor, dropout: nn.Module) -> torch.Tensor:
        """``dropout(self(x_seq))`` for a ``FastDropout``; in one kernel pass where the kernel applies.

        The dropout's random draws are the ones it would make itself, so the result is the same.
        """
        if not (dropout.training and dropout.p > 0.0 and isinstance(dropout, WordMaskDropout) and self.fused
                and self._kernel_applies(x_seq)):
            return dropout(self(x_seq))
        self._check_input(x_seq)
        self._states_to_tensor(x_seq[0])
        words, threshold, scale = dropout.keep_words(x_seq.numel(), x_seq.device)
        out, *states = KernelNeuron.apply(self.call(), words, threshold, scale, x_seq, *self._states(),
                                          *self.kernel_params())
        self._set_states(states)
        return out

    def fire_drop_pool(self, x_seq: torch.Tensor, dropout: nn.Module, n0: int, size: int, aggr: str
                       ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``hop_inputs(dropout(self(x_seq)), [n0, n0 * size], [size], aggr)`` in one kernel pass, or None
        where the kernel does not apply (the caller then takes the unfused path).

        Same random draws as ``fire_and_drop``; the [T, M, F] spikes are never written.
        """
        T, M, F = x_seq.shape
        if not (self.fused and self._kernel_applies(x_seq) and aggr in ("mean", "sum") and n0 * (1 + size) == M
                and F <= 1024 and (not dropout.training or dropout.p == 0.0 or isinstance(dropout, WordMaskDropout))):
            return None
        self._check_input(x_seq)
        self._states_to_tensor(x_seq[0])
        words, threshold, scale = None, 0, 1.0
        if dropout.training and dropout.p > 0.0:
            words, threshold, scale = dropout.keep_words(x_seq.numel(), x_seq.device)
        x_self, x_neigh, *states = KernelFirePool.apply(self.call(), words, threshold, scale, n0, size, aggr,
                                                        x_seq, *self._states(), *self.kernel_params())
        self._set_states(states)
        return x_self, x_neigh

    def _reset_spike(self, spike: torch.Tensor) -> torch.Tensor:
        return spike.detach() if self.detach_reset else spike


@node_for(LIF)
class LIFNode(SpikingNode):
    """SpikingJelly's ``LIFNode(decay_input=True)`` with a hard reset: H = V + (X - (V - v_reset)) / tau."""

    @classmethod
    def from_config(cls, definition: NeuronDef, cfg: Any, channels: int | None, **common: Any) -> LIFNode:
        return cls(tau=float(cfg.tau), **common)

    @classmethod
    def check_config(cls, definition: NeuronDef, cfg: Any) -> None:
        super().check_config(definition, cfg)
        check_tau_above_one("lif", "LIFNode", float(cfg.tau))

    def __init__(self, tau: float = 2.0, **kw) -> None:
        check_tau_above_one("lif", "LIFNode", tau)  # as SpikingJelly's LIFNode, which asserts it without a message
        super().__init__(**kw)
        self.tau = float(tau)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau}"

    def constants(self) -> dict[str, float]:
        return {"tau": self.tau, "v_reset": self.v_reset, "v_threshold": self.v_threshold}

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + (x - (self.v - self.v_reset)) / self.tau


@node_for(IF)
class IFNode(SpikingNode):
    """SpikingJelly's ``IFNode`` with a hard reset: H = V + X."""

    def constants(self) -> dict[str, float]:
        return {"v_reset": self.v_reset, "v_threshold": self.v_threshold}

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + x


@node_for(PLIF)
class ParametricLIFNode(SpikingNode):
    """SpikingJelly's ``ParametricLIFNode(decay_input=True)`` with a hard reset: one learnable w, 1/tau = sigmoid(w)."""

    @classmethod
    def from_config(cls, definition: NeuronDef, cfg: Any, channels: int | None, **common: Any
                    ) -> ParametricLIFNode:
        return cls(init_tau=float(cfg.tau), **common)

    @classmethod
    def check_config(cls, definition: NeuronDef, cfg: Any) -> None:
        super().check_config(definition, cfg)
        check_tau_above_one("plif", "PLIF", float(cfg.tau))

    def __init__(self, init_tau: float = 2.0, **kw) -> None:
        check_tau_above_one("plif", "PLIF", init_tau)
        super().__init__(**kw)
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.0)))

    def extra_repr(self) -> str:
        with torch.no_grad():
            tau = 1.0 / self.w.sigmoid().item()
        return f"{super().extra_repr()}, tau={tau}"

    def constants(self) -> dict[str, float]:
        return {"v_reset": self.v_reset, "v_threshold": self.v_threshold}

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + (x - (self.v - self.v_reset)) * self.w.sigmoid()


@node_for(BLIF)
class BLIFNode(SpikingNode):
    """SiGNN's bidirectional LIF (Pattern Recognition 2025), per channel (the input's last dimension):

        k = sigmoid(tau_raw), c = sigmoid(d_raw)                    (learnable, initialised to 1.0)
        H = V - (V - v_reset) k + (1 - k) X                         charge
        S = [H - theta > 0] + [-theta - H > 0]                      fires +1 on either crossing
        V = (1 - S) H + S v_reset                                   hard reset
        theta = c theta + (1 - c) S                                 threshold, from v_threshold

    As the official code: strict ``> 0`` on both crossings, the same surrogate on both, nothing
    detached (``detach_reset`` is available), V starts at 0 and theta at v_threshold after a reset.
    """

    @classmethod
    def from_config(cls, definition: NeuronDef, cfg: Any, channels: int | None, **common: Any) -> BLIFNode:
        if channels is None:
            raise ValueError("neuron=blif has per-channel parameters: build_neuron needs channels (the layer width)")
        return cls(channels=int(channels), tau_raw=float(cfg.tau_raw), d_raw=float(cfg.d_raw), **common)

    def __init__(self, channels: int, tau_raw: float = 1.0, d_raw: float = 1.0, **kw) -> None:
        if not (isinstance(channels, int) and channels > 0):
            raise ValueError(f"the blif neuron needs its channel count (the layer width), got {channels!r}")
        super().__init__(**kw)
        self.channels = channels
        self.tau_raw = nn.Parameter(torch.full((channels,), float(tau_raw)))
        self.d_raw = nn.Parameter(torch.full((channels,), float(d_raw)))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, channels={self.channels}"

    def constants(self) -> dict[str, float]:
        return {"v_reset": self.v_reset}

    def neuronal_charge(self, x: torch.Tensor) -> None:
        k = self.tau_raw.sigmoid()
        self.v = self.v - (self.v - self.v_reset) * k + (1.0 - k) * x

    def neuronal_fire(self) -> torch.Tensor:
        sg = self.surrogate_function
        return sg.strict(self.v - self.theta) + sg.strict(-self.theta - self.v)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        spike_d = self._reset_spike(spike)
        self.v = (1.0 - spike_d) * self.v + spike_d * self.v_reset

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        self._states_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        c = self.d_raw.sigmoid()
        self.theta = self.theta * c + (1.0 - c) * spike
        return spike


class DefinedNode(SpikingNode):
    """Any neuron of ``definitions.py`` without a hand-written class: its constants and its parameters'
    initial values are given by name (the config's keys), and its step-by-step path evaluates the definition
    itself, with autograd (fire through the surrogate, the reset's spike detached with ``detach_reset``).
    """

    def __init__(self, definition: NeuronDef, values: dict[str, float], channels: int | None = None, **kw) -> None:
        self.definition = definition
        check_defined_keys(definition, values)
        if any(p.per_channel for p in definition.params) and not (isinstance(channels, int) and channels > 0):
            raise ValueError(f"neuron '{definition.name}' has per-channel parameters: it needs its channel count "
                             f"(the layer width), got {channels!r}")
        super().__init__(**kw)
        self._constants = {c: float(values[c]) for c in definition.constants}
        if any(p.per_channel for p in definition.params):
            self.channels = channels
        for p in definition.params:
            shape = (channels,) if p.per_channel else ()
            self.register_parameter(p.raw, nn.Parameter(torch.full(shape, float(values[p.raw]))))

    @classmethod
    def from_config(cls, definition: NeuronDef, cfg: Any, channels: int | None, **common: Any) -> DefinedNode:
        return cls(definition, config_values(cfg), channels, **common)

    @classmethod
    def check_config(cls, definition: NeuronDef, cfg: Any) -> None:
        super().check_config(definition, cfg)
        check_defined_keys(definition, config_values(cfg))

    def extra_repr(self) -> str:
        consts = ", ".join(f"{k}={v}" for k, v in self._constants.items())
        return f"{self.definition.name}, {super().extra_repr()}, {consts}"

    def constants(self) -> dict[str, float]:
        return dict(self._constants)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        self._states_to_tensor(x)
        defn = self.definition
        step = defn.step()
        sg = self.surrogate_function
        env = {X: x, **{state_sym(s): getattr(self, s) for s in defn.states},
               **{sym("const", c): v for c, v in self._constants.items()},
               **{param_sym(p): k for p, k in zip(defn.param_names, self.kernel_params(), strict=True)}}
        overrides = {"fire_ge": sg, "fire_gt": sg.strict, "reset": self._reset_spike}
        spike, *states = evaluate([step.spike, *step.states.values()], env, x.dtype != torch.float64,
                                  overrides=overrides)
        for name, value in zip(defn.states, states, strict=True):
            setattr(self, name, value if isinstance(value, torch.Tensor) else torch.full_like(x, value))
        return spike
