"""CuPy (GPU) path of ``AdaptiveLIFNode``: generated CUDA forward / BPTT kernels and their autograd Function.

The kernels run one thread per neuron and loop over T, keeping V and theta in registers; they compute
exactly the update and the backward of ``FusedAdaptiveLIF`` (see ``adaptive_lif.py`` for the equations):

* forward writes the spikes, the final V and theta and, when a gradient is needed, H_t and the threshold
  theta_{t-1} used at step t (both float32, whatever the storage dtype);
* backward walks t = T-1 .. 0, recomputes S_t = (H_t >= theta_{t-1}) with the very comparison of the
  forward pass, and inlines the surrogate's ``cuda_codes`` for dS/dH; ``detach_reset`` drops the reset term.

Without a leak (tau = 1, keep = 1 - 1/tau = 0, the paper's default) the backward needs H_t only through
H_t - theta_{t-1}, except for the reset term at the last step (dL/dV_t is 0 before it), so the forward
saves one float per element, ``h_seq[t] = H_t - theta_{t-1}``, and H_{T-1} in ``theta_seq[i]`` ([N]):
24 instead of 32 bytes moved per element and step over forward + backward (the kernels are
memory-bound). The sign of that difference is the spike exactly (IEEE subtraction, no flush-to-zero),
so the backward's spikes and surrogate argument are the forward's. Both kernels take the layout from
``keep == 0``, so they always agree. With a leak, H_t and theta_{t-1} are saved in full.

theta_{t-1} is saved instead of the spikes: the surrogate slope needs it and it cannot be recovered by
running the recurrence backwards (thresh_decay may be 0), while the spikes follow from it exactly.

Storage dtypes are ``float`` (float32) and ``half`` (float16, loaded and stored as ``__half``, computed in
float32). The module is pure Python at import time; CuPy is imported when a kernel is compiled or launched,
so ``kernel_sources`` works (and its output can be compiled with NVRTC) on machines without CuPy or a GPU.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

from spikenet.neurons.grad_utils import reduce_to as _reduce_to

THREADS = 256
"""CUDA threads per block."""

DTYPES: dict[str, str] = {"float": "float", "half": "__half"}
"""Kernel dtype name -> C storage type."""

_TORCH_DTYPES = {torch.float32: "float", torch.float16: "half"}

_COMMON_SCALARS: tuple[tuple[str, str], ...] = (
    ("float", "inv_tau"),
    ("float", "keep"),
    ("float", "v_reset"),
    ("float", "thresh_decay"),
    ("float", "adapt_gamma"),
    ("int", "T"),
    ("long long", "N"),
)

# (C type with {t} for the storage type, name); the launch code passes arguments in this order.
PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "forward": (
        ("const {t} *", "x_seq"),
        ("{t} *", "spike_seq"),
        ("float *", "h_seq"),
        ("float *", "theta_seq"),
        ("const {t} *", "v_init"),
        ("const {t} *", "theta_init"),
        ("{t} *", "v_last"),
        ("{t} *", "theta_last"),
        *_COMMON_SCALARS,
        ("int", "save"),
    ),
    "backward": (
        ("const {t} *", "grad_spike_seq"),
        ("const {t} *", "grad_v_last"),
        ("const {t} *", "grad_theta_last"),
        ("const float *", "h_seq"),
        ("const float *", "theta_seq"),
        ("{t} *", "grad_x_seq"),
        ("{t} *", "grad_v_init"),
        ("{t} *", "grad_theta_init"),
        *_COMMON_SCALARS,
    ),
}


@dataclass(frozen=True)
class KernelSources:
    """CUDA C source and entry-point name of the forward and backward kernels."""

    forward_name: str
    forward: str
    backward_name: str
    backward: str


def kernel_params(kind: str, dtype: str = "float") -> list[tuple[str, str]]:
    """The ``(C type, name)`` parameter list of the ``'forward'`` or ``'backward'`` kernel."""
    _check_dtype(dtype)
    return [(ctype.format(t=DTYPES[dtype]), name) for ctype, name in PARAMS[kind]]


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"adaptive LIF kernels support dtype {sorted(DTYPES)}, got {dtype!r}")


def _surrogate_tag(surrogate: Any) -> str:
    name = getattr(surrogate, "name", "") or type(surrogate).__name__
    return re.sub(r"\W", "_", str(name)).lower()


def _signature(kind: str, dtype: str) -> str:
    parts = []
    for ctype, name in kernel_params(kind, dtype):
        restrict = " __restrict__" if ctype.endswith("*") else ""
        parts.append(f"{ctype}{restrict} {name}" if restrict else f"const {ctype} {name}")
    return ",\n    ".join(parts)


WIDTHS = (1, 4)
"""Neurons per CUDA thread: 4 when every array allows 16-byte vector accesses (``vector_width``), else 1."""


def _header(dtype: str) -> str:
    return "#include <cuda_fp16.h>\n" if dtype == "half" else ""


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


def _check_width(width: int) -> None:
    if width not in WIDTHS:
        raise ValueError(f"adaptive LIF kernels run {WIDTHS} neurons per thread, got {width}")


def _prelude(dtype: str, width: int) -> str:
    helpers = {_lane_helpers(dtype, width), _lane_helpers("float", width)}  # storage dtype, saved float32
    return _header(dtype) + "".join(sorted(helpers))


def forward_source(dtype: str = "float", width: int = 1) -> tuple[str, str]:
    """``(kernel name, source)`` of the forward kernel (it does not depend on the surrogate).

    Each thread runs ``width`` neighbouring neurons (the same arithmetic per neuron for every width).
    """
    _check_dtype(dtype)
    _check_width(width)
    name = f"spikenet_adaptive_lif_forward_{dtype}" + (f"_x{width}" if width > 1 else "")
    W, ld, st = width, f"spikenet_ld_{dtype}{width}", f"spikenet_st_{dtype}{width}"
    src = f"""{_prelude(dtype, width)}
