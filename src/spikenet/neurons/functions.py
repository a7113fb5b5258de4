"""The multi-step neuron as autograd Functions, for any neuron of ``definitions.py``.

* ``FusedNeuron``: the generated torch path. One autograd node for all T steps: the forward runs the
  program's step on torch tensors (any device, any float dtype; float16/bfloat16 are computed in float32,
  float64 in float64), saving only the tape; the backward walks back once with the derived step
  backward. Everything in a step that depends on no state is computed for all T steps at once (the
  charge at tau = 1, the surrogate slopes of the saved arguments).
* ``KernelNeuron``: the compiled CPU kernel (``cpu_kernel``), float32, with an optional dropout of the
  spikes folded in (its mask given as the 16-bit words of ``FastDropout``); the backward recomputes the
  forward from the saved input.
* ``KernelFirePool``: that kernel with the next layer's input pooling folded in as well: it returns the
  parents' outputs and their children's mean (``spikenet.models.aggregators.hop_inputs`` for a layer that
  maps hop 0 only) without writing the [T, M, F] spikes.

All take a ``Call`` (neuron, variant, constants, surrogate, reset mode), the input [T, ...], then the
initial states (broadcastable to x[0]) and the parameters (per channel, or scalars), and return the
spikes (or pooled outputs) and the final states.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from spikenet.neurons.definitions import NEURONS, NeuronDef
from spikenet.neurons.expr import Expr, depends, evaluate, substitute, sym, topo_order
from spikenet.neurons.grad_utils import reduce_to
from spikenet.neurons.program import ADJ_OUT, Body, X, adj_sym, param_sym, program, state_sym, tape_syms
from spikenet.neurons.surrogates import ALPHA, SURROGATES, SpikeSurrogate


@dataclass(frozen=True)
class Call:
    """Everything of one neuron call that is not a tensor."""

    name: str
    variant: int
    constants: tuple[float, ...]  # in the definition's order
    surrogate: type[SpikeSurrogate]
    alpha: float
    detach: bool

    @property
    def defn(self) -> NeuronDef:
        return NEURONS.get(self.name)

    def kernel_constants(self) -> list[float]:
        """The compiled kernels' constants: the neuron's, then alpha and the reset's gradient factor."""
        return [*self.constants, self.alpha, 0.0 if self.detach else 1.0]

    def surrogate_id(self) -> int:
        return list(SURROGATES).index(self.surrogate.name)


def make_call(name: str, constants: dict[str, float], surrogate: SpikeSurrogate, detach: bool) -> Call:
    """The ``Call`` of neuron ``name`` with these constants (its variant picked from their values)."""
    defn = NEURONS.get(name)
    values = tuple(float(constants[c]) for c in defn.constants)
    return Call(name, defn.pick_variant(constants), values, type(surrogate), float(surrogate.alpha), bool(detach))


# ------------------------------------------------------------------------------------------ torch path
class _Stepper:
    """One body evaluated step after step; what depends on no per-step symbol (states, adjoints, the
    last step's tape) is computed once, for all steps at once where it reads a sequence (x, tape)."""

    def __init__(self, body: Body, per_step: set[str]) -> None:
        self.roles = [r for r, _ in body]
        self.roots = [e for _, e in body]
        self.order = topo_order(self.roots)
        varies = depends(self.roots, lambda s: f"{s.data[0]}:{s.data[1]}" in per_step or s.data[0] in per_step)
        reads_seq = depends(self.roots, lambda s: s.data[0] in ("x", "tape"))
        self.fixed = [n for n in self.order if not varies[id(n)]]
        self.seq_ids = {id(n) for n in self.fixed if reads_seq[id(n)]}

    def prepare(self, static: dict[Expr, Any], seqs: dict[Expr, torch.Tensor], f32: bool) -> dict[int, Any]:
        """Values of the fixed nodes: step-invariant ones as they are, sequence ones over all steps."""
        memo: dict[int, Any] = {}
        evaluate(self.fixed, {**static, **seqs}, f32, memo, self.fixed)
        return memo

    def run(self, env: dict[Expr, Any], hoisted: dict[int, Any], t: int, f32: bool) -> dict[str, Any]:
        """The body's outputs at step ``t`` (``hoisted``: ``prepare``'s values, or {})."""
        memo = {k: (v[t] if k in self.seq_ids else v) for k, v in hoisted.items()}
        values = evaluate(self.roots, env, f32, memo, self.order)
        return dict(zip(self.roles, values, strict=True))


