"""Adaptive LIF dynamics (hand-computed), fused vs step-by-step BPTT, and the SpikingJelly neurons."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from spikenet.neurons import AdaptiveLIFNode, build_neuron, build_surrogate
from spikenet.neurons.sj_compat import reset_net
from spikenet.neurons.surrogates import SURROGATES, Sigmoid

CONFIG_ALPHAS = {"sigmoid": 1.0, "triangle": 1.0, "arctan": 10.0, "super_spike": 10.0, "multi_gauss": 0.5}

# ---------------------------------------------------------------------------------------------------
# Hand-computed trajectories. Defaults: v_threshold 1 (theta_0), v_reset 0 (V_0), thresh_decay 0.7,
# gamma 0.2. Each row: (X_t, S_t, V_t, theta_t).
#
# tau = 1.0: H_t = V + (X - V) / 1 = X_t
#   t1 X= 0.5: H=0.5 <  th0=1.0    -> S=0, V=0.5,  th=0.7*1.0             = 0.7
#   t2 X= 0.8: H=0.8 >= 0.7        -> S=1, V=0,    th=0.7*0.7 + 0.2        = 0.69
#   t3 X= 0.6: H=0.6 <  0.69       -> S=0, V=0.6,  th=0.7*0.69             = 0.483
#      (suppressed by the raised threshold: without the +0.2 it would be 0.49 and 0.6 would fire)
#   t4 X= 0.5: H=0.5 >= 0.483      -> S=1, V=0,    th=0.7*0.483 + 0.2      = 0.5381
#   t5 X=-0.2: H=-0.2 < 0.5381     -> S=0, V=-0.2, th=0.7*0.5381           = 0.37667
#   t6 X= 0.4: H=0.4 >= 0.37667    -> S=1, V=0,    th=0.7*0.37667 + 0.2    = 0.463669
TAU1 = [
    (0.5, 0.0, 0.5, 0.7),
    (0.8, 1.0, 0.0, 0.69),
    (0.6, 0.0, 0.6, 0.483),
    (0.5, 1.0, 0.0, 0.5381),
    (-0.2, 0.0, -0.2, 0.37667),
    (0.4, 1.0, 0.0, 0.463669),
]
# tau = 2.0: H_t = V + (X - V) / 2 = (V + X) / 2
#   t1 X=1.6: H=(0+1.6)/2=0.8   <  1.0     -> S=0, V=0.8, th=0.7
#   t2 X=1.0: H=(0.8+1.0)/2=0.9 >= 0.7     -> S=1, V=0,   th=0.49+0.2      = 0.69
#   t3 X=1.2: H=(0+1.2)/2=0.6   <  0.69    -> S=0, V=0.6, th=0.483   (suppressed: 0.6 >= 0.49)
#   t4 X=0.2: H=(0.6+0.2)/2=0.4 <  0.483   -> S=0, V=0.4, th=0.3381
#   t5 X=1.0: H=(0.4+1.0)/2=0.7 >= 0.3381  -> S=1, V=0,   th=0.23667+0.2   = 0.43667
#   t6 X=0.6: H=(0+0.6)/2=0.3   <  0.43667 -> S=0, V=0.3, th=0.305669
TAU2 = [
    (1.6, 0.0, 0.8, 0.7),
    (1.0, 1.0, 0.0, 0.69),
    (1.2, 0.0, 0.6, 0.483),
    (0.2, 0.0, 0.4, 0.3381),
    (1.0, 1.0, 0.0, 0.43667),
    (0.6, 0.0, 0.3, 0.305669),
]
# tau = 2.0, v_reset = 0.2, v_threshold = 0.5: H = V + (X - (V - 0.2)) / 2, V_0 = 0.2, th_0 = 0.5
#   t1 X=0.8: H=0.2+(0.8-0)/2=0.6        >= 0.5    -> S=1, V=0.2 (reset to v_reset), th=0.35+0.2=0.55
#   t2 X=0.5: H=0.2+(0.5-0)/2=0.45       <  0.55   -> S=0, V=0.45,  th=0.385
#   t3 X=0.1: H=0.45+(0.1-0.25)/2=0.375  <  0.385  -> S=0, V=0.375, th=0.2695
#   t4 X=0.6: H=0.375+(0.6-0.175)/2=0.5875 >= 0.2695 -> S=1, V=0.2, th=0.18865+0.2=0.38865
RESET02 = [
    (0.8, 1.0, 0.2, 0.55),
    (0.5, 0.0, 0.45, 0.385),
    (0.1, 0.0, 0.375, 0.2695),
    (0.6, 1.0, 0.2, 0.38865),
]
CASES = {
    "tau1": (dict(tau=1.0), TAU1),
    "tau2": (dict(tau=2.0), TAU2),
    "tau2_reset0.2": (dict(tau=2.0, v_reset=0.2, v_threshold=0.5), RESET02),
}


def _node(fused: bool, step_mode: str = "m", **kw) -> AdaptiveLIFNode:
    params = dict(thresh_decay=0.7, gamma=0.2, v_threshold=1.0, v_reset=0.0) | kw
    return AdaptiveLIFNode(surrogate_function=Sigmoid(1.0), fused=fused, step_mode=step_mode, **params)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["fused", "loop", "single"])
def test_adaptive_lif_matches_hand_computed_sequence(case, mode):
    kw, rows = CASES[case]
    node = _node(fused=mode == "fused", step_mode="s" if mode == "single" else "m", **kw)
    for t, (x, s, v, th) in enumerate(rows):
        inp = torch.tensor([x]) if mode == "single" else torch.tensor([[x]])  # one step at a time
        spike = node(inp)
        assert spike.flatten().tolist() == [s], f"step {t + 1}"
        assert float(node.v.flatten()[0]) == pytest.approx(v, abs=1e-6), f"V after step {t + 1}"
        assert float(node.theta.flatten()[0]) == pytest.approx(th, abs=1e-6), f"theta after step {t + 1}"


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fused", [True, False])
def test_adaptive_lif_whole_sequence_in_one_call(case, fused):
    kw, rows = CASES[case]
    node = _node(fused=fused, **kw)
    x = torch.tensor([r[0] for r in rows]).view(-1, 1, 1).repeat(1, 2, 3)  # [T, 2, 3], same per neuron
    spikes = node(x)
    assert spikes.shape == x.shape
    expected = torch.tensor([r[1] for r in rows]).view(-1, 1, 1).expand_as(x)
    assert torch.equal(spikes, expected)
    assert torch.allclose(node.v, torch.full((2, 3), rows[-1][2]), atol=1e-6)
    assert torch.allclose(node.theta, torch.full((2, 3), rows[-1][3]), atol=1e-6)


def test_tau_below_one_raises_and_one_is_accepted():
    with pytest.raises(ValueError, match="tau"):
        AdaptiveLIFNode(tau=0.9)
    assert AdaptiveLIFNode(tau=1.0).tau == 1.0
    cfg = OmegaConf.create(dict(name="adaptive_lif", tau=1.0, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7,
                                gamma=0.2))
    assert isinstance(build_neuron(cfg, Sigmoid(1.0), "torch"), AdaptiveLIFNode)
    cfg.tau = 0.5
    with pytest.raises(ValueError):
        build_neuron(cfg, Sigmoid(1.0), "torch")


@pytest.mark.parametrize("fused", [True, False])
def test_reset_net_resets_v_and_theta(fused):
    node = _node(fused=fused)
    net = torch.nn.Sequential(torch.nn.Identity(), node)
    fresh = net(torch.tensor(TAU1[:3])[:, :1].view(3, 1, 1)).clone()
    assert float(node.theta.flatten()[0]) != 1.0 and float(node.v.flatten()[0]) != 0.0
    reset_net(net)
    assert node.v == 0.0 and node.theta == 1.0  # back to the float initial values
    again = net(torch.tensor(TAU1[:3])[:, :1].view(3, 1, 1))
    assert torch.equal(fresh, again)


# ---------------------------------------------------------------------------------------------------
# Fused BPTT vs SpikingJelly's step loop vs an independent reference written here.


def _reference_spike(alpha: float, name: str):
    """Heaviside with the surrogate derivative written out independently of ``surrogates.py``."""

    def deriv(x: torch.Tensor) -> torch.Tensor:
        if name == "sigmoid":
            s = 1 / (1 + torch.exp(-alpha * x))
            return alpha * s * (1 - s)
        if name == "triangle":
            return torch.clamp(1 - alpha * x.abs(), min=0)
        if name == "arctan":
            return 1 / (1 + alpha * x**2)
        if name == "super_spike":
            return 1 / (1 + alpha * x.abs()) ** 2

        def gauss(mu, sigma):
            return torch.exp(-((x - mu) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))

        return 1.15 * gauss(0.0, alpha) - 0.15 * gauss(alpha, 6 * alpha) - 0.15 * gauss(-alpha, 6 * alpha)

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * deriv(x)

    return Spike.apply


def _reference_adaptive_lif(x_seq, tau, v_reset, v_th, decay, gamma, spike_fn, detach_reset):
    v = torch.full_like(x_seq[0], v_reset)
    theta = torch.full_like(x_seq[0], v_th)
    out = []
    for x in x_seq:
        h = v + (x - (v - v_reset)) / tau
        s = spike_fn(h - theta)
        sr = s.detach() if detach_reset else s
        v = (1 - sr) * h + sr * v_reset
        theta = decay * theta + gamma * s
        out.append(s)
    return torch.stack(out), v, theta


def _loss_grad(run, x, weights):
    x = x.clone().requires_grad_(True)
    spikes, v, theta = run(x)
    w_s, w_v, w_th = weights
    loss = (spikes * w_s).sum() + (v * w_v).sum() + (theta * w_th).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return spikes.detach(), grad


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("name", SURROGATES.names())
def test_fused_matches_step_loop_and_reference(name, detach_reset):
    gen = torch.Generator().manual_seed(7)
    T, N, F = 12, 64, 16
    x = torch.randn(T, N, F, generator=gen) * 0.8 + 0.6
    weights = tuple(torch.randn(*shape, generator=gen) for shape in ((T, N, F), (N, F), (N, F)))
    alpha = CONFIG_ALPHAS[name]
    kw = dict(tau=1.5, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7, gamma=0.2, detach_reset=detach_reset)

    def run_node(fused):
        def run(inp):
            node = AdaptiveLIFNode(surrogate_function=build_surrogate(name, alpha), fused=fused, **kw)
            spikes = node(inp)
            return spikes, node.v, node.theta

        return run

    ref = _reference_spike(alpha, name)

    def run_ref(inp):
        return _reference_adaptive_lif(inp, 1.5, 0.0, 1.0, 0.7, 0.2, ref, detach_reset)

    s_fused, g_fused = _loss_grad(run_node(True), x, weights)
    s_loop, g_loop = _loss_grad(run_node(False), x, weights)
    s_ref, g_ref = _loss_grad(run_ref, x, weights)
    rate = s_fused.mean().item()
    assert 0.05 < rate < 0.95, f"inputs should make neurons both fire and stay silent, rate {rate}"
    assert torch.equal(s_fused, s_loop)
    assert torch.equal(s_fused, s_ref)
    assert g_fused.abs().max() > 0
    torch.testing.assert_close(g_fused, g_loop, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_fused, g_ref, atol=1e-5, rtol=1e-5)


def test_fused_gradient_wrt_initial_state_matches_loop():
    """v0 / theta0 gradients of the Function itself (used when state is carried across calls)."""
    from spikenet.neurons.functions import FusedNeuron

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=gen) + 0.5
    v0 = (torch.rand(5, generator=gen) * 0.5).requires_grad_(True)
    th0 = (torch.rand(5, generator=gen) + 0.5).requires_grad_(True)
    call = AdaptiveLIFNode(tau=2.0, surrogate_function=Sigmoid(1.0)).call()
    spikes, v, th = FusedNeuron.apply(call, x, v0, th0)
    g_fused = torch.autograd.grad(spikes.sum() + v.sum() + th.sum(), (v0, th0))

    ref = _reference_spike(1.0, "sigmoid")
    v_, th_, out = v0, th0, []
    for xt in x:
        h = v_ + (xt - v_) / 2.0
        s = ref(h - th_)
        v_ = (1 - s) * h
        th_ = 0.7 * th_ + 0.2 * s
        out.append(s)
    g_ref = torch.autograd.grad(torch.stack(out).sum() + v_.sum() + th_.sum(), (v0, th0))
    for a, b in zip(g_fused, g_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_gradient_matches_hand_derivation(fused, detach_reset):
    """T = 2, tau = 2, sigmoid alpha = 2, loss = S_2 summed over two neurons.

    H1 = X1/2, S1 = step(H1 - 1), V1 = (1 - S1) H1, th1 = 0.7 + 0.2 S1, H2 = V1/2 + X2/2, S2 = step(H2 - th1).
    dL/dX2 = g(H2 - th1) / 2
    dL/dX1 = g(H2 - th1) * [ dV1/dH1 / 2 - 0.2 g(H1 - 1) ] / 2,
             dV1/dH1 = (1 - S1) - H1 g(H1 - 1)   (the -H1 g term vanishes with detach_reset)
    neuron A: X = (1.6, 1.0): H1 = 0.8, S1 = 0, th1 = 0.7, V1 = 0.8, H2 = 0.9, S2 = 1
    neuron B: X = (2.4, 2.0): H1 = 1.2, S1 = 1, th1 = 0.9, V1 = 0,   H2 = 1.0, S2 = 1
    """

    def g(z):  # d/dz sigmoid(2 z)
        s = 1 / (1 + math.exp(-2 * z))
        return 2 * s * (1 - s)

    expected = []
    for x1, x2 in ((1.6, 1.0), (2.4, 2.0)):
        h1 = x1 / 2
        s1 = float(h1 >= 1.0)
        th1 = 0.7 + 0.2 * s1
        h2 = (1 - s1) * h1 / 2 + x2 / 2
        g1, g2 = g(h1 - 1.0), g(h2 - th1)
        dv1 = (1 - s1) - (0.0 if detach_reset else h1 * g1)
        expected.append((g2 * (dv1 / 2 - 0.2 * g1) / 2, g2 / 2))
    expected = torch.tensor(expected).T  # [T=2, 2 neurons]

    x = torch.tensor([[1.6, 2.4], [1.0, 2.0]], requires_grad=True)
    node = AdaptiveLIFNode(tau=2.0, surrogate_function=Sigmoid(2.0), detach_reset=detach_reset, fused=fused)
    spikes = node(x)
    assert spikes.tolist() == [[0.0, 1.0], [1.0, 1.0]]
    spikes[1].sum().backward()
    torch.testing.assert_close(x.grad, expected.float(), atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# SpikingJelly's IF / LIF / PLIF through build_neuron


@pytest.mark.parametrize("name", ["if", "lif", "plif", "adaptive_lif"])
def test_build_neuron_multi_step_shapes(name):
    cfg = OmegaConf.create(dict(name=name, tau=2.0, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7, gamma=0.2,
                                detach_reset=False))
    node = build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")
    assert node.step_mode == "m"
    x = (torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(0)) + 1.0).requires_grad_(True)
    spikes = node(x)
    assert spikes.shape == (5, 7, 3)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert 0 < spikes.sum() < spikes.numel()
    spikes.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the surrogate carries a gradient


def test_if_node_integrates_without_leak():
    cfg = OmegaConf.create(dict(name="if", tau=1.0, v_threshold=1.0, v_reset=0.0, detach_reset=False))
    node = build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")
    # V: 0.4, 0.8, 1.2 -> fire, reset 0, 0.4
    spikes = node(torch.full((4, 1), 0.4))
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_lif_with_tau_at_most_one_raises(tau):
    cfg = OmegaConf.create(dict(name="lif", tau=tau, v_threshold=1.0, v_reset=0.0, detach_reset=False))
    with pytest.raises((AssertionError, ValueError)):
        build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")


def test_unknown_neuron_raises():
    cfg = OmegaConf.create(dict(name="nope", tau=2.0, v_threshold=1.0, v_reset=0.0))
    with pytest.raises(ValueError, match="nope"):
        build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")


# ---------------------------------------------------------------------------------------------------
# The default path (tau = 1, the compiled CPU kernel or the torch-op Function) against SpikingJelly's step
# loop (``fused=False``) in every regime: tau = 1 and > 1, v_reset 0 and not, carried state, both resets.

IMPLS = {"kernel": "KernelNeuronBackward", "torch_ops": "FusedNeuronBackward", "loop": None}


def _make_node(impl: str, surrogate, **kw) -> AdaptiveLIFNode:
    node = AdaptiveLIFNode(surrogate_function=surrogate, fused=impl != "loop", **kw)
    if impl == "torch_ops":
        node.cpu_kernel = False  # force the torch-op Function where the compiled kernel would apply
    return node


def _run_in_chunks(node, x: torch.Tensor, split: int | None, v0=None, th0=None):
    """Spikes of x [T, ...] fed in one call, or in two calls with the state carried over (``split``)."""
    if v0 is not None:
        node.v, node.theta = v0, th0
    if split is None:
        return node(x), node.v, node.theta
    first = node(x[:split])
    return torch.cat([first, node(x[split:])]), node.v, node.theta


def _spikes_state_grads(impl, name, alpha, kw, x, weights, split):
    node = _make_node(impl, build_surrogate(name, alpha), **kw)
    xr = x.clone().requires_grad_(True)
    spikes, v, theta = _run_in_chunks(node, xr, split)
    expected_fn = IMPLS[impl]
    if expected_fn is not None:
        assert type(spikes.grad_fn).__name__ in (expected_fn, "CatBackward0"), type(spikes.grad_fn).__name__
        if split is None:
            assert type(spikes.grad_fn).__name__ == expected_fn, f"{impl} did not run"
    w_s, w_v, w_th = weights
    loss = (spikes * w_s).sum() + (v * w_v).sum() + (theta * w_th).sum()
    (grad,) = torch.autograd.grad(loss, xr)
    return spikes.detach(), v.detach(), theta.detach(), grad


@pytest.mark.parametrize("state", ["fresh", "carried"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, 0.25])
@pytest.mark.parametrize("tau", [1.0, 1.5])
@pytest.mark.parametrize("impl", ["kernel", "torch_ops"])
def test_fused_paths_match_spikingjelly_step_loop(impl, tau, v_reset, detach_reset, state):
    if impl == "kernel":
        from spikenet.neurons import cpu_kernel

        assert cpu_kernel.available(), f"the compiled CPU kernel did not build: {cpu_kernel.status()}"
    gen = torch.Generator().manual_seed(11)
    T, N, F = 10, 32, 8
    x = torch.randn(T, N, F, generator=gen) * 0.8 + 0.6 - v_reset
    weights = tuple(torch.randn(*shape, generator=gen) for shape in ((T, N, F), (N, F), (N, F)))
    kw = dict(tau=tau, v_threshold=1.0, v_reset=v_reset, thresh_decay=0.7, gamma=0.2, detach_reset=detach_reset)
    split = 4 if state == "carried" else None
    s_f, v_f, th_f, g_f = _spikes_state_grads(impl, "sigmoid", 1.0, kw, x, weights, split)
    s_l, v_l, th_l, g_l = _spikes_state_grads("loop", "sigmoid", 1.0, kw, x, weights, split)
    rate = s_l.mean().item()
    assert 0.05 < rate < 0.95, f"inputs should make neurons both fire and stay silent, rate {rate}"
    assert torch.equal(s_f, s_l)
    torch.testing.assert_close(v_f, v_l, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(th_f, th_l, atol=1e-6, rtol=1e-6)
    assert g_l.abs().max() > 0
    torch.testing.assert_close(g_f, g_l, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", SURROGATES.names())
@pytest.mark.parametrize("impl", ["kernel", "torch_ops"])
def test_default_tau_one_matches_step_loop_for_every_surrogate(impl, name):
    """tau = 1 (the default branch), v_reset != 0, carried state, for each surrogate the kernel may inline."""
    gen = torch.Generator().manual_seed(5)
    T, N = 9, 200
    x = torch.randn(T, N, generator=gen) * 0.8 + 0.4
    weights = tuple(torch.randn(*shape, generator=gen) for shape in ((T, N), (N,), (N,)))
    kw = dict(tau=1.0, v_threshold=1.0, v_reset=0.2, thresh_decay=0.7, gamma=0.2)
    alpha = CONFIG_ALPHAS[name]
    s_f, v_f, th_f, g_f = _spikes_state_grads(impl, name, alpha, kw, x, weights, 3)
    s_l, v_l, th_l, g_l = _spikes_state_grads("loop", name, alpha, kw, x, weights, 3)
    assert torch.equal(s_f, s_l) and 0 < s_l.sum() < s_l.numel()
    torch.testing.assert_close((v_f, th_f), (v_l, th_l), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(g_f, g_l, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Surrogate BPTT against finite differences, in double precision. The surrogate gradient at x is the exact
# gradient of the smooth function in which each spike is S_t = step(z_t(x)) + sigma(z_t) - sigma(z_t(x)), with
# z_t(x) (= H_t - theta_{t-1} at the point x) frozen and sigma the surrogate's primitive: equal values at x,
# derivative sigma'(z_t). That function is simulated below in numpy (a batch of perturbed copies at once).

FD_ALPHA = 1.5


def _sigma(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-FD_ALPHA * z))


def _smooth_loss(x, v0, th0, weights, consts, z_base):
    """Loss of the frozen-step network for a batch of inputs x [B, T, N], v0/th0 [B, N] (float64 numpy)."""
    tau, v_reset, decay, gamma, detach = consts
    w_s, w_v, w_th = weights
    v, theta, loss, zs = v0, th0, 0.0, []
    for t in range(x.shape[1]):
        h = v + (x[:, t] - (v - v_reset)) / tau
        z = h - theta
        zs.append(z)
        ref = z if z_base is None else z_base[t]
        step = (ref >= 0).astype(np.float64)
        s = step + _sigma(z) - _sigma(ref)
        s_reset = step if detach else s
        v = (1 - s_reset) * h + s_reset * v_reset
        theta = decay * theta + gamma * s
        loss = loss + (s * w_s[t]).sum(-1)
    return loss + (v * w_v).sum(-1) + (theta * w_th).sum(-1), np.stack(zs, axis=1)


def _finite_difference_grads(x, v0, th0, weights, consts, eps=1e-6):
    _, z = _smooth_loss(x[None], v0[None], th0[None], weights, consts, None)
    z_base = z[0]
    flat = np.concatenate([x.ravel(), v0, th0])
    n = flat.size
    batch = np.repeat(flat[None], 2 * n, axis=0)
    batch[np.arange(n), np.arange(n)] += eps
    batch[n + np.arange(n), np.arange(n)] -= eps
    T, N = x.shape
    xb, vb, tb = batch[:, : T * N].reshape(-1, T, N), batch[:, T * N : T * N + N], batch[:, T * N + N :]
    loss, _ = _smooth_loss(xb, vb, tb, weights, consts, z_base)
    grad = (loss[:n] - loss[n:]) / (2 * eps)
    return z_base, grad[: T * N].reshape(T, N), grad[T * N : T * N + N], grad[T * N + N :]


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, 0.3])
@pytest.mark.parametrize("tau", [1.0, 2.0])
@pytest.mark.parametrize("impl", ["kernel", "torch_ops", "loop"])
def test_bptt_gradients_match_finite_differences(impl, tau, v_reset, detach_reset):
    T, N = 7, 12
    consts = (tau, v_reset, 0.7, 0.2, detach_reset)
    for seed in range(4, 40):  # the first draw where no H_t sits within 1e-3 of its threshold (float32 flips)
        rng = np.random.default_rng(seed)
        x = rng.normal(0.5, 0.7, size=(T, N))
        v0, th0 = rng.uniform(-0.2, 0.6, N), rng.uniform(0.6, 1.2, N)  # a carried, non-fresh state
        weights = (rng.normal(size=(T, N)), rng.normal(size=N), rng.normal(size=N))
        z, fd_x, fd_v0, fd_th0 = _finite_difference_grads(x, v0, th0, weights, consts)
        if np.abs(z).min() > 1e-3:
            break
    assert np.abs(z).min() > 1e-3
    spikes_ref = (z >= 0).astype(np.float64)
    assert 0 < spikes_ref.sum() < spikes_ref.size

    dtype = torch.float32 if impl == "kernel" else torch.float64
    node = _make_node(impl, Sigmoid(FD_ALPHA), tau=tau, v_reset=v_reset, thresh_decay=0.7, gamma=0.2,
                      detach_reset=detach_reset)
    xt, vt, tt = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in (x, v0, th0))
    spikes, v, theta = _run_in_chunks(node, xt, None, vt, tt)
    if impl != "loop":
        assert type(spikes.grad_fn).__name__ == IMPLS[impl], f"{impl} did not run"
    w_s, w_v, w_th = (torch.tensor(w, dtype=dtype) for w in weights)
    ((spikes * w_s).sum() + (v * w_v).sum() + (theta * w_th).sum()).backward()
    np.testing.assert_array_equal(spikes.detach().numpy(), spikes_ref)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(xt.grad.numpy(), fd_x, **tol, err_msg="dL/dX")
    np.testing.assert_allclose(vt.grad.numpy(), fd_v0, **tol, err_msg="dL/dV0")
    np.testing.assert_allclose(tt.grad.numpy(), fd_th0, **tol, err_msg="dL/dtheta0")


# ---------------------------------------------------------------------------------------------------
# SpikingJelly's LIF and PLIF through build_neuron: leak dynamics by hand, PLIF's tau learns.
#
# tau = 2, v_reset = 0, v_threshold = 1: H = V + (X - V) / 2
#   X=1.5: H=0.75 -> S=0, V=0.75 | X=1.5: H=0.75+0.375=1.125 -> S=1, V=0 | X=1.5: H=0.75 -> S=0, V=0.75
#   X=0.4: H=0.75-0.175=0.575 -> S=0 | X=2.0: H=0.575+0.7125=1.2875 -> S=1, V=0 | X=-1: H=-0.5 -> S=0
LEAK_TAU2 = [(1.5, 0.0, 0.75), (1.5, 1.0, 0.0), (1.5, 0.0, 0.75), (0.4, 0.0, 0.575), (2.0, 1.0, 0.0),
             (-1.0, 0.0, -0.5)]
# tau = 4, v_reset = 0.2, v_threshold = 0.5: H = V + (X - (V - 0.2)) / 4, V_0 = 0.2
#   X=1.0: H=0.2+1.0/4=0.45 -> S=0 | X=0.6: H=0.45+(0.6-0.25)/4=0.5375 -> S=1, V=0.2
#   X=0.2: H=0.2+0.2/4=0.25 -> S=0 | X=1.4: H=0.25+(1.4-0.05)/4=0.5875 -> S=1, V=0.2
LEAK_TAU4_RESET = [(1.0, 0.0, 0.45), (0.6, 1.0, 0.2), (0.2, 0.0, 0.25), (1.4, 1.0, 0.2)]


@pytest.mark.parametrize("name", ["lif", "plif"])
@pytest.mark.parametrize("params,rows", [((2.0, 0.0, 1.0), LEAK_TAU2), ((4.0, 0.2, 0.5), LEAK_TAU4_RESET)])
def test_lif_and_plif_leak_matches_hand_computed_sequence(name, params, rows):
    tau, v_reset, v_th = params
    cfg = OmegaConf.create(dict(name=name, tau=tau, v_threshold=v_th, v_reset=v_reset, detach_reset=False))
    node = build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")
    for t, (x, s, v) in enumerate(rows):
        spike = node(torch.tensor([[x]]))  # multi-step, one step per call: V is read after each
        assert spike.flatten().tolist() == [s], f"step {t + 1}"
        assert float(node.v.detach().flatten()[0]) == pytest.approx(v, abs=1e-6), f"V after step {t + 1}"
    reset_net(node)
    whole = node(torch.tensor([r[0] for r in rows]).view(-1, 1))  # the whole sequence in one call
    assert whole.flatten().tolist() == [r[1] for r in rows]


def test_plif_tau_learns():
    """One PLIF neuron, constant sub-threshold input X = 0.8 for T = 3 steps, loss = -V_T, detached reset.

    V_T = X (1 - (1 - k)^T) with k = 1/tau = sigmoid(w), so dL/dw = -X T (1 - k)^(T-1) k (1 - k);
    at init_tau = 2 (w = 0, k = 1/2) that is -0.8 * 3 * 0.25 * 0.25 = -0.15. Gradient descent raises w,
    i.e. shortens tau (less leak towards V = 0), and the loss falls.
    """
    cfg = OmegaConf.create(dict(name="plif", tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=True))
    node = build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch")
    params = dict(node.named_parameters())
    assert list(params) == ["w"], "PLIF's time constant must be its (only) learnable parameter"
    x = torch.full((3, 1), 0.8)

    def loss() -> torch.Tensor:
        reset_net(node)
        spikes = node(x)
        assert spikes.sum() == 0
        return -node.v.sum()

    before = loss()
    assert before.item() == pytest.approx(-0.8 * (1 - 0.5**3), abs=1e-6)
    before.backward()
    assert params["w"].grad.item() == pytest.approx(-0.15, abs=1e-6)
    tau_before = 1 / torch.sigmoid(params["w"]).item()
    torch.optim.SGD(node.parameters(), lr=1.0).step()
    tau_after = 1 / torch.sigmoid(params["w"]).item()
    assert tau_before == pytest.approx(2.0) and tau_after < tau_before
    assert tau_after == pytest.approx(1 + math.exp(-0.15), abs=1e-5)
    assert loss().item() < before.item()
