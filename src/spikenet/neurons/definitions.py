"""Every neuron's dynamics, written once: one ``NeuronDef`` per neuron.

A definition names the neuron's state variables (and where each starts), its scalar constants (floats
fixed at construction), its learnable parameters (one value per channel, i.e. per entry of the input's
last dimension, or one scalar; the step reads them through a transform such as a sigmoid) and one time
step as expressions (``expr.py``): charge, fire, reset and any threshold update. From it ``program.py``
derives the step's backward and what to save for it, and the torch path (``functions.py``), the C++ CPU
kernel (``cpu_codegen.py``) and the CUDA kernels (``cupy_kernels.py``) are generated. The hand-written
nodes in ``nodes.py`` keep SpikingJelly's step-by-step ``neuronal_charge / neuronal_fire / neuronal_reset``
path as the reference the generated paths are tested against; a definition without one runs as a
``DefinedNode``, whose step-by-step path evaluates the definition itself with autograd.

``variants`` lists constant values under which the step simplifies (e.g. tau = 1: no leak memory); each
is compiled as its own specialised code and picked at run time when the node's constants match (the
last, general, variant is implicit). Only exact identities are simplified, so results do not change.

Adding a neuron: write its step function and a ``NeuronDef`` here, register it with ``define``, and add a
``conf/neuron/<name>.yaml`` naming its constants and its parameters' initial values (see docs/design.md,
"Adding a neuron"; a plugin module outside this repository calls ``define(defn, config={...})`` instead).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from spikenet.neurons.expr import Expr, fire, reset_spike, sym
from spikenet.registry import Registry

NEURONS: Registry[NeuronDef] = Registry("neuron", "neuron.name")
"""Config name -> ``NeuronDef``, each registered beside its definition (``define``). Metadata: ``node``, the
hand-written node class (``nodes.py``; none: the definition runs as a ``DefinedNode``), set where that class
is defined (``nodes.node_for``); ``config``, a plugin neuron's default config when there is no
``conf/neuron/<name>.yaml`` (``spikenet.neurons.neuron_config``); ``sj_node``: True where SpikingJelly's own node
computes the same step (lif, if, plif), which ``neuron.backend=triton`` then runs on SpikingJelly 2.x."""


@dataclass(frozen=True)
class Param:
    """A learnable parameter: the nn.Parameter ``raw`` (one value per channel, or one scalar) and the symbol
    ``name`` the step reads, ``transform(raw)`` ("sigmoid" or "identity")."""

    name: str
    raw: str
    per_channel: bool = True
    transform: str = "sigmoid"


@dataclass(frozen=True)
class Step:
    """One time step: the spike it emits and each state's new value."""

    spike: Expr
    states: dict[str, Expr]


class StepBuilder:
    """What a step function reads: ``x`` (the input), the states, constants and parameters by name, plus
    ``fire`` (Heaviside with the surrogate gradient) and ``reset`` (the spike as the reset sees it)."""

    def __init__(self, defn: NeuronDef) -> None:
        self._defn = defn
        self.x = sym("x", "x")

    def __getattr__(self, name: str) -> Expr:
        d = self._defn
        for kind, names in (("state", d.states), ("const", d.constants), ("param", d.param_names)):
            if name in names:
                return sym(kind, name)
        raise AttributeError(f"neuron '{d.name}' has no state, constant or parameter '{name}'")

    @staticmethod
    def fire(arg: Expr, strict: bool = False) -> Expr:
        """Heaviside(arg): 1 where arg >= 0 (arg > 0 with ``strict``); backward: the surrogate slope at arg."""
        return fire(arg, strict)

    @staticmethod
    def reset(spike: Expr) -> Expr:
        """``spike`` as used by the reset: ``detach_reset`` stops the gradient through it."""
        return reset_spike(spike)

    def step(self, spike: Expr, **states: Expr) -> Step:
        missing = set(self._defn.states) - set(states)
        extra = set(states) - set(self._defn.states)
        if missing or extra:
            raise ValueError(f"neuron '{self._defn.name}': step must update exactly {self._defn.states}, "
                             f"missing {sorted(missing)}, unknown {sorted(extra)}")
        return Step(spike, {name: states[name] for name in self._defn.states})


