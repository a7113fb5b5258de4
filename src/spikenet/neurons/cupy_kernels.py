"""CuPy (GPU) path of every neuron: CUDA forward / BPTT kernels generated from its definition, and their
autograd Function.

One thread runs ``width`` neighbouring neurons (1, or 4 where every array allows 16-byte accesses) through
all T steps, holding the states in registers. The step's code is rendered from the neuron's program
(``program.py``), the same expressions the CPU kernel and the torch path compute:

* the forward writes the spikes, the final states and, when a gradient is needed, the tape (float32:
  the values the backward needs, every step's in ``tape_seq`` [E, T, N], the last step's extra ones in
  ``tape_last`` [E', N]); the adaptive LIF at tau = 1 saves H - theta only (24 bytes moved per element and
  step over forward + backward, the kernels being memory-bound), with a leak H - theta and H;
* the backward walks t = T-1 .. 0 with the derived step backward, the surrogate's slope inlined (alpha
  baked in); ``detach_reset`` is compiled in; parameter gradients come back per neuron (float32, summed
  over the steps) and are reduced over rows by torch.

Storage dtypes are ``float`` and ``half`` (``__half``, loaded and stored as such, computed in float32).
Kernels are compiled with ``--fmad=false``: no multiply-add contraction, so each operation rounds as in
the torch path and the float results agree with it bit for bit (exp aside). The module is pure Python
at import time; CuPy is imported when a kernel is compiled or launched, so the sources can be generated
(and compiled with NVRTC, and run on the host by the tests) on machines without CuPy or a GPU.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from spikenet.neurons.definitions import NEURONS
from spikenet.neurons.expr import Expr, add, const, render, sym, symbols
from spikenet.neurons.functions import Call, bind_surrogate
from spikenet.neurons.grad_utils import reduce_to
from spikenet.neurons.program import Body, Program, program
from spikenet.neurons.surrogates import SURROGATES, SpikeSurrogate, is_registered

THREADS = 256
"""CUDA threads per block."""

DTYPES: dict[str, str] = {"float": "float", "half": "__half"}
"""Kernel dtype name -> C storage type."""

WIDTHS = (1, 4)
"""Neurons per CUDA thread: 4 when every array allows 16-byte vector accesses (``vector_width``), else 1."""

COMPILE_OPTIONS = ("--fmad=false",)
"""NVRTC options of every kernel: no fused multiply-add, so results round as the torch path's."""

_TORCH_DTYPES = {torch.float32: "float", torch.float16: "half"}


@dataclass(frozen=True)
class KernelSources:
    """CUDA C source and entry-point name of the forward and backward kernels."""

    forward_name: str
    forward: str
    backward_name: str
    backward: str


def _check(name: str, dtype: str, width: int) -> None:
    NEURONS.entry(name)  # an unknown name: one-line ValueError naming the choices
    if dtype not in DTYPES:
        raise ValueError(f"neuron kernels support dtype {sorted(DTYPES)}, got {dtype!r}")
    if width not in WIDTHS:
        raise ValueError(f"neuron kernels run {WIDTHS} neurons per thread, got {width}")


def kernel_params(name: str, variant: int, kind: str, dtype: str = "float") -> list[tuple[str, str]]:
    """The ``(C type, name)`` parameters of the ``'forward'`` or ``'backward'`` kernel, in launch order."""
    _check(name, dtype, 1)
    prog = program(name, variant, False)
    defn, t = prog.defn, DTYPES[dtype]
    consts = [("float", f"c_{c}") for c in prog.constants]
    sizes = [("int", "T"), ("long long", "N"), ("int", "C")]
    if kind == "forward":
        return [(f"const {t} *", "x_seq"), (f"{t} *", "spike_seq"), ("float *", "tape_seq"), ("float *", "tape_last"),
                *((f"const {t} *", f"init_{s}") for s in defn.states), *((f"{t} *", f"last_{s}") for s in defn.states),
                *(("const float *", f"param_{p}") for p in defn.param_names), *consts, *sizes, ("int", "save")]
    if kind == "backward":
        return [(f"const {t} *", "grad_spike_seq"), *((f"const {t} *", f"grad_last_{s}") for s in defn.states),
                (f"const {t} *", "x_seq"), ("const float *", "tape_seq"), ("const float *", "tape_last"),
                *(("const float *", f"param_{p}") for p in defn.param_names), (f"{t} *", "grad_x_seq"),
                *((f"{t} *", f"grad_init_{s}") for s in defn.states),
                *(("float *", f"grad_param_{p}") for p in defn.param_names), *consts, *sizes]
    raise ValueError(f"kind must be 'forward' or 'backward', got {kind!r}")


