"""Small helpers shared by the neurons' autograd Functions."""

from __future__ import annotations

import torch


def reduce_to(grad: torch.Tensor, shape: torch.Size, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Sum a full-size gradient down to a broadcast input's ``shape`` (and cast it to ``dtype`` if given)."""
    if grad.shape != shape:
        grad = grad.sum_to_size(shape)
    return grad if dtype is None else grad.to(dtype)
