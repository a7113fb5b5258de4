"""CPU-only checks of the CUDA code: generated kernels compile (NVRTC, or nvcc as a fallback), and
their float maths, compiled for the host with g++ and run thread by thread, matches the torch paths.

Nothing here needs CuPy or a GPU; running the kernels on a GPU is ``benchmarks/gpu_check.py``'s job.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import spikenet  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spikenet.neurons import AdaptiveLIFNode, resolve_backend
from spikenet.neurons import cupy_adaptive_lif as cal
from spikenet.neurons.fused_adaptive_lif import FusedAdaptiveLIF
from spikenet.neurons.surrogates import SURROGATES

SURROGATE_NAMES = sorted(SURROGATES)
ARCH = "compute_80"


# ---------------------------------------------------------------------------------------------- compilers
def _cuda_include_dirs() -> list[str]:
    dirs = []
    try:
        import cuda.pathfinder

        found = cuda.pathfinder.find_nvidia_header_directory("cudart")
        if found:
            dirs.append(str(found))
    except Exception:
        pass
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and Path(root, "include", "cuda_fp16.h").is_file():
            dirs.append(str(Path(root, "include")))
    return dirs


# NVRTC runs in a child process: loading libnvrtc into the test process breaks later torch.load calls there
# (checkpoints read back with wrong shapes), so the suite's own resume test would fail after these tests.
_NVRTC_CHILD = r"""
import json, sys
from cuda.bindings import nvrtc
req = json.load(sys.stdin)
if req["op"] == "version":
    err, major, minor = nvrtc.nvrtcVersion()
    print(json.dumps({"ok": err == nvrtc.nvrtcResult.NVRTC_SUCCESS, "log": f"{err} {major}.{minor}"}))
    sys.exit(0)
err, prog = nvrtc.nvrtcCreateProgram(req["src"].encode(), b"kernel.cu", 0, [], [])
assert err == nvrtc.nvrtcResult.NVRTC_SUCCESS, err
try:
    opts = [o.encode() for o in req["opts"]]
    (res,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    _, size = nvrtc.nvrtcGetProgramLogSize(prog)
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, log)
    print(json.dumps({"ok": res == nvrtc.nvrtcResult.NVRTC_SUCCESS,
                      "log": log.decode(errors="replace").strip("\x00 \n")}))
finally:
    nvrtc.nvrtcDestroyProgram(prog)
