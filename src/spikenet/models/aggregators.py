"""GraphSAGE-style aggregation over sampled temporal neighbourhoods, for all T steps at once."""

from __future__ import annotations

import torch
from torch import nn

from spikenet.models.chunked_linear import chunked_linear_sum

AGGREGATIONS = ("mean", "sum")


def reduce_neighbours(x: torch.Tensor, size: int, aggr: str) -> torch.Tensor:
    """[T, n*size, F] -> [T, n, F]: mean or sum over each parent's ``size`` contiguous neighbours."""
    T, rows, F = x.shape
    grouped = x.view(T, rows // size, size, F)
    return grouped.mean(2) if aggr == "mean" else grouped.sum(2)


class SAGEAggregator(nn.Module):
    """z = W_self x_self + W_neigh aggr(x_neigh), bias on both; ``concat`` stacks the two parts instead."""

    def __init__(self, in_features: int, out_features: int, aggr: str = "mean", concat: bool = False,
                 bias: bool = True, chunk_rows: int = 16384) -> None:
        super().__init__()
        if aggr not in AGGREGATIONS:
            raise ValueError(f"model.aggr must be one of {AGGREGATIONS}, got '{aggr}'")
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

    def forward(self, x_self: torch.Tensor, x_neigh: torch.Tensor) -> torch.Tensor:
        """x_self [T, n, F] and the already aggregated neighbours x_neigh [T, n, F] -> [T, n, out_features]."""
        if self.concat or not self.chunk_rows:
            return self.combine(self.lin_self(x_self), self.lin_neigh(x_neigh))
        b_self, b_neigh = self.lin_self.bias, self.lin_neigh.bias
        bias = None if b_self is None else b_self + b_neigh
        pairs = [(x_self, self.lin_self.weight), (x_neigh, self.lin_neigh.weight)]
        return chunked_linear_sum(pairs, bias, self.chunk_rows)
