"""Surrogate spike functions built on SpikingJelly's ``SurrogateFunctionBase``.

Forward is the Heaviside step ``x >= 0``; backward replaces its derivative with a smooth surrogate
``g(x; alpha)`` where ``x = H - theta`` and ``alpha`` is the smoothing factor. Each class writes its
derivative once, as an expression (``formula``, see ``expr.py``); from it come ``derivative(x, alpha)``
(torch), ``cuda_codes`` (CUDA float and half2 statements, SpikingJelly's interface), ``cpp_struct`` (the
CPU kernel's slope) and the slope inlined into the generated CUDA neuron kernels. ``primitive_function``
(the forward with ``spiking=False``) is the derivative's integral, written out by hand.
"""

from __future__ import annotations

import functools
import math

import torch

from spikenet.neurons.expr import Expr, absolute, const, evaluate, exp, maximum, render, sym
from spikenet.neurons.sj_compat import SurrogateBase, heaviside
from spikenet.registry import Registry

SURROGATES: Registry[type[SpikeSurrogate]] = Registry("surrogate", "surrogate.name")
"""Config name -> surrogate class, each registered beside its definition (``register_surrogate``); the
registration order is each surrogate's index in the compiled CPU kernel (built-in ones first, then plugins')."""

_SQRT2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)
X = sym("x", "x")
ALPHA = sym("alpha", "alpha")