@dataclass(frozen=True)
class NeuronDef:
    """A neuron for every backend: states, constants, parameters and one step (see the module docstring).

    ``initial``: each state's value after a reset, a number or the name of a node attribute / config key
    (``v_reset``, ``v_threshold``); states not named start at 0.
    """

    name: str
    states: tuple[str, ...]
    constants: tuple[str, ...]
    params: tuple[Param, ...]
    step_fn: Callable[[StepBuilder], Step] = field(repr=False)
    variants: tuple[dict[str, float], ...] = ()
    initial: tuple[tuple[str, str | float], ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameters' symbols, in the kernels' order."""
        return tuple(p.name for p in self.params)

    def step(self) -> Step:
        return self.step_fn(StepBuilder(self))

    def all_variants(self) -> tuple[dict[str, float], ...]:
        """The declared variants, then the general one (no assumption)."""
        return (*self.variants, {})

    def pick_variant(self, constants: dict[str, float]) -> int:
        """Index of the first variant whose assumed constant values all hold."""
        for i, facts in enumerate(self.all_variants()):
            if all(float(constants[k]) == float(v) for k, v in facts.items()):
                return i
        raise AssertionError("unreachable: the general variant always matches")


def define(defn: NeuronDef, **meta) -> NeuronDef:
    """Register ``defn`` in ``NEURONS`` under its name (``meta``: the entry's metadata); returns it."""
    NEURONS.add(defn.name, defn, **meta)
    return defn


# ----------------------------------------------------------------------------------------------- neurons
def _adaptive_lif(n: StepBuilder) -> Step:
    # docs/design.md "Adaptive LIF"; the charge V + (X - (V - v_reset)) / tau is written as
    # (X + v_reset) / tau + (1 - 1/tau) V so that tau = 1 gives H = X exactly
    h = (n.x + n.v_reset) * n.inv_tau + n.keep * n.v
    s = n.fire(h - n.theta)
    r = n.reset(s)
    return n.step(s, v=(h - h * r) + n.v_reset * r, theta=n.theta * n.thresh_decay + n.gamma * s)


ADAPTIVE_LIF = define(NeuronDef(
    name="adaptive_lif",
    states=("v", "theta"),
    constants=("inv_tau", "keep", "v_reset", "thresh_decay", "gamma"),
    params=(),
    step_fn=_adaptive_lif,
    initial=(("v", "v_reset"), ("theta", "v_threshold")),
    # tau = 1 and v_reset = 0 (the paper's): H = X; tau = 1: H = X + v_reset; V is then only needed at the end
    variants=({"keep": 0.0, "v_reset": 0.0, "inv_tau": 1.0}, {"keep": 0.0}),
))


def _lif(n: StepBuilder) -> Step:
    # SpikingJelly's LIFNode(decay_input=True), hard reset
    h = n.v + (n.x - (n.v - n.v_reset)) / n.tau
    s = n.fire(h - n.v_threshold)
    r = n.reset(s)
    return n.step(s, v=(1.0 - r) * h + r * n.v_reset)


LIF = define(NeuronDef("lif", states=("v",), constants=("tau", "v_reset", "v_threshold"), params=(), step_fn=_lif,
                       initial=(("v", "v_reset"),)), sj_node=True)


def _if(n: StepBuilder) -> Step:
    # SpikingJelly's IFNode, hard reset
    h = n.v + n.x
    s = n.fire(h - n.v_threshold)
    r = n.reset(s)
    return n.step(s, v=(1.0 - r) * h + r * n.v_reset)


IF = define(NeuronDef("if", states=("v",), constants=("v_reset", "v_threshold"), params=(), step_fn=_if,
                      initial=(("v", "v_reset"),)), sj_node=True)


def _plif(n: StepBuilder) -> Step:
    # SpikingJelly's ParametricLIFNode(decay_input=True), hard reset; k = 1 / tau = sigmoid(w)
    h = n.v + (n.x - (n.v - n.v_reset)) * n.k
    s = n.fire(h - n.v_threshold)
    r = n.reset(s)
    return n.step(s, v=(1.0 - r) * h + r * n.v_reset)


PLIF = define(NeuronDef("plif", states=("v",), constants=("v_reset", "v_threshold"),
                        params=(Param("k", raw="w", per_channel=False),), step_fn=_plif, initial=(("v", "v_reset"),)),
                sj_node=True)


def _blif(n: StepBuilder) -> Step:
    # SiGNN's bidirectional LIF: k = sigmoid(tau_raw), c = sigmoid(d_raw) per channel
    h = n.v - (n.v - n.v_reset) * n.k + (1.0 - n.k) * n.x
    s = n.fire(h - n.theta, strict=True) + n.fire(-n.theta - h, strict=True)  # +1 on either crossing
    r = n.reset(s)
    return n.step(s, v=(1.0 - r) * h + r * n.v_reset, theta=n.theta * n.c + (1.0 - n.c) * s)


BLIF = define(NeuronDef("blif", states=("v", "theta"), constants=("v_reset",),
                        params=(Param("k", raw="tau_raw"), Param("c", raw="d_raw")), step_fn=_blif,
                        initial=(("v", 0.0), ("theta", "v_threshold"))))  # V from 0 whatever v_reset (official code)
