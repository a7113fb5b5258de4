"""SpikingJelly's CuPy backend on numpy >= 1.24 (``spikenet.neurons.sj_compat``), checked on CPU.

``CKernel.check_ctypes`` only inspects dtypes and C type strings, so it runs without a GPU once
``cupy.ndarray`` is replaced by ``numpy.ndarray`` (the values SpikingJelly passes there are
``cupy.asarray(numel)`` and friends: 0-d int64 arrays).
"""

from __future__ import annotations

import types

import numpy
import pytest
import torch
from omegaconf import OmegaConf
from spikingjelly.activation_based import base as sj_base
from spikingjelly.activation_based.auto_cuda import base as ac_base
from spikingjelly.activation_based.auto_cuda import neuron_kernel

from spikenet.neurons import build_neuron, build_surrogate, neuron_config
from spikenet.neurons import tolerances as tol
from spikenet.neurons.sj_compat import NumpyWithAliases, patch_spikingjelly_numpy

pytestmark = pytest.mark.skipif(hasattr(numpy, "int"), reason="numpy < 1.24 still has np.int: nothing to fix")

CPARAMS = {"numel": "const int &", "x_seq": "const float *", "v_th": "const float &"}


@pytest.fixture
def sj(monkeypatch):
    """auto_cuda.base with numpy arrays standing in for cupy arrays; its ``np`` restored afterwards."""
    monkeypatch.setattr(ac_base, "np", numpy)
    monkeypatch.setattr(ac_base, "cupy", types.SimpleNamespace(ndarray=numpy.ndarray))
    return ac_base


def _check(kernel_module, cparams: dict, py_dict: dict) -> None:
    kernel_module.CKernel.check_ctypes(types.SimpleNamespace(cparams=cparams), py_dict)


def _args() -> dict:
    # what SpikingJelly builds before a launch: cupy.asarray(T * N) (int64), float32 scalars, tensors
    return {"numel": numpy.asarray(25 * 4096), "x_seq": torch.zeros(4), "v_th": numpy.asarray(1.0, numpy.float32)}


def test_check_ctypes_fails_without_the_fix(sj):
    with pytest.raises(AttributeError, match="int"):
        _check(sj, CPARAMS, _args())


def test_check_ctypes_passes_with_the_fix_and_still_checks(sj):
    assert patch_spikingjelly_numpy()
    assert isinstance(sj.np, NumpyWithAliases)
    _check(sj, CPARAMS, _args())
    # the check still bites: an int argument declared as float, a float one declared as int
    with pytest.raises(AssertionError):
        _check(sj, {**CPARAMS, "numel": "const float &"}, _args())
    with pytest.raises(AssertionError):
        _check(sj, {**CPARAMS, "v_th": "const int &"}, _args())
    # np.int means the builtin int, as before numpy 1.24: int32 arrays are not "np.int" there
    _check(sj, {**CPARAMS, "numel": "const float &"}, {**_args(), "numel": numpy.asarray(3, numpy.int32)})


def test_fix_is_local_and_idempotent(sj):
    assert patch_spikingjelly_numpy()
    proxy = sj.np
    assert patch_spikingjelly_numpy() and sj.np is proxy
    assert not hasattr(numpy, "int")  # the real numpy is unchanged for every other library
    assert neuron_kernel.np is numpy
    assert proxy.float32 is numpy.float32 and proxy.ndarray is numpy.ndarray
    assert proxy.int is int and proxy.object is object  # the removed aliases, as they were
    assert proxy.bool is numpy.bool  # numpy 2 brought np.bool back (as numpy.bool_): numpy answers first
    with pytest.raises(AttributeError):
        proxy.no_such_numpy_name  # noqa: B018


def test_build_neuron_with_cupy_backend_applies_the_fix(sj, monkeypatch):
    monkeypatch.setattr(sj_base, "cupy", types.SimpleNamespace())  # let SpikingJelly accept backend='cupy'
    cfg = OmegaConf.create(dict(name="lif", tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=False))
    build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")
    assert sj.np is numpy  # the torch backend leaves SpikingJelly alone
    node = build_neuron(cfg, build_surrogate("sigmoid", 1.0), "cupy")
    assert node.backend == "cupy"
    assert isinstance(sj.np, NumpyWithAliases)
    _check(sj, CPARAMS, _args())