"""


def _nvrtc_child(request: dict) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-c", _NVRTC_CHILD], input=json.dumps(request), capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or ["NVRTC child failed"])[-1]
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    return bool(reply["ok"]), str(reply["log"])


def _nvrtc_compile(src: str) -> tuple[bool, str]:
    opts = [f"--gpu-architecture={ARCH}"] + [f"-I{d}" for d in _cuda_include_dirs()]
    return _nvrtc_child({"op": "compile", "src": src, "opts": opts})


@functools.cache
def _nvrtc_missing() -> str | None:
    """Why NVRTC cannot be used here, or None. ``cuda-bindings`` (NVRTC's Python API) is in the dev extra."""
    ok, log = _nvrtc_child({"op": "version"})
    return None if ok else f"cuda.bindings.nvrtc unusable ({log}); pip install -e '.[dev]'"


_ENTRY = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')


def _kernel_name(src: str) -> str:
    (name,) = _ENTRY.findall(src)
    return name


def _all_sources() -> dict[str, str]:
    """Every CUDA source the compile tests check, keyed by test case."""
    from spikingjelly.activation_based.auto_cuda import neuron_kernel as nk

    out: dict[str, str] = {}
    for dtype in ("float", "half"):
        for name in SURROGATE_NAMES:
            for detach in (False, True):
                for width in cal.WIDTHS:
                    src = cal.kernel_sources(_surrogate(name, 2.0), dtype, detach, width)
                    out[f"adaptive/{dtype}/{name}/{detach}/{width}/forward"] = src.forward
                    out[f"adaptive/{dtype}/{name}/{detach}/{width}/backward"] = src.backward
    for dtype in ("float", "half2"):
        for name in SURROGATE_NAMES:
            out[f"surrogate/{dtype}/{name}"] = _surrogate_kernel(f"sg_{name}_{dtype}", _surrogate(name, 0.75), dtype)
            codes = _surrogate(name, 1.5).cuda_codes
            common = dict(surrogate_function=codes, hard_reset=True, detach_reset=False, dtype=dtype)
            kernels = {
                "if": nk.IFNodeBPTTKernel(**common),
                "lif": nk.LIFNodeBPTTKernel(decay_input=True, **common),
                "plif": nk.ParametricLIFNodeBPTTKernel(decay_input=True, **common),
            }
            for neuron, kernel in kernels.items():
                out[f"spikingjelly/{dtype}/{name}/{neuron}"] = kernel.full_codes
    return out


@functools.cache
def _batch() -> tuple[bool, str]:
    """One NVRTC compile of every source (entry points renamed apart), instead of one per source."""
    parts = []
    for i, src in enumerate(_all_sources().values()):
        name = _kernel_name(src)
        parts.append(re.sub(rf"\b{name}\b", f"{name}__{i}", src))
    return _nvrtc_compile("\n".join(parts))


@functools.cache
def _compile_one(src: str) -> tuple[bool, str]:
    return _nvrtc_compile(src)


def assert_compiles(key: str) -> None:
    """The source of test case ``key`` compiles (the batch compile; on its failure, this source alone)."""
    missing = _nvrtc_missing()
    if missing:
        pytest.skip(missing)  # conftest turns this into a failure in CI
    src = _all_sources()[key]
    if _batch()[0]:
        return
    ok, log = _compile_one(src)
    assert ok, f"CUDA compilation failed:\n{log}\n---- source ----\n{src}"


def _surrogate(name: str, alpha: float = 1.0):
    return SURROGATES[name](alpha=alpha)


def _surrogate_kernel(name: str, sg, dtype: str) -> str:
    """A tiny element-wise kernel y[i] = derivative(x[i]), in SpikingJelly's declaration style."""
    ctype = "float" if dtype == "float" else "half2"
    header = "#include <cuda_fp16.h>\n" if dtype == "half2" else ""
    codes = sg.cuda_codes(y=f"const {ctype} out", x="x[i]", dtype=dtype)
    return f"""{header}
extern "C" __global__ void {name}(const {ctype} * x, {ctype} * y, const long long n)
{{
    const long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
    {{
        {codes}
        y[i] = out;
    }}
}}
"""


# ------------------------------------------------------------------------------------ import / backend
def test_module_imports_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    monkeypatch.delitem(sys.modules, "spikenet.neurons.cupy_adaptive_lif")
    mod = importlib.import_module("spikenet.neurons.cupy_adaptive_lif")
    assert "cupy" not in vars(mod)
    src = mod.kernel_sources(_surrogate("sigmoid"), "float", False)
    assert src.forward_name in src.forward and src.backward_name in src.backward
    with pytest.raises(RuntimeError, match="CuPy"):
        mod.get_kernels(_surrogate("arctan", 3.0), "float", True)


def test_resolve_backend_cupy_on_cpu_raises():
    with pytest.raises(ValueError, match="cuda"):
        resolve_backend("cupy", torch.device("cpu"))


def test_cupy_path_on_cpu_tensor_raises_clearly():
    node = AdaptiveLIFNode(backend="torch")  # SpikingJelly refuses backend='cupy' itself when CuPy is missing
    x = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="CUDA"):
        cal.adaptive_lif_cupy(x, torch.zeros(4), torch.ones(4), node)


def test_kernel_sources_shape():
    sg = _surrogate("triangle", 0.5)
    a, b = cal.kernel_sources(sg, "float", False), cal.kernel_sources(sg, "float", True)
    assert a.forward == b.forward
    assert "v_reset - h" in a.backward and "v_reset - h" not in b.backward
    assert a.backward_name != b.backward_name
    assert "0.5f" in a.backward  # alpha is baked into the inlined surrogate
    with pytest.raises(ValueError):
        cal.kernel_sources(sg, "bfloat16")


