"""Operation counts of the hop-structured SAGE layers, shared by SpikeNet and the dense baselines."""

from __future__ import annotations

import math

from torch import nn

from spikenet.energy import LayerOps


def hop_multiplicities(sizes: list[int], num_layers: int) -> list[int]:
    """Rows per target node in hops 0..L-1: 1, s_0, s_0*s_1, ..."""
    return [math.prod(sizes[:h]) for h in range(num_layers)]


def sage_layer_ops(aggregators: nn.ModuleList, sizes: list[int], steps: int,
                   rates: list[list[float]] | None = None) -> list[LayerOps]:
    """Operation counts of the hop-structured SAGE layers per target node.

    Layer i maps hops 0..L-1-i: a self map on those rows and a neighbour map on their aggregates.
    ``rates`` (per layer, per step: the output firing rates) make the inputs of layers 1.. spikes:
    then each sampled neighbour's spikes drive the neighbour map directly (its rows are the
    neighbours, not their aggregates; ``ann_rows`` keeps the aggregate count for the dense twin).
    """
    L = len(aggregators)
    mult = hop_multiplicities(sizes, L)
    ops = []
    for i, agg in enumerate(aggregators):
        hops = L - i
        own_rows = sum(mult[:hops])
        neighbour_rows = sum(mult[h] * sizes[h] for h in range(hops))
        in_rates = tuple(rates[i - 1]) if rates is not None and i > 0 else None
        for part, lin in (("self", agg.lin_self), ("neigh", agg.lin_neigh)):
            spiking_neigh = part == "neigh" and in_rates is not None
            ops.append(LayerOps(
                name=f"layer{i}.{part}",
                rows=neighbour_rows if spiking_neigh else own_rows,
                fan_in=lin.in_features,
                fan_out=lin.out_features,
                steps=steps,
                rates=in_rates,
                ann_rows=own_rows,
            ))
    return ops
