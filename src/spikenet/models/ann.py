"""ANN baseline: SpikeNet's network with ReLU units in place of spiking neurons (no membrane state).

``SAGEStack`` is the shared part of the dense baselines: SpikeNet's hop layout and SAGE layers,
each followed by a ReLU applied at every step independently, and dropout after every layer but
the last. ``ANN`` flattens the target rows over time into the embedding, exactly as SpikeNet does
with its spikes; ``GRUNet`` (``models/gru.py``) carries them over time with a GRU instead. Both
are ``Encoder``s like SpikeNet (layer-0 inputs [T, M, F] in, embeddings out) with its evaluation
shortcut (``project_inputs``), so the trainer and every task treat all three alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikenet.contracts import ENCODERS, Encoder
from spikenet.energy import LayerOps, UnitOps
from spikenet.gather import rows_per_step
from spikenet.models.aggregators import SAGEAggregator, check_layer_config, check_layers, reduce_neighbours
from spikenet.models.dropout import FastDropout
from spikenet.models.op_counts import hop_multiplicities, sage_layer_ops, sage_unit_ops


class SAGEStack(nn.Module):
    """Dense SAGE layers over the sampled hops, ReLU per step; returns the targets' rows [T, B, H]."""

    def __init__(self, in_features: int, hids: list[int], sizes: list[int], dropout: float = 0.7,
                 aggr: str = "mean", concat: bool = False, bias: bool = True, chunk_rows: int = 16384) -> None:
        super().__init__()
        check_layers(hids, sizes, aggr, dropout)
        self.sizes = list(sizes)
        self.aggr = aggr
        self.aggregators = nn.ModuleList()
        dim = in_features
        for hid in hids:
            agg = SAGEAggregator(dim, hid, aggr=aggr, concat=concat, bias=bias, chunk_rows=chunk_rows)
            self.aggregators.append(agg)
            dim = agg.out_features
        self.out_features = dim
        self.dropout = FastDropout(dropout)

    @property
    def num_layers(self) -> int:
        return len(self.aggregators)

    def _act(self, i: int, z: torch.Tensor) -> torch.Tensor:
        x = torch.relu(z)
        return x if i == self.num_layers - 1 else self.dropout(x)

    def forward(self, x_self: torch.Tensor, x_agg: torch.Tensor, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (or projected [T, M, H]) -> target rows [T, B, H_last]."""
        agg0 = self.aggregators[0]
        if projected:
            neigh = x_agg if agg0.lin_neigh.bias is None else x_agg + agg0.lin_neigh.bias
            z = agg0.combine(x_self, neigh)
        else:
            z = agg0(x_self, x_agg)
        mult = hop_multiplicities(self.sizes, self.num_layers)
        batch = rows_per_step(x_agg) // sum(mult)
        rows = [batch * m for m in mult]
        x = self._act(0, z)
        for i in range(1, self.num_layers):
            hops = self.num_layers - i
            parts = torch.split(x, rows[: hops + 1], dim=1)
            neigh = [reduce_neighbours(parts[h + 1], self.sizes[h], self.aggr) for h in range(hops)]
            x_neigh = neigh[0] if hops == 1 else torch.cat(neigh, dim=1)
            x = self._act(i, self.aggregators[i](x[:, : sum(rows[:hops])], x_neigh))
        return x

    def projection_pays(self, num_targets: int, num_nodes: int, feature_steps: int, num_steps: int,
                        budget_bytes: float) -> bool:
        """Whether projecting layer 0 for all nodes is cheaper than per sampled row, and fits ``budget_bytes``."""
        rows_per_target = 2 * sum(hop_multiplicities(self.sizes, self.num_layers))
        hid = self.aggregators[0].lin_self.out_features
        cheaper = 2 * num_nodes * feature_steps < num_targets * rows_per_target * num_steps
        return cheaper and 2 * feature_steps * num_nodes * hid * 4 <= budget_bytes

    @torch.no_grad()
    def project_inputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer 0's maps of every node: (W_self x + b_self, W_neigh x), each [..., N, H]."""
        agg = self.aggregators[0]
        x = features.float()
        return agg.lin_self(x), nn.functional.linear(x, agg.lin_neigh.weight)


class DenseBaseline(Encoder):
    """What ANN and GRU share: a ``SAGEStack`` and the encoder contract's plumbing (no spikes to record)."""

    def __init__(self, stack: SAGEStack, num_steps: int) -> None:
        super().__init__()
        self.stack = stack
        self.num_steps = num_steps
        self.sizes = stack.sizes
        self.aggr = stack.aggr

    def projection_pays(self, num_targets: int, num_nodes: int, feature_steps: int, budget_bytes: float) -> bool:
        return self.stack.projection_pays(num_targets, num_nodes, feature_steps, self.num_steps, budget_bytes)

    def project_inputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stack.project_inputs(features)


@ENCODERS.register("ann", tiny=("model.hids=[16,4]",))
class ANN(DenseBaseline):
    """SpikeNet with ReLU units: SAGE layers per step, the targets' rows flattened over T ([T * H])."""

    @classmethod
    def check_config(cls, cfg: Any, sizes: list[int]) -> None:
        check_layer_config(cfg, sizes)

    def __init__(self, in_features: int, hids: list[int], num_steps: int, sizes: list[int],
                 dropout: float = 0.7, aggr: str = "mean", concat: bool = False, bias: bool = True,
                 chunk_rows: int = 16384) -> None:
        super().__init__(SAGEStack(in_features, hids, sizes, dropout, aggr, concat, bias, chunk_rows), num_steps)

    @property
    def embedding_dim(self) -> int:
        return self.num_steps * self.stack.out_features

    def forward(self, x_self: torch.Tensor, x_agg: torch.Tensor, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (or projected [T, M, H]) -> the targets' rows flattened, [B, T * H]."""
        x = self.stack(x_self, x_agg, projected)
        T, B, H = x.shape
        return x.permute(1, 0, 2).reshape(B, T * H)

    def op_counts(self, rates: list[list[float]] | None = None) -> list[LayerOps | UnitOps]:
        """Per embedded node: every map dense, and its ReLUs (``rates`` are ignored: ReLU outputs are not spikes)."""
        return [*sage_layer_ops(self.stack.aggregators, self.sizes, self.num_steps),
                *sage_unit_ops(self.stack.aggregators, self.sizes, self.num_steps)]

    def embedding_ops(self, name: str, fan_out: int, rates: list[list[float]] | None = None) -> LayerOps:
        return LayerOps(name, 1, self.stack.out_features, fan_out, self.num_steps)