def parse_signature(src: str) -> list[tuple[str, str]]:
    """``(C type, name)`` of the entry point's parameters, read from the CUDA source text itself."""
    match = re.search(r'extern\s+"C"\s+__global__\s+void\s+\w+\s*\((.*?)\)\s*\{', src, re.S)
    params = []
    for part in match.group(1).split(","):
        words = part.replace("__restrict__", "").replace("*", " * ").split()
        ctype = " ".join(words[:-1])
        params.append((ctype if ctype.endswith("*") else ctype.removeprefix("const "), words[-1]))
    return params


# Written out here from what each kernel reads and writes, not taken from the module's parameter list.
_SCALARS = [("float", "inv_tau"), ("float", "keep"), ("float", "v_reset"), ("float", "thresh_decay"),
            ("float", "adapt_gamma"), ("int", "T"), ("long long", "N")]
EXPECTED_SIGNATURES = {
    "forward": [("const {t} *", "x_seq"), ("{t} *", "spike_seq"), ("float *", "h_seq"), ("float *", "theta_seq"),
                ("const {t} *", "v_init"), ("const {t} *", "theta_init"), ("{t} *", "v_last"),
                ("{t} *", "theta_last"), *_SCALARS, ("int", "save")],
    "backward": [("const {t} *", "grad_spike_seq"), ("const {t} *", "grad_v_last"),
                 ("const {t} *", "grad_theta_last"), ("const float *", "h_seq"), ("const float *", "theta_seq"),
                 ("{t} *", "grad_x_seq"), ("{t} *", "grad_v_init"), ("{t} *", "grad_theta_init"), *_SCALARS],
}


@pytest.mark.parametrize("dtype,ctype", [("float", "float"), ("half", "__half")])
def test_kernel_signatures_are_the_expected_ones(dtype, ctype):
    """The generated sources declare exactly these parameters in this order, and the module's parameter list
    (what the launch code passes, in order) agrees with the source text."""
    src = cal.kernel_sources(_surrogate("triangle", 0.5), dtype, False)
    for kind, text in (("forward", src.forward), ("backward", src.backward)):
        expected = [(c.format(t=ctype), n) for c, n in EXPECTED_SIGNATURES[kind]]
        assert parse_signature(text) == expected, kind
        assert cal.kernel_params(kind, dtype) == expected, kind


# ------------------------------------------------------------------------------------- NVRTC compiles
@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("name", SURROGATE_NAMES)
@pytest.mark.parametrize("dtype", ["float", "half"])
def test_adaptive_lif_kernels_compile(name, detach_reset, dtype, width):
    assert_compiles(f"adaptive/{dtype}/{name}/{detach_reset}/{width}/forward")
    assert_compiles(f"adaptive/{dtype}/{name}/{detach_reset}/{width}/backward")


@pytest.mark.parametrize("name", SURROGATE_NAMES)
@pytest.mark.parametrize("dtype", ["float", "half2"])
def test_surrogate_cuda_codes_compile(name, dtype):
    assert_compiles(f"surrogate/{dtype}/{name}")
    with pytest.raises(NotImplementedError):
        _surrogate(name).cuda_codes(y="y", x="x", dtype="double")


@pytest.mark.parametrize("name", SURROGATE_NAMES)
@pytest.mark.parametrize("dtype", ["float", "half2"])
def test_spikingjelly_neuron_kernels_with_our_surrogates_compile(name, dtype):
    """SpikingJelly's own IF/LIF/PLIF BPTT kernels inline ``cuda_codes`` through its CodeTyper."""
    for neuron in ("if", "lif", "plif"):
        assert_compiles(f"spikingjelly/{dtype}/{name}/{neuron}")


def test_one_batch_compile_reports_a_broken_source():
    """The batch helper's fallback names the broken kernel: a source with a syntax error fails alone."""
    missing = _nvrtc_missing()
    if missing:
        pytest.skip(missing)
    ok, log = _compile_one('extern "C" __global__ void broken(float * y) { y[0] = undefined_name; }')
    assert not ok and "undefined_name" in log


# ------------------------------------------------------------------------- host emulation of the maths
_HOST_PRELUDE = """
#include <math.h>
#define __global__
#define __device__
#define __forceinline__ inline
struct float4 { float x, y, z, w; };
static inline float4 make_float4(float a, float b, float c, float d) { float4 r = {a, b, c, d}; return r; }
struct spikenet_dim3 { unsigned int x, y, z; };
static spikenet_dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1}, threadIdx = {0, 0, 0};
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
extern "C" void spikenet_set_block(unsigned int b) { blockIdx.x = b; }
"""

