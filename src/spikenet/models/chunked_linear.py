"""Sum of linear maps computed in row chunks: z = sum_i x_i W_i^T + b for [T, M, F] inputs.

On CPU a [6144 x 128] . [128 x 128] product stays in cache and runs ~1.4x faster than the same
rows stacked over all T steps; chunking the rows keeps every product cache-sized while the
Python loop runs over a few dozen chunks, not over nodes. The backward accumulates the weight
gradients chunk by chunk into one buffer and returns input gradients only where needed.
"""

from __future__ import annotations

import torch


class _ChunkedLinearSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, chunk: int, bias: torch.Tensor | None, *pairs: torch.Tensor) -> torch.Tensor:
        xs, ws = pairs[0::2], pairs[1::2]
        rows = xs[0].shape[0]
        out = torch.empty(rows, ws[0].shape[0], dtype=xs[0].dtype, device=xs[0].device)
        for start in range(0, rows, chunk):
            o = out[start : start + chunk]
            if bias is not None:
                torch.addmm(bias, xs[0][start : start + chunk], ws[0].t(), out=o)
            else:
                torch.mm(xs[0][start : start + chunk], ws[0].t(), out=o)
            for x, w in zip(xs[1:], ws[1:], strict=True):
                o.addmm_(x[start : start + chunk], w.t())
        ctx.chunk = chunk
        ctx.has_bias = bias is not None
        ctx.save_for_backward(*pairs)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pairs = ctx.saved_tensors
        xs, ws = pairs[0::2], pairs[1::2]
        chunk = ctx.chunk
        grads: list[torch.Tensor | None] = []
        for i, (x, w) in enumerate(zip(xs, ws, strict=True)):
            gx = None
            if ctx.needs_input_grad[2 + 2 * i]:
                gx = torch.empty_like(x)
                for start in range(0, x.shape[0], chunk):
                    torch.mm(grad[start : start + chunk], w, out=gx[start : start + chunk])
            gw = None
            if ctx.needs_input_grad[3 + 2 * i]:
                gw = torch.zeros_like(w)
                for start in range(0, x.shape[0], chunk):
                    gw.addmm_(grad[start : start + chunk].t(), x[start : start + chunk])
            grads += [gx, gw]
        gb = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[1] else None
        return (None, gb, *grads)


def chunked_linear_sum(pairs: list[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor | None,
                       chunk: int = 16384) -> torch.Tensor:
    """sum_i x_i W_i^T + bias for x_i [..., F_i], W_i [H, F_i]; rows processed ``chunk`` at a time."""
    lead = pairs[0][0].shape[:-1]
    flat = []
    for x, w in pairs:
        flat += [x.reshape(-1, x.shape[-1]), w]
    out = _ChunkedLinearSum.apply(int(chunk), bias, *flat)
    return out.view(*lead, out.shape[-1])
