"""Surrogates: Heaviside forward, DESIGN.md's derivative formulas backward, consistent primitives."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import quad
from spikingjelly.activation_based import surrogate as sj_surrogate

from spikenet.neurons import build_surrogate
from spikenet.neurons.surrogates import SURROGATES, ArcTan, MultiGaussian, Sigmoid, SuperSpike, Triangle


def _npdf(x: float, mu: float, sigma: float) -> float:
    return math.exp(-((x - mu) ** 2) / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))


def _logistic(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))  # no overflow far out


# DESIGN.md, "Surrogates" (d/dx of the spike function at x), written out independently per scalar.
FORMULAS = {
    "sigmoid": lambda x, a: a * _logistic(a * x) * (1 - _logistic(a * x)),
    "triangle": lambda x, a: max(0.0, 1 - a * abs(x)),
    "arctan": lambda x, a: 1 / (1 + a * x * x),
    "super_spike": lambda x, a: 1 / (1 + a * abs(x)) ** 2,
    "multi_gauss": lambda x, a: (1.15 * _npdf(x, 0, a) - 0.15 * _npdf(x, a, 6 * a)
                                - 0.15 * _npdf(x, -a, 6 * a)),
}
XS = [-3.0, -1.2, -0.7, -0.3, -0.05, 0.0, 0.05, 0.3, 0.7, 1.2, 3.0]
ALPHAS = [0.5, 2.0]
NAMES = sorted(FORMULAS)  # the built-in surrogates, checked against the independent formulas above
REGISTERED = SURROGATES.names()  # every registered one (plugins too): the checks that need no formula


def test_registry_names_every_surrogate():
    assert set(FORMULAS) <= set(SURROGATES) and SURROGATES.names()[:len(FORMULAS)] == tuple(FORMULAS)
    expected = {"sigmoid": Sigmoid, "triangle": Triangle, "arctan": ArcTan, "super_spike": SuperSpike,
                "multi_gauss": MultiGaussian}
    for name, cls in expected.items():
        sg = build_surrogate(name, 0.5)
        assert type(sg) is cls and sg.alpha == 0.5
        assert isinstance(sg, sj_surrogate.SurrogateFunctionBase)


def test_bad_name_and_alpha_raise():
    with pytest.raises(ValueError, match="nope"):
        build_surrogate("nope", 1.0)
    with pytest.raises(ValueError):
        build_surrogate("sigmoid", 0.0)


@pytest.mark.parametrize("name", REGISTERED)
def test_forward_is_heaviside(name):
    sg = build_surrogate(name, 2.0)
    x = torch.tensor([-5.0, -1e-4, -1e-30, 0.0, 1e-30, 1e-4, 5.0])
    assert sg(x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert sg(x).dtype == x.dtype


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", NAMES)
def test_backward_equals_design_formula(name, alpha):
    sg = build_surrogate(name, alpha)
    x = torch.tensor(XS, dtype=torch.float64, requires_grad=True)
    upstream = torch.linspace(0.5, 1.5, len(XS), dtype=torch.float64)
    (sg(x) * upstream).sum().backward()
    expected = torch.tensor([FORMULAS[name](v, alpha) for v in XS], dtype=torch.float64) * upstream
    torch.testing.assert_close(x.grad, expected, atol=1e-10, rtol=1e-8)
    # the static derivative (used by the fused kernels) is the same function
    static = type(sg).derivative(x.detach(), alpha)
    torch.testing.assert_close(static, expected / upstream, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", REGISTERED)
def test_primitive_function_derivative_matches_surrogate(name, alpha):
    cls = SURROGATES.get(name)
    # avoid the triangle's kinks at 0 and +-1/alpha and super_spike's at 0
    xs = torch.tensor([v + 0.013 for v in XS], dtype=torch.float64)
    h = 1e-5
    numeric = (cls.primitive_function(xs + h, alpha) - cls.primitive_function(xs - h, alpha)) / (2 * h)
    torch.testing.assert_close(numeric, cls.derivative(xs, alpha), atol=1e-6, rtol=1e-5)


def _integral_of_formula(name: str, x: float, alpha: float) -> float:
    """The primitive, independently: DESIGN.md's derivative integrated numerically from -inf to x."""
    breaks = [p for p in (-1 / alpha, 0.0, 1 / alpha) if p < x]  # the triangle's and super_spike's kinks
    total, lo = 0.0, -math.inf
    for hi in [*breaks, x]:
        total += quad(lambda u: FORMULAS[name](u, alpha), lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
        lo = hi
    return total


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", NAMES)
def test_non_spiking_mode_gives_primitive(name, alpha):
    """spiking=False: forward is the smooth primitive (integral of the surrogate derivative, 0 at -inf), and its
    autograd derivative is the design formula (checked against finite differences of that integral too)."""
    sg = SURROGATES.get(name)(alpha=alpha, spiking=False)
    xs = [v + 0.013 for v in XS]  # off the kinks
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = sg(x)
    expected = torch.tensor([_integral_of_formula(name, v, alpha) for v in xs], dtype=torch.float64)
    torch.testing.assert_close(y.detach(), expected, atol=1e-8, rtol=1e-7)
    (grad,) = torch.autograd.grad(y.sum(), x)
    h = 1e-4
    fd = torch.tensor([(_integral_of_formula(name, v + h, alpha) - _integral_of_formula(name, v - h, alpha)) / (2 * h)
                       for v in xs], dtype=torch.float64)
    torch.testing.assert_close(grad, fd, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad, torch.tensor([FORMULAS[name](v, alpha) for v in xs], dtype=torch.float64),
                               atol=1e-10, rtol=1e-8)


def test_sigmoid_default_matches_spikingjelly():
    """Our sigmoid with alpha a is SpikingJelly's Sigmoid(alpha=a) (same surrogate, same name)."""
    x = torch.linspace(-3, 3, 25, requires_grad=True)
    Sigmoid(4.0)(x).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    sj_surrogate.Sigmoid(alpha=4.0)(x).sum().backward()
    torch.testing.assert_close(ours, x.grad)
