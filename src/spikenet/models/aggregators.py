"""GraphSAGE-style aggregation over sampled temporal neighbourhoods, for all T steps at once."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikenet.gather import UniqueRows
from spikenet.models.chunked_linear import chunked_linear_sum, spread_linear_sum
from spikenet.models.dropout import check_dropout

AGGREGATIONS = ("mean", "sum")


def reduce_neighbours(x: torch.Tensor, size: int, aggr: str) -> torch.Tensor:
    """[T, n*size, F] -> [T, n, F]: mean or sum over each parent's ``size`` contiguous neighbours."""
    T, rows, F = x.shape
    grouped = x.view(T, rows // size, size, F)
    return grouped.mean(2) if aggr == "mean" else grouped.sum(2)


class _HopInputs(torch.autograd.Function):
    """Self rows and neighbour aggregates of hops 0..H-1 from x [T, M, D] laid out [hop 0 | ... | hop H].

    Autograd through slicing, split and mean would build two full-size zero-filled gradients of x
    and add them; here the backward writes each row of dL/dx once, with the same values (the
    neighbours' share is the ``view(...).mean(2)`` backward: the parent's gradient divided by the
    fan-out, or taken as is for ``sum``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: tuple[int, ...], sizes: tuple[int, ...], aggr: str):
        T, _, D = x.shape
        hops = len(sizes)
        n_self = sum(rows[:hops])
        x_self = x[:, :n_self].contiguous()
        parts = torch.split(x, list(rows), dim=1)
        neigh = [reduce_neighbours(parts[h + 1], sizes[h], aggr) for h in range(hops)]
        x_neigh = neigh[0] if hops == 1 else torch.cat(neigh, dim=1)
        ctx.layout = (T, x.shape[1], D, tuple(rows), tuple(sizes), aggr)
        return x_self, x_neigh

    @staticmethod
    def backward(ctx, g_self: torch.Tensor | None, g_neigh: torch.Tensor | None):
        T, M, D, rows, sizes, aggr = ctx.layout
        hops = len(sizes)
        grad = torch.empty(T, M, D, dtype=(g_self if g_self is not None else g_neigh).dtype,
                           device=(g_self if g_self is not None else g_neigh).device)
        start = 0
        for h, n in enumerate(rows):
            part = grad[:, start : start + n]
            own = g_self[:, start : start + n] if (g_self is not None and h < hops) else None
            if h >= 1 and g_neigh is not None:  # hop h holds the neighbours of hop h-1's rows
                parents, size = rows[h - 1], sizes[h - 1]
                first = sum(rows[: h - 1])
                parent = g_neigh[:, first : first + parents].unsqueeze(2)
                share = (parent / size if aggr == "mean" else parent).expand(T, parents, size, D)
                by_parent = part.view(T, parents, size, D)
                if own is not None:
                    torch.add(own.view(T, parents, size, D), share, out=by_parent)
                else:
                    by_parent.copy_(share)
            elif own is not None:
                part.copy_(own)
            else:
                part.zero_()
            start += n
        return grad, None, None, None


def hop_inputs(x: torch.Tensor, rows: list[int], sizes: list[int], aggr: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_self, x_neigh), each [T, n_0 + ... + n_{H-1}, D], for the layer that maps hops 0..H-1.

    ``rows`` are n_0..n_H (H = len(sizes)); x_self is contiguous; x_neigh[h] = aggr of hop h+1's
    ``sizes[h]`` rows per parent.
    """
    return _HopInputs.apply(x, tuple(rows), tuple(sizes), aggr)


def check_aggr(aggr: str) -> None:
    """``model.aggr`` is one of ``AGGREGATIONS``."""
    if aggr not in AGGREGATIONS:
        raise ValueError(f"model.aggr must be one of {AGGREGATIONS}, got '{aggr}'")


def check_hids(hids: list[int], sizes: list[int]) -> None:
    """``model.hids``: one positive width per layer, one layer per hop of ``sampler.sizes``."""
    if not hids:
        raise ValueError("model.hids must name at least one layer")
    if len(hids) != len(sizes):
        raise ValueError(f"model.hids has {len(hids)} layers but sampler.sizes has {len(sizes)} hops")
    for hid in hids:
        check_width(hid)


def check_layers(hids: list[int], sizes: list[int], aggr: str, dropout: float) -> None:
    """The checks every SAGE-layered encoder makes of ``model.hids``, ``model.aggr`` and ``model.dropout``."""
    check_hids(hids, sizes)
    check_aggr(aggr)
    check_dropout(dropout)


def check_layer_config(cfg: Any, sizes: list[int]) -> None:
    """``check_layers`` on a ``model`` config node: what every SAGE-layered encoder's ``check_config`` checks."""
    check_layers(list(cfg.hids), sizes, str(cfg.aggr), float(cfg.dropout))


def check_width(out_features: int) -> None:
    if out_features < 1:
        raise ValueError(f"model.hids must be positive ints, got a layer of {out_features}")


class SAGEAggregator(nn.Module):
    """z = W_self x_self + W_neigh aggr(x_neigh), bias on both; ``concat`` stacks the two parts instead."""

    def __init__(self, in_features: int, out_features: int, aggr: str = "mean", concat: bool = False,
                 bias: bool = True, chunk_rows: int = 16384) -> None:
        super().__init__()
        check_aggr(aggr)
        check_width(out_features)
        self.aggr = aggr
        self.concat = concat
        self.chunk_rows = chunk_rows  # 0: one stacked matmul per part
        self.lin_self = nn.Linear(in_features, out_features, bias=bias)
        self.lin_neigh = nn.Linear(in_features, out_features, bias=bias)

    @property
    def out_features(self) -> int:
        return self.lin_self.out_features * (2 if self.concat else 1)

    def combine(self, z_self: torch.Tensor, z_neigh: torch.Tensor) -> torch.Tensor:
        """Merge the already-projected self and neighbour parts."""
        return torch.cat([z_self, z_neigh], dim=-1) if self.concat else z_self.add_(z_neigh)

    def forward(self, x_self: torch.Tensor | UniqueRows, x_neigh: torch.Tensor | UniqueRows) -> torch.Tensor:
        """x_self [T, n, F] (or its distinct rows, ``UniqueRows``) and the already aggregated neighbours
        x_neigh [T, n, F] -> [T, n, out_features]."""
        if isinstance(x_self, UniqueRows):
            return self._forward_unique(x_self, x_neigh)
        if self.concat or not self.chunk_rows:
            return self.combine(self.lin_self(x_self), self.lin_neigh(x_neigh))
        b_self, b_neigh = self.lin_self.bias, self.lin_neigh.bias
        bias = None if b_self is None else b_self + b_neigh
        pairs = [(x_self, self.lin_self.weight), (x_neigh, self.lin_neigh.weight)]
        return chunked_linear_sum(pairs, bias, self.chunk_rows)

    def _forward_unique(self, x_self: UniqueRows, x_neigh: torch.Tensor | UniqueRows) -> torch.Tensor:
        """The maps applied to each distinct row once, then spread (``spread_linear_sum``; plain modules,
        autocast-eligible, for ``concat`` or ``chunk_rows=0``)."""
        T, n = x_self.steps, x_self.per_step
        unique_neigh = isinstance(x_neigh, UniqueRows)
        if self.concat or not self.chunk_rows:
            z_self = self.lin_self(x_self.rows).index_select(0, x_self.index).view(T, n, -1)
            z_neigh = (self.lin_neigh(x_neigh.rows).index_select(0, x_neigh.index).view(T, n, -1) if unique_neigh
                       else self.lin_neigh(x_neigh))
            return self.combine(z_self, z_neigh)
        b_self, b_neigh = self.lin_self.bias, self.lin_neigh.bias
        bias = None if b_self is None else b_self + b_neigh
        spread = [(x_self.rows, x_self.index, self.lin_self.weight)]
        pairs = []
        if unique_neigh:
            spread.append((x_neigh.rows, x_neigh.index, self.lin_neigh.weight))
        else:
            pairs.append((x_neigh, self.lin_neigh.weight))
        out = spread_linear_sum(spread, pairs, bias, self.chunk_rows)
        return out.view(T, n, out.shape[-1])
