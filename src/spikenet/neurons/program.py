"""From a neuron definition to the per-step code every backend renders: forward, backward and what to save.

``program(name, variant, detach)`` specialises a ``NeuronDef`` (its variant's constant values substituted
and simplified) and derives:

* which states a step reads; a state no expression reads (the adaptive LIF's V with tau = 1) is only
  updated at the last step, and its adjoint is zero at every step but the last;
* the backward of one step by reverse mode (``expr.reverse``): the adjoints of the input, of the incoming
  states and of the parameters, given the adjoints of the spike and of the outgoing states;
* the tape: the forward values the backward needs. The backward refers to forward nodes; a node that
  depends on no state is recomputed there (the input is read again), a spike is recomputed from its
  argument, and the rest are saved, dropping any saved node that the other saved ones give back. The
  adaptive LIF at tau = 1 saves H - theta (one float per step) plus, at the last step only, nothing more
  (H = X is read again): the compact layout its CUDA kernels had by hand.

Bodies are lists of ``(role, expression)``: forward roles ``spike``, ``state:<s>``, ``tape:<t>``;
backward roles ``adj_x``, ``adj_state:<s>``, ``adj_param:<p>`` (one step's share, to be accumulated).
Their symbols: ``x``, ``state:<s>``, ``const:<c>``, ``param:<p>``, ``tape:ti<i>`` (saved every step),
``tape:tl<i>`` (saved at the last step), ``adj:out`` (upstream gradient of the spike), ``adj:<s>``
(adjoint of the outgoing state s) and ``const:reset_grad`` when ``detach`` is decided at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from spikenet.neurons.definitions import NEURONS, NeuronDef
from spikenet.neurons.expr import Expr, const, depends, reverse, substitute, sym, symbols, topo_order

X = sym("x", "x")
ADJ_OUT = sym("adj", "out")
RESET_GRAD = sym("const", "reset_grad")
_PASS_THROUGH = ("fire_ge", "fire_gt", "step_ge", "step_gt", "sg", "reset", "neg", "abs", "exp")

Body = list[tuple[str, Expr]]


def state_sym(name: str) -> Expr:
    return sym("state", name)


def param_sym(name: str) -> Expr:
    return sym("param", name)


def adj_sym(name: str) -> Expr:
    """The adjoint of state ``name``'s value after the step (what the later steps send back)."""
    return sym("adj", name)


@dataclass(frozen=True)
class Program:
    """One neuron, variant and reset mode, ready to render (see the module docstring)."""

    defn: NeuronDef
    variant: int
    detach: bool | None
    constants: tuple[str, ...]  # run-time constants the bodies read (the variant fixes the others)
    read_states: tuple[str, ...]
    tape: tuple[Expr, ...]  # saved at every step: tape:ti<i>
    tape_last: tuple[Expr, ...]  # saved at the last step only: tape:tl<i>
    forward_inner: Body
    forward_last: Body
    backward_inner: Body
    backward_last: Body

    def forward(self, last: bool, tape: bool = True) -> Body:
        body = self.forward_last if last else self.forward_inner
        return body if tape else [(r, e) for r, e in body if not r.startswith("tape:")]

    def backward(self, last: bool) -> Body:
        return self.backward_last if last else self.backward_inner

    def reads_x_backward(self) -> bool:
        return any(s is X for s in symbols([e for _, e in self.backward_inner + self.backward_last]))


def tape_syms(prog: Program) -> tuple[list[Expr], list[Expr]]:
    """The tape's symbols: (every step's, the last step's)."""
    return [sym("tape", f"ti{i}") for i in range(len(prog.tape))], \
        [sym("tape", f"tl{i}") for i in range(len(prog.tape_last))]