extern "C" __global__ void {name}(
    {_signature("forward", dtype)})
{{
    const long long i = ((long long) blockIdx.x * blockDim.x + threadIdx.x) * {W};
    if (i >= N) return;
    const bool compact = keep == 0.0f;
    float v[{W}], theta[{W}], x[{W}], s[{W}], h_save[{W}], theta_save[{W}];
    {ld}(v_init + i, v);
    {ld}(theta_init + i, theta);
    for (int t = 0; t < T; ++t) {{
        const long long k = (long long) t * N + i;
        {ld}(x_seq + k, x);
        #pragma unroll
        for (int j = 0; j < {W}; ++j) {{
            /* H = (X + v_reset) / tau + (1 - 1 / tau) V, rounded as in the fused torch path */
            const float h = fmaf(keep, v[j], __fmul_rn(__fadd_rn(x[j], v_reset), inv_tau));
            const bool fire = h >= theta[j];
            s[j] = fire ? 1.0f : 0.0f;
            h_save[j] = compact ? h - theta[j] : h;  /* compact: the sign of H - theta is the spike */
            theta_save[j] = compact ? h : theta[j];
            v[j] = fire ? v_reset : h;
            theta[j] = __fadd_rn(__fmul_rn(thresh_decay, theta[j]), adapt_gamma * s[j]);
        }}
        if (save) {{
            spikenet_st_float{W}(h_seq + k, h_save);
            if (!compact) spikenet_st_float{W}(theta_seq + k, theta_save);
            else if (t == T - 1) spikenet_st_float{W}(theta_seq + i, theta_save);  /* H_(T-1) */
        }}
        {st}(spike_seq + k, s);
    }}
    {st}(v_last + i, v);
    {st}(theta_last + i, theta);
}}
"""
    return name, src


def backward_source(surrogate: Any, dtype: str = "float", detach_reset: bool = False,
                    width: int = 1) -> tuple[str, str]:
    """``(kernel name, source)`` of the BPTT kernel with ``surrogate.cuda_codes`` inlined (in float32)."""
    _check_dtype(dtype)
    _check_width(width)
    tag = _surrogate_tag(surrogate)
    name = (f"spikenet_adaptive_lif_backward_{dtype}_{tag}_{'detach' if detach_reset else 'nodetach'}"
            + (f"_x{width}" if width > 1 else ""))
    W, ld, st = width, f"spikenet_ld_{dtype}{width}", f"spikenet_st_{dtype}{width}"
    sg_codes = surrogate.cuda_codes(y="sg", x="over", dtype="float")
    reset = "" if detach_reset else "g_s += g_v[j] * (v_reset - h);"
    src = f"""{_prelude(dtype, width)}
