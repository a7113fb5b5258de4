"""Operation counts of the hop-structured SAGE layers, shared by SpikeNet and the dense baselines."""

from __future__ import annotations

import math

from torch import nn

from spikenet.energy import LayerOps, UnitOps


def hop_multiplicities(sizes: list[int], num_layers: int) -> list[int]:
    """Rows per target node in hops 0..L-1: 1, s_0, s_0*s_1, ..."""
    return [math.prod(sizes[:h]) for h in range(num_layers)]


def sage_layer_ops(aggregators: nn.ModuleList, sizes: list[int], steps: int,
                   rates: list[list[float]] | None = None, input_rates: list[float] | None = None) -> list[LayerOps]:
    """Operation counts of the hop-structured SAGE layers per target node.

    Layer i maps hops 0..L-1-i: a self map on those rows and a neighbour map on their aggregates.
    ``rates`` (per layer, per step: the output firing rates) make the inputs of layers 1.. spikes:
    then each sampled neighbour's spikes drive the neighbour map directly (its rows are the
    neighbours, not their aggregates; ``ann_rows`` keeps the aggregate count for the dense twin).
    ``input_rates`` (per step: a spike coder's rate) make layer 0's inputs spikes in the same way. A
    neighbour map reads its inputs from every sampled neighbour's row (``source_rows``), whether it
    aggregates them first or not.
    """
    L = len(aggregators)
    mult = hop_multiplicities(sizes, L)
    ops = []
    for i, agg in enumerate(aggregators):
        hops = L - i
        own_rows = sum(mult[:hops])
        neighbour_rows = sum(mult[h] * sizes[h] for h in range(hops))
        if i == 0:
            in_rates = None if input_rates is None else tuple(input_rates)
        else:
            in_rates = tuple(rates[i - 1]) if rates is not None else None
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
                source_rows=neighbour_rows if part == "neigh" else None,
            ))
    return ops


def sage_unit_ops(aggregators: nn.ModuleList, sizes: list[int], steps: int, rates: list[list[float]] | None = None,
                  states: list[int] | None = None) -> list[UnitOps]:
    """The units after each SAGE layer, per target node: layer i's rows of hops 0..L-1-i times its width, spiking
    at ``rates[i]`` with ``states[i]`` state words each, or (``rates`` None) dense ReLUs."""
    L = len(aggregators)
    mult = hop_multiplicities(sizes, L)
    return [UnitOps(f"layer{i}.units", sum(mult[: L - i]), agg.out_features, steps,
                    rates=None if rates is None else tuple(rates[i]), states=0 if states is None else states[i])
            for i, agg in enumerate(aggregators)]


def coder_ops(coder: nn.Module, rows: int, features: int, steps: int, rates: list[float]) -> UnitOps:
    """A spike coder's work per target node over ``rows`` gathered rows of ``features`` (``models.coding``):
    each reads its feature word every step and writes its spikes as events; rate: a random number and a
    comparison; latency: a comparison with the step; threshold: an affine map (one multiply-accumulate, two
    parameter reads) and a neuron's state."""
    kind = {"rate": dict(acs=1, randoms=1), "latency": dict(acs=1),
            "threshold": dict(macs=1, params=2, states=coder.states)}[coder.name]
    return UnitOps("coder", rows, features, steps, rates=tuple(rates), reads=1, twin=False, **kind)
