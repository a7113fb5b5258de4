"""Running generated CUDA code on the host: g++ with a host version of the CUDA builtins and of the
``cuda_fp16.h`` types and intrinsics the kernels use, one CUDA thread per call.

Half precision is emulated with GCC's ``_Float16``: every ``__half`` / ``__half2`` operation is computed
in float and rounded to half once. For +, -, *, / that is the correctly rounded half result (float's 24
bits are >= 2 * 11 + 2, so the double rounding is innocuous); ``h2exp`` is expf rounded to half (CUDA's
is within a few ulp of that). ``half_error_bound`` gives a rigorous running error bound of an expression
evaluated this way, from half's unit roundoff.
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

HALF_U = 2.0**-11
"""Unit roundoff of IEEE half (round to nearest): relative error of one rounding."""
HALF_ETA = 2.0**-25
"""Largest absolute error of rounding to half in its subnormal range (half its spacing 2^-24)."""

PRELUDE = r"""
#include <math.h>
#include <stdint.h>
#define __global__
#define __device__
#define __forceinline__ inline
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { float4 r = {a, b, c, d}; return r; }
struct spikenet_dim3 { unsigned int x, y, z; };
static spikenet_dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, threadIdx = {0, 0, 0};
extern "C" void spikenet_set_block(unsigned int b) { blockIdx.x = b; }
/* cuda_fp16.h, emulated */
struct __half { _Float16 v; };
struct __half2 { __half x, y; };
typedef __half half;
typedef __half2 half2;
static inline float __half2float(__half h) { return (float) h.v; }
static inline __half __float2half_rn(float f) { __half h; h.v = (_Float16) f; return h; }
static inline float2 __half22float2(__half2 h) { float2 r = {__half2float(h.x), __half2float(h.y)}; return r; }
static inline __half2 __floats2half2_rn(float a, float b) {
    __half2 r = {__float2half_rn(a), __float2half_rn(b)};
    return r;
}
static inline __half2 __float2half2_rn(float a) { __half h = __float2half_rn(a); __half2 r = {h, h}; return r; }
#define SPIKENET_H2(name, op) static inline __half2 name(__half2 a, __half2 b) { \
    return __floats2half2_rn(__half2float(a.x) op __half2float(b.x), __half2float(a.y) op __half2float(b.y)); }
SPIKENET_H2(__hadd2, +)
SPIKENET_H2(__hsub2, -)
SPIKENET_H2(__hmul2, *)
SPIKENET_H2(__h2div, /)
#define SPIKENET_H2F(name, f) static inline __half2 name(__half2 a) { \
    return __floats2half2_rn(f(__half2float(a.x)), f(__half2float(a.y))); }
static inline float spikenet_negf(float a) { return -a; }
SPIKENET_H2F(__hneg2, spikenet_negf)
SPIKENET_H2F(__habs2, fabsf)
SPIKENET_H2F(h2exp, expf)
static inline __half2 __hmax2(__half2 a, __half2 b) {
    return __floats2half2_rn(fmaxf(__half2float(a.x), __half2float(b.x)),
                             fmaxf(__half2float(a.y), __half2float(b.y)));
}
static inline __half2 __hmin2(__half2 a, __half2 b) {
    return __floats2half2_rn(fminf(__half2float(a.x), __half2float(b.x)),
                             fminf(__half2float(a.y), __half2float(b.y)));
}
static inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
    __half2 r;
    r.x.v = (_Float16) ((double) __half2float(a.x) * __half2float(b.x) + __half2float(c.x));
    r.y.v = (_Float16) ((double) __half2float(a.y) * __half2float(b.y) + __half2float(c.y));
    return r;
}
"""

_ENTRY = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')


def kernel_name(src: str) -> str:
    (name,) = _ENTRY.findall(src)
    return name


def parse_signature(src: str) -> list[tuple[str, str]]:
    """``(C type, name)`` of the entry point's parameters, read from the CUDA source text itself."""
    match = re.search(r'extern\s+"C"\s+__global__\s+void\s+\w+\s*\((.*?)\)\s*\{', src, re.S)
    params = []
    for part in match.group(1).split(","):
        words = part.replace("__restrict__", "").replace("*", " * ").split()
        ctype = " ".join(words[:-1])
        params.append((ctype if ctype.endswith("*") else ctype.removeprefix("const "), words[-1]))
    return params


def host_source(sources: list[str]) -> str:
    """One host translation unit of CUDA ``sources`` (the fp16 header replaced by the emulation)."""
    return PRELUDE + "\n".join(s.replace("#include <cuda_fp16.h>", "") for s in sources)


def require_gxx() -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot run the kernels' maths on the host")  # a failure in CI (conftest)