extern "C" __global__ void {name}(
    {_signature("backward", dtype)})
{{
    const long long i = ((long long) blockIdx.x * blockDim.x + threadIdx.x) * {W};
    if (i >= N) return;
    const bool compact = keep == 0.0f;
    float g_v[{W}], g_theta[{W}], g_in[{W}], h_saved[{W}], g_x[{W}];
    float theta_saved[{W}] = {{0.0f}};
    {ld}(grad_v_last + i, g_v);
    {ld}(grad_theta_last + i, g_theta);
    for (int t = T - 1; t >= 0; --t) {{
        const long long k = (long long) t * N + i;
        spikenet_ld_float{W}(h_seq + k, h_saved);
        if (!compact) spikenet_ld_float{W}(theta_seq + k, theta_saved);
        else if (t == T - 1) spikenet_ld_float{W}(theta_seq + i, theta_saved);  /* H_(T-1) */
        {ld}(grad_spike_seq + k, g_in);
        #pragma unroll
        for (int j = 0; j < {W}; ++j) {{
            /* compact (keep == 0): the difference is saved; H only matters at the last step */
            float over, h;
            bool fire;
            if (compact) {{
                over = h_saved[j];
                h = t == T - 1 ? theta_saved[j] : 0.0f;
                fire = over >= 0.0f;
            }} else {{
                h = h_saved[j];
                over = h - theta_saved[j];
                fire = h >= theta_saved[j];
            }}
            const float s = fire ? 1.0f : 0.0f;
            float sg;
            {{
                {sg_codes}
            }}
            /* dL/dS = upstream + gamma dL/dtheta_t [+ dL/dV_t (v_reset - H)]; times the surrogate slope */
            float g_s = g_in[j] + adapt_gamma * g_theta[j];
            {reset}
            g_s = g_s * sg;
            const float g_h = g_v[j] * (1.0f - s) + g_s;
            g_theta[j] = thresh_decay * g_theta[j] - g_s;
            g_x[j] = g_h * inv_tau;
            g_v[j] = g_h * keep;
        }}
        {st}(grad_x_seq + k, g_x);
    }}
    {st}(grad_v_init + i, g_v);
    {st}(grad_theta_init + i, g_theta);
}}
"""
    return name, src


def kernel_sources(surrogate: Any, dtype: str = "float", detach_reset: bool = False,
                   width: int = 1) -> KernelSources:
    """Forward and backward kernel sources for one surrogate (with its alpha), dtype, reset mode and width."""
    fname, fsrc = forward_source(dtype, width)
    bname, bsrc = backward_source(surrogate, dtype, detach_reset, width)
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


def get_kernels(surrogate: Any, dtype: str = "float", detach_reset: bool = False,
                width: int = 1) -> tuple[Any, Any]:
    """Compiled ``cupy.RawKernel`` pair (forward, backward), cached per (surrogate, alpha, dtype, detach, width)."""
    key = (
        type(surrogate).__module__,
        type(surrogate).__qualname__,
        float(getattr(surrogate, "alpha", 0.0)),
        dtype,
        bool(detach_reset),
        int(width),
    )
    kernels = _KERNEL_CACHE.get(key)
    if kernels is None:
        cupy = _import_cupy()
        src = kernel_sources(surrogate, dtype, detach_reset, width)
        kernels = (
            cupy.RawKernel(src.forward, src.forward_name),
            cupy.RawKernel(src.backward, src.backward_name),
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


def _launch(kernel: Any, kind: str, n: int, device: torch.device, values: dict[str, Any],
            width: int = 1) -> None:
    """Launch ``kernel`` over ``n`` neurons (``width`` per thread) on torch's current stream, arguments in
    ``PARAMS`` order."""
    import numpy as np

    cupy = _import_cupy()
    args = []
    for ctype, name in PARAMS[kind]:
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


def _scalars(tau: float, v_reset: float, thresh_decay: float, gamma: float, T: int, N: int) -> dict:
    inv_tau = 1.0 / tau
    return {
        "inv_tau": inv_tau,
        "keep": 1.0 - inv_tau,
        "v_reset": v_reset,
        "thresh_decay": thresh_decay,
        "adapt_gamma": gamma,
        "T": T,
        "N": N,
    }


class AdaptiveLIFCuPyFunction(torch.autograd.Function):
    """Inputs: x_seq [T, ...] (CUDA float32/float16), v0 and theta0 (broadcastable to x_seq[0]), constants.

    Returns spikes [T, ...], the final V and the final theta (shaped like x_seq[0]).
    """

    @staticmethod
    def forward(
        ctx,
        x_seq: torch.Tensor,
        v0: torch.Tensor,
        theta0: torch.Tensor,
        tau: float,
        v_reset: float,
        thresh_decay: float,
        gamma: float,
        surrogate: Any,
        detach_reset: bool,
    ):
        _require_cuda(x_seq)
        if x_seq.dtype not in _TORCH_DTYPES:
            raise TypeError(f"the cupy adaptive LIF supports float32 and float16 inputs, got {x_seq.dtype}")
        dtype = _TORCH_DTYPES[x_seq.dtype]
        T = x_seq.shape[0]
        state_shape = x_seq.shape[1:]
        N = math.prod(state_shape)
        x2 = x_seq.reshape(T, N).contiguous()
        v_init = v0.to(x_seq.dtype).expand(state_shape).reshape(-1).contiguous()
        theta_init = theta0.to(x_seq.dtype).expand(state_shape).reshape(-1).contiguous()
        need_grad = any(ctx.needs_input_grad[:3])

        spikes = torch.empty_like(x2)
        v_last = torch.empty_like(v_init)
        theta_last = torch.empty_like(theta_init)
        h_seq = theta_seq = None
        if need_grad:
            h_seq = torch.empty((T, N), device=x2.device, dtype=torch.float32)
            compact = 1.0 - 1.0 / tau == 0.0  # the kernels' layout switch (see the module docstring)
            theta_seq = torch.empty((1 if compact else T, N), device=x2.device, dtype=torch.float32)
        if T * N > 0:
            arrays = dict(x_seq=x2, spike_seq=spikes, h_seq=h_seq, theta_seq=theta_seq, v_init=v_init,
                          theta_init=theta_init, v_last=v_last, theta_last=theta_last)
            width = vector_width(N, list(arrays.values()))
            forward_kernel, _ = get_kernels(surrogate, dtype, detach_reset, width)
            values = dict(**arrays, save=int(need_grad), **_scalars(tau, v_reset, thresh_decay, gamma, T, N))
            _launch(forward_kernel, "forward", N, x2.device, values, width)
        else:
            v_last.copy_(v_init)
            theta_last.copy_(theta_init)

        if need_grad:
            ctx.save_for_backward(h_seq, theta_seq)
            ctx.consts = (tau, v_reset, thresh_decay, gamma)
            ctx.surrogate = surrogate
            ctx.detach_reset = detach_reset
            ctx.dtype = x_seq.dtype
            ctx.shapes = (x_seq.shape, v0.shape, theta0.shape, v0.dtype, theta0.dtype)
        return spikes.view(x_seq.shape), v_last.view(state_shape), theta_last.view(state_shape)

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last, grad_theta_last):
        h_seq, theta_seq = ctx.saved_tensors
        x_shape, v0_shape, theta0_shape, v0_dtype, theta0_dtype = ctx.shapes
        T, N = h_seq.shape
        dtype, device = ctx.dtype, h_seq.device

        def prep(g: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
            if g is None:
                return torch.zeros(shape, device=device, dtype=dtype)
            return g.to(dtype).reshape(shape).contiguous()

        g_spikes = prep(grad_spikes, (T, N))
        g_v_last = prep(grad_v_last, (N,))
        g_theta_last = prep(grad_theta_last, (N,))
        grad_x = torch.empty((T, N), device=device, dtype=dtype)
        grad_v0 = torch.empty((N,), device=device, dtype=dtype)
        grad_theta0 = torch.empty_like(grad_v0)
        if T * N > 0:
            arrays = dict(grad_spike_seq=g_spikes, grad_v_last=g_v_last, grad_theta_last=g_theta_last,
                          h_seq=h_seq, theta_seq=theta_seq, grad_x_seq=grad_x, grad_v_init=grad_v0,
                          grad_theta_init=grad_theta0)
            width = vector_width(N, list(arrays.values()))
            _, backward_kernel = get_kernels(ctx.surrogate, _TORCH_DTYPES[dtype], ctx.detach_reset, width)
            _launch(backward_kernel, "backward", N, device, dict(**arrays, **_scalars(*ctx.consts, T, N)), width)
        else:
            grad_v0.copy_(g_v_last)
            grad_theta0.copy_(g_theta_last)
        state_shape = x_shape[1:]
        gv = _reduce_to(grad_v0.view(state_shape), v0_shape, v0_dtype) if ctx.needs_input_grad[1] else None
        gt = (
            _reduce_to(grad_theta0.view(state_shape), theta0_shape, theta0_dtype)
            if ctx.needs_input_grad[2]
            else None
        )
        gx = grad_x.view(x_shape) if ctx.needs_input_grad[0] else None
        return gx, gv, gt, None, None, None, None, None, None


def adaptive_lif_cupy(
    x_seq: torch.Tensor, v: torch.Tensor, theta: torch.Tensor, node: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``node`` (an ``AdaptiveLIFNode``) over x_seq [T, ...] with the CuPy kernels.

    ``v`` and ``theta`` are the initial states; returns ``(spikes, v_last, theta_last)``.
    """
    surrogate = node.surrogate_function
    if not hasattr(surrogate, "cuda_codes"):
        raise TypeError(f"surrogate {type(surrogate).__name__} has no cuda_codes(); it cannot run on cupy")
    return AdaptiveLIFCuPyFunction.apply(
        x_seq,
        v,
        theta,
        float(node.tau),
        float(node.v_reset),
        float(node.thresh_decay),
        float(node.gamma),
        surrogate,
        bool(node.detach_reset),
    )