# ------------------------------------------------------- gpu_check's bound for IF's input gradient
def _if_grad(x, grads, sg_name: str, dtype, alpha: float = 1.0, detach_reset: bool = False) -> torch.Tensor:
    """IF input gradient on CPU (SpikingJelly's torch path) for the loss sum(S * g_s) + sum(V_T * g_v)."""
    from spikingjelly.activation_based import functional

    cfg = OmegaConf.create(dict(name="if", v_threshold=1.0, v_reset=0.0, detach_reset=detach_reset))
    node = build_neuron(cfg, build_surrogate(sg_name, alpha), "torch").to(dtype)
    functional.reset_net(node)
    xr = x.detach().to(dtype).clone().requires_grad_(True)
    spikes = node(xr)
    ((spikes * grads[0].to(dtype)).sum() + (node.v * grads[1].to(dtype)).sum()).backward()
    return xr.grad.double()


@pytest.fixture(scope="module")
def if_input():
    gen = torch.Generator().manual_seed(0)
    T, N = 25, 2048  # gpu_check's input recipe: multiples of 1/256 around 0.25
    x = torch.round(torch.randn(T, N, generator=gen) * 256.0 + 64.0) / 256.0
    return x, (torch.randn(T, N, generator=gen), torch.randn(N, generator=gen))


@pytest.mark.parametrize("sg_name", ["arctan", "super_spike", "sigmoid", "triangle"])
def test_if_gradient_bound_passes_rounding_and_catches_errors(if_input, sg_name):
    x, grads = if_input
    T = x.shape[0]
    exact = _if_grad(x, grads, sg_name, torch.float64)
    bound = tol.grad_bound(exact, T, 1e-5)
    assert bound == max(1e-5, T * 2.0**-23 * exact.abs().max().item())
    # float32 rounding alone (another correct implementation, other rounding order) stays inside it
    assert (_if_grad(x, grads, sg_name, torch.float32) - exact).abs().max() <= bound
    # wrong gradients do not
    wrong = {
        "reset term dropped": _if_grad(x, grads, sg_name, torch.float64, detach_reset=True),
        "alpha 1 % off": _if_grad(x, grads, sg_name, torch.float64, alpha=1.01),
        "one step's gradient lost": torch.cat([exact[:12], torch.zeros_like(exact[12:13]), exact[13:]]),
    }
    for what, g in wrong.items():
        assert (g - exact).abs().max() > 10 * bound, what


def test_if_gradient_grows_along_t_without_leak(if_input):
    """Why IF needs the relative bound: without a leak its input gradient grows along T (arctan most)."""
    x, grads = if_input
    g = {name: _if_grad(x, grads, name, torch.float64).abs().max().item() for name in ("arctan", "triangle")}
    assert g["arctan"] > 10 * g["triangle"] > 10  # vs O(1) per-step surrogate slopes
    assert 25 * 2.0**-23 * g["arctan"] > 1e-5  # the fixed 1e-5 would reject float32 rounding there


# ---------------------------------------------------- gpu_check's bound for PLIF's parameter gradient
def _plif_grads(x, grads, dtype, sg_name: str = "arctan"):
    """(dL/dw, input gradient) of SpikingJelly's PLIF on CPU for the loss sum(S * g_s) + sum(V_T * g_v)."""
    from spikingjelly.activation_based import functional

    cfg = OmegaConf.create(dict(name="plif", tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=False))
    node = build_neuron(cfg, build_surrogate(sg_name, 1.0), "torch").to(dtype)
    functional.reset_net(node)
    xr = x.detach().to(dtype).clone().requires_grad_(True)
    spikes = node(xr)
    ((spikes * grads[0].to(dtype)).sum() + (node.v * grads[1].to(dtype)).sum()).backward()
    return node.w.grad.double().item(), xr.grad.double(), node.w.detach()


@pytest.mark.parametrize("sg_name", ["arctan", "sigmoid"])
def test_plif_weight_bound_passes_rounding_and_catches_errors(if_input, sg_name):
    x, grads = if_input
    T = x.shape[0]
    exact, grad_x, w = _plif_grads(x, grads, torch.float64, sg_name)
    terms = tol.plif_weight_terms(x, grad_x, w, 1.0, 0.0)
    assert terms.sum().item() == pytest.approx(exact, rel=1e-9)  # the decomposition is dL/dw itself
    scale = terms.abs().sum().item()
    assert scale > 20 * abs(exact)  # random-signed terms cancel: why |dL/dw| alone is the wrong yardstick
    bound = tol.param_grad_bound(exact, scale, T, 1e-5)
    rel = lambda g: abs(g - exact) / max(abs(exact), 1.0)  # noqa: E731
    assert rel(_plif_grads(x, grads, torch.float32, sg_name)[0]) <= bound  # float32 rounding passes
    wrong = {
        "(1 - k) factor of dH/dw dropped": exact / 0.5,
        "sign of dH/dw flipped": -exact,
        "one step's share lost": exact - terms[12].sum().item(),
    }
    for what, g in wrong.items():
        assert rel(g) > 10 * bound, what


