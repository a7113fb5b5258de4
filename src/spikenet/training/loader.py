"""Batches for the trainer: nodes -> sampled temporal neighbourhoods -> layer-0 inputs.

A task (``spikenet.tasks``) turns its examples into the nodes to embed and asks a ``NodeLoader``
for their inputs, as PyTorch Geometric puts a loader around any sampler: one place owns the order
of the examples (shuffling with the trainer's generator, and the shard of a distributed rank), the
sampling (all steps, or a window of steps before an example's time), the gathering of layer 0's
[T, M, F] inputs (from the feature table, or from projected tables in evaluation), their placement
on the model's device, and the time each of those takes (``timings``).

Where the data live (``spikenet.training.placement``) decides the path: graph and features on the
model's device -> sampling and gathering there, nothing crosses the bus; graph on the host and the
model on a GPU -> sampled and gathered on the host, then staged through pinned buffers and copied
on a side stream without blocking, so the host prepares batch k+1 while the GPU computes batch k
(the training loop never synchronises). ``sync_timings`` synchronises the GPU at every timer read,
so that ``timings`` splits GPU time by phase (benchmarks only: it stalls the pipeline).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

import torch

from spikenet.contracts import Batch, Tables
from spikenet.data.temporal_graph import TemporalGraph
from spikenet.gather import UniqueRows, gather_hop_rows, layer0_inputs, layer0_unique_inputs
from spikenet.sampling import Sample, TemporalSampler

__all__ = ["Batch", "NodeLoader", "PinnedStager", "Tables"]


class NodeLoader:
    """Turns target nodes into ready layer-0 batches for ``model``'s device.

    ``rank``/``world_size`` select this process's shard of every shuffled training order (all
    ranks draw the same permutation from generators seeded alike, then take every
    ``world_size``-th target), so ranks see disjoint targets and, together, the whole split. With
    ``unique_rows`` the self rows and neighbour aggregates come as ``UniqueRows`` (each distinct row once; every
    model's layer 0 takes them). With ``hop_rows`` (an encoder that codes features into spikes,
    ``Encoder.reads_hop_rows``) a batch's inputs are every hop's rows [T, n_0 + ... + n_L, F] and None: the
    encoder codes each sampled neighbour, then aggregates.
    """

    def __init__(self, graph: TemporalGraph, sampler: TemporalSampler, aggr: str, device: torch.device,
                 rank: int = 0, world_size: int = 1, unique_rows: bool = False, hop_rows: bool = False) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.graph = graph
        self.sampler = sampler
        self.aggr = aggr
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.unique_rows = unique_rows
        self.hop_rows = hop_rows
        self.timings: dict[str, float] = defaultdict(float)
        self.sync_timings = False
        self.stager = PinnedStager(device) if device.type == "cuda" and self.data_device.type == "cpu" else None

    @property
    def data_device(self) -> torch.device:
        """Where the graph (and so sampling and gathering) lives."""
        return self.graph.features.device

    def clock(self) -> float:
        """``time.perf_counter()``, after synchronising the model's GPU when ``sync_timings`` is set."""
        if self.sync_timings and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    # --- what each batch holds ---------------------------------------------------------------
    def inputs(self, nodes: torch.Tensor, generator: torch.Generator | None,
               tables: Tables | None = None, steps: torch.Tensor | None = None) -> Tables:
        """Sample the temporal neighbourhood of ``nodes`` at ``steps`` (default all) and gather layer 0's inputs
        (from ``tables`` if given)."""
        t0 = self.clock()
        sample = self.sampler.sample(nodes, generator, steps)
        t1 = self.clock()
        if tables is None:
            graph = self.graph
            release = graph.release_feature_pages if graph.feature_array is not None else None
            if self.hop_rows:
                rows = gather_hop_rows(graph.features, sample, release)
                rows = rows if self.stager is None else self.stager.stage([rows])[0]
                inputs = (rows.to(device=self.device, dtype=torch.float32), None)
            elif self.unique_rows:
                inputs = self._unique_inputs(sample, release)
            elif self.stager is None:
                inputs = layer0_inputs(graph.features, graph.features, sample, self.aggr, self.device,
                                       release=release)
            else:  # host gather in the table's dtype (float16 halves the copy), float32 on the GPU
                host = layer0_inputs(graph.features, graph.features, sample, self.aggr, release=release, dtype=None)
                inputs = tuple(x.float() for x in self.stager.stage(host))
        else:
            if self.hop_rows:
                raise ValueError("an encoder that codes its inputs into spikes has no projected tables")
            if self.stager is not None and tables[0].device != sample.hops[0].device:  # ids to the tables
                staged = self.stager.stage([*sample.hops, *([] if sample.steps is None else [sample.steps])])
                sample = Sample(staged[: len(sample.hops)], sample.sizes,
                                None if sample.steps is None else staged[-1])
            inputs = layer0_inputs(*tables, sample, self.aggr, self.device)
        self.timings["sample"] += t1 - t0
        self.timings["gather"] += self.clock() - t1
        return inputs

    def _unique_inputs(self, sample: Sample, release) -> Tables:
        """(``UniqueRows`` of the self rows, of the neighbour aggregates), float32 on the model's device."""
        x_self, x_agg = layer0_unique_inputs(self.graph.features, sample, self.aggr, release, dtype=None)
        parts = [x_self.rows, x_self.index, x_agg.rows, x_agg.index]
        if self.stager is not None:  # staged in the table's dtype, converted on the GPU
            parts = self.stager.stage(parts)
        rows, index, agg_rows, agg_index = (t.to(self.device) for t in parts)
        return UniqueRows(rows.float(), index, x_self.steps), UniqueRows(agg_rows.float(), agg_index, x_agg.steps)

    # --- which targets, in which order -------------------------------------------------------
    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's share of ``order`` (all of it in a single process)."""
        return order if self.world_size == 1 else order[self.rank :: self.world_size]

    def train_order(self, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A fresh shuffle of ``targets`` drawn from ``generator``, sharded for this rank.

        With several ranks the shuffle's last ``len % world_size`` targets sit out this epoch, so all
        shards are equally long and every rank runs as many batches (DDP waits for all ranks each step).
        """
        order = targets[torch.randperm(targets.numel(), generator=generator, device=generator.device)]
        if self.world_size > 1:
            order = order[: order.numel() - order.numel() % self.world_size]
        return self.shard(order)

    def batches(self, nodes: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                tables: Tables | None = None, limit: int | None = None) -> Iterator[Batch]:
        """Batches of ``nodes`` in the given order (the first ``limit`` only, when set)."""
        for chunk in torch.split(nodes, int(batch_size))[:limit]:
            inputs = self.inputs(chunk, generator, tables)
            if self.stager is not None:
                (chunk,) = self.stager.stage([chunk])
            yield Batch(chunk, inputs, tables is not None, examples=chunk)

    def train_batches(self, targets: torch.Tensor, batch_size: int, generator: torch.Generator,
                      limit: int | None = None, order_generator: torch.Generator | None = None) -> Iterator[Batch]:
        """One epoch of training batches: shuffled (and sharded) ``targets``; sampling draws from ``generator``,
        the shuffle from ``order_generator`` if given (seeded alike on all ranks, so shards stay disjoint)."""
        order = self.train_order(targets, order_generator if order_generator is not None else generator)
        return self.batches(order, batch_size, generator, limit=limit)


class PinnedStager:
    """Moves host tensors to a GPU through reused pinned buffers, on a side stream, without blocking.

    ``slots`` sets of buffers are used in turn; before a slot is refilled, the host waits for the
    copy that last read it (an event), so at most ``slots`` batches are in flight. The compute
    stream waits for the copy stream before it uses a staged tensor, and the tensors are marked as
    used there so that the caching allocator does not hand their memory out early.
    """

    def __init__(self, device: torch.device, slots: int = 2) -> None:
        self.device = device
        self.copy_stream = torch.cuda.Stream(device)
        self.buffers: list[dict[int, torch.Tensor]] = [{} for _ in range(slots)]
        self.events: list[torch.cuda.Event | None] = [None] * slots
        self.turn = 0

    def _buffer(self, slot: int, i: int, t: torch.Tensor) -> torch.Tensor:
        buf = self.buffers[slot].get(i)
        if buf is None or buf.dtype != t.dtype or buf.numel() < t.numel():
            buf = torch.empty(t.numel(), dtype=t.dtype, pin_memory=True)
            self.buffers[slot][i] = buf
        return buf[: t.numel()].view(t.shape)

    def stage(self, tensors: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """``tensors`` (host) on the GPU, ready for use on the current stream."""
        slot = self.turn
        self.turn = (slot + 1) % len(self.buffers)
        if self.events[slot] is not None:
            self.events[slot].synchronize()  # the slot's previous copies have left its buffers
        compute = torch.cuda.current_stream(self.device)
        out = []  # allocated from the copy stream's pool: compute-stream frees never alias them
        with torch.cuda.stream(self.copy_stream):
            for i, t in enumerate(tensors):
                staged = self._buffer(slot, i, t)
                staged.copy_(t)
                out.append(staged.to(self.device, non_blocking=True))
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        self.events[slot] = event
        compute.wait_stream(self.copy_stream)
        for t in out:
            t.record_stream(compute)
        return out
