"""CPU-only checks of the generated CUDA code, for every neuron: the kernels compile (NVRTC), their float maths
compiled for the host with g++ and run thread by thread matches the generated torch path, and their half
storage (``cuda_fp16`` emulated with ``_Float16``, see ``cuda_host.py``) stays within the bounds
``benchmarks/gpu/gpu_check.py`` holds the GPU to; the surrogates' half2 code stays within a running error bound
derived from half's unit roundoff. Two mutations of the generated source (a wrong half2 constant, swapped
half lanes) must fail those checks.

Nothing here needs CuPy or a GPU; running the kernels on a GPU is ``benchmarks/gpu/gpu_check.py``'s job.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cuda_host
import numpy as np
import pytest
import torch

from spikenet.neurons import NEURONS, AdaptiveLIFNode, build_neuron, neuron_config, node_class, resolve_backend
from spikenet.neurons import cupy_kernels as ck
from spikenet.neurons import tolerances as tol
from spikenet.neurons.expr import sym
from spikenet.neurons.functions import FusedNeuron
from spikenet.neurons.program import program
from spikenet.neurons.sj_compat import sj_cupy_available
from spikenet.neurons.surrogates import SURROGATES

SURROGATE_NAMES = SURROGATES.names()
# every registered neuron (plugins' too: tests/conftest.py imports them first) x each of its compiled variants
NEURON_VARIANTS = [(e.name, v) for e in NEURONS.entries() for v in range(len(e.obj.all_variants()))]
ARCH = "compute_80"
KERNEL_ALPHA = 1.3
T, ROWS, C = 9, 3, 16  # N = 48 neurons: four per thread divides it


def _surrogate(name: str, alpha: float = 1.0):
    return SURROGATES.get(name)(alpha=alpha)


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
                          text=True, timeout=600)
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or ["NVRTC child failed"])[-1]
    reply = json.loads(proc.stdout.strip().splitlines()[-1])
    return bool(reply["ok"]), str(reply["log"])


def _nvrtc_compile(src: str) -> tuple[bool, str]:
    opts = [f"--gpu-architecture={ARCH}", *ck.COMPILE_OPTIONS] + [f"-I{d}" for d in _cuda_include_dirs()]
    return _nvrtc_child({"op": "compile", "src": src, "opts": opts})


@functools.cache
def _nvrtc_missing() -> str | None:
    """Why NVRTC cannot be used here, or None. ``cuda-bindings`` (NVRTC's Python API) is in the dev extra."""
    ok, log = _nvrtc_child({"op": "version"})
    return None if ok else f"cuda.bindings.nvrtc unusable ({log}); pip install -e '.[dev]'"


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


def _neuron_sources(dtype: str) -> dict[str, str]:
    """Every generated neuron kernel of storage ``dtype``: neuron x variant x width (forward), x surrogate x
    reset mode (backward)."""
    out = {}
    for name, variant in NEURON_VARIANTS:
        for width in ck.WIDTHS:
            for detach in (False, True):
                fsrc = ck.forward_source(name, variant, dtype, width, detach)[1]
                out[f"{name}/v{variant}/{dtype}/{detach}/{width}/forward"] = fsrc
                for sg in SURROGATE_NAMES:
                    _, src = ck.backward_source(name, _surrogate(sg, KERNEL_ALPHA), variant, dtype, detach, width)
                    out[f"{name}/v{variant}/{dtype}/{sg}/{detach}/{width}/backward"] = src
    return out


@functools.cache
def _all_sources() -> dict[str, str]:
    """Every CUDA source the compile tests check, keyed by test case."""
    out: dict[str, str] = {**_neuron_sources("float"), **_neuron_sources("half")}
    for dtype in ("float", "half2"):
        for name in SURROGATE_NAMES:
            out[f"surrogate/{dtype}/{name}"] = _surrogate_kernel(f"sg_{name}_{dtype}", _surrogate(name, 0.75), dtype)
            if not sj_cupy_available():  # SpikingJelly 2.x: no CuPy kernels of its own to inline ours into
                continue
            from spikingjelly.activation_based.auto_cuda import neuron_kernel as nk

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
        name = cuda_host.kernel_name(src)
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


# ------------------------------------------------------------------------------------ import / backend
def test_module_imports_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    monkeypatch.delitem(sys.modules, "spikenet.neurons.cupy_kernels")
    mod = importlib.import_module("spikenet.neurons.cupy_kernels")
    assert "cupy" not in vars(mod)
    src = mod.kernel_sources("blif", _surrogate("sigmoid"), 0, "float", False)
    assert src.forward_name in src.forward and src.backward_name in src.backward
    node = node_class("lif")(tau=2.0, surrogate_function=_surrogate("arctan", 3.0))
    with pytest.raises(RuntimeError, match="CuPy"):
        mod.get_kernels(node.call(), "float")


def test_resolve_backend_cupy_on_cpu_raises():
    with pytest.raises(ValueError, match="cuda"):
        resolve_backend("cupy", torch.device("cpu"))


def test_cupy_path_on_cpu_tensor_raises_clearly():
    node = AdaptiveLIFNode(backend="torch")  # SpikingJelly refuses backend='cupy' itself when CuPy is missing
    node._states_to_tensor(torch.zeros(4))
    with pytest.raises(ValueError, match="CUDA"):
        ck.run_cupy(node, torch.zeros(3, 4))


def test_kernel_sources_shape():
    sg = _surrogate("triangle", 0.5)
    a, b = (ck.kernel_sources("adaptive_lif", sg, 2, "float", detach) for detach in (False, True))
    assert a.forward.count("tape_seq +") == 2 * b.forward.count("tape_seq +") > 0  # detached: H is not saved
    assert "c_reset_grad" not in a.backward and a.backward != b.backward  # detach_reset is compiled in
    assert a.backward_name != b.backward_name
    assert "0.5f" in a.backward  # alpha is baked into the inlined surrogate
    with pytest.raises(ValueError):
        ck.kernel_sources("adaptive_lif", sg, 0, "bfloat16")
    with pytest.raises(ValueError, match="per thread"):
        ck.forward_source("lif", 0, "float", 2)


def test_adaptive_lif_at_tau_one_saves_one_value_per_step():
    """The compact layout the hand-written kernels had: H - theta every step, nothing more at the last (H = X
    is read again there); with a leak, H - theta and H."""
    for variant in (0, 1):
        prog = program("adaptive_lif", variant, False)
        assert (len(prog.tape), len(prog.tape_last)) == (1, 0)
        assert prog.read_states == ("theta",)  # V is only needed at the end
    leak = program("adaptive_lif", 2, False)
    assert (len(leak.tape), len(leak.tape_last)) == (2, 0) and leak.read_states == ("v", "theta")


@pytest.mark.parametrize("dtype,ctype", [("float", "float"), ("half", "__half")])
@pytest.mark.parametrize("name,variant", NEURON_VARIANTS)
def test_kernel_signatures_match_the_launch_order(name, variant, dtype, ctype):
    """The generated sources declare exactly the parameters the launch code passes, in its order; every
    state has an initial and a final value, every parameter a gradient."""
    src = ck.kernel_sources(name, _surrogate("triangle", 0.5), variant, dtype, False)
    for kind, text in (("forward", src.forward), ("backward", src.backward)):
        params = cuda_host.parse_signature(text)
        assert params == ck.kernel_params(name, variant, kind, dtype), kind
    names = {p for text in (src.forward, src.backward) for _, p in cuda_host.parse_signature(text)}
    for s in NEURONS.get(name).states:
        assert {f"init_{s}", f"last_{s}", f"grad_last_{s}", f"grad_init_{s}"} <= names
    for p in NEURONS.get(name).param_names:
        assert {f"param_{p}", f"grad_param_{p}"} <= names
    assert (ctype, "x_seq") in [(c.removeprefix("const ").removesuffix(" *"), n)
                                for c, n in cuda_host.parse_signature(src.forward)]


# ------------------------------------------------------------------------------------- NVRTC compiles
@pytest.mark.parametrize("width", ck.WIDTHS)
@pytest.mark.parametrize("dtype", ["float", "half"])
@pytest.mark.parametrize("name,variant", NEURON_VARIANTS)
def test_neuron_kernels_compile(name, variant, dtype, width):
    for detach in (False, True):
        assert_compiles(f"{name}/v{variant}/{dtype}/{detach}/{width}/forward")
        for sg in SURROGATE_NAMES:
            assert_compiles(f"{name}/v{variant}/{dtype}/{sg}/{detach}/{width}/backward")


@pytest.mark.parametrize("name", SURROGATE_NAMES)
@pytest.mark.parametrize("dtype", ["float", "half2"])
def test_surrogate_cuda_codes_compile(name, dtype):
    assert_compiles(f"surrogate/{dtype}/{name}")
    with pytest.raises(NotImplementedError):
        _surrogate(name).cuda_codes(y="y", x="x", dtype="double")


if sj_cupy_available():  # SpikingJelly 0.0.0.0.14 only (2.x has no CuPy kernels; test_sj_compat covers that)
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
HOST_ALPHAS = (0.6, 2.0)


@pytest.fixture(scope="module")
def host():
    """The generated kernels, float and half storage, g++-built for the host (two libraries, built at once)."""
    cuda_host.require_gxx()
    with tempfile.TemporaryDirectory() as tmp:
        started = {}
        for dtype, sg_dtype in (("float", "float"), ("half", "half2")):
            sources = list(_neuron_sources(dtype).values())
            sources += [_surrogate_kernel(f"sg_{n}_{j}_{sg_dtype}", _surrogate(n, a), sg_dtype)
                        for n in SURROGATE_NAMES for j, a in enumerate(HOST_ALPHAS)]
            started[dtype] = cuda_host.compile_async(sources, Path(tmp) / f"kernels_{dtype}")
        yield {dtype: cuda_host.finish(s) for dtype, s in started.items()}


def _sg_inputs(dtype: str) -> np.ndarray:
    x = np.concatenate([np.linspace(-4, 4, 400), [0.0, 1e-4, -1e-4, 1e-3]])  # an even count: half2 pairs
    return x.astype(np.float16 if dtype == "half2" else np.float32)


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_surrogate_cuda_codes_match_derivative(host, name):
    x = _sg_inputs("float")
    for j, alpha in enumerate(HOST_ALPHAS):
        y = np.zeros_like(x)
        params = [("const float *", "x"), ("float *", "y"), ("long long", "n")]
        cuda_host.run(host["float"], f"sg_{name}_{j}_float", params, {"x": x, "y": y, "n": x.size}, x.size)
        ref = SURROGATES.get(name).derivative(torch.from_numpy(x).double(), alpha).float().numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6, err_msg=f"{name} alpha={alpha}")


