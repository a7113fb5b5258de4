"""SiGNN (Pattern Recognition 2025, "Spike-induced Graph Neural Network for Dynamic Graph Representation
Learning"): spike-gated SAGE layers in several temporal channels, pooled over time by learned filters.

Rows are laid out per step as in SpikeNet ([hop 0 | hop 1 | ...], each parent's neighbours contiguous
in the next hop), and one sample of the temporal neighbourhoods serves every channel. Channel k = 1..C
reads every k-th step, counted back from the newest: the steps t with t % k == (T - 1) % k (the
official code's steps on all its datasets; see ``channel_steps``). Each channel has its own L layers;
layer i maps hops 0..L-1-i with two SAGE maps of its own, a dense gate and a spiking branch:

    g = sigmoid(W_l x_self + b_l + W_r aggr(x_neigh) + b_r)          gate (official lin_l, lin_r)
    s = BLIF(W_lt x_self + b_lt + W_rt aggr(x_neigh) + b_rt)          one multi-step call over the channel's steps
    out = dropout(g * s)                                              dropout after every layer, the last included

The last layer's rows of the targets, [T_k, B, H], are pooled over the channel's T_k steps by a depthwise
Conv1d (kernel T_k, bias): e[b, h] = sum_t w[h, t] out[t, b, h] + c[h]. The embedding is the mean of the
channels' pooled vectors, [B, H]; node classification's Linear head on it is SiGNN's classifier.
Neuron states start from rest at every forward (``functional.reset_net``) and are carried across the
steps a channel reads.

Layer 0 takes the shared gathered inputs (``spikenet.gather``: self rows and neighbour aggregates,
[T, M, F] or ``UniqueRows``); a channel picks its steps by indexing the T axis (``UniqueRows``: its
steps' slots, compacted to the distinct rows they use, so each map multiplies only those), and each
branch is a ``SAGEAggregator`` (chunked or distinct-row linear maps). The semantics and where they
differ from the official code are in docs/design.md ("SiGNN").

With a spike coding (``model.coding``, ``spikenet.models.coding``) layer 0 takes every hop's rows
([T, n_0 + ... + n_L, F], ``reads_hop_rows``): they are coded once for all channels and aggregated as a
layer's spikes are; each channel then reads its steps of those spikes. The coder's rate is recorded first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from spikenet.contracts import ENCODERS, Encoder, FusedFiring
from spikenet.energy import LayerOps, UnitOps
from spikenet.gather import UniqueRows, rows_per_step, unique_keys
from spikenet.models.aggregators import SAGEAggregator, check_layer_config, check_layers, hop_inputs
from spikenet.models.coding import amplify, build_coder, check_coding, neuron_states
from spikenet.models.dropout import FastDropout
from spikenet.models.op_counts import coder_ops, hop_multiplicities
from spikenet.neurons.sj_compat import reset_net


def channel_steps(num_steps: int, granularity: int) -> list[int]:
    """The steps a channel of ``granularity`` k reads out of ``num_steps``: every k-th, ending at the newest.

    t % k == (T - 1) % k. The official code reads t % k == 0, except for channel 3 on its 27-step DBLP,
    where it reads (t + 1) % 3 == 0: both are this rule on the official datasets (DBLP 25 and 27 steps,
    Tmall 19, Patent 13). What the exception changes is that the newest snapshot is read (t % 3 == 0
    would stop at step 24 of 0..26; both read 9 steps, so it is not a shape fix). The official pooling
    kernel, T // k + T % k, is the number of steps read only when T % k < 2 (T = 26: 10 for channel 3's
    9 steps, and the official code fails); ours is the count of the steps read.
    """
    if num_steps < 1 or granularity < 1:
        raise ValueError(f"channel steps need num_steps >= 1 and granularity >= 1, got {num_steps}, {granularity}")
    return list(range((num_steps - 1) % granularity, num_steps, granularity))


def select_steps(block: torch.Tensor | UniqueRows, start: int, stride: int) -> torch.Tensor | UniqueRows:
    """Steps start, start + stride, ... of a layer-0 block [T, M, F]: a contiguous tensor, or ``UniqueRows``
    holding only the distinct rows those steps use (so a channel's maps multiply no row it does not read)."""
    if start == 0 and stride == 1:
        return block
    if isinstance(block, UniqueRows):
        slots = block.index.view(block.steps, -1)[start::stride].reshape(-1)
        used, index = unique_keys(slots, block.rows.shape[0])
        steps = len(range(start, block.steps, stride))
        return UniqueRows(block.rows.index_select(0, used), index, steps)
    return block[start::stride].contiguous()


def _steps_of(block: torch.Tensor | UniqueRows) -> int:
    return block.steps if isinstance(block, UniqueRows) else block.shape[0]


class GatedLayer(nn.Module):
    """One SiGNN layer of one channel: a sigmoid gate and a spiking branch, each a SAGE map with bias
    (``gate`` holds the official lin_l / lin_r, ``spike`` lin_l_t / lin_r_t), and the branch's neuron."""

    def __init__(self, in_features: int, out_features: int, neuron: nn.Module, aggr: str, bias: bool,
                 chunk_rows: int) -> None:
        super().__init__()
        self.gate = SAGEAggregator(in_features, out_features, aggr=aggr, bias=bias, chunk_rows=chunk_rows)
        self.spike = SAGEAggregator(in_features, out_features, aggr=aggr, bias=bias, chunk_rows=chunk_rows)
        self.neuron = neuron


def check_channels(channels: int) -> None:
    """``model.channels``: how many temporal granularities (channel k reads every k-th step)."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"model.channels must be an int >= 1, got {channels!r}")


@ENCODERS.register("signn", tiny=("model.hids=[16,4]",))
class SiGNN(Encoder):
    """SiGNN encoder: C temporal channels of spike-gated SAGE layers, each pooled over its steps by a
    depthwise Conv1d; the embedding is the channels' mean, [B, hids[-1]]."""

    spiking = True

    @classmethod
    def check_config(cls, cfg: Any, sizes: list[int]) -> None:
        check_layer_config(cfg, sizes)
        check_channels(cfg.channels)
        check_coding(cfg.coding)

    def __init__(
        self,
        in_features: int,
        hids: list[int],
        num_steps: int,
        sizes: list[int],
        make_neuron: Callable[[int], nn.Module],
        channels: int = 3,
        dropout: float = 0.6,
        aggr: str = "mean",
        bias: bool = True,
        chunk_rows: int = 16384,
        coding: dict | None = None,
    ) -> None:
        super().__init__()
        check_layers(hids, sizes, aggr, dropout)
        check_channels(channels)
        self.sizes = list(sizes)
        self.num_steps = int(num_steps)
        self.aggr = aggr
        self.num_channels = channels
        self.steps = [channel_steps(self.num_steps, k) for k in range(1, channels + 1)]
        # the official order of initial draws: every channel's layers (lin_l, lin_r, lin_l_t, lin_r_t per
        # layer), then the pooling filters (the classifier, built by the task, comes after them here)
        self.channels = nn.ModuleList()
        for _ in range(channels):
            layers, dim = nn.ModuleList(), in_features
            for hid in hids:
                layers.append(GatedLayer(dim, hid, make_neuron(hid), aggr, bias, chunk_rows))
                dim = hid
            self.channels.append(layers)
        self.out_features = dim
        self.pools = nn.ModuleList(nn.Conv1d(dim, dim, kernel_size=len(steps), groups=dim, bias=True)
                                   for steps in self.steps)
        self.dropout = FastDropout(dropout)
        self.in_features = in_features
        # built after the official draws, so that every coding draws the same initial weights
        self.coder = None if coding is None else build_coder(coding, in_features, make_neuron)

    @property
    def embedding_dim(self) -> int:
        return self.out_features

    @property
    def reads_hop_rows(self) -> bool:
        return self.coder is not None

    @property
    def num_layers(self) -> int:
        return len(self.sizes)

    # --- one layer, one channel --------------------------------------------------------------------
    def _fire(self, layer: GatedLayer, z: torch.Tensor, channel: int) -> torch.Tensor:
        """dropout(neuron(z)) over the channel's steps, in one kernel pass where the neuron has one; records
        the spikes' rate per step (scattered to the full T axis, 0 at steps the channel does not read)."""
        neuron = layer.neuron
        if not self.record_spikes and isinstance(neuron, FusedFiring):
            return neuron.fire_and_drop(z, self.dropout)
        spikes = neuron(z)
        if self.record_spikes:
            rates = torch.zeros(self.num_steps, device=spikes.device)
            index = torch.tensor(self.steps[channel], device=spikes.device)
            self.spike_rates.append(rates.index_copy(0, index, spikes.detach().float().mean(dim=(1, 2))))
        return self.dropout(spikes)

    def _layer(self, layer: GatedLayer, x_self: Any, x_neigh: Any, channel: int) -> torch.Tensor:
        """dropout(sigmoid(gate map) * neuron(spike map)), [T_k, n, H]."""
        gate = torch.sigmoid(layer.gate(x_self, x_neigh))  # not in place: the map's output is a view
        return gate * self._fire(layer, layer.spike(x_self, x_neigh), channel)

    def _pool(self, channel: int, out: torch.Tensor) -> torch.Tensor:
        """The depthwise Conv1d over the channel's steps: [T_k, B, H] -> [B, H]."""
        pool = self.pools[channel]
        weight = pool.weight.view(pool.out_channels, -1).t().unsqueeze(1)  # [T_k, 1, H]
        return (out * weight).sum(0) + pool.bias

    def forward(self, x_self: Any, x_agg: Any, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (tensors or ``UniqueRows``) -> the channels' mean pooled vector, [B, H]."""
        if projected:
            raise ValueError("SiGNN has no projected evaluation path (projection_pays is False)")
        if _steps_of(x_self) != self.num_steps:
            raise ValueError(f"SiGNN was built for {self.num_steps} steps but its inputs have {_steps_of(x_self)}")
        reset_net(self)
        self.spike_rates = []
        if self.coder is not None:
            spikes = self.coder(x_self)
            if self.record_spikes:
                self.spike_rates.append(spikes.detach().float().mean(dim=(1, 2)))
            every = hop_multiplicities(self.sizes, self.num_layers + 1)
            x_self, x_agg = hop_inputs(amplify(self.coder, spikes), [x_self.shape[1] // sum(every) * m for m in every],
                                       self.sizes, self.aggr)
        mult = hop_multiplicities(self.sizes, self.num_layers)
        rows = [rows_per_step(x_agg) // sum(mult) * m for m in mult]
        pooled = []
        for c, layers in enumerate(self.channels):
            start, stride = self.steps[c][0], c + 1
            inputs = (select_steps(x_self, start, stride), select_steps(x_agg, start, stride))
            for i, layer in enumerate(layers):
                out = self._layer(layer, *inputs, c)
                if i < self.num_layers - 1:
                    hops = self.num_layers - 1 - i
                    inputs = hop_inputs(out, rows[: hops + 1], self.sizes[:hops], self.aggr)
            pooled.append(self._pool(c, out))
        return torch.stack(pooled).mean(0)

    # --- operation counts ----------------------------------------------------------------------------
    def op_counts(self, rates: list[list[float]] | None) -> list[LayerOps | UnitOps] | None:
        """Work per embedded node, per channel over the steps it reads (None without rates).

        Layer 0's four maps read real-valued features: dense MACs. Every later map, and the pooling
        filter, reads g * s: zero where the previous layer did not spike and a real number (the gate)
        where it did, so each input event costs a multiply-accumulate per output (``LayerOps.valued``:
        rate-weighted MACs, no SOPs); as in SpikeNet each sampled neighbour's events drive the neighbour
        maps directly (an ANN aggregates first: ``ann_rows``). Nothing in SiGNN is a pure accumulate.
        Gate sigmoids, the gate-spike products and the channel mean are left out, as neuron updates are.
        ``rates``: per (channel, layer), channel-major, per step over all T steps, as ``forward`` records them,
        after the coder's. With a coder, layer 0's maps read its plain spikes: SOPs at its rate, each sampled
        neighbour's spikes driving the neighbour maps. Each layer's neurons (state, spikes) and the coder's own
        work are ``UnitOps``.
        """
        L = self.num_layers
        if rates is None or len(rates) != self.num_channels * L + (self.coder is not None):
            return None
        coded = None
        if self.coder is not None:
            coded, rates = rates[0], rates[1:]
        mult = hop_multiplicities(self.sizes, L)
        ops: list[LayerOps | UnitOps] = []
        if self.coder is not None:
            rows = sum(hop_multiplicities(self.sizes, L + 1))
            ops.append(coder_ops(self.coder, rows, self.in_features, self.num_steps, coded))
        for c, layers in enumerate(self.channels):
            steps = self.steps[c]
            seen = [tuple(float(rates[c * L + i][t]) for t in steps) for i in range(L)]
            inputs = None if coded is None else tuple(float(coded[t]) for t in steps)
            for i, layer in enumerate(layers):
                hops = L - i
                own_rows = sum(mult[:hops])
                neighbour_rows = sum(mult[h] * self.sizes[h] for h in range(hops))
                for branch, agg in (("gate", layer.gate), ("spike", layer.spike)):
                    for part, lin in (("self", agg.lin_self), ("neigh", agg.lin_neigh)):
                        in_rates = seen[i - 1] if i > 0 else inputs
                        driven = in_rates is not None and part == "neigh"
                        ops.append(LayerOps(
                            name=f"channel{c + 1}.layer{i}.{branch}.{part}",
                            rows=neighbour_rows if driven else own_rows,
                            fan_in=lin.in_features,
                            fan_out=lin.out_features,
                            steps=len(steps),
                            rates=in_rates,
                            ann_rows=own_rows,
                            valued=i > 0,
                            source_rows=neighbour_rows if part == "neigh" else None,
                        ))
                ops.append(UnitOps(f"channel{c + 1}.layer{i}.units", own_rows, layer.spike.out_features, len(steps),
                                   rates=seen[i], states=neuron_states(layer.neuron)))
            ops.append(LayerOps(f"channel{c + 1}.pool", 1, self.out_features, 1, len(steps), seen[L - 1],
                                valued=True))
        return ops

    def embedding_ops(self, name: str, fan_out: int, rates: list[list[float]] | None) -> LayerOps:
        """A linear map on the embedding reads the channels' mean pooled vector: real values, dense."""
        return LayerOps(name, 1, self.out_features, fan_out, 1)


__all__ = ["GatedLayer", "SiGNN", "channel_steps", "select_steps"]