class _HeavisideSurrogate(torch.autograd.Function):
    """Heaviside forward (``x >= 0``, or ``x > 0`` when strict), ``grad * derivative(x, alpha)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float, derivative, strict: bool) -> torch.Tensor:
        if x.requires_grad:
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            ctx.derivative = derivative
        return (x > 0).to(x.dtype) if strict else heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.derivative(x, ctx.alpha), None, None, None


class SpikeSurrogate(SurrogateBase):
    """Common base: subclasses define ``formula`` (the derivative, as an expression) and ``primitive_function``."""

    name: str = ""  # set by register_surrogate

    def __init__(self, alpha: float = 1.0, spiking: bool = True) -> None:
        if alpha <= 0:
            raise ValueError(f"surrogate.alpha must be > 0, got {alpha}")
        super().__init__(float(alpha), spiking)  # sj_compat: one signature for SpikingJelly 0.0.0.0.14 and 2.x

    @staticmethod
    def formula(x: Expr, alpha: Expr) -> Expr:  # pragma: no cover - abstract
        """d/dx of the spike function at x, built from ``expr`` nodes (the one place it is written)."""
        raise NotImplementedError

    @classmethod
    @functools.cache
    def expression(cls) -> Expr:
        """``formula`` over the symbols x and alpha."""
        return cls.formula(X, ALPHA)

    @classmethod
    def derivative(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
        """The surrogate derivative at ``x`` (torch, x's dtype; float32 constants unless x is float64)."""
        (out,) = evaluate([cls.expression()], {X: x, ALPHA: float(alpha)}, f32_scalars=x.dtype != torch.float64)
        return out

    @classmethod
    def _spike(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
        return _HeavisideSurrogate.apply(x, alpha, cls.derivative, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            return self._spike(x, self.alpha)
        return self.primitive_function(x, self.alpha)

    def strict(self, x: torch.Tensor) -> torch.Tensor:
        """Heaviside with a strict ``x > 0`` (SiGNN's BLIF fires so), same surrogate gradient."""
        return _HeavisideSurrogate.apply(x, self.alpha, type(self).derivative, True)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate derivative at ``x`` with this instance's alpha."""
        return self.derivative(x, self.alpha)

    def cuda_codes(self, y: str, x: str, dtype: str) -> str:
        """CUDA statements ``y = derivative(x)`` ('float' or 'half2'), for SpikingJelly's auto_cuda kernels.

        alpha is baked in; temporaries are named after the surrogate so that they do not clash with the
        kernel's own variables.
        """
        if dtype not in ("float", "half2"):
            raise NotImplementedError(f"dtype {dtype!r}: expected 'float' or 'half2'")
        e = type(self).formula(X, const(self.alpha))
        lang = "cuda" if dtype == "float" else "half2"
        lines = render([(y, e)], lambda s: f"({x})", lang, prefix=f"spikenet_{self.name}__t")
        return "".join(lines)

    @classmethod
    def cpp_struct(cls) -> str:
        """``struct <name> { static inline float f(float x, float alpha); }`` for the CPU kernel."""
        body = render([("const float r", cls.expression())], lambda s: s.data[1], "cpp", indent="    ")
        return (f"struct {cpp_name(cls.name)} {{\n  static inline float f(const float x, const float alpha) {{\n"
                + "\n".join(body) + "\n    return r;\n  }\n};\n")


def register_surrogate(name: str, **meta):
    """Class decorator: register a ``SpikeSurrogate`` subclass in ``SURROGATES`` as ``name`` (its config name,
    also set as the class's ``name``)."""

    def wrap(cls: type[SpikeSurrogate]) -> type[SpikeSurrogate]:
        cls.name = name
        return SURROGATES.register(name, **meta)(cls)

    return wrap


def is_registered(surrogate: object) -> bool:
    """True when ``surrogate``'s exact type is the registered class of its name (a subclass may differ)."""
    name = getattr(surrogate, "name", "")
    return name in SURROGATES and SURROGATES.get(name) is type(surrogate)


def cpp_name(name: str) -> str:
    """The C++ type of a surrogate's slope in the CPU kernel."""
    return f"Slope_{name}"


@register_surrogate("sigmoid")
class Sigmoid(SpikeSurrogate):
    """alpha * sigma(alpha x) * (1 - sigma(alpha x))."""


    @staticmethod
    def formula(x: Expr, alpha: Expr) -> Expr:
        s = 1.0 / (1.0 + exp(-(alpha * x)))
        return (alpha * s) * (1.0 - s)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return torch.sigmoid(alpha * x)


@register_surrogate("triangle")
class Triangle(SpikeSurrogate):
    """max(0, 1 - alpha |x|)."""


    @staticmethod
    def formula(x: Expr, alpha: Expr) -> Expr:
        return maximum(1.0 - alpha * absolute(x), 0.0)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        xc = x.clamp(-1.0 / alpha, 1.0 / alpha)
        left = 0.5 * alpha * (xc + 1.0 / alpha) ** 2
        right = 0.5 / alpha + xc - 0.5 * alpha * xc**2
        return torch.where(xc <= 0, left, right)


@register_surrogate("arctan")
class ArcTan(SpikeSurrogate):
    """1 / (1 + alpha x^2): the SpikeNet reference's ``arctan``, whose primitive is an arctangent.

    Not SpikingJelly's ``surrogate.ATan``, whose derivative is (alpha / 2) / (1 + (pi/2 alpha x)^2):
    the same bell shape with another scale and height, so the two take different ``alpha`` for the
    same curve. ``surrogate=arctan`` reproduces the reference.
    """


    @staticmethod
    def formula(x: Expr, alpha: Expr) -> Expr:
        return 1.0 / (1.0 + (alpha * x) * x)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        r = math.sqrt(alpha)
        return (torch.atan(r * x) + math.pi / 2) / r


@register_surrogate("super_spike")
class SuperSpike(SpikeSurrogate):
    """1 / (1 + alpha |x|)^2 (Zenke & Ganguli 2018)."""


    @staticmethod
    def formula(x: Expr, alpha: Expr) -> Expr:
        r = 1.0 / (1.0 + alpha * absolute(x))
        return r * r

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        tail = 1.0 / (alpha * (1.0 + alpha * x.abs()))
        return torch.where(x < 0, tail, 2.0 / alpha - tail)


def _normal(x: Expr, mu: Expr | float, sigma: Expr) -> Expr:
    """N(x; mu, sigma), the normal density."""
    z = (x - mu) / sigma
    return exp(-0.5 * (z * z)) / (sigma * SQRT_2PI)


def _normal_cdf(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf((x - mu) / (sigma * _SQRT2)))


@register_surrogate("multi_gauss")
class MultiGaussian(SpikeSurrogate):
    """1.15 N(x; 0, a) - 0.15 N(x; a, 6a) - 0.15 N(x; -a, 6a) (Yin et al. 2021)."""

    h, s = 0.15, 6.0

    @staticmethod
    def formula(x: Expr, alpha: Expr) -> Expr:
        h, s = MultiGaussian.h, MultiGaussian.s
        return (1.0 + h) * _normal(x, 0.0, alpha) - h * _normal(x, alpha, s * alpha) - h * _normal(x, -alpha, s * alpha)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        h, s = MultiGaussian.h, MultiGaussian.s
        return (
            (1.0 + h) * _normal_cdf(x, 0.0, alpha)
            - h * _normal_cdf(x, alpha, s * alpha)
            - h * _normal_cdf(x, -alpha, s * alpha)
        )


def build_surrogate(name: str, alpha: float) -> SpikeSurrogate:
    """Instantiate a surrogate by its config name (``surrogate.name``)."""
    return SURROGATES.get(name)(alpha=alpha)  # an unknown name: one-line ValueError naming the choices