def _signature(params: list[tuple[str, str]]) -> str:
    parts = []
    for ctype, pname in params:
        parts.append(f"{ctype}__restrict__ {pname}" if ctype.endswith("*") else f"const {ctype} {pname}")
    return ",\n    ".join(parts)


def _lane_helpers(dtype: str, width: int) -> str:
    """``spikenet_ld_<dtype><width>`` / ``spikenet_st_<dtype><width>``: move ``width`` neighbouring values
    between memory and a float32 register array (one 16-byte access for 4 floats, two 4-byte ``__half2``
    accesses for 4 halves). Guarded, so that several kernels can share one translation unit."""
    ctype, tag = DTYPES[dtype], f"{dtype}{width}"
    if width == 1:
        load = "o[0] = __half2float(p[0]);" if dtype == "half" else "o[0] = p[0];"
        store = "p[0] = __float2half_rn(o[0]);" if dtype == "half" else "p[0] = o[0];"
    elif dtype == "float":
        load = ("const float4 q = *reinterpret_cast<const float4 *>(p);\n"
                "    o[0] = q.x; o[1] = q.y; o[2] = q.z; o[3] = q.w;")
        store = "*reinterpret_cast<float4 *>(p) = make_float4(o[0], o[1], o[2], o[3]);"
    else:
        load = ("const __half2 *q = reinterpret_cast<const __half2 *>(p);\n"
                "    const float2 a = __half22float2(q[0]), b = __half22float2(q[1]);\n"
                "    o[0] = a.x; o[1] = a.y; o[2] = b.x; o[3] = b.y;")
        store = ("__half2 *q = reinterpret_cast<__half2 *>(p);\n"
                 "    q[0] = __floats2half2_rn(o[0], o[1]); q[1] = __floats2half2_rn(o[2], o[3]);")
    guard = f"SPIKENET_LANES_{tag.upper()}"
    return f"""#ifndef {guard}
#define {guard}
__device__ __forceinline__ void spikenet_ld_{tag}(const {ctype} *__restrict__ p, float *o) {{
    {load}
}}
__device__ __forceinline__ void spikenet_st_{tag}({ctype} *__restrict__ p, const float *o) {{
    {store}
}}
#endif
"""


def _prelude(dtype: str, width: int) -> str:
    helpers = {_lane_helpers(dtype, width), _lane_helpers("float", width)}  # storage dtype, float32 tape
    return ("#include <cuda_fp16.h>\n" if dtype == "half" else "") + "".join(sorted(helpers))


def _leaf(s: Expr) -> str:
    kind, name = s.data
    return {"x": "x[j]", "state": f"st_{name}[j]", "const": f"c_{name}", "param": f"p_{name}[j]",
            "tape": f"{name}[j]", "adj": "go[j]" if name == "out" else f"g_{name}[j]",
            "acc": f"gp_{name}[j]"}[kind]


def _lanes(lines: list[str], width: int, indent: str) -> list[str]:
    inner = indent + "    "
    return [f"{indent}#pragma unroll", f"{indent}for (int j = 0; j < {width}; ++j) {{",
            *(inner + ln for ln in lines), f"{indent}}}"]


def _forward_body(prog: Program, last: bool) -> list[str]:
    targets = []
    for role, e in prog.forward(last):
        if role == "spike":
            targets.append(("s[j]", e))
        elif role.startswith("state:"):
            targets.append((f"st_{role[6:]}[j]", e))
        else:
            targets.append((f"{role[5:]}[j]", e))
    return render(targets, _leaf, "cuda")


def _backward_body(body: Body) -> list[str]:
    targets = []
    for role, e in body:
        if role == "adj_x":
            targets.append(("gx[j]", e))
        elif role.startswith("adj_state:"):
            targets.append((f"g_{role[10:]}[j]", e))
        else:
            targets.append((f"gp_{role[10:]}[j]", add(sym("acc", role[10:]), e)))
    return render(targets, _leaf, "cuda")


