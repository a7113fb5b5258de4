"""Surrogate spike functions built on SpikingJelly's ``SurrogateFunctionBase``.

Forward is the Heaviside step ``x >= 0``; backward replaces its derivative with a smooth
surrogate ``g(x; alpha)`` where ``x = H - theta`` and ``alpha`` is the smoothing factor.
Each class exposes its derivative as ``derivative(x, alpha)`` so that fused neuron kernels
(CPU BPTT, CuPy) use exactly the same formula as autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from spikingjelly.activation_based import surrogate as sj_surrogate

_SQRT2 = math.sqrt(2.0)


class _HeavisideSurrogate(torch.autograd.Function):
    """Heaviside forward, ``grad * derivative(x, alpha)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float, derivative: Callable) -> torch.Tensor:
        if x.requires_grad:
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            ctx.derivative = derivative
        return sj_surrogate.heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.derivative(x, ctx.alpha), None, None


class SpikeSurrogate(sj_surrogate.SurrogateFunctionBase):
    """Common base: subclasses define ``derivative`` and ``primitive_function``."""

    name: str = ""

    def __init__(self, alpha: float = 1.0, spiking: bool = True) -> None:
        if alpha <= 0:
            raise ValueError(f"surrogate.alpha must be > 0, got {alpha}")
        super().__init__(float(alpha), spiking)

    @staticmethod
    def derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _spike(cls, x: torch.Tensor, alpha: float) -> torch.Tensor:
        return _HeavisideSurrogate.apply(x, alpha, cls.derivative)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            return self._spike(x, self.alpha)
        return self.primitive_function(x, self.alpha)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate derivative at ``x`` with this instance's alpha."""
        return self.derivative(x, self.alpha)


class Sigmoid(SpikeSurrogate):
    """alpha * sigma(alpha x) * (1 - sigma(alpha x))."""

    name = "sigmoid"

    @staticmethod
    def derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1.0 - s)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return torch.sigmoid(alpha * x)

    def cuda_codes(self, y: str, x: str, dtype: str) -> str:
        """CUDA statements ``y = derivative(x)`` for SpikingJelly's auto_cuda kernels ('float' or 'half2')."""
        a = f"{float(self.alpha)!r}f"
        if dtype == "float":
            return (
                f"const float spikenet_sigmoid__s = 1.0f / (1.0f + expf(- ({a} * ({x}))));"
                f"{y} = ({a} * spikenet_sigmoid__s) * (1.0f - spikenet_sigmoid__s);"
            )
        if dtype == "half2":
            return (
                f"const half2 spikenet_sigmoid__a = __float2half2_rn({a});"
                "const half2 spikenet_sigmoid__s = __h2div(__float2half2_rn(1.0f), "
                f"__hadd2(__float2half2_rn(1.0f), h2exp(__hneg2(__hmul2(spikenet_sigmoid__a, {x})))));"
                f"{y} = __hmul2(__hmul2(spikenet_sigmoid__a, spikenet_sigmoid__s), "
                "__hsub2(__float2half2_rn(1.0f), spikenet_sigmoid__s));"
            )
        raise NotImplementedError(f"dtype {dtype!r}: expected 'float' or 'half2'")


class Triangle(SpikeSurrogate):
    """max(0, 1 - alpha |x|)."""

    name = "triangle"

    @staticmethod
    def derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return (1.0 - alpha * x.abs()).clamp_min(0.0)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        xc = x.clamp(-1.0 / alpha, 1.0 / alpha)
        left = 0.5 * alpha * (xc + 1.0 / alpha) ** 2
        right = 0.5 / alpha + xc - 0.5 * alpha * xc**2
        return torch.where(xc <= 0, left, right)

    def cuda_codes(self, y: str, x: str, dtype: str) -> str:
        """CUDA statements ``y = derivative(x)`` for SpikingJelly's auto_cuda kernels ('float' or 'half2')."""
        a = f"{float(self.alpha)!r}f"
        if dtype == "float":
            return f"{y} = fmaxf(0.0f, 1.0f - {a} * fabsf({x}));"
        if dtype == "half2":
            return (
                f"{y} = __hmax2(__float2half2_rn(0.0f), __hsub2(__float2half2_rn(1.0f), "
                f"__hmul2(__float2half2_rn({a}), __habs2({x}))));"
            )
        raise NotImplementedError(f"dtype {dtype!r}: expected 'float' or 'half2'")


class ArcTan(SpikeSurrogate):
    """1 / (1 + alpha x^2): the SpikeNet reference's ``arctan``, whose primitive is an arctangent.

    Not SpikingJelly's ``surrogate.ATan``, whose derivative is (alpha / 2) / (1 + (pi/2 alpha x)^2):
    the same bell shape with another scale and height, so the two take different ``alpha`` for the
    same curve. ``surrogate=arctan`` reproduces the reference.
    """

    name = "arctan"

    @staticmethod
    def derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return 1.0 / (1.0 + alpha * x * x)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        r = math.sqrt(alpha)
        return (torch.atan(r * x) + math.pi / 2) / r

    def cuda_codes(self, y: str, x: str, dtype: str) -> str:
        """CUDA statements ``y = derivative(x)`` for SpikingJelly's auto_cuda kernels ('float' or 'half2')."""
        a = f"{float(self.alpha)!r}f"
        if dtype == "float":
            return (
                f"const float spikenet_arctan__x = {x};"
                f"{y} = 1.0f / (1.0f + {a} * spikenet_arctan__x * spikenet_arctan__x);"
            )
        if dtype == "half2":
            return (
                f"const half2 spikenet_arctan__x = {x};"
                f"{y} = __h2div(__float2half2_rn(1.0f), __hfma2(__hmul2(__float2half2_rn({a}), "
                "spikenet_arctan__x), spikenet_arctan__x, __float2half2_rn(1.0f)));"
            )
        raise NotImplementedError(f"dtype {dtype!r}: expected 'float' or 'half2'")