def _choose_tape(roots: list[Expr], saved: list[Expr]) -> list[Expr]:
    """The forward nodes to save so that ``roots`` (backward expressions) can be computed; ``saved`` are
    saved already. A node is "moving" when it depends on a state or on the input; one computed from a
    single moving operand and constants or parameters is recomputed from that operand."""
    adj_dep = depends(roots, lambda s: s.data[0] == "adj")
    state_dep = depends(roots, lambda s: s.data[0] == "state")
    moving = depends(roots, lambda s: s.data[0] in ("state", "x"))
    have = set(map(id, saved))
    chosen: list[Expr] = []
    visited: set[int] = set()
    x_read = False  # does the backward read the input outside of anything state-dependent?

    def need(n: Expr) -> None:  # n: a forward node that depends on a state
        if id(n) in have or n in chosen:
            return
        if n.op in _PASS_THROUGH:
            for a in n.args:
                if state_dep[id(a)]:
                    need(a)
            return
        live = [a for a in n.args if moving[id(a)]]
        if len(live) == 1 and state_dep[id(live[0])]:  # the other operand is a constant or a parameter
            need(live[0])
            return
        chosen.append(n)

    def visit(n: Expr) -> None:
        nonlocal x_read
        if id(n) in visited:
            return
        visited.add(id(n))
        if not adj_dep[id(n)]:
            if state_dep[id(n)]:
                need(n)
            elif moving[id(n)]:
                x_read = True
            return
        for a in n.args:
            visit(a)

    for r in roots:
        visit(r)

    def computable(n: Expr, avail: set[int]) -> bool:
        if id(n) in avail or not moving.get(id(n), False):
            return True
        if n.op == "sym":
            return n is X and x_read
        return all(computable(a, avail) for a in n.args)

    changed = True
    while changed:  # drop a saved node the other saved nodes (and the input, if read anyway) give back
        changed = False
        for n in sorted(chosen, key=lambda e: -len(topo_order([e]))):
            if n.op == "sym":
                continue
            rest = {id(c) for c in chosen if c is not n} | have
            if computable(n, rest):
                chosen.remove(n)
                changed = True
                break
    return chosen


@functools.cache
def program(name: str, variant: int = -1, detach: bool | None = None) -> Program:
    """The program of neuron ``name`` for its variant ``variant`` (-1: the general one); ``detach``:
    True/False fixes detach_reset, None leaves it to the run-time constant ``reset_grad``."""
    defn = NEURONS.get(name)
    variants = defn.all_variants()
    variant = variant % len(variants)
    facts = variants[variant]
    step = defn.step()
    mapping = {sym("const", k): const(v) for k, v in facts.items()}
    spike, *new = substitute([step.spike, *step.states.values()], mapping)
    new_states = dict(zip(defn.states, new, strict=True))
    used = set(map(id, symbols([spike, *new])))
    read = tuple(s for s in defn.states if id(state_sym(s)) in used)
    reset_grad = RESET_GRAD if detach is None else const(0.0 if detach else 1.0)
    wrt = [X, *map(state_sym, defn.states), *map(param_sym, defn.param_names)]

    def backward(live: tuple[str, ...]) -> Body:
        seeds = [(spike, ADJ_OUT)] + [(new_states[s], adj_sym(s)) for s in live]
        adj = reverse(seeds, wrt, reset_grad)
        return ([("adj_x", adj[X])] + [(f"adj_state:{s}", adj[state_sym(s)]) for s in defn.states]
                + [(f"adj_param:{p}", adj[param_sym(p)]) for p in defn.param_names])

    inner, last = backward(read), backward(defn.states)
    tape = _choose_tape([e for _, e in inner], [])
    tape_last = _choose_tape([e for _, e in last], tape)
    ti = {n: sym("tape", f"ti{i}") for i, n in enumerate(tape)}
    tl = {n: sym("tape", f"tl{i}") for i, n in enumerate(tape_last)}

    def cut(body: Body, mapping: dict[Expr, Expr], keep_unread: bool) -> Body:
        roles = [r for r, _ in body if keep_unread or r.removeprefix("adj_state:") not in defn.states
                 or r.removeprefix("adj_state:") in read]
        exprs = substitute([e for r, e in body if r in roles], mapping)
        return list(zip(roles, exprs, strict=True))

    # the tape must not leave a state behind in the backward: every state leaf is saved or unused
    backward_inner, backward_last = cut(inner, ti, keep_unread=False), cut(last, {**ti, **tl}, keep_unread=True)
    for role, e in backward_inner + backward_last:
        assert not symbols([e], "state"), f"{name}: {role} still reads a state after taping: {e}"
    forward_inner = ([("spike", spike)] + [(f"state:{s}", new_states[s]) for s in read]
                     + [(f"tape:ti{i}", n) for i, n in enumerate(tape)])
    forward_last = ([("spike", spike)] + [(f"state:{s}", new_states[s]) for s in defn.states]
                    + [(f"tape:ti{i}", n) for i, n in enumerate(tape)]
                    + [(f"tape:tl{i}", n) for i, n in enumerate(tape_last)])
    constants = tuple(c for c in defn.constants if c not in facts)
    return Program(defn, variant, detach, constants, read, tuple(tape), tuple(tape_last), forward_inner,
                   forward_last, backward_inner, backward_last)