def _reads(body: Body, kind: str) -> bool:
    return bool(symbols([e for _, e in body], kind))


def forward_source(name: str, variant: int = -1, dtype: str = "float", width: int = 1,
                   detach_reset: bool = False) -> tuple[str, str]:
    """``(kernel name, source)`` of neuron ``name``'s forward kernel. It does not depend on the surrogate;
    ``detach_reset`` can shorten the tape (the reset's gradient needs H)."""
    _check(name, dtype, width)
    prog = program(name, variant, bool(detach_reset))
    defn = prog.defn
    kname = (f"spikenet_{name}_forward_v{prog.variant}_{dtype}" + ("_detach" if detach_reset else "")
             + (f"_x{width}" if width > 1 else ""))
    W, ld, st = width, f"spikenet_ld_{dtype}{width}", f"spikenet_st_{dtype}{width}"
    nt, ntl = len(prog.tape), len(prog.tape_last)
    regs = ["x", "s", *(f"st_{s}" for s in defn.states), *(f"p_{p}" for p in defn.param_names),
            *(f"ti{i}" for i in range(nt)), *(f"tl{i}" for i in range(ntl))]
    save_every = [f"spikenet_st_float{W}(tape_seq + (long long) {e} * T * N + k, ti{e});" for e in range(nt)]
    save_last = [f"spikenet_st_float{W}(tape_last + (long long) {e} * N + i, tl{e});" for e in range(ntl)]
    i8, i12 = " " * 8, " " * 12
    lines = [
        _prelude(dtype, width),
        f'extern "C" __global__ void {kname}(',
        f"    {_signature(kernel_params(name, prog.variant, 'forward', dtype))})",
        "{",
        f"    const long long i = ((long long) blockIdx.x * blockDim.x + threadIdx.x) * {W};",
        "    if (i >= N) return;",
        f"    float {', '.join(f'{r}[{W}]' for r in regs)};",
        *(f"    {ld}(init_{s} + i, st_{s});" for s in defn.states),
        *(f"    for (int j = 0; j < {W}; ++j) p_{p}[j] = param_{p}[(i + j) % C];" for p in defn.param_names),
        "    for (int t = 0; t < T; ++t) {",
        "        const long long k = (long long) t * N + i;",
        f"        {ld}(x_seq + k, x);",
        "        if (t == T - 1) {",
        *_lanes(_forward_body(prog, True), W, i12),
        "            if (save) {",
        *(i12 + "    " + ln for ln in save_every + save_last),
        "            }",
        "        } else {",
        *_lanes(_forward_body(prog, False), W, i12),
        *([f"{i12}if (save) {{", *(i12 + "    " + ln for ln in save_every), f"{i12}}}"] if nt else []),
        "        }",
        f"{i8}{st}(spike_seq + k, s);",
        "    }",
        *(f"    {st}(last_{s} + i, st_{s});" for s in defn.states),
        "}",
        "",
    ]
    return kname, "\n".join(lines)


def _surrogate_tag(surrogate: Any) -> str:
    return str(getattr(surrogate, "name", "") or type(surrogate).__name__).lower()


