"""Adaptive LIF dynamics (hand-computed), fused vs step-by-step BPTT, and the SpikingJelly neurons."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from spikingjelly.activation_based import functional

from spikenet.neurons import AdaptiveLIFNode, build_neuron, build_surrogate
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
    functional.reset_net(net)
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
@pytest.mark.parametrize("name", sorted(SURROGATES))
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
    from spikenet.neurons.fused_adaptive_lif import FusedAdaptiveLIF

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=gen) + 0.5
    v0 = (torch.rand(5, generator=gen) * 0.5).requires_grad_(True)
    th0 = (torch.rand(5, generator=gen) + 0.5).requires_grad_(True)
    spikes, v, th = FusedAdaptiveLIF.apply(x, v0, th0, 2.0, 0.0, 0.7, 0.2, 1.0, Sigmoid.derivative, False)
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
