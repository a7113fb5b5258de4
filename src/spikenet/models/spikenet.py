"""SpikeNet (Li et al., AAAI 2023): spiking SAGE layers over sampled temporal neighbourhoods.

Input: one feature block per hop, ``blocks[h]`` of shape [T, n_h, F] with n_{h+1} = n_h * s_h.
Layer i maps hops 0..L-1-i: z_h = W_self x_h + W_neigh mean(x_{h+1} by parent), then one
multi-step neuron over T (all hops in one call), then dropout (all layers but the last). The
last layer's spikes of the targets, [T, B, H], are flattened to [B, T*H] and a Linear gives
the logits. Neuron state is reset at every forward (each batch starts from rest).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from spikingjelly.activation_based import functional
from torch import nn

from spikenet.models.aggregators import SAGEAggregator, reduce_neighbours


class SpikeNet(nn.Module):
    """Spiking GNN for node classification on discrete-time dynamic graphs."""

    def __init__(
        self,
        in_features: int,
        hids: list[int],
        num_classes: int,
        num_steps: int,
        sizes: list[int],
        make_neuron: Callable[[], nn.Module],
        dropout: float = 0.7,
        aggr: str = "mean",
        concat: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not hids:
            raise ValueError("model.hids must name at least one layer")
        if len(hids) != len(sizes):
            raise ValueError(f"model.hids has {len(hids)} layers but sampler.sizes has {len(sizes)} hops")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")
        self.sizes = list(sizes)
        self.num_steps = num_steps
        self.aggregators = nn.ModuleList()
        self.neurons = nn.ModuleList()
        dim = in_features
        for hid in hids:
            agg = SAGEAggregator(dim, hid, aggr=aggr, concat=concat, bias=bias)
            self.aggregators.append(agg)
            self.neurons.append(make_neuron())
            dim = agg.out_features
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(num_steps * dim, num_classes)
        self.record_spikes = False
        self.spike_rates: list[torch.Tensor] = []  # per layer [T] firing rate of the last forward

    @property
    def num_layers(self) -> int:
        return len(self.aggregators)

    def layer(self, i: int, blocks: list[torch.Tensor] | None, first: tuple[list, list] | None = None) -> torch.Tensor:
        """Aggregate hops 0..L-1-i of ``blocks`` and fire: [T, sum n_h, H].

        ``first`` optionally holds layer 0's inputs already projected by W_self (bias included) and
        W_neigh (bias excluded), per hop, as gathered from ``project_inputs``: exact, since both are linear.
        """
        agg = self.aggregators[i]
        hops = self.num_layers - i
        if first is not None:
            zs = []
            for h in range(hops):
                neigh = reduce_neighbours(first[1][h + 1], self.sizes[h], agg.aggr)
                if agg.lin_neigh.bias is not None:
                    neigh = neigh + agg.lin_neigh.bias
                zs.append(agg.combine(first[0][h], neigh))
        else:
            zs = [agg(blocks[h], blocks[h + 1], self.sizes[h]) for h in range(hops)]
        z = zs[0] if len(zs) == 1 else torch.cat(zs, dim=1)
        spikes = self.neurons[i](z)
        if self.record_spikes:
            self.spike_rates.append(spikes.detach().float().mean(dim=(1, 2)))
        return spikes

    @torch.no_grad()
    def project_inputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer 0's linear maps for every node: (W_self x + b_self, W_neigh x), each [..., N, H].

        Evaluating many targets then costs one gather per hop instead of a matmul per sampled row.
        """
        agg = self.aggregators[0]
        x = features.float()
        return agg.lin_self(x), nn.functional.linear(x, agg.lin_neigh.weight)

    def forward(self, blocks: list[torch.Tensor] | None = None,
                projected: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None) -> torch.Tensor:
        """``blocks[h]``: [T, n_h, F] features of hop h (or ``projected`` layer-0 inputs) -> logits [B, C]."""
        functional.reset_net(self)
        self.spike_rates = []
        rows = [b.shape[1] for b in (blocks if blocks is not None else projected[0])]
        x = blocks
        for i in range(self.num_layers):
            out = self.layer(i, x, projected if i == 0 else None)
            if i < self.num_layers - 1:
                out = self.dropout(out)
                x = list(torch.split(out, rows[: self.num_layers - i], dim=1))
        T, B, H = out.shape
        return self.readout(out.permute(1, 0, 2).reshape(B, T * H))