def backward_source(name: str, surrogate: SpikeSurrogate, variant: int = -1, dtype: str = "float",
                    detach_reset: bool = False, width: int = 1) -> tuple[str, str]:
    """``(kernel name, source)`` of neuron ``name``'s BPTT kernel, the surrogate's slope (with its alpha) inlined."""
    _check(name, dtype, width)
    prog = program(name, variant, bool(detach_reset))
    defn = prog.defn
    kname = (f"spikenet_{name}_backward_v{prog.variant}_{dtype}_{_surrogate_tag(surrogate)}_"
             f"{'detach' if detach_reset else 'nodetach'}" + (f"_x{width}" if width > 1 else ""))
    W, ld, st = width, f"spikenet_ld_{dtype}{width}", f"spikenet_st_{dtype}{width}"
    alpha = const(float(surrogate.alpha))
    inner = bind_surrogate(prog.backward(False), type(surrogate), alpha)
    last = bind_surrogate(prog.backward(True), type(surrogate), alpha)
    nt, ntl = len(prog.tape), len(prog.tape_last)
    regs = ["go", "gx", "x", *(f"g_{s}" for s in defn.states), *(f"p_{p}" for p in defn.param_names),
            *(f"gp_{p}" for p in defn.param_names), *(f"ti{i}" for i in range(nt)), *(f"tl{i}" for i in range(ntl))]
    x_every, x_last = _reads(inner, "x"), _reads(last, "x")
    i8, i12 = " " * 8, " " * 12
    lines = [
        _prelude(dtype, width),
        f'extern "C" __global__ void {kname}(',
        f"    {_signature(kernel_params(name, prog.variant, 'backward', dtype))})",
        "{",
        f"    const long long i = ((long long) blockIdx.x * blockDim.x + threadIdx.x) * {W};",
        "    if (i >= N) return;",
        f"    float {', '.join(f'{r}[{W}]' for r in regs)};",
        *(f"    {ld}(grad_last_{s} + i, g_{s});" for s in defn.states),
        *(f"    for (int j = 0; j < {W}; ++j) {{ p_{p}[j] = param_{p}[(i + j) % C]; gp_{p}[j] = 0.0f; }}"
          for p in defn.param_names),
        "    for (int t = T - 1; t >= 0; --t) {",
        "        const long long k = (long long) t * N + i;",
        f"        {ld}(grad_spike_seq + k, go);",
        *([f"{i8}{ld}(x_seq + k, x);"] if x_every else []),
        *(f"{i8}spikenet_ld_float{W}(tape_seq + (long long) {e} * T * N + k, ti{e});" for e in range(nt)),
        "        if (t == T - 1) {",
        *([f"{i12}{ld}(x_seq + k, x);"] if x_last and not x_every else []),
        *(f"{i12}spikenet_ld_float{W}(tape_last + (long long) {e} * N + i, tl{e});" for e in range(ntl)),
        *_lanes(_backward_body(last), W, i12),
        "        } else {",
        *_lanes(_backward_body(inner), W, i12),
        "        }",
        f"{i8}{st}(grad_x_seq + k, gx);",
        "    }",
        *(f"    {st}(grad_init_{s} + i, g_{s});" for s in defn.states),
        *(f"    spikenet_st_float{W}(grad_param_{p} + i, gp_{p});" for p in defn.param_names),
        "}",
        "",
    ]
    return kname, "\n".join(lines)


def kernel_sources(name: str, surrogate: SpikeSurrogate, variant: int = -1, dtype: str = "float",
                   detach_reset: bool = False, width: int = 1) -> KernelSources:
    """Forward and backward kernel sources for one neuron, variant, surrogate (with its alpha), dtype,
    reset mode and width."""
    fname, fsrc = forward_source(name, variant, dtype, width, detach_reset)
    bname, bsrc = backward_source(name, surrogate, variant, dtype, detach_reset, width)
    return KernelSources(forward_name=fname, forward=fsrc, backward_name=bname, backward=bsrc)


# --------------------------------------------------------------------------------------------------------
# compilation and launch (CuPy imported lazily)

_KERNEL_CACHE: dict[tuple, tuple[Any, Any]] = {}


def _import_cupy() -> Any:
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        raise RuntimeError(
            "neuron.backend=cupy needs CuPy with a CUDA device (pip install cupy-cuda13x); "
            f"importing cupy failed: {exc}"
        ) from exc
    return cupy


def get_kernels(call: Call, dtype: str = "float", width: int = 1) -> tuple[Any, Any]:
    """Compiled ``cupy.RawKernel`` pair (forward, backward), cached per neuron, variant, surrogate, alpha,
    reset mode, dtype and width."""
    key = (call.name, call.variant, call.surrogate, call.alpha, call.detach, dtype, int(width))
    kernels = _KERNEL_CACHE.get(key)
    if kernels is None:
        cupy = _import_cupy()
        src = kernel_sources(call.name, call.surrogate(alpha=call.alpha), call.variant, dtype, call.detach, width)
        kernels = (
            cupy.RawKernel(src.forward, src.forward_name, options=COMPILE_OPTIONS),
            cupy.RawKernel(src.backward, src.backward_name, options=COMPILE_OPTIONS),
        )
        _KERNEL_CACHE[key] = kernels
    return kernels