# -------------------------------------------- gpu_check's parameter terms for any neuron (PLIF, BLIF)
def test_param_grad_terms_are_the_parameter_gradient():
    """``param_grad_terms`` (generated torch path, parameters expanded per element) sums to dL/dparameter for
    PLIF's scalar w and BLIF's per-channel tau_raw / d_raw, and for PLIF agrees with the independent
    ``plif_weight_terms`` element by element (summed over the steps)."""
    from spikingjelly.activation_based import functional

    gen = torch.Generator().manual_seed(1)
    T, N, F = 12, 16, 6
    x = torch.round(torch.randn(T, N, F, generator=gen) * 256.0 + 64.0) / 256.0
    grads = {"spikes": torch.randn(T, N, F, generator=gen), "v": torch.randn(N, F, generator=gen),
             "theta": torch.randn(N, F, generator=gen)}
    for name in ("plif", "blif"):
        cfg = neuron_config(name)  # gpu_check's configs: the group's defaults (tau 2.0 for plif)
        node = build_neuron(cfg, build_surrogate("arctan", 1.0), "torch", F).double()
        tol.set_parameters(node)
        terms = tol.param_grad_terms(node, x, grads)
        functional.reset_net(node)
        xr = x.double().clone().requires_grad_(True)
        spikes = node(xr)
        loss = (spikes * grads["spikes"].double()).sum() + sum(
            (getattr(node, s) * grads[s].double()).sum() for s in node.definition.states)
        exact = torch.autograd.grad(loss, [xr, *node.parameters()])
        for (pname, p), g in zip(node.named_parameters(), exact[1:], strict=True):
            total = terms[f"grad_{pname}"].sum(0) if p.dim() else terms[f"grad_{pname}"].sum()
            torch.testing.assert_close(total.reshape(p.shape), g, rtol=1e-9, atol=1e-12)
        if name == "plif":
            independent = tol.plif_weight_terms(x, exact[0], node.w, 1.0, 0.0).sum(0)
            torch.testing.assert_close(terms["grad_w"], independent, rtol=1e-9, atol=1e-12)


# -------------------------------------------- gpu_check's bfloat16 / float16 storage bound, on the CPU
@pytest.mark.parametrize("name", ["adaptive_lif", "lif", "blif"])
def test_bf16_storage_bound_passes_the_torch_path_and_catches_bf16_integration(name):
    """The bf16 row of gpu_check on the CPU: the generated torch path with bfloat16 storage (integrating in
    float32) stays within ``storage_bound`` of float32 on the same rounded inputs, with identical spikes; the
    step loop run in bfloat16 (states rounded at every step) does not."""
    gen = torch.Generator().manual_seed(2)
    T, N, F = 25, 64, 8
    x = (torch.round(torch.randn(T, N, F, generator=gen) * 256.0 + 64.0) / 256.0).bfloat16()
    grads = {"spikes": torch.randn(T, N, F, generator=gen), "v": torch.randn(N, F, generator=gen),
             "theta": torch.randn(N, F, generator=gen)}
    grads = {k: g.bfloat16() for k, g in grads.items()}

    def run(dtype, fused):
        node = build_neuron(neuron_config(name, fused=fused), build_surrogate("sigmoid", 1.0), "torch", F)
        tol.set_parameters(node)
        g = {k: v.to(dtype) for k, v in grads.items()}
        return tol.run_node(node.to(dtype) if not fused else node, x.to(dtype), g)

    ref = run(torch.float32, True)
    row = tol.compare(run(torch.bfloat16, True), ref, 1e-5, None, (tol.BF16_UNIT_ROUNDOFF, 0.0))
    assert row["mismatch"] == 0 and row["ok"], row
    bad = tol.compare(run(torch.bfloat16, False), ref, 1e-5, None, (tol.BF16_UNIT_ROUNDOFF, 0.0))
    assert not bad["ok"], bad
