"""GRU baseline: per-step SAGE layers whose target embeddings a GRU carries over time.

The recurrent design SpikeNet replaces (as in GraphSAGE + RNN dynamic-graph models): at every
step t the same SAGE layers (ReLU units) embed the targets from their sampled neighbourhood of
G_t / ΔG_t, a GRU reads those embeddings in time order, and a Linear maps its final hidden
state to the logits.
"""

from __future__ import annotations

import torch
from torch import nn

from spikenet.energy import LayerOps
from spikenet.models.ann import DenseBaseline, SAGEStack
from spikenet.models.op_counts import sage_layer_ops


class GRUNet(DenseBaseline):
    """SAGE layers per step -> GRU over the T steps -> Linear on the last hidden state."""

    def __init__(self, in_features: int, hids: list[int], num_classes: int, num_steps: int, sizes: list[int],
                 hidden: int = 128, dropout: float = 0.7, aggr: str = "mean", concat: bool = False,
                 bias: bool = True, chunk_rows: int = 16384) -> None:
        super().__init__(SAGEStack(in_features, hids, sizes, dropout, aggr, concat, bias, chunk_rows), num_steps)
        if hidden < 1:
            raise ValueError(f"model.hidden must be >= 1, got {hidden}")
        self.gru = nn.GRU(self.stack.out_features, hidden, bias=bias)
        self.readout = nn.Linear(hidden, num_classes)

    def forward(self, x_self: torch.Tensor, x_agg: torch.Tensor, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (or projected [T, M, H]) -> logits [B, C]."""
        x = self.stack(x_self, x_agg, projected)  # [T, B, H], time-major as nn.GRU expects
        _, last = self.gru(x)
        return self.readout(last[-1])

    def op_counts(self, rates: list[list[float]] | None = None) -> list[LayerOps]:
        """Per target node: the SAGE maps, the GRU's input and recurrent maps (3 gates each) per step, the readout."""
        g = self.gru.hidden_size
        return [
            *sage_layer_ops(self.stack.aggregators, self.sizes, self.num_steps),
            LayerOps("gru.input", 1, self.gru.input_size, 3 * g, self.num_steps),
            LayerOps("gru.hidden", 1, g, 3 * g, self.num_steps),
            LayerOps("readout", 1, g, self.readout.out_features, 1),
        ]