@dataclass(frozen=True)
class _TorchProgram:
    forward_inner: _Stepper
    forward_inner_taped: _Stepper
    forward_last: _Stepper
    forward_last_taped: _Stepper
    backward_inner: _Stepper
    backward_last: _Stepper
    reads_x: bool
    n_tape: int
    n_tape_last: int


def bind_surrogate(body: Body, surrogate: type[SpikeSurrogate], alpha: Expr = ALPHA) -> Body:
    """``body`` with every surrogate slope sg(a) replaced by ``surrogate.formula(a, alpha)``."""
    roots = [e for _, e in body]
    mapping = {n: surrogate.formula(n.args[0], alpha) for n in topo_order(roots) if n.op == "sg"}
    return list(zip([r for r, _ in body], substitute(roots, mapping), strict=True))


@functools.cache
def torch_program(name: str, variant: int, detach: bool, surrogate: type[SpikeSurrogate]) -> _TorchProgram:
    prog = program(name, variant, detach)
    fwd_step = {"state"}
    bwd_step = {"adj", *(f"tape:tl{i}" for i in range(len(prog.tape_last)))}
    return _TorchProgram(
        _Stepper(prog.forward(False, tape=False), fwd_step), _Stepper(prog.forward(False), fwd_step),
        _Stepper(prog.forward(True, tape=False), fwd_step), _Stepper(prog.forward(True), fwd_step),
        _Stepper(bind_surrogate(prog.backward(False), surrogate), bwd_step),
        _Stepper(bind_surrogate(prog.backward(True), surrogate), bwd_step),
        prog.reads_x_backward(), len(prog.tape), len(prog.tape_last))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _full(value: Any, like: torch.Tensor) -> torch.Tensor:
    """``value`` (a tensor broadcastable to ``like``, or a number) as a tensor shaped like ``like``."""
    if isinstance(value, torch.Tensor):
        return value.expand_as(like)
    return torch.full_like(like, float(value))


def _static_env(call: Call, params: list[torch.Tensor]) -> dict[Expr, Any]:
    defn = call.defn
    env: dict[Expr, Any] = {sym("const", c): v for c, v in zip(defn.constants, call.constants, strict=True)}
    env.update({param_sym(p): t for p, t in zip(defn.param_names, params, strict=True)})
    env[ALPHA] = call.alpha
    return env


