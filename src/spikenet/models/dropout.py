"""Dropout with cheap masks: 16-bit random integers instead of one float draw per element.

``torch.nn.Dropout`` draws a Bernoulli float per element (the reference spent ~27 % of training
in ``bernoulli_``). Here one 64-bit random yields four 16-bit uniforms, compared against
round(keep * 2^16); the kept units are scaled by the exact inverse of that realised keep
probability, so the layer stays unbiased (keep differs from 1 - p by < 2e-5).
"""

from __future__ import annotations

import torch
from torch import nn

from spikenet.contracts import WordMaskDropout


def keep_threshold(keep: float) -> int:
    """round(keep * 2^16), clamped to [1, 2^16]: a unit is kept when its 16-bit uniform is below it."""
    return max(1, min(65536, round(keep * 65536)))


def random_words(numel: int, device: torch.device) -> torch.Tensor:
    """``numel`` uniform int16 values: the 16-bit quarters of (numel + 3) // 4 random int64 words."""
    words = torch.randint(-(2**63), 2**63 - 1, ((numel + 3) // 4,), dtype=torch.int64, device=device)
    return words.view(torch.int16)[:numel]


def scaled_keep_mask(shape: torch.Size, keep: float, device: torch.device) -> torch.Tensor:
    """Float mask of ``shape``: 1 / keep' where kept, 0 where dropped, with keep' = round(keep * 2^16) / 2^16.

    Stays in float ops throughout (int16 -> float copy, compare into float, scale): bool tensors
    are slow to produce and convert on CPU.
    """
    threshold = keep_threshold(keep)
    numel = int(torch.Size(shape).numel())
    mask = torch.empty(shape, dtype=torch.float32, device=device)
    mask.view(-1).copy_(random_words(numel, device))
    torch.lt(mask, threshold - 32768, out=mask)
    return mask.mul_(65536 / threshold)


class _ScaleByMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scaled_mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scaled_mask)
        return x * scaled_mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scaled_mask,) = ctx.saved_tensors
        return grad * scaled_mask, None


def check_dropout(p: float) -> None:
    """``model.dropout`` is a drop probability in [0, 1)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1), got {p}")


class FastDropout(nn.Module, WordMaskDropout):
    """Drop-in for ``nn.Dropout(p)`` in training; identity in eval."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_dropout(p)
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def keep_words(self, numel: int, device: torch.device) -> tuple[torch.Tensor, int, float]:
        """The mask of the next ``numel`` units as (int16 words, threshold, scale) for fused kernels.

        Unit i is kept, and scaled by ``scale``, where ``words[i] < threshold``; the random draws
        are those ``forward`` would make, so a fused kernel drops exactly the same units.
        """
        threshold = keep_threshold(1.0 - self.p)
        return random_words(numel, device), threshold - 32768, 65536 / threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return _ScaleByMask.apply(x, scaled_keep_mask(x.shape, 1.0 - self.p, x.device).to(x.dtype))
