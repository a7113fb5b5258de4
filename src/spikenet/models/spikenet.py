"""SpikeNet (Li et al., AAAI 2023): spiking SAGE layers over sampled temporal neighbourhoods.

Rows are laid out per step as [hop 0 | hop 1 | ... ], hop h holding n_h = B * s_0 * ... * s_{h-1}
nodes (each parent's s_h neighbours contiguous in hop h+1). Layer i maps hops 0..L-1-i:
z_h = W_self x_h + W_neigh aggr(x_{h+1} by parent) (bias on both), then one multi-step neuron over
T for all those hops at once, then dropout (all layers but the last). The last layer's spikes of
the targets, [T, B, H], are flattened to [B, T*H]: the embedding (the node-classification task's
Linear head on it gives the paper's logits). Neuron state is reset at every forward, so each batch
starts from rest.

Layer 0 takes its inputs pre-gathered (``spikenet.gather.layer0_inputs``): the hops' own features
and their neighbours' aggregated features, [T, M, F] each; aggregating before the linear map is
the same maths and a fraction of the work. In evaluation those tables can be layer 0's linear maps
of every node (``project_inputs``), which is exact because the maps are linear.

With a spike coding (``model.coding``, ``spikenet.models.coding``) layer 0 takes every hop's rows instead
([T, n_0 + ... + n_L, F], ``reads_hop_rows``): the coder turns them into spikes and layer 0 aggregates the
coded neighbours as later layers aggregate spikes. The coder's rate is recorded first, before the layers'.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from spikenet.contracts import ENCODERS, Encoder, FusedFiring
from spikenet.energy import LayerOps, UnitOps
from spikenet.gather import rows_per_step
from spikenet.models.aggregators import SAGEAggregator, check_layer_config, check_layers, hop_inputs
from spikenet.models.coding import amplify, build_coder, check_coding, neuron_states
from spikenet.models.dropout import FastDropout
from spikenet.models.op_counts import coder_ops, hop_multiplicities, sage_layer_ops, sage_unit_ops
from spikenet.neurons.sj_compat import reset_net


@ENCODERS.register("spikenet", tiny=("model.hids=[16,4]",))
class SpikeNet(Encoder):
    """Spiking GNN encoder for discrete-time dynamic graphs: a node's embedding is its last layer's spike
    train over the steps, flattened ([T * H])."""

    spiking = True

    @classmethod
    def check_config(cls, cfg: Any, sizes: list[int]) -> None:
        check_layer_config(cfg, sizes)
        check_coding(cfg.coding)

    def __init__(
        self,
        in_features: int,
        hids: list[int],
        num_steps: int,
        sizes: list[int],
        make_neuron: Callable[[int], nn.Module],
        dropout: float = 0.7,
        aggr: str = "mean",
        concat: bool = False,
        bias: bool = True,
        chunk_rows: int = 16384,
        coding: dict | None = None,
    ) -> None:
        super().__init__()
        check_layers(hids, sizes, aggr, dropout)
        self.sizes = list(sizes)
        self.num_steps = num_steps
        self.aggr = aggr
        self.aggregators = nn.ModuleList()
        self.neurons = nn.ModuleList()
        dim = in_features
        for hid in hids:
            agg = SAGEAggregator(dim, hid, aggr=aggr, concat=concat, bias=bias, chunk_rows=chunk_rows)
            self.aggregators.append(agg)
            self.neurons.append(make_neuron(agg.out_features))  # the layer width: per-channel parameters
            dim = agg.out_features
        self.dropout = FastDropout(dropout)
        self.out_features = dim
        self.in_features = in_features
        # built after the layers, so that every coding draws the same initial weights
        self.coder = None if coding is None else build_coder(coding, in_features, make_neuron)

    @property
    def reads_hop_rows(self) -> bool:
        return self.coder is not None

    @property
    def embedding_dim(self) -> int:
        return self.num_steps * self.out_features

    @property
    def num_layers(self) -> int:
        return len(self.aggregators)

    def hop_rows(self, batch_size: int) -> list[int]:
        """n_h for hops 0..L-1."""
        return [batch_size * math.prod(self.sizes[:h]) for h in range(self.num_layers)]

    def projection_pays(self, num_targets: int, num_nodes: int, feature_steps: int, budget_bytes: float) -> bool:
        """Whether projecting layer 0 for all nodes (``project_inputs``) beats projecting every sampled row.

        Projection maps ``feature_steps`` tables of ``num_nodes`` rows (self and neighbour maps); the
        direct path maps, per target and step, the rows of every hop (self rows and neighbour
        aggregates). It also has to fit ``budget_bytes`` (two float32 tables of width H).
        """
        rows_per_target = 2 * sum(math.prod(self.sizes[:h]) for h in range(self.num_layers))
        hid = self.aggregators[0].lin_self.out_features
        table_bytes = 2 * feature_steps * num_nodes * hid * 4
        cheaper = 2 * num_nodes * feature_steps < num_targets * rows_per_target * self.num_steps
        return cheaper and table_bytes <= budget_bytes and self.coder is None

    @torch.no_grad()
    def project_inputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer 0's maps of every node: (W_self x + b_self, W_neigh x), each [..., N, H]; for evaluation."""
        agg = self.aggregators[0]
        x = features.float()
        return agg.lin_self(x), nn.functional.linear(x, agg.lin_neigh.weight)

    @property
    def rate_rows(self) -> int:
        """Rows of recorded firing rates: the coder's (if any), then one per layer."""
        return self.num_layers + (self.coder is not None)

    def op_counts(self, rates: list[list[float]] | None) -> list[LayerOps | UnitOps] | None:
        """Work per embedded node (``spikenet.energy``): layer 0 dense (or driven by the coder's spikes), later
        layers driven by the spikes of the layer before, the neurons' state and spikes, the coder's own work
        (``rates``: per layer, per step, the coder's first, as the trainer records them); None without rates."""
        if rates is None or len(rates) != self.rate_rows:
            return None
        coded = rates[0] if self.coder is not None else None
        layers = rates[1:] if self.coder is not None else rates
        ops: list[LayerOps | UnitOps] = [
            *sage_layer_ops(self.aggregators, self.sizes, self.num_steps, layers, coded),
            *sage_unit_ops(self.aggregators, self.sizes, self.num_steps, layers,
                           [neuron_states(n) for n in self.neurons]),
        ]
        if self.coder is not None:
            rows = sum(hop_multiplicities(self.sizes, self.num_layers + 1))
            ops.append(coder_ops(self.coder, rows, self.in_features, self.num_steps, coded))
        return ops

    def embedding_ops(self, name: str, fan_out: int, rates: list[list[float]] | None) -> LayerOps:
        """A linear map on the embedding is driven by the last layer's spikes, step by step."""
        last = tuple(rates[-1]) if rates is not None and len(rates) == self.rate_rows else None
        return LayerOps(name, 1, self.out_features, fan_out, self.num_steps, last)

    def _fire(self, i: int, z: torch.Tensor) -> torch.Tensor:
        neuron = self.neurons[i]
        if i < self.num_layers - 1 and not self.record_spikes and isinstance(neuron, FusedFiring):
            return neuron.fire_and_drop(z, self.dropout)  # neuron + dropout in one pass where it can
        spikes = neuron(z)
        if self.record_spikes:
            self.spike_rates.append(spikes.detach().float().mean(dim=(1, 2)))
        return spikes if i == self.num_layers - 1 else self.dropout(spikes)

    def _fire_and_pool(self, i: int, z: torch.Tensor, n0: int, size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Layer i's spikes (after dropout) pooled for a next layer that maps hop 0 only, in one kernel pass
        where the neuron has one (``fire_drop_pool``); None otherwise."""
        neuron = self.neurons[i]
        if self.record_spikes or not isinstance(neuron, FusedFiring):
            return None
        return neuron.fire_drop_pool(z, self.dropout, n0, size, self.aggr)

    def _code(self, x_hops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every hop's rows [T, n_0 + ... + n_L, F] -> spikes -> layer 0's (self rows, neighbour aggregates)."""
        spikes = self.coder(x_hops)
        if self.record_spikes:
            self.spike_rates.append(spikes.detach().float().mean(dim=(1, 2)))
        mult = hop_multiplicities(self.sizes, self.num_layers + 1)
        batch = x_hops.shape[1] // sum(mult)
        return hop_inputs(amplify(self.coder, spikes), [batch * m for m in mult], self.sizes, self.aggr)

    def forward(self, x_self: torch.Tensor, x_agg: torch.Tensor | None, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (or projected [T, M, H]; or, with a coder, every hop's rows and None) -> the
        targets' spike trains, flattened [B, T * H]."""
        reset_net(self)
        self.spike_rates = []
        agg0 = self.aggregators[0]
        if self.coder is not None:
            x_self, x_agg = self._code(x_self)
        if projected:
            neigh = x_agg if agg0.lin_neigh.bias is None else x_agg + agg0.lin_neigh.bias
            z = agg0.combine(x_self, neigh)
        else:
            z = agg0(x_self, x_agg)
        batch = rows_per_step(x_agg) // sum(math.prod(self.sizes[:h]) for h in range(self.num_layers))
        rows = self.hop_rows(batch)
        for i in range(1, self.num_layers):
            hops = self.num_layers - i
            pooled = self._fire_and_pool(i - 1, z, rows[0], self.sizes[0]) if hops == 1 else None
            if pooled is None:
                pooled = hop_inputs(self._fire(i - 1, z), rows[: hops + 1], self.sizes[:hops], self.aggr)
            z = self.aggregators[i](*pooled)
        x = self._fire(self.num_layers - 1, z)
        T, B, H = x.shape
        return x.permute(1, 0, 2).reshape(B, T * H)