def _half2_surrogate_errors(lib, kname: str, name: str, alpha: float) -> list[str]:
    """Run the half2 surrogate kernel ``kname`` on the host and hold it to the running error bound of the
    surrogate's own expression evaluated in half (``cuda_host.half_error_bound``)."""
    x = _sg_inputs("half2")
    y = np.zeros_like(x)
    params = [("const half2 *", "x"), ("half2 *", "y"), ("long long", "n")]
    cuda_host.run(lib, kname, params, {"x": x, "y": y, "n": x.size // 2}, x.size // 2)
    from spikenet.neurons.expr import const

    expr = SURROGATES.get(name).formula(sym("x", "x"), const(alpha))
    exact, bound = cuda_host.half_error_bound(expr, {sym("x", "x"): x.astype(np.float64)})
    return cuda_host.isclose_report(f"{name} half2 alpha={alpha}", y, exact, bound)


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_surrogate_half2_codes_within_half_error_bound(host, name):
    for j, alpha in enumerate(HOST_ALPHAS):
        assert not _half2_surrogate_errors(host["half"], f"sg_{name}_{j}_half2", name, alpha)


def test_wrong_half2_constant_fails_the_half2_check(tmp_path):
    """Mutation: ``__float2half2_rn(1.0f)`` changed to ``2.0f`` in the sigmoid's generated half2 code."""
    cuda_host.require_gxx()
    alpha = HOST_ALPHAS[1]
    src = _surrogate_kernel("sg_mut", _surrogate("sigmoid", alpha), "half2")
    mutated = cuda_host.with_mutation(src, "__float2half2_rn(1.0f)", "__float2half2_rn(2.0f)")
    lib = cuda_host.build([mutated.replace("sg_mut", "sg_mut_bad"), src], tmp_path / "mut")
    assert not _half2_surrogate_errors(lib, "sg_mut", "sigmoid", alpha)
    assert _half2_surrogate_errors(lib, "sg_mut_bad", "sigmoid", alpha)


# --- neuron kernels on the host against the generated torch path --------------------------------------
_NODE_ARGS = {  # one configuration per variant (the variant is asserted)
    ("adaptive_lif", 0): dict(tau=1.0, v_reset=0.0, thresh_decay=0.7, gamma=0.2),
    ("adaptive_lif", 1): dict(tau=1.0, v_reset=0.1, thresh_decay=0.5, gamma=0.3),
    ("adaptive_lif", 2): dict(tau=1.7, v_reset=-0.2, thresh_decay=0.0, gamma=0.4),
    ("lif", 0): dict(tau=1.5, v_reset=0.1, v_threshold=0.8),
    ("if", 0): dict(v_reset=-0.1, v_threshold=1.0),
    ("plif", 0): dict(init_tau=1.6, v_reset=0.05, v_threshold=0.9),
    ("blif", 0): dict(channels=C, v_reset=0.1, v_threshold=0.6),
}


def _node(name: str, variant: int, sg: str, detach: bool):
    if (name, variant) in _NODE_ARGS:
        node = node_class(name)(surrogate_function=_surrogate(sg, KERNEL_ALPHA), detach_reset=detach,
                                **_NODE_ARGS[name, variant])
    else:  # a neuron without hand-picked values (a plugin's): its default config with the variant's constants
        facts = NEURONS.get(name).all_variants()[variant]
        node = build_neuron(neuron_config(name, detach_reset=detach, **facts), _surrogate(sg, KERNEL_ALPHA), "torch",
                            channels=C)
        with torch.no_grad():
            for p in node.parameters():
                p.copy_(torch.linspace(-0.8, 1.5, p.numel()).view(p.shape))
    if name == "blif":  # per-channel values away from the initial 1.0
        with torch.no_grad():
            g = torch.Generator().manual_seed(2)
            node.tau_raw.copy_(torch.randn(C, generator=g))
            node.d_raw.copy_(torch.randn(C, generator=g))
    assert node.call().variant == variant
    return node


def _inputs(name: str, dtype: torch.dtype):
    """x [T, ROWS, C], initial states, upstream gradients (spikes, final states); rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(T, ROWS, C, generator=gen) * 1.2 + 0.4
    states = [torch.rand(ROWS, C, generator=gen) * 0.5, 0.8 + 0.4 * torch.rand(ROWS, C, generator=gen)]
    states = states[: len(NEURONS.get(name).states)]
    grads = [torch.randn(T, ROWS, C, generator=gen)] + [torch.randn(ROWS, C, generator=gen) for _ in states]
    def rnd(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype).float()

    return rnd(x), [rnd(s) for s in states], [rnd(g) for g in grads]


def _torch_reference(node, x, states, grads):
    """Outputs, final states and every gradient (x, initial states, kernel parameters) of the torch path."""
    params = [p.detach().clone().requires_grad_(True) for p in node.kernel_params()]
    xr = x.clone().requires_grad_(True)
    sr = [s.clone().requires_grad_(True) for s in states]
    outs = FusedNeuron.apply(node.call(), xr, *sr, *params)
    torch.autograd.backward(list(outs), grads)
    return [o.detach() for o in outs], xr.grad, [s.grad for s in sr], [p.grad for p in params], params


def _emulate(lib, node, dtype: str, x, states, params, grads, width: int, sources=None):
    """Forward then backward kernel of ``node`` run thread by thread on the host; all as float64 arrays:
    (spikes, final states, grad x, grad initial states, grad params reduced over rows)."""
    call = node.call()
    defn = call.defn
    prog = program(call.name, call.variant, call.detach)
    npdt = np.float16 if dtype == "half" else np.float32
    N = ROWS * C
    arr = lambda t: np.ascontiguousarray(t.detach().numpy().reshape(t.shape[0], -1) if t.dim() == 3  # noqa: E731
                                         else t.detach().numpy().reshape(-1), dtype=npdt)
    consts = dict(zip(defn.constants, call.constants, strict=True))
    scalars = {**{f"c_{c}": consts[c] for c in prog.constants}, "T": T, "N": N, "C": C}
    pk = [np.ascontiguousarray(p.detach().float().expand(C).numpy(), dtype=np.float32) for p in params]
    spikes = np.zeros((T, N), npdt)
    tape = np.zeros((max(len(prog.tape), 1), T, N), np.float32)
    tape_last = np.zeros((max(len(prog.tape_last), 1), N), np.float32)
    lasts = [np.zeros(N, npdt) for _ in defn.states]
    fwd = dict(x_seq=arr(x), spike_seq=spikes, tape_seq=tape, tape_last=tape_last, save=1, **scalars,
               **{f"init_{s}": arr(v) for s, v in zip(defn.states, states, strict=True)},
               **{f"last_{s}": v for s, v in zip(defn.states, lasts, strict=True)},
               **{f"param_{p}": v for p, v in zip(defn.param_names, pk, strict=True)})
    srcs = sources or ck.kernel_sources(call.name, call.surrogate(alpha=call.alpha), call.variant, dtype, call.detach,
                                        width)
    fname, bname = cuda_host.kernel_name(srcs.forward), cuda_host.kernel_name(srcs.backward)
    threads = N // width
    cuda_host.run(lib, fname, cuda_host.parse_signature(srcs.forward), fwd, threads)
    gx = np.zeros((T, N), npdt)
    g_init = [np.zeros(N, npdt) for _ in defn.states]
    g_par = [np.zeros(N, np.float32) for _ in defn.param_names]
    bwd = dict(grad_spike_seq=arr(grads[0]), x_seq=fwd["x_seq"], tape_seq=tape, tape_last=tape_last, grad_x_seq=gx,
               **scalars, **{f"grad_last_{s}": arr(g) for s, g in zip(defn.states, grads[1:], strict=True)},
               **{f"param_{p}": v for p, v in zip(defn.param_names, pk, strict=True)},
               **{f"grad_init_{s}": v for s, v in zip(defn.states, g_init, strict=True)},
               **{f"grad_param_{p}": v for p, v in zip(defn.param_names, g_par, strict=True)})
    cuda_host.run(lib, bname, cuda_host.parse_signature(srcs.backward), bwd, threads)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    by_channel = [tuple(p.shape) == (C,) for p in params]
    reduced = [f64(g).reshape(ROWS, C).sum(0) if ch else f64(g).sum() for g, ch in zip(g_par, by_channel, strict=True)]
    scale = [np.abs(f64(g)).reshape(ROWS, C).sum(0) if ch else np.abs(f64(g)).sum()
             for g, ch in zip(g_par, by_channel, strict=True)]
    return f64(spikes), [f64(v) for v in lasts], f64(gx), [f64(g) for g in g_init], reduced, scale


def _neuron_errors(lib, name, variant, sg, detach, width, dtype, sources=None) -> list[str]:
    """Run ``name``'s kernels of storage ``dtype`` on the host against the torch path in float32 on the same
    (rounded) inputs: spikes must be equal, states and gradients within ``tolerances.storage_bound`` (the bound
    gpu_check holds the GPU to; float: no storage rounding, half: one float16 rounding)."""
    node = _node(name, variant, sg, detach)
    x, states, grads = _inputs(name, torch.float16 if dtype == "half" else torch.float32)
    outs, gx, g_states, g_params, params = _torch_reference(node, x, states, grads)
    e_spk, e_last, e_gx, e_gs, e_gp, e_scale = _emulate(lib, node, dtype, x, states, params, grads, width, sources)
    u, tiny = (tol.HALF_UNIT_ROUNDOFF, tol.HALF_SUBNORMAL_ERROR) if dtype == "half" else (0.0, 0.0)
    n = lambda t: t.double().reshape(T, -1).numpy() if t.dim() == 3 else t.double().reshape(-1).numpy()  # noqa: E731
    # exp is each side's own (torch's, expf): 1e-6 relative on gradients covers their last-bit differences
    bound = lambda t: n(tol.storage_bound(t.double(), u, T, tiny) + 1e-6 * t.double().abs())  # noqa: E731
    errors = []
    if not np.array_equal(e_spk, n(outs[0])):
        errors.append(f"spikes: {int((e_spk != n(outs[0])).sum())} of {e_spk.size} differ")
    assert 0 < n(outs[0]).sum() < e_spk.size, "the inputs should make neurons both fire and stay silent"
    for s, got, ref in zip(NEURONS.get(name).states, e_last, outs[1:], strict=True):
        if dtype == "float" and not np.array_equal(got, n(ref)):  # the same float operations: the same bits
            errors.append(f"final {s}: not bit-equal (max |diff| {np.abs(got - n(ref)).max():.3g})")
        errors += cuda_host.isclose_report(f"final {s}", got, n(ref), bound(ref))
    errors += cuda_host.isclose_report("grad x", e_gx, n(gx), bound(gx))
    for s, got, ref in zip(NEURONS.get(name).states, e_gs, g_states, strict=True):
        errors += cuda_host.isclose_report(f"grad initial {s}", got, n(ref), bound(ref))
    for p, got, ref, scale in zip(NEURONS.get(name).param_names, e_gp, g_params, e_scale, strict=True):
        # float32 per-neuron sums, then summed over rows in another order: rounding of the sum of |terms|
        b = (ROWS + T) * tol.FLOAT32_EPS * scale + 1e-6 * np.abs(ref.double().reshape(-1).numpy())
        errors += cuda_host.isclose_report(f"grad {p}", got, ref.double().reshape(-1).numpy(), b)
    assert np.abs(e_gx).max() > 0
    return errors


@pytest.mark.parametrize("width", ck.WIDTHS)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("sg", SURROGATE_NAMES)
@pytest.mark.parametrize("name,variant", NEURON_VARIANTS)
def test_float_kernels_match_torch_path(host, name, variant, sg, detach, width):
    """Each float kernel thread, run on the host, against the generated torch path: spikes and states equal
    bit for bit (no fused multiply-adds on either side), gradients to float rounding (exp differs)."""
    assert not _neuron_errors(host["float"], name, variant, sg, detach, width, "float")


@pytest.mark.parametrize("width", ck.WIDTHS)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("sg", SURROGATE_NAMES)
@pytest.mark.parametrize("name,variant", NEURON_VARIANTS)
def test_half_kernels_within_storage_bound(host, name, variant, sg, detach, width):
    """float16 storage (computed in float32) against the float32 torch path on the same rounded inputs."""
    assert not _neuron_errors(host["half"], name, variant, sg, detach, width, "half")


def test_swapped_half_lanes_fail_the_half_check(tmp_path):
    """Mutation: the two halves of a ``__half2`` swapped in the four-per-thread load."""
    cuda_host.require_gxx()
    name, variant, sg = "adaptive_lif", 0, "sigmoid"
    call = _node(name, variant, sg, False).call()
    src = ck.kernel_sources(name, call.surrogate(alpha=call.alpha), variant, "half", False, 4)
    swap = ("o[0] = a.x; o[1] = a.y;", "o[0] = a.y; o[1] = a.x;")
    bad = ck.KernelSources(src.forward_name, cuda_host.with_mutation(src.forward, *swap), src.backward_name,
                           cuda_host.with_mutation(src.backward, *swap))
    lib = cuda_host.build([bad.forward, bad.backward], tmp_path / "swap")
    errors = _neuron_errors(lib, name, variant, sg, False, 4, "half", bad)
    assert any(e.startswith("spikes") for e in errors), errors


# --- the CuPy Function end to end, with cupy replaced by host-built kernels ------------------------------
_HOST_LIBS: dict[str, object] = {}


class _HostRawKernel:
    """Stands in for ``cupy.RawKernel``: g++-compiles the source once and runs every thread on the host.

    Arguments are matched to the parameters the source declares (parsed from its text), so a launch that
    passes them in another order than the kernel's signature fails here.
    """

    def __init__(self, tmp: Path, src: str, name: str, options: tuple = ()) -> None:
        assert options == ck.COMPILE_OPTIONS
        if src not in _HOST_LIBS:
            _HOST_LIBS[src] = cuda_host.build([src], tmp / f"{name}_{len(_HOST_LIBS)}")
        self.lib = _HOST_LIBS[src]
        self.name = name
        self.params = cuda_host.parse_signature(src)

    def __call__(self, grid: tuple, block: tuple, args: tuple) -> None:
        import ctypes

        assert len(args) == len(self.params)
        fn = getattr(self.lib, self.name)
        types, values = [], []
        for (ctype, _), arg in zip(self.params, args, strict=True):
            if ctype.endswith("*"):
                assert isinstance(arg, np.int64)
                types.append(ctypes.c_void_p)
                values.append(int(arg) or None)
            else:
                expected = {"float": np.float32, "int": np.int32, "long long": np.int64}[ctype]
                assert isinstance(arg, expected), (ctype, type(arg))
                types.append({"float": ctypes.c_float, "int": ctypes.c_int}.get(ctype, ctypes.c_longlong))
                values.append(arg.item())
        fn.argtypes = types
        for i in range(grid[0] * block[0]):  # one call per CUDA thread; threads past the end return at once
            self.lib.spikenet_set_block(i)
            fn(*values)


def install_host_cupy(monkeypatch, tmp_path: Path) -> None:
    """Replace ``cupy`` by a stand-in whose RawKernel runs g++-built host code (skips without g++), and let the
    CuPy Function take CPU tensors: its launch code then runs end to end on the host."""
    cuda_host.require_gxx()
    import contextlib
    import types

    fake = types.ModuleType("cupy")
    fake.RawKernel = lambda src, kname, options=(): _HostRawKernel(tmp_path, src, kname, options)
    fake.cuda = types.SimpleNamespace(Device=lambda i: contextlib.nullcontext(),
                                      ExternalStream=lambda ptr: contextlib.nullcontext())
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(ck, "_KERNEL_CACHE", {})
    monkeypatch.setattr(ck, "_require_cuda", lambda x: None)
    monkeypatch.setattr(ck, "_current_stream_ptr", lambda device: 0)
    monkeypatch.setattr(ck, "THREADS", 8)


@pytest.mark.parametrize(("name", "sg", "detach", "shape"), [
    ("adaptive_lif", "sigmoid", False, (6, 2, 40)), ("adaptive_lif", "multi_gauss", True, (6, 3, 10)),
    ("blif", "arctan", False, (5, 2, 16)), ("plif", "triangle", False, (5, 3, 10)),
])
def test_cupy_function_with_host_kernels(monkeypatch, tmp_path, name, sg, detach, shape):
    """The CuPy Function's launch code (argument order, shapes, state broadcasting, tape, parameter gradients
    reduced over rows), with ``cupy`` replaced by a host-compiled stand-in, against the torch path."""
    install_host_cupy(monkeypatch, tmp_path)
    widths = []
    launch = ck._launch
    monkeypatch.setattr(ck, "_launch", lambda *a: (widths.append(a[-1]), launch(*a))[1])
    Tn, rows, ch = shape
    kw = {"adaptive_lif": dict(tau=1.5, v_reset=-0.1), "blif": dict(channels=ch), "plif": dict(init_tau=1.8)}[name]
    node = node_class(name)(surrogate_function=_surrogate(sg, 1.2), detach_reset=detach, **kw)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=gen) + 0.5
    ns = len(NEURONS.get(name).states)
    states = [torch.rand(1, ch, generator=gen), 1.0 + 0.2 * torch.rand(rows, ch, generator=gen)][:ns]  # broadcast
    weights = [torch.randn(*shape, generator=gen)] + [torch.randn(rows, ch, generator=gen) for _ in range(ns)]
    results = []
    for which in ("cupy", "torch"):
        params = [p.detach().clone().requires_grad_(True) for p in node.kernel_params()]
        xr = x.clone().requires_grad_(True)
        sr = [s.clone().requires_grad_(True) for s in states]
        fn = ck.CuPyNeuron if which == "cupy" else FusedNeuron
        outs = fn.apply(node.call(), xr, *sr, *params)
        sum((o * w).sum() for o, w in zip(outs, weights, strict=True)).backward()
        results.append([o.detach() for o in outs] + [xr.grad] + [s.grad for s in sr] + [p.grad for p in params])
    for got, ref in zip(*results, strict=True):
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(results[0][0], results[1][0]) and 0 < results[0][0].sum() < results[0][0].numel()
    assert widths == ([4, 4] if (rows * ch) % 4 == 0 else [1, 1])
    with torch.no_grad():  # inference launch: nothing saved, same spikes
        spikes = ck.CuPyNeuron.apply(node.call(), x, *states, *node.kernel_params())[0]
    assert torch.equal(spikes, results[1][0])


def test_adaptive_lif_compact_tape_on_the_host(monkeypatch, tmp_path):
    """tau = 1 saves H - theta only: [1, T, N] per step and nothing at the last step, and still gives the
    torch path's gradients, the reset term of dL/dV_T at the last step included."""
    install_host_cupy(monkeypatch, tmp_path)
    tapes = []
    launch = ck._launch
    monkeypatch.setattr(ck, "_launch", lambda kernel, params, n, device, values, width: (
        tapes.append((tuple(values["tape_seq"].shape), tuple(values["tape_last"].shape)))
        if "save" in values else None, launch(kernel, params, n, device, values, width))[1])
    node = AdaptiveLIFNode(tau=1.0, v_reset=0.1, thresh_decay=0.6, gamma=0.25,
                           surrogate_function=_surrogate("arctan", 1.3))
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(7, 2, 40, generator=gen) + 0.6
    states = [torch.rand(2, 40, generator=gen), 0.9 + 0.3 * torch.rand(2, 40, generator=gen)]
    weights = [torch.randn(7, 2, 40, generator=gen), torch.randn(2, 40, generator=gen) * 3,
               torch.randn(2, 40, generator=gen)]
    results = []
    for fn in (ck.CuPyNeuron, FusedNeuron):
        xr = x.clone().requires_grad_(True)
        outs = fn.apply(node.call(), xr, *states)
        (grad,) = torch.autograd.grad(sum((o * w).sum() for o, w in zip(outs, weights, strict=True)), xr)
        results.append([*outs, grad])
    assert tapes == [((1, 7, 80), (0, 80))]
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)
    assert results[0][-1][-1].abs().sum() > 0  # the last step's gradient (the reset term's) is there


def test_vector_width_needs_groups_of_four_and_aligned_arrays():
    """Four neurons per thread only where every array can be read in 16-byte steps; else one per thread."""
    base = torch.zeros(4 * 64 + 1)
    aligned = base[:256]
    assert aligned.data_ptr() % 16 == 0
    assert ck.vector_width(256, [aligned, None, aligned]) == 4
    assert ck.vector_width(254, [aligned[:254]]) == 1  # N not a multiple of 4
    assert ck.vector_width(256, [aligned, base[1:257]]) == 1  # one array 4 bytes off the boundary