class SuperSpike(SpikeSurrogate):
    """1 / (1 + alpha |x|)^2 (Zenke & Ganguli 2018)."""

    name = "super_spike"

    @staticmethod
    def derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return (1.0 + alpha * x.abs()).reciprocal().square()

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        tail = 1.0 / (alpha * (1.0 + alpha * x.abs()))
        return torch.where(x < 0, tail, 2.0 / alpha - tail)

    def cuda_codes(self, y: str, x: str, dtype: str) -> str:
        """CUDA statements ``y = derivative(x)`` for SpikingJelly's auto_cuda kernels ('float' or 'half2')."""
        a = f"{float(self.alpha)!r}f"
        if dtype == "float":
            return (
                f"const float spikenet_super_spike__r = 1.0f / (1.0f + {a} * fabsf({x}));"
                f"{y} = spikenet_super_spike__r * spikenet_super_spike__r;"
            )
        if dtype == "half2":
            return (
                "const half2 spikenet_super_spike__r = __h2div(__float2half2_rn(1.0f), "
                f"__hfma2(__float2half2_rn({a}), __habs2({x}), __float2half2_rn(1.0f)));"
                f"{y} = __hmul2(spikenet_super_spike__r, spikenet_super_spike__r);"
            )
        raise NotImplementedError(f"dtype {dtype!r}: expected 'float' or 'half2'")


def _normal_pdf(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def _normal_cdf(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf((x - mu) / (sigma * _SQRT2)))


class MultiGaussian(SpikeSurrogate):
    """1.15 N(x; 0, a) - 0.15 N(x; a, 6a) - 0.15 N(x; -a, 6a) (Yin et al. 2021)."""

    name = "multi_gauss"
    h, s = 0.15, 6.0

    @staticmethod
    def derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
        h, s = MultiGaussian.h, MultiGaussian.s
        return (
            (1.0 + h) * _normal_pdf(x, 0.0, alpha)
            - h * _normal_pdf(x, alpha, s * alpha)
            - h * _normal_pdf(x, -alpha, s * alpha)
        )

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        h, s = MultiGaussian.h, MultiGaussian.s
        return (
            (1.0 + h) * _normal_cdf(x, 0.0, alpha)
            - h * _normal_cdf(x, alpha, s * alpha)
            - h * _normal_cdf(x, -alpha, s * alpha)
        )

    def cuda_codes(self, y: str, x: str, dtype: str) -> str:
        """CUDA statements ``y = derivative(x)`` for SpikingJelly's auto_cuda kernels ('float' or 'half2').

        Each term w N(x; mu, sigma) is emitted as ``c * exp(-(r (x - mu))^2)`` with
        ``c = w / (sigma sqrt(2 pi))`` and ``r = 1 / (sigma sqrt(2))`` folded in Python.
        """
        h, s, alpha = MultiGaussian.h, MultiGaussian.s, float(self.alpha)

        def f(v: float) -> str:
            return f"{float(v)!r}f"

        c0, r0 = f((1.0 + h) / (alpha * math.sqrt(2 * math.pi))), f(1.0 / (alpha * _SQRT2))
        c1, r1 = f(h / (s * alpha * math.sqrt(2 * math.pi))), f(1.0 / (s * alpha * _SQRT2))
        mu = f(alpha)
        p = "spikenet_multi_gauss__"
        if dtype == "float":
            return (
                f"const float {p}x = {x};"
                f"const float {p}u0 = {r0} * {p}x;"
                f"const float {p}u1 = {r1} * ({p}x - {mu});"
                f"const float {p}u2 = {r1} * ({p}x + {mu});"
                f"{y} = {c0} * expf(- {p}u0 * {p}u0) "
                f"- {c1} * (expf(- {p}u1 * {p}u1) + expf(- {p}u2 * {p}u2));"
            )
        if dtype == "half2":
            return (
                f"const half2 {p}x = {x};"
                f"const half2 {p}u0 = __hmul2(__float2half2_rn({r0}), {p}x);"
                f"const half2 {p}u1 = __hmul2(__float2half2_rn({r1}), __hsub2({p}x, __float2half2_rn({mu})));"
                f"const half2 {p}u2 = __hmul2(__float2half2_rn({r1}), __hadd2({p}x, __float2half2_rn({mu})));"
                f"{y} = __hsub2(__hmul2(__float2half2_rn({c0}), h2exp(__hneg2(__hmul2({p}u0, {p}u0)))), "
                f"__hmul2(__float2half2_rn({c1}), __hadd2(h2exp(__hneg2(__hmul2({p}u1, {p}u1))), "
                f"h2exp(__hneg2(__hmul2({p}u2, {p}u2))))));"
            )
        raise NotImplementedError(f"dtype {dtype!r}: expected 'float' or 'half2'")


SURROGATES: dict[str, type[SpikeSurrogate]] = {
    cls.name: cls for cls in (Sigmoid, Triangle, ArcTan, SuperSpike, MultiGaussian)
}


def build_surrogate(name: str, alpha: float) -> SpikeSurrogate:
    """Instantiate a surrogate by its config name (``surrogate.name``)."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate '{name}'; choose one of {sorted(SURROGATES)}")
    return SURROGATES[name](alpha=alpha)
