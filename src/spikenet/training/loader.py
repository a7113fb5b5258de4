"""Batches for the trainer: target nodes -> sampled temporal neighbourhoods -> layer-0 inputs.

The trainer iterates a ``NodeLoader`` instead of sampling inline, as PyTorch Geometric puts a
``NodeLoader`` around any sampler: one place owns the order of the targets (shuffling with the
trainer's generator, and the shard of a distributed rank), the sampling, the gathering of layer
0's [T, M, F] inputs (from the feature table, or from projected tables in evaluation), their
placement on the model's device, and the time each of those takes (``timings``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from spikenet.data.temporal_graph import TemporalGraph
from spikenet.gather import layer0_inputs
from spikenet.sampling import TemporalSampler

Tables = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Batch:
    """One minibatch: its target nodes and layer 0's inputs, ready for ``model(*batch.inputs, ...)``."""

    nodes: torch.Tensor  # [B] target node ids
    inputs: Tables  # (self rows, neighbour aggregates), each [T, M, F] float32 on the model's device
    projected: bool  # inputs come from layer 0's projected tables (evaluation), not raw features

    @property
    def size(self) -> int:
        return int(self.nodes.numel())


class NodeLoader:
    """Turns target nodes into ready layer-0 batches for ``model``'s device.

    ``rank``/``world_size`` select this process's shard of every shuffled training order (all
    ranks draw the same permutation from generators seeded alike, then take every
    ``world_size``-th target), so ranks see disjoint targets and, together, the whole split.
    """

    def __init__(self, graph: TemporalGraph, sampler: TemporalSampler, aggr: str, device: torch.device,
                 rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.graph = graph
        self.sampler = sampler
        self.aggr = aggr
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.timings: dict[str, float] = defaultdict(float)

    # --- what each batch holds ---------------------------------------------------------------
    def inputs(self, nodes: torch.Tensor, generator: torch.Generator | None,
               tables: Tables | None = None) -> Tables:
        """Sample the temporal neighbourhood of ``nodes`` and gather layer 0's inputs (from ``tables`` if given)."""
        t0 = time.perf_counter()
        sample = self.sampler.sample(nodes, generator)
        t1 = time.perf_counter()
        if tables is None:
            graph = self.graph
            release = graph.release_feature_pages if graph.feature_array is not None else None
            inputs = layer0_inputs(graph.features, graph.features, sample, self.aggr, self.device, release=release)
        else:
            inputs = layer0_inputs(*tables, sample, self.aggr, self.device)
        self.timings["sample"] += t1 - t0
        self.timings["gather"] += time.perf_counter() - t1
        return inputs

    # --- which targets, in which order -------------------------------------------------------
    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's share of ``order`` (all of it in a single process)."""
        return order if self.world_size == 1 else order[self.rank :: self.world_size]

    def train_order(self, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A fresh shuffle of ``targets`` drawn from ``generator``, sharded for this rank."""
        return self.shard(targets[torch.randperm(targets.numel(), generator=generator)])

    def batches(self, nodes: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                tables: Tables | None = None, limit: int | None = None) -> Iterator[Batch]:
        """Batches of ``nodes`` in the given order (the first ``limit`` only, when set)."""
        for chunk in torch.split(nodes, int(batch_size))[:limit]:
            yield Batch(chunk, self.inputs(chunk, generator, tables), tables is not None)

    def train_batches(self, targets: torch.Tensor, batch_size: int, generator: torch.Generator,
                      limit: int | None = None) -> Iterator[Batch]:
        """One epoch of training batches: shuffled (and sharded) ``targets``; sampling draws from ``generator``."""
        return self.batches(self.train_order(targets, generator), batch_size, generator, limit=limit)