def _require_cuda(x: torch.Tensor) -> None:
    if not x.is_cuda:
        raise ValueError("neuron.backend=cupy needs CUDA tensors (device=cuda); got a CPU input")


def _current_stream_ptr(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def vector_width(n: int, tensors: list[torch.Tensor | None]) -> int:
    """4 when ``n`` neurons split into groups of 4 and every array starts on a 16-byte boundary, else 1.

    Four neurons per thread turn each thread's per-step access into one 16-byte load or store: the
    kernels are bound by memory latency, and this keeps four times as many bytes in flight.
    ``SPIKENET_CUPY_VECTOR=0`` keeps one neuron per thread (for A/B timing).
    """
    if n % 4 or os.environ.get("SPIKENET_CUPY_VECTOR", "1") == "0":
        return 1
    return 4 if all(t is None or t.data_ptr() % 16 == 0 for t in tensors) else 1


def _launch(kernel: Any, params: list[tuple[str, str]], n: int, device: torch.device, values: dict[str, Any],
            width: int = 1) -> None:
    """Launch ``kernel`` over ``n`` neurons (``width`` per thread) on torch's current stream, arguments in
    the order of ``params``."""
    import numpy as np

    cupy = _import_cupy()
    args = []
    for ctype, name in params:
        value = values[name]
        if ctype.endswith("*"):
            args.append(np.int64(_ptr(value)))  # a device pointer is passed as a 64-bit integer
        elif ctype == "float":
            args.append(np.float32(value))
        elif ctype == "int":
            args.append(np.int32(value))
        else:  # long long
            args.append(np.int64(value))
    threads = (n + width - 1) // width
    blocks = (threads + THREADS - 1) // THREADS
    with cupy.cuda.Device(device.index):
        stream = cupy.cuda.ExternalStream(_current_stream_ptr(device))
        with stream:
            kernel((blocks,), (THREADS,), tuple(args))


def _constants(call: Call, prog: Program) -> dict[str, float]:
    values = dict(zip(call.defn.constants, call.constants, strict=True))
    return {f"c_{c}": values[c] for c in prog.constants}


class CuPyNeuron(torch.autograd.Function):
    """``apply(call, x_seq, *states0, *params)``: x_seq [T, ...] CUDA float32/float16; returns the spikes
    and the final states (shaped like x_seq[0])."""

    @staticmethod
    def forward(ctx, call: Call, x_seq: torch.Tensor, *tensors: torch.Tensor):
        _require_cuda(x_seq)
        if x_seq.dtype not in _TORCH_DTYPES:
            raise TypeError(f"the cupy neurons support float32 and float16 inputs, got {x_seq.dtype}")
        dtype = _TORCH_DTYPES[x_seq.dtype]
        defn = call.defn
        ns = len(defn.states)
        states0, params = tensors[:ns], tensors[ns:]
        T, shape = x_seq.shape[0], x_seq.shape[1:]
        N = math.prod(shape)
        C = shape[-1] if len(shape) else 1
        device = x_seq.device
        x2 = x_seq.reshape(T, N).contiguous()
        inits = [s.detach().to(x_seq.dtype).expand(shape).reshape(-1).contiguous() for s in states0]
        pk = [p.detach().float().expand(C).contiguous() for p in params]
        need_grad = any(ctx.needs_input_grad[1:])
        prog = program(call.name, call.variant, call.detach)
        lasts = [torch.empty_like(s) for s in inits]
        spikes = torch.empty_like(x2)
        tape_seq = tape_last = None
        if need_grad:
            tape_seq = torch.empty((len(prog.tape), T, N), device=device, dtype=torch.float32)
            tape_last = torch.empty((len(prog.tape_last), N), device=device, dtype=torch.float32)
        if T * N > 0:
            arrays = dict(x_seq=x2, spike_seq=spikes, tape_seq=tape_seq, tape_last=tape_last,
                          **{f"init_{s}": v for s, v in zip(defn.states, inits, strict=True)},
                          **{f"last_{s}": v for s, v in zip(defn.states, lasts, strict=True)},
                          **{f"param_{p}": v for p, v in zip(defn.param_names, pk, strict=True)})
            width = vector_width(N, list(arrays.values()))
            forward_kernel, _ = get_kernels(call, dtype, width)
            values = dict(**arrays, **_constants(call, prog), T=T, N=N, C=C, save=int(need_grad))
            _launch(forward_kernel, kernel_params(call.name, call.variant, "forward", dtype), N, device, values, width)
        else:
            for last, init in zip(lasts, inits, strict=True):
                last.copy_(init)
        if need_grad:
            ctx.save_for_backward(x2, tape_seq, tape_last, *pk)
            ctx.call = call
            ctx.shapes = (x_seq.shape, x_seq.dtype, [s.shape for s in states0], [s.dtype for s in states0],
                          [p.shape for p in params], [p.dtype for p in params])
        return (spikes.view(x_seq.shape), *(v.view(shape) for v in lasts))

    @staticmethod
    def backward(ctx, grad_spikes, *grad_states):
        x2, tape_seq, tape_last, *pk = ctx.saved_tensors
        call: Call = ctx.call
        defn = call.defn
        x_shape, xdtype, state_shapes, state_dtypes, param_shapes, param_dtypes = ctx.shapes
        T, N = x2.shape
        C = x_shape[-1] if len(x_shape) > 1 else 1
        device = x2.device
        dtype = _TORCH_DTYPES[xdtype]
        prog = program(call.name, call.variant, call.detach)

        def prep(g: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
            if g is None:
                return torch.zeros(shape, device=device, dtype=xdtype)
            return g.to(xdtype).reshape(shape).contiguous()

        g_spikes = prep(grad_spikes, (T, N))
        g_lasts = [prep(g, (N,)) for g in grad_states]
        grad_x = torch.empty((T, N), device=device, dtype=xdtype)
        grad_inits = [torch.empty((N,), device=device, dtype=xdtype) for _ in defn.states]
        grad_params = [torch.empty((N,), device=device, dtype=torch.float32) for _ in defn.param_names]
        if T * N > 0:
            arrays = dict(grad_spike_seq=g_spikes, x_seq=x2, tape_seq=tape_seq, tape_last=tape_last, grad_x_seq=grad_x,
                          **{f"grad_last_{s}": g for s, g in zip(defn.states, g_lasts, strict=True)},
                          **{f"param_{p}": v for p, v in zip(defn.param_names, pk, strict=True)},
                          **{f"grad_init_{s}": g for s, g in zip(defn.states, grad_inits, strict=True)},
                          **{f"grad_param_{p}": g for p, g in zip(defn.param_names, grad_params, strict=True)})
            width = vector_width(N, list(arrays.values()))
            _, backward_kernel = get_kernels(call, dtype, width)
            values = dict(**arrays, **_constants(call, prog), T=T, N=N, C=C)
            _launch(backward_kernel, kernel_params(call.name, call.variant, "backward", dtype), N, device, values,
                    width)
        else:
            for g, last in zip(grad_inits, g_lasts, strict=True):
                g.copy_(last)
            for g in grad_params:
                g.zero_()
        needs = ctx.needs_input_grad
        shape = x_shape[1:]
        ns = len(defn.states)
        gs = [reduce_to(g.view(shape), shp, dt) if needs[2 + i] else None
              for i, (g, shp, dt) in enumerate(zip(grad_inits, state_shapes, state_dtypes, strict=True))]
        gp = [reduce_to(g.view(shape), shp, dt) if needs[2 + ns + i] else None
              for i, (g, shp, dt) in enumerate(zip(grad_params, param_shapes, param_dtypes, strict=True))]
        return (None, grad_x.view(x_shape) if needs[1] else None, *gs, *gp)


def run_cupy(node: Any, x_seq: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Run ``node`` (a ``SpikingNode``) over x_seq [T, ...] with the CuPy kernels from its current states;
    returns ``(spikes, *final states)``."""
    surrogate = node.surrogate_function
    if not is_registered(surrogate):
        raise TypeError(f"surrogate {type(surrogate).__name__} has no generated CUDA code; use one of "
                        f"{SURROGATES.names()}")
    return CuPyNeuron.apply(node.call(), x_seq, *node._states(), *node.kernel_params())