class FusedNeuron(torch.autograd.Function):
    """The generated torch path (see the module docstring). ``apply(call, x_seq, *states0, *params)``."""

    @staticmethod
    def forward(ctx, call: Call, x_seq: torch.Tensor, *tensors: torch.Tensor):
        defn = call.defn
        ns = len(defn.states)
        states0, params = tensors[:ns], tensors[ns:]
        T, shape = x_seq.shape[0], x_seq.shape[1:]
        cdtype = _compute_dtype(x_seq.dtype)
        f32 = cdtype == torch.float32
        x = x_seq.detach().to(cdtype)
        ref = x[0] if T else torch.empty(shape, dtype=cdtype, device=x.device)
        st = {s: _full(v.detach().to(cdtype), ref) for s, v in zip(defn.states, states0, strict=True)}
        par = [p.detach().to(cdtype) for p in params]
        need_grad = any(ctx.needs_input_grad[1:])
        tp = torch_program(call.name, call.variant, call.detach, call.surrogate)
        static = _static_env(call, par)
        inner = tp.forward_inner_taped if need_grad else tp.forward_inner
        last = tp.forward_last_taped if need_grad else tp.forward_last
        hoisted = inner.prepare(static, {X: x}, f32) if T > 1 else {}
        spikes = torch.empty_like(x)
        tape = [torch.empty_like(x) for _ in range(tp.n_tape)] if need_grad else []
        tape_last: list[torch.Tensor] = []
        for t in range(T):
            body = last if t == T - 1 else inner
            env = {**static, X: x[t], **{state_sym(s): v for s, v in st.items()}}
            out = body.run(env, hoisted if body is inner else {}, t, f32)
            spikes[t] = out["spike"]
            for role, value in out.items():
                if role.startswith("state:"):
                    st[role[6:]] = _full(value, ref)
                elif role.startswith("tape:ti"):
                    tape[int(role[7:])][t] = value
                elif role.startswith("tape:tl"):
                    tape_last.append(_full(value, ref))
        if need_grad:
            ctx.save_for_backward(x if tp.reads_x else None, *tape, *tape_last, *par)
            ctx.call = call
            ctx.shapes = (x_seq.shape, x_seq.dtype, [s.shape for s in states0], [p.shape for p in params],
                          [s.dtype for s in states0], [p.dtype for p in params])
        dtype = x_seq.dtype
        return (spikes.to(dtype), *(st[s].to(dtype) for s in defn.states))

    @staticmethod
    def backward(ctx, grad_spikes, *grad_states):
        call: Call = ctx.call
        defn = call.defn
        saved = ctx.saved_tensors
        tp = torch_program(call.name, call.variant, call.detach, call.surrogate)
        x = saved[0]
        tape = list(saved[1:1 + tp.n_tape])
        tape_last = list(saved[1 + tp.n_tape:1 + tp.n_tape + tp.n_tape_last])
        par = list(saved[1 + tp.n_tape + tp.n_tape_last:])
        x_shape, dtype, state_shapes, param_shapes, state_dtypes, param_dtypes = ctx.shapes
        T, shape = x_shape[0], x_shape[1:]
        device = (grad_spikes if grad_spikes is not None else next(g for g in grad_states if g is not None)).device
        cdtype = _compute_dtype(dtype)
        f32 = cdtype == torch.float32
        ref = torch.zeros(shape, dtype=cdtype, device=device)
        gout = grad_spikes.to(cdtype) if grad_spikes is not None else torch.zeros((T, *shape), dtype=cdtype,
                                                                                   device=device)
        adj = {s: (_full(g.to(cdtype), ref) if g is not None else ref)
               for s, g in zip(defn.states, grad_states, strict=True)}
        gpar = {p: ref for p in defn.param_names}
        static = _static_env(call, par)
        ti, tl = tape_syms(program(call.name, call.variant, call.detach))
        seqs: dict[Expr, torch.Tensor] = dict(zip(ti, tape, strict=True))
        if x is not None:
            seqs[X] = x
        hoisted = tp.backward_inner.prepare(static, seqs, f32) if T > 1 else {}
        grad_x = torch.empty((T, *shape), dtype=cdtype, device=device)
        for t in range(T - 1, -1, -1):
            last = t == T - 1
            body = tp.backward_last if last else tp.backward_inner
            env = {**static, ADJ_OUT: gout[t], **{adj_sym(s): v for s, v in adj.items()},
                   **{s: tape[i][t] for i, s in enumerate(ti)}}
            if x is not None:
                env[X] = x[t]
            if last:
                env.update(dict(zip(tl, tape_last, strict=True)))
            out = body.run(env, {} if last else hoisted, t, f32)
            grad_x[t] = out["adj_x"]
            for role, value in out.items():
                if role.startswith("adj_state:"):
                    adj[role[10:]] = _full(value, ref)
                elif role.startswith("adj_param:"):
                    gpar[role[10:]] = gpar[role[10:]] + value
        needs = ctx.needs_input_grad
        ns = len(defn.states)
        g_states = [reduce_to(adj[s], shp, dt) if needs[2 + i] else None
                    for i, (s, shp, dt) in enumerate(zip(defn.states, state_shapes, state_dtypes, strict=True))]
        g_params = [reduce_to(_full(gpar[p], ref), shp, dt) if needs[2 + ns + i] else None
                    for i, (p, shp, dt) in enumerate(zip(defn.param_names, param_shapes, param_dtypes, strict=True))]
        return (None, grad_x.to(dtype) if needs[1] else None, *g_states, *g_params)


