"""GRU baseline: per-step SAGE layers whose target embeddings a GRU carries over time.

The recurrent design SpikeNet replaces (as in GraphSAGE + RNN dynamic-graph models): at every
step t the same SAGE layers (ReLU units) embed the targets from their sampled neighbourhood of
G_t / ΔG_t, a GRU reads those embeddings in time order, and a Linear maps its final hidden
state to the logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikenet.contracts import ENCODERS
from spikenet.energy import LayerOps, UnitOps
from spikenet.models.aggregators import check_layer_config
from spikenet.models.ann import DenseBaseline, SAGEStack
from spikenet.models.op_counts import sage_layer_ops, sage_unit_ops


def check_hidden(hidden: int) -> None:
    """``model.hidden``: the GRU's width."""
    if hidden < 1:
        raise ValueError(f"model.hidden must be >= 1, got {hidden}")


@ENCODERS.register("gru", tiny=("model.hids=[16,4]",))
class GRUNet(DenseBaseline):
    """SAGE layers per step -> GRU over the T steps -> the last hidden state."""

    @classmethod
    def check_config(cls, cfg: Any, sizes: list[int]) -> None:
        check_layer_config(cfg, sizes)
        check_hidden(int(cfg.hidden))

    def __init__(self, in_features: int, hids: list[int], num_steps: int, sizes: list[int],
                 hidden: int = 128, dropout: float = 0.7, aggr: str = "mean", concat: bool = False,
                 bias: bool = True, chunk_rows: int = 16384) -> None:
        super().__init__(SAGEStack(in_features, hids, sizes, dropout, aggr, concat, bias, chunk_rows), num_steps)
        check_hidden(hidden)
        self.gru = nn.GRU(self.stack.out_features, hidden, bias=bias)

    @property
    def embedding_dim(self) -> int:
        return self.gru.hidden_size

    def forward(self, x_self: torch.Tensor, x_agg: torch.Tensor, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (or projected [T, M, H]) -> the GRU's last hidden state [B, hidden]."""
        x = self.stack(x_self, x_agg, projected)  # [T, B, H], time-major as nn.GRU expects
        _, last = self.gru(x)
        return last[-1]

    def op_counts(self, rates: list[list[float]] | None = None) -> list[LayerOps | UnitOps]:
        """Per embedded node: the SAGE maps and their ReLUs, the GRU's input and recurrent maps (3 gates each) per
        step, and its cell (reads h_{t-1}, writes h_t: one word each per hidden unit and step)."""
        g = self.gru.hidden_size
        return [
            *sage_layer_ops(self.stack.aggregators, self.sizes, self.num_steps),
            *sage_unit_ops(self.stack.aggregators, self.sizes, self.num_steps),
            LayerOps("gru.input", 1, self.gru.input_size, 3 * g, self.num_steps),
            LayerOps("gru.hidden", 1, g, 3 * g, self.num_steps),
            UnitOps("gru.cell", 1, g, self.num_steps, reads=1),
        ]

    def embedding_ops(self, name: str, fan_out: int, rates: list[list[float]] | None = None) -> LayerOps:
        return LayerOps(name, 1, self.gru.hidden_size, fan_out, 1)