HOST_ALPHAS = (0.6, 2.0)
ADAPTIVE_ALPHA = 1.3


class _HostKernels:
    """Float kernels compiled with g++ into one shared library; one call runs one CUDA thread."""

    def __init__(self, tmp: Path) -> None:
        parts = [_HOST_PRELUDE] + [cal.forward_source("float", w)[1] for w in cal.WIDTHS]
        self.backward_names = {}
        for name in SURROGATE_NAMES:
            for detach in (False, True):
                for width in cal.WIDTHS:
                    bname, bsrc = cal.backward_source(_surrogate(name, ADAPTIVE_ALPHA), "float", detach, width)
                    self.backward_names[name, detach, width] = bname, bsrc
                    parts.append(bsrc)
            for j, alpha in enumerate(HOST_ALPHAS):
                parts.append(_surrogate_kernel(f"sg_{name}_{j}", _surrogate(name, alpha), "float"))
        cpp, so = tmp / "kernels.cpp", tmp / "kernels.so"
        cpp.write_text("\n".join(parts))
        subprocess.run(
            ["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", str(cpp), "-o", str(so)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.lib = ctypes.CDLL(str(so))
        self.lib.spikenet_set_block.argtypes = [ctypes.c_uint]

    def run(self, fname: str, params: list[tuple[str, str]], values: dict, n: int) -> None:
        fn = getattr(self.lib, fname)
        types, args = [], []
        for ctype, pname in params:
            value = values[pname]
            if ctype.endswith("*"):
                types.append(ctypes.c_void_p)
                args.append(None if value is None else value.ctypes.data)
            elif ctype == "float":
                types.append(ctypes.c_float)
                args.append(float(value))
            elif ctype == "int":
                types.append(ctypes.c_int)
                args.append(int(value))
            else:
                types.append(ctypes.c_longlong)
                args.append(int(value))
        fn.argtypes, fn.restype = types, None
        for i in range(n):
            self.lib.spikenet_set_block(i)
            fn(*args)


@pytest.fixture(scope="module")
def host():
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot run the kernels' maths on the host")  # a failure in CI (conftest)
    with tempfile.TemporaryDirectory() as tmp:
        yield _HostKernels(Path(tmp))


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_surrogate_cuda_codes_match_derivative(host, name):
    x = np.concatenate([np.linspace(-4, 4, 401), [0.0, 1e-4, -1e-4]]).astype(np.float32)
    for j, alpha in enumerate(HOST_ALPHAS):
        y = np.zeros_like(x)
        params = [("const float *", "x"), ("float *", "y"), ("long long", "n")]
        host.run(f"sg_{name}_{j}", params, {"x": x, "y": y, "n": x.size}, x.size)
        ref = SURROGATES[name].derivative(torch.from_numpy(x).double(), alpha).float().numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=f"{name} alpha={alpha}")


def _emulate(host, name, detach, x, v0, th0, consts, grads, width=1):
    tau, v_reset, decay, gamma = consts
    T, N = x.shape
    scalars = dict(inv_tau=1.0 / tau, keep=1.0 - 1.0 / tau, v_reset=v_reset, thresh_decay=decay,
                   adapt_gamma=gamma, T=T, N=N)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    spikes, h_seq, th_seq = (np.zeros((T, N), np.float32) for _ in range(3))
    v_last, th_last = np.zeros(N, np.float32), np.zeros(N, np.float32)
    fwd = dict(x_seq=f32(x), spike_seq=spikes, h_seq=h_seq, theta_seq=th_seq, v_init=f32(v0),
               theta_init=f32(th0), v_last=v_last, theta_last=th_last, save=1, **scalars)
    threads = -(-N // width)
    fname, fsrc = cal.forward_source("float", width)
    host.run(fname, parse_signature(fsrc), fwd, threads)
    g_spk, g_v, g_th = (f32(g) for g in grads)
    gx, gv0, gth0 = np.zeros((T, N), np.float32), np.zeros(N, np.float32), np.zeros(N, np.float32)
    bwd = dict(grad_spike_seq=g_spk, grad_v_last=g_v, grad_theta_last=g_th, h_seq=h_seq, theta_seq=th_seq,
               grad_x_seq=gx, grad_v_init=gv0, grad_theta_init=gth0, **scalars)
    bname, bsrc = host.backward_names[name, detach, width]
    host.run(bname, parse_signature(bsrc), bwd, threads)
    return spikes, v_last, th_last, gx, gv0, gth0


@pytest.mark.parametrize("width", cal.WIDTHS)
@pytest.mark.parametrize("consts", [(1.0, 0.0, 0.7, 0.2), (2.0, -0.2, 0.5, 0.3), (1.7, 0.1, 0.0, 0.4)])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_adaptive_kernels_match_fused_torch(host, name, detach, consts, width):
    """Each kernel thread, run on the host (``width`` neurons per thread), against ``FusedAdaptiveLIF``."""
    gen = torch.Generator().manual_seed(7)
    T, N = 9, 48
    x = torch.randn(T, N, generator=gen) * 1.2 + 0.4
    v0 = torch.rand(N, generator=gen) * 0.5
    th0 = 0.8 + 0.4 * torch.rand(N, generator=gen)
    grads = [torch.randn(T, N, generator=gen), torch.randn(N, generator=gen), torch.randn(N, generator=gen)]

    xr, vr, tr = (t.clone().requires_grad_(True) for t in (x, v0, th0))
    sg = _surrogate(name, ADAPTIVE_ALPHA)
    spikes, v_last, th_last = FusedAdaptiveLIF.apply(
        xr, vr, tr, *consts, sg.alpha, type(sg).derivative, detach
    )
    torch.autograd.backward([spikes, v_last, th_last], grads)

    out = _emulate(host, name, detach, x.numpy(), v0.numpy(), th0.numpy(), consts, [g.numpy() for g in grads],
                   width)
    e_spikes, e_v, e_th, e_gx, e_gv, e_gth = out
    assert 0 < e_spikes.sum() < e_spikes.size
    np.testing.assert_array_equal(e_spikes, spikes.detach().numpy())
    np.testing.assert_allclose(e_v, v_last.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(e_th, th_last.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(e_gx, xr.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e_gv, vr.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e_gth, tr.grad.numpy(), rtol=1e-4, atol=1e-5)


_HOST_LIBS: dict[str, ctypes.CDLL] = {}


class _HostRawKernel:
    """Stands in for ``cupy.RawKernel``: g++-compiles the (float) source once and runs every thread on the host.

    Arguments are matched to the parameters the source declares (parsed from its text), so a launch that
    passes them in another order than the kernel's signature fails here.
    """

    def __init__(self, tmp: Path, src: str, name: str) -> None:
        if src not in _HOST_LIBS:
            stem = tmp / name
            Path(f"{stem}.cpp").write_text(_HOST_PRELUDE + src)
            cmd = ["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", f"{stem}.cpp", "-o", f"{stem}.so"]
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            _HOST_LIBS[src] = ctypes.CDLL(f"{stem}.so")
        self.lib = _HOST_LIBS[src]
        self.fn = getattr(self.lib, name)
        self.params = parse_signature(src)

    def __call__(self, grid: tuple, block: tuple, args: tuple) -> None:
        params = self.params
        assert len(args) == len(params)
        types, values = [], []
        for (ctype, _), arg in zip(params, args, strict=True):
            if ctype.endswith("*"):
                assert isinstance(arg, np.int64)
                types.append(ctypes.c_void_p)
                values.append(int(arg) or None)
            else:
                expected = {"float": np.float32, "int": np.int32, "long long": np.int64}[ctype]
                assert isinstance(arg, expected), (ctype, type(arg))
                types.append({"float": ctypes.c_float, "int": ctypes.c_int}.get(ctype, ctypes.c_longlong))
                values.append(arg.item())
        self.fn.argtypes = types
        lib = self.lib
        lib.spikenet_set_block.argtypes = [ctypes.c_uint]
        for i in range(grid[0] * block[0]):  # one call per CUDA thread; threads past the end return at once
            lib.spikenet_set_block(i)
            self.fn(*values)


def install_host_cupy(monkeypatch, tmp_path: Path, module=cal) -> None:
    """Replace ``cupy`` by a stand-in whose RawKernel runs g++-built host code (skips without g++), and let the
    CuPy Function of ``module`` (the caller's ``cupy_adaptive_lif``: a test may have re-imported it) take CPU
    tensors: its launch code then runs end to end on the host."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot run the kernels' maths on the host")
    import contextlib
    import types

    fake = types.ModuleType("cupy")
    fake.RawKernel = lambda src, kname: _HostRawKernel(tmp_path, src, kname)
    fake.cuda = types.SimpleNamespace(Device=lambda i: contextlib.nullcontext(),
                                      ExternalStream=lambda ptr: contextlib.nullcontext())
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(module, "_KERNEL_CACHE", {})
    monkeypatch.setattr(module, "_require_cuda", lambda x: None)
    monkeypatch.setattr(module, "_current_stream_ptr", lambda device: 0)


def cupy_and_torch_results(node, inputs, weights, consts, detach: bool, cupy_fn=None) -> list[list[torch.Tensor]]:
    """Outputs and input gradients of the CuPy Function (``cupy_fn``, default ``adaptive_lif_cupy``, with
    ``cupy`` patched by the caller) and of ``FusedAdaptiveLIF`` on the same ``inputs`` (x, v0, theta0),
    for a loss weighting each output."""
    cupy_fn = cupy_fn or cal.adaptive_lif_cupy
    results = []
    for which in ("cupy", "torch"):
        xr, vr, tr = (t.clone().requires_grad_(True) for t in inputs)
        if which == "cupy":
            outs = cupy_fn(xr, vr, tr, node)
        else:
            sg = node.surrogate_function
            outs = FusedAdaptiveLIF.apply(xr, vr, tr, *consts, sg.alpha, type(sg).derivative, detach)
        sum((o * w).sum() for o, w in zip(outs, weights, strict=True)).backward()
        results.append([o.detach() for o in outs] + [xr.grad, vr.grad, tr.grad])
    return results


@pytest.mark.parametrize(("name", "detach"), [("sigmoid", False), ("multi_gauss", True)])
def test_autograd_function_with_host_kernels(monkeypatch, tmp_path, name, detach):
    """The CuPy Function's launch code (argument order, shapes, v0/theta0 broadcasting, backward outputs),
    with ``cupy`` replaced by a host-compiled stand-in, against ``FusedAdaptiveLIF``."""
    install_host_cupy(monkeypatch, tmp_path)

    consts = (1.5, -0.1, 0.7, 0.2)
    node = AdaptiveLIFNode(tau=consts[0], v_reset=consts[1], thresh_decay=consts[2], gamma=consts[3],
                           surrogate_function=_surrogate(name, 1.2), detach_reset=detach)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, 50, generator=gen) + 0.5
    v0 = torch.rand(1, 50, generator=gen)  # broadcast over the batch: its gradient is summed
    th0 = 1.0 + 0.2 * torch.rand(3, 50, generator=gen)
    weights = [torch.randn(6, 3, 50, generator=gen), torch.randn(3, 50, generator=gen),
               torch.randn(3, 50, generator=gen)]
    results = cupy_and_torch_results(node, (x, v0, th0), weights, consts, detach)
    for got, ref in zip(*results, strict=True):
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # inference launch: nothing saved, same spikes
        spikes, _, _ = cal.adaptive_lif_cupy(x, v0, th0, node)
    assert torch.equal(spikes, results[1][0])
    assert len(cal._KERNEL_CACHE) == 1


def test_vector_width_needs_groups_of_four_and_aligned_arrays():
    """Four neurons per thread only where every array can be read in 16-byte steps; else one per thread."""
    base = torch.zeros(4 * 64 + 1)
    aligned = base[:256]
    assert aligned.data_ptr() % 16 == 0
    assert cal.vector_width(256, [aligned, None, aligned]) == 4
    assert cal.vector_width(254, [aligned[:254]]) == 1  # N not a multiple of 4
    assert cal.vector_width(256, [aligned, base[1:257]]) == 1  # one array 4 bytes off the boundary
    with pytest.raises(ValueError, match="per thread"):
        cal.forward_source("float", 2)