# ------------------------------------------------------------------------------------------ CPU kernel
_EMPTY = torch.empty(0, dtype=torch.int16)


def _kernel_inputs(call: Call, x_seq: torch.Tensor, states0: tuple[torch.Tensor, ...],
                   params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """x [T, R] contiguous float32, the initial states ([R] each, not copied where they are so already) and
    the parameters [P, C] (C: channels)."""
    T = x_seq.shape[0]
    shape = x_seq.shape[1:]
    x = x_seq.detach().contiguous().view(T, -1)
    R = x.shape[1]
    C = shape[-1] if len(shape) else 1
    s0 = [s.detach().float().expand(shape).reshape(R).contiguous() for s in states0]
    pk = (torch.stack([p.detach().float().expand(C) for p in params]) if params
          else torch.empty(0, C, dtype=torch.float32))
    return x, s0, pk.contiguous()


def _final_state_grads(grads: tuple[torch.Tensor | None, ...], R: int) -> list[torch.Tensor]:
    """dL/d(final states) as fresh [R] float32 buffers (the kernels overwrite them with dL/d(initial states))."""
    return [torch.zeros(R) if g is None else g.detach().float().reshape(R).clone() for g in grads]


def _initial_grads(ctx, g_states: list[torch.Tensor], g_params: torch.Tensor) -> list[torch.Tensor | None]:
    """dL/d(initial states) and dL/dparams reduced to the shapes they came in (``ctx.shapes``)."""
    x_shape, state_shapes, param_shapes, first = ctx.shapes
    shape = x_shape[1:]
    needs = ctx.needs_input_grad
    out: list[torch.Tensor | None] = []
    for i, shp in enumerate(state_shapes):
        out.append(reduce_to(g_states[i].view(shape), shp) if needs[first + i] else None)
    for i, shp in enumerate(param_shapes):
        out.append(reduce_to(g_params[i].view(shape), shp) if needs[first + len(state_shapes) + i] else None)
    return out


class KernelNeuron(torch.autograd.Function):
    """The compiled CPU kernel (+ dropout of the spikes).

    ``apply(call, words, drop_threshold, drop_scale, x_seq, *states0, *params)``: x_seq [T, ...] float32
    on CPU; int16 ``words`` (>= x_seq.numel()) with the keep threshold and scale (``FastDropout.keep_words``),
    or None. Returns (spikes, or spikes * dropout scale, [T, ...]) and the final states.
    """

    @staticmethod
    def forward(ctx, call: Call, words: torch.Tensor | None, drop_threshold: int, drop_scale: float,
                x_seq: torch.Tensor, *tensors: torch.Tensor):
        from spikenet.neurons.cpu_kernel import ops

        ctx.set_materialize_grads(False)
        ns = len(call.defn.states)
        states0, params = tensors[:ns], tensors[ns:]
        x, s0, pk = _kernel_inputs(call, x_seq, states0, params)
        T, R = x.shape
        out = torch.empty_like(x)
        s_last = [torch.empty(R) for _ in range(ns)]
        w = _EMPTY if words is None else words
        ops(call.name).forward(x, s0, pk, w, out, s_last, call.kernel_constants(), call.variant,
                               int(drop_threshold), float(drop_scale))
        if any(ctx.needs_input_grad[4:]):  # the backward recomputes the forward from these
            ctx.save_for_backward(x, pk, w, *s0)
            ctx.call = call
            ctx.drop = (int(drop_threshold), float(drop_scale))
            ctx.shapes = (x_seq.shape, [s.shape for s in states0], [p.shape for p in params], 5)
        shape = x_seq.shape[1:]
        return (out.view(x_seq.shape), *(s_last[i].view(shape) for i in range(ns)))

    @staticmethod
    def backward(ctx, grad_out, *grad_states):
        from spikenet.neurons.cpu_kernel import ops

        x, pk, words, *s0 = ctx.saved_tensors
        call: Call = ctx.call
        T, R = x.shape
        g = torch.zeros_like(x) if grad_out is None else grad_out.float().contiguous().view(T, R)
        g_states = _final_state_grads(grad_states, R)
        g_params = torch.empty(len(call.defn.param_names), R)
        grad_x = torch.empty_like(x)
        ops(call.name).backward(x, s0, pk, g, words, g_states, g_params, grad_x, call.kernel_constants(),
                                call.variant, call.surrogate_id(), *ctx.drop)
        return (None, None, None, None, grad_x.view(ctx.shapes[0]), *_initial_grads(ctx, g_states, g_params))


class KernelFirePool(torch.autograd.Function):
    """``KernelNeuron`` (+ dropout) followed by ``hop_inputs(out, [n0, n0 * size], [size], aggr)``.

    ``apply(call, words, drop_threshold, drop_scale, n0, size, aggr, x_seq, *states0, *params)``: x_seq
    [T, M, F] holds n0 parent rows then each parent's ``size`` children (M = n0 (1 + size)). Returns
    (x_self [T, n0, F]: the parents' outputs, x_neigh [T, n0, F]: the mean, or sum, of each parent's
    children's outputs, then the final states shaped like x_seq[0]).
    """

    @staticmethod
    def forward(ctx, call: Call, words: torch.Tensor | None, drop_threshold: int, drop_scale: float, n0: int,
                size: int, aggr: str, x_seq: torch.Tensor, *tensors: torch.Tensor):
        from spikenet.neurons.cpu_kernel import ops

        ctx.set_materialize_grads(False)
        ns = len(call.defn.states)
        states0, params = tensors[:ns], tensors[ns:]
        T, M, F = x_seq.shape
        x, s0, pk = _kernel_inputs(call, x_seq, states0, params)
        R = x.shape[1]
        x_self, x_neigh = torch.empty(T, n0, F), torch.empty(T, n0, F)
        s_last = [torch.empty(R) for _ in range(ns)]
        w = _EMPTY if words is None else words
        mean = aggr == "mean"
        ops(call.name).pool_forward(x, s0, pk, w, x_self.view(T, -1), x_neigh.view(T, -1), s_last, int(n0),
                                    int(size), mean, call.kernel_constants(), call.variant, int(drop_threshold),
                                    float(drop_scale))
        if any(ctx.needs_input_grad[7:]):
            ctx.save_for_backward(x, pk, w, *s0)
            ctx.call = call
            ctx.pool = (int(n0), int(size), mean)
            ctx.drop = (int(drop_threshold), float(drop_scale))
            ctx.shapes = (x_seq.shape, [s.shape for s in states0], [p.shape for p in params], 8)
        shape = x_seq.shape[1:]
        return (x_self, x_neigh, *(s_last[i].view(shape) for i in range(ns)))

    @staticmethod
    def backward(ctx, g_self, g_neigh, *grad_states):
        from spikenet.neurons.cpu_kernel import ops

        x, pk, words, *s0 = ctx.saved_tensors
        call: Call = ctx.call
        n0, size, mean = ctx.pool
        T, R = x.shape
        pooled = (T, R // (1 + size))
        g_self = torch.zeros(pooled) if g_self is None else g_self.float().contiguous().view(pooled)
        g_neigh = torch.zeros(pooled) if g_neigh is None else g_neigh.float().contiguous().view(pooled)
        g_states = _final_state_grads(grad_states, R)
        g_params = torch.empty(len(call.defn.param_names), R)
        grad_x = torch.empty_like(x)
        ops(call.name).pool_backward(x, s0, pk, g_self, g_neigh, words, g_states, g_params, grad_x, n0, size, mean,
                                     call.kernel_constants(), call.variant, call.surrogate_id(), *ctx.drop)
        return (None,) * 7 + (grad_x.view(ctx.shapes[0]), *_initial_grads(ctx, g_states, g_params))
