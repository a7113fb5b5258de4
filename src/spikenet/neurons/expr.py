"""Expressions for neuron updates and surrogate derivatives: written once, computed by every backend.

A neuron's step (charge, fire, reset, threshold update) and a surrogate's derivative are built from
``Expr`` nodes with ordinary Python operators, e.g. ``(x + v_reset) * inv_tau + keep * v``. From such a
graph

* ``evaluate`` computes it with torch tensors (the fused autograd path, any device and float dtype),
* ``render`` writes it as C++ (the CPU kernel), CUDA float or CUDA ``half2`` statements,
* ``reverse`` derives its backward (reverse mode, symbolically), so no backward is written by hand.

Nodes are interned: structurally equal expressions are the same object, which gives common
subexpressions for free. The constructors simplify exact identities only (x + 0, x * 1, 0 * x, x / 1,
--x, constants folded only where the result is exact in float32), so every backend performs the same
IEEE operations in the same order and the float32 results agree bit for bit (``exp`` aside: each backend
uses its own).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

BINARY = ("add", "sub", "mul", "div", "max", "min")
UNARY = ("neg", "exp", "abs", "step_ge", "step_gt", "fire_ge", "fire_gt", "reset", "sg")
"""``fire_*``: Heaviside value (>= 0 or > 0) whose derivative is the surrogate slope ``sg`` of its
argument; ``step_*``: the same value without a derivative; ``reset``: the spike as the reset sees it
(its derivative is the ``reset_grad`` factor: 1, or 0 with ``detach_reset``); ``sg``: the surrogate slope,
bound to a concrete surrogate when rendered."""

_TABLE: dict[tuple, Expr] = {}


class Expr:
    """One interned node: ``op`` with ``args`` (nodes) and ``data`` (a constant's value, a symbol's name)."""

    __slots__ = ("op", "args", "data")

    def __init__(self, op: str, args: tuple[Expr, ...], data: Any) -> None:
        self.op, self.args, self.data = op, args, data

    # arithmetic with Python numbers lifts them to constants
    def __add__(self, other: Any) -> Expr:
        return add(self, lift(other))

    def __radd__(self, other: Any) -> Expr:
        return add(lift(other), self)

    def __sub__(self, other: Any) -> Expr:
        return sub(self, lift(other))

    def __rsub__(self, other: Any) -> Expr:
        return sub(lift(other), self)

    def __mul__(self, other: Any) -> Expr:
        return mul(self, lift(other))

    def __rmul__(self, other: Any) -> Expr:
        return mul(lift(other), self)

    def __truediv__(self, other: Any) -> Expr:
        return div(self, lift(other))

    def __rtruediv__(self, other: Any) -> Expr:
        return div(lift(other), self)

    def __neg__(self) -> Expr:
        return neg(self)

    def __repr__(self) -> str:
        if self.op == "const":
            return repr(self.data)
        if self.op == "sym":
            kind, name = self.data
            return f"{kind}:{name}" if kind in ("adj", "tape") else name
        infix = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
        if self.op in infix:
            return f"({self.args[0]!r} {infix[self.op]} {self.args[1]!r})"
        return f"{self.op}({', '.join(map(repr, self.args))})"


def _node(op: str, args: tuple[Expr, ...] = (), data: Any = None) -> Expr:
    key_data = struct.pack("<d", data) if op == "const" else data
    key = (op, key_data, tuple(id(a) for a in args))
    node = _TABLE.get(key)
    if node is None:
        node = _TABLE[key] = Expr(op, args, data)
    return node


def const(value: float) -> Expr:
    """A literal (written into the generated code)."""
    return _node("const", data=float(value))


def sym(kind: str, name: str) -> Expr:
    """A named input of an expression: ``kind`` says what binds it (x, state, const, param, alpha, adj, tape, acc)."""
    return _node("sym", data=(kind, name))


def lift(value: Any) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, (int, float)):
        return const(value)
    raise TypeError(f"cannot use {type(value).__name__} in a neuron expression")


def is_const(e: Expr, value: float | None = None) -> bool:
    return e.op == "const" and (value is None or e.data == value)


def _is_f32(v: float) -> bool:
    try:
        return math.isfinite(v) and struct.unpack("<f", struct.pack("<f", v))[0] == v
    except OverflowError:
        return False


_FOLD: dict[str, Callable[[float, float], float]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b if b != 0.0 else math.nan,
}


def _folded(op: str, a: Expr, b: Expr) -> Expr | None:
    """a op b as one constant when both are constants and float32 gives that result exactly."""
    if not (a.op == "const" and b.op == "const"):
        return None
    r = _FOLD[op](a.data, b.data)
    return const(r) if _is_f32(a.data) and _is_f32(b.data) and _is_f32(r) else None


def add(a: Expr, b: Expr) -> Expr:
    if is_const(a, 0.0):
        return b
    if is_const(b, 0.0):
        return a
    return _folded("add", a, b) or _node("add", (a, b))


def sub(a: Expr, b: Expr) -> Expr:
    if is_const(b, 0.0):
        return a
    if is_const(a, 0.0):
        return neg(b)
    return _folded("sub", a, b) or _node("sub", (a, b))


def mul(a: Expr, b: Expr) -> Expr:
    if is_const(a, 0.0) or is_const(b, 0.0):
        return const(0.0)
    if is_const(a, 1.0):
        return b
    if is_const(b, 1.0):
        return a
    if is_const(a, -1.0):
        return neg(b)
    if is_const(b, -1.0):
        return neg(a)
    return _folded("mul", a, b) or _node("mul", (a, b))


def div(a: Expr, b: Expr) -> Expr:
    if is_const(b, 1.0):
        return a
    if is_const(a, 0.0):
        return const(0.0)
    return _folded("div", a, b) or _node("div", (a, b))


def neg(a: Expr) -> Expr:
    if a.op == "neg":
        return a.args[0]
    if a.op == "const":
        return const(-a.data)
    return _node("neg", (a,))


def exp(a: Any) -> Expr:
    """e ** a (each backend uses its own exp: torch's, a vectorisable one in C++, expf / h2exp in CUDA)."""
    return _node("exp", (lift(a),))


def absolute(a: Any) -> Expr:
    return _node("abs", (lift(a),))


def maximum(a: Any, b: Any) -> Expr:
    return _node("max", (lift(a), lift(b)))


def minimum(a: Any, b: Any) -> Expr:
    return _node("min", (lift(a), lift(b)))


def fire(a: Expr, strict: bool = False) -> Expr:
    """Heaviside(a) (a >= 0, or a > 0 with ``strict``); differentiated through the surrogate slope sg(a)."""
    return _node("fire_gt" if strict else "fire_ge", (a,))


def step(a: Expr, strict: bool = False) -> Expr:
    """Heaviside(a) without a derivative (a spike recomputed from its saved argument)."""
    return _node("step_gt" if strict else "step_ge", (a,))


def reset_spike(s: Expr) -> Expr:
    """The spike as the reset uses it; its derivative is ``reset_grad`` (0 with detach_reset)."""
    return _node("reset", (s,))


def slope(a: Expr) -> Expr:
    """The surrogate's derivative at a (rendered with the surrogate a kernel is built for)."""
    return _node("sg", (a,))


# ------------------------------------------------------------------------------------------ graph helpers
def topo_order(roots: Iterable[Expr]) -> list[Expr]:
    """Every node reachable from ``roots``, each after its arguments (deterministic)."""
    seen: set[int] = set()
    order: list[Expr] = []
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded or not node.args:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((a, False) for a in reversed(node.args) if id(a) not in seen)
    return order


def symbols(roots: Iterable[Expr], kind: str | None = None) -> list[Expr]:
    """The symbols ``roots`` read (of ``kind`` if given), in first-use order."""
    return [n for n in topo_order(roots) if n.op == "sym" and (kind is None or n.data[0] == kind)]


def depends(roots: Iterable[Expr], pred: Callable[[Expr], bool]) -> dict[int, bool]:
    """id(node) -> whether a symbol satisfying ``pred`` is among its leaves, for every node under ``roots``."""
    out: dict[int, bool] = {}
    for node in topo_order(roots):
        out[id(node)] = pred(node) if node.op == "sym" else any(out[id(a)] for a in node.args)
    return out


def rebuild(op: str, args: tuple[Expr, ...], data: Any = None) -> Expr:
    """The node ``op(args)`` through the simplifying constructors."""
    if op in ("add", "sub", "mul", "div"):
        return {"add": add, "sub": sub, "mul": mul, "div": div}[op](*args)
    if op == "neg":
        return neg(args[0])
    if op in ("const", "sym"):
        return _node(op, data=data)
    return _node(op, args)


def substitute(roots: list[Expr], mapping: Mapping[Expr, Expr]) -> list[Expr]:
    """``roots`` with the nodes in ``mapping`` replaced (and everything above them simplified again)."""
    memo: dict[int, Expr] = {}
    for node in topo_order(roots):
        if node in mapping:
            memo[id(node)] = mapping[node]
        elif node.args:
            memo[id(node)] = rebuild(node.op, tuple(memo[id(a)] for a in node.args), node.data)
        else:
            memo[id(node)] = node
    return [memo[id(r)] for r in roots]


def sum_of(terms: list[Expr]) -> Expr:
    """terms[0] + terms[1] + ... (left to right), or 0."""
    total = const(0.0)
    for t in terms:
        total = add(total, t)
    return total


# ------------------------------------------------------------------------------------------ reverse mode
def _partials(node: Expr, g: Expr, reset_grad: Expr) -> list[tuple[Expr, Expr]]:
    a = node.args[0] if node.args else None
    if node.op == "add":
        return [(a, g), (node.args[1], g)]
    if node.op == "sub":
        return [(a, g), (node.args[1], neg(g))]
    if node.op == "mul":
        b = node.args[1]
        return [(a, mul(g, b)), (b, mul(g, a))]
    if node.op == "div":
        b = node.args[1]
        return [(a, div(g, b)), (b, neg(div(mul(g, node), b)))]
    if node.op == "neg":
        return [(a, neg(g))]
    if node.op == "exp":
        return [(a, mul(g, node))]
    if node.op in ("fire_ge", "fire_gt"):
        return [(a, mul(g, slope(a)))]
    if node.op == "reset":
        return [(a, mul(g, reset_grad))]
    if node.op in ("step_ge", "step_gt"):
        return []
    raise NotImplementedError(f"'{node.op}' has no derivative in a neuron update (use it in surrogates only)")


def reverse(seeds: list[tuple[Expr, Expr]], wrt: list[Expr], reset_grad: Expr) -> dict[Expr, Expr]:
    """Adjoints of the leaves ``wrt`` given the adjoints ``seeds`` = [(output node, its adjoint), ...].

    Contributions to a node are summed in a fixed order (seeds first, then users from the last to the
    first), so every backend that renders the result sums in that order.
    """
    roots = [node for node, _ in seeds]
    wanted = set(map(id, wrt))
    live = depends(roots, lambda s: id(s) in wanted)
    contrib: dict[int, list[Expr]] = {}
    for node, g in seeds:
        contrib.setdefault(id(node), []).append(g)
    for node in reversed(topo_order(roots)):
        if node.op == "sym" or not live[id(node)] or id(node) not in contrib:
            continue
        g = sum_of(contrib[id(node)])
        for child, d in _partials(node, g, reset_grad):
            if live.get(id(child)) and not is_const(d, 0.0):
                contrib.setdefault(id(child), []).append(d)
    return {w: sum_of(contrib.get(id(w), [])) for w in wrt}


# ------------------------------------------------------------------------------------------ evaluation
def _round_f32(v: float) -> float:
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _scalar_div(a: float, b: float) -> float:
    return a / b if b else math.copysign(math.inf, a)


_SCALAR_OPS: dict[str, Callable[..., float]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": _scalar_div,
    "max": max, "min": min, "neg": lambda a: -a, "exp": math.exp, "abs": abs,
    "step_ge": lambda a: float(a >= 0), "step_gt": lambda a: float(a > 0),
    "fire_ge": lambda a: float(a >= 0), "fire_gt": lambda a: float(a > 0), "reset": lambda a: a,
}


def _tensor_extreme(op: str, a: Any, b: Any) -> Any:
    import torch

    if isinstance(a, float):
        a, b = b, a
    if isinstance(b, float):
        return torch.clamp_min(a, b) if op == "max" else torch.clamp_max(a, b)
    return torch.maximum(a, b) if op == "max" else torch.minimum(a, b)


@functools.cache
def _tensor_ops() -> dict[str, Callable[..., Any]]:
    import torch

    return {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
        "max": lambda a, b: _tensor_extreme("max", a, b), "min": lambda a, b: _tensor_extreme("min", a, b),
        "neg": lambda a: -a, "exp": torch.exp, "abs": torch.abs,
        "step_ge": lambda a: (a >= 0).to(a.dtype), "step_gt": lambda a: (a > 0).to(a.dtype),
        "fire_ge": lambda a: (a >= 0).to(a.dtype), "fire_gt": lambda a: (a > 0).to(a.dtype), "reset": lambda a: a,
    }


def evaluate(roots: list[Expr], env: Mapping[Expr, Any], f32_scalars: bool = True,
             memo: dict[int, Any] | None = None, order: list[Expr] | None = None,
             overrides: Mapping[str, Callable[..., Any]] | None = None) -> list[Any]:
    """Values of ``roots`` with torch: symbols from ``env`` (tensors or Python floats).

    Nodes that only see Python numbers stay Python numbers, rounded to float32 after each operation when
    ``f32_scalars`` (what C++ float code computes), so that a float32 tensor meets the same constants.
    ``memo`` (id(node) -> value) may carry values computed before (hoisted over all time steps);
    ``order``: ``topo_order(roots)`` when the caller has it already; ``overrides`` replace the tensor
    operations of some ops (a step-by-step reference: fire through a surrogate with autograd).
    """
    memo = {} if memo is None else memo
    rnd = _round_f32 if f32_scalars else float
    tensor_ops = {**_tensor_ops(), **(overrides or {})}
    for node in topo_order(roots) if order is None else order:
        if id(node) in memo:
            continue
        if node.op == "const":
            memo[id(node)] = rnd(node.data)
        elif node.op == "sym":
            if node not in env:
                raise KeyError(f"no value bound to '{node.data[1]}' ({node.data[0]})")
            value = env[node]
            memo[id(node)] = rnd(value) if isinstance(value, float) else value
        elif node.op == "sg":
            raise ValueError("an sg node must be bound to a surrogate before evaluation")
        else:
            args = [memo[id(a)] for a in node.args]
            if all(isinstance(a, float) for a in args):
                memo[id(node)] = rnd(_SCALAR_OPS[node.op](*args))
            else:
                memo[id(node)] = tensor_ops[node.op](*args)
    return [memo[id(r)] for r in roots]


# ------------------------------------------------------------------------------------------ rendering
def float_literal(value: float, lang: str = "cpp") -> str:
    """A float32 literal: the float32 nearest ``value``, printed so that C reads back exactly that float."""
    v = _round_f32(float(value))
    if not math.isfinite(v):
        raise ValueError(f"constant {value} is not a finite float32")
    text = repr(v) if v != int(v) or abs(v) >= 1e16 else f"{int(v)}.0"
    lit = f"{text}f"
    return f"__float2half2_rn({lit})" if lang == "half2" else lit


_CALLS = {
    "cpp": {"exp": "exp_approx", "abs": "std::abs", "max": "std::max", "min": "std::min"},
    "cuda": {"exp": "expf", "abs": "fabsf", "max": "fmaxf", "min": "fminf"},
    "half2": {"exp": "h2exp", "abs": "__habs2", "max": "__hmax2", "min": "__hmin2", "add": "__hadd2",
              "sub": "__hsub2", "mul": "__hmul2", "div": "__h2div", "neg": "__hneg2"},
}


def render(outputs: list[tuple[str, Expr]], leaf: Callable[[Expr], str], lang: str, prefix: str = "t",
           slope_call: Callable[[str], str] | None = None, indent: str = "") -> list[str]:
    """Statements computing every ``(target, expr)``: one ``const`` temporary per inner node, then the
    assignments ``target = value;`` (all reads happen before any write, so targets may be inputs).

    ``lang``: ``cpp`` (float, C++), ``cuda`` (float) or ``half2``; ``leaf(sym)`` gives a symbol's C
    expression; ``slope_call(arg)`` renders an ``sg`` node (C++ calls the surrogate's template parameter).
    """
    ctype = "half2" if lang == "half2" else "float"
    calls = _CALLS[lang]
    names: dict[int, str] = {}
    lines: list[str] = []

    def text(node: Expr) -> str:
        if id(node) in names:
            return names[id(node)]
        if node.op == "const":
            return float_literal(node.data, lang)
        return leaf(node)

    for node in topo_order([e for _, e in outputs]):
        if node.op in ("const", "sym"):
            continue
        args = [text(a) for a in node.args]
        op = node.op
        if op == "reset":
            names[id(node)] = args[0]  # the same value; only its derivative differs
            continue
        if op == "sg":
            if slope_call is None:
                raise ValueError("an sg node needs a surrogate (bind it before rendering, or pass slope_call)")
            value = slope_call(args[0])
        elif lang == "half2":
            if op in ("step_ge", "step_gt", "fire_ge", "fire_gt"):
                raise ValueError("spikes are not rendered in half2 (surrogate derivatives only)")
            value = f"{calls[op]}({', '.join(args)})"
        elif op in ("add", "sub", "mul", "div"):
            value = f"{args[0]} {dict(add='+', sub='-', mul='*', div='/')[op]} {args[1]}"
        elif op == "neg":
            value = f"-{args[0]}"
        elif op in ("step_ge", "fire_ge"):
            value = f"{args[0]} >= 0.0f ? 1.0f : 0.0f"
        elif op in ("step_gt", "fire_gt"):
            value = f"{args[0]} > 0.0f ? 1.0f : 0.0f"
        else:
            value = f"{calls[op]}({', '.join(args)})"
        name = f"{prefix}{len(names)}"
        names[id(node)] = name
        lines.append(f"{indent}const {ctype} {name} = {value};")
    for _, e in outputs:  # an output that is an input itself is read now: a target may overwrite it
        if e.op == "sym" and id(e) not in names:
            name = f"{prefix}{len(names)}"
            names[id(e)] = name
            lines.append(f"{indent}const {ctype} {name} = {leaf(e)};")
    lines += [f"{indent}{target} = {text(e)};" for target, e in outputs]
    return lines