def compile_async(sources: list[str], stem: Path) -> tuple[subprocess.Popen, Path]:
    """Start g++ on ``sources`` (one shared library); ``finish`` waits for it."""
    cpp, so = stem.with_suffix(".cpp"), stem.with_suffix(".so")
    cpp.write_text(host_source(sources))
    cmd = ["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", str(cpp), "-o", str(so)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), so


def finish(started: tuple[subprocess.Popen, Path]) -> ctypes.CDLL:
    proc, so = started
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"g++ failed:\n{err[-4000:]}"
    lib = ctypes.CDLL(str(so))
    lib.spikenet_set_block.argtypes = [ctypes.c_uint]
    return lib


def build(sources: list[str], stem: Path) -> ctypes.CDLL:
    return finish(compile_async(sources, stem))


_CTYPES = {"float": ctypes.c_float, "int": ctypes.c_int, "long long": ctypes.c_longlong}


def run(lib: ctypes.CDLL, kname: str, params: list[tuple[str, str]], values: dict, threads: int) -> None:
    """Call entry point ``kname`` once per CUDA thread 0..threads-1; pointers from numpy arrays in ``values``."""
    fn = getattr(lib, kname)
    types, args = [], []
    for ctype, pname in params:
        value = values[pname]
        if ctype.endswith("*"):
            types.append(ctypes.c_void_p)
            args.append(None if value is None else value.ctypes.data)
        else:
            types.append(_CTYPES[ctype])
            args.append(float(value) if ctype == "float" else int(value))
    fn.argtypes, fn.restype = types, None
    for i in range(threads):
        lib.spikenet_set_block(i)
        fn(*args)


# ------------------------------------------------------------------------------ half precision error bound
def half_error_bound(expr, env: dict, u: float = HALF_U, eta: float = HALF_ETA) -> tuple[np.ndarray, np.ndarray]:
    """(exact value, bound on |half evaluation - exact|) of ``expr`` (an ``expr.Expr``) at float64 ``env``
    (symbol -> array or number), for an evaluation that rounds every constant and every operation to half.

    Running error analysis: each node's error is what its arguments' errors can move it by (first order,
    with the product term kept for *, and exp's exact growth) plus one rounding, u |value| + eta. Inputs
    given in ``env`` are taken as exact (already halves).
    """
    from spikenet.neurons.expr import topo_order

    val: dict[int, np.ndarray] = {}
    err: dict[int, np.ndarray] = {}

    def rnd(v: np.ndarray) -> np.ndarray:
        return u * np.abs(v) + eta

    for node in topo_order([expr]):
        op = node.op
        if op == "const":
            v = np.float64(node.data)
            val[id(node)], err[id(node)] = v, rnd(v) if float(np.float16(v)) != v else np.float64(0.0)
            continue
        if op == "sym":
            val[id(node)], err[id(node)] = np.asarray(env[node], dtype=np.float64), np.float64(0.0)
            continue
        a, ea = val[id(node.args[0])], err[id(node.args[0])]
        if len(node.args) == 2:
            b, eb = val[id(node.args[1])], err[id(node.args[1])]
        if op in ("add", "sub"):
            v = a + b if op == "add" else a - b
            e = ea + eb
        elif op == "mul":
            v = a * b
            e = np.abs(b) * ea + np.abs(a) * eb + ea * eb
        elif op == "div":
            v = a / b
            denom = np.maximum(np.abs(b) - eb, 1e-300)
            e = (ea + np.abs(v) * eb) / denom
        elif op == "neg":
            v, e = -a, ea
        elif op == "abs":
            v, e = np.abs(a), ea
        elif op in ("max", "min"):
            v = np.maximum(a, b) if op == "max" else np.minimum(a, b)
            e = np.maximum(ea, eb)
        elif op == "exp":
            v = np.exp(a)
            e = v * np.expm1(ea)
        else:
            raise ValueError(f"no half error rule for '{op}'")
        val[id(node)] = v
        err[id(node)] = e if op in ("neg", "abs", "max", "min") else e + rnd(v)
    return val[id(expr)], err[id(expr)]


def with_mutation(src: str, old: str, new: str) -> str:
    """``src`` with every ``old`` replaced by ``new`` (asserting there was one)."""
    assert old in src, f"mutation target {old!r} not in the source"
    return src.replace(old, new)


Check = Callable[..., list[str]]


def isclose_report(name: str, got: np.ndarray, ref: np.ndarray, bound: np.ndarray | float) -> list[str]:
    """[] if |got - ref| <= bound everywhere, else one line saying where and by how much it is exceeded."""
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    bound = np.broadcast_to(np.asarray(bound, np.float64), diff.shape)
    bad = ~(diff <= bound)
    if not bad.any():
        return []
    k = int(np.argmax(np.where(bad, diff - bound, -math.inf)))
    return [f"{name}: {int(bad.sum())} of {diff.size} beyond the bound (worst: |diff| {diff.flat[k]:.3g} > "
            f"{bound.flat[k]:.3g})"]
