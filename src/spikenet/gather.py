"""Feature gathering for layer 0: node ids per hop -> [T, M, F] self rows and aggregated neighbour rows.

Layer 0 needs, for hops h = 0..L-1, the features of the hop's own nodes and the mean (or sum)
of their sampled neighbours' features (hop h+1 grouped by parent). The self rows come from one
``index_select``; the neighbour aggregates from one ``embedding_bag`` that reduces while it
gathers, so the deepest hop (the largest) is never materialised. Rows are laid out per step as
[hop 0 | hop 1 | ... | hop L-1] (M = n_0 + ... + n_{L-1}), the layout SpikeNet's layers use.

Self rows repeat: within a step a node shows up as a target, as its own sampled neighbour (the
self-loop) and as the neighbour of several parents, so on DBLP only ~30 % of the [T, M] self rows
are distinct. ``layer0_unique_inputs`` gathers each distinct row once (``UniqueRows``: the rows and,
per self row, its slot), and layer 0 maps the distinct rows before it spreads them
(``spikenet.models.chunked_linear``), a third of the self part's multiply-adds.

Memory-mapped tables: each random row read faults in a whole block of the file around it (the
kernel's fault-around), so gathers run in chunks of ``chunk`` rows with ``release`` (dropping the
mapped pages from the process) called after each, which bounds the resident set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from spikenet.sampling import Sample


def _flat_ids(hops: list[torch.Tensor], table: torch.Tensor, steps: torch.Tensor | None = None) -> torch.Tensor:
    """Concatenate hops per row and offset ids into the flattened [T*N] table when it is per-step: row w
    reads step ``steps[w]`` (default: row w is step w)."""
    ids = torch.cat(hops, dim=1) if len(hops) > 1 else hops[0]
    if table.dim() == 3:
        N = table.shape[1]
        step = torch.arange(ids.shape[0], device=ids.device) if steps is None else steps.to(ids.device)
        ids = ids + (step * N).view(-1, 1)
    return ids.reshape(-1).to(table.device)


def _flat_table(table: torch.Tensor) -> torch.Tensor:
    return table.reshape(-1, table.shape[-1]) if table.dim() == 3 else table


def _index_rows(table: torch.Tensor, ids: torch.Tensor, release: Callable[[], None] | None,
                chunk: int) -> torch.Tensor:
    if release is None or ids.numel() <= chunk:
        return table.index_select(0, ids)
    out = torch.empty(ids.numel(), table.shape[-1], dtype=table.dtype, device=table.device)
    for lo in range(0, ids.numel(), chunk):
        torch.index_select(table, 0, ids[lo : lo + chunk], out=out[lo : lo + chunk])
        release()
    return out


def _bag_rows(table: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor, aggr: str,
              release: Callable[[], None] | None, chunk: int) -> torch.Tensor:
    if release is None or ids.numel() <= chunk:
        return F.embedding_bag(ids, table, offsets, mode=aggr)
    bags = offsets.numel()
    per = max(1, chunk * bags // ids.numel())
    out = torch.empty(bags, table.shape[-1], dtype=table.dtype, device=table.device)
    for lo in range(0, bags, per):
        hi = min(lo + per, bags)
        start = int(offsets[lo])
        stop = int(offsets[hi]) if hi < bags else ids.numel()
        out[lo:hi] = F.embedding_bag(ids[start:stop], table, offsets[lo:hi] - start, mode=aggr)
        release()
    return out


def gather_self(table: torch.Tensor, sample: Sample, release: Callable[[], None] | None = None,
                chunk: int = 16384) -> torch.Tensor:
    """[T, M, F] rows of ``table`` ([T, N, F] or [N, F]) for the nodes of hops 0..L-1."""
    hops = sample.hops[:-1]
    T = hops[0].shape[0]
    rows = _index_rows(_flat_table(table), _flat_ids(hops, table, sample.steps), release, chunk)
    return rows.view(T, -1, table.shape[-1])


def gather_hop_rows(table: torch.Tensor, sample: Sample, release: Callable[[], None] | None = None,
                    chunk: int = 16384) -> torch.Tensor:
    """[T, n_0 + ... + n_L, F] rows of ``table`` for the nodes of every hop, the deepest included (for a
    spike coder, which codes each sampled neighbour before the encoder aggregates its spikes)."""
    T = sample.hops[0].shape[0]
    rows = _index_rows(_flat_table(table), _flat_ids(sample.hops, table, sample.steps), release, chunk)
    return rows.view(T, -1, table.shape[-1])


def gather_neighbour_aggregates(table: torch.Tensor, sample: Sample, aggr: str = "mean",
                                release: Callable[[], None] | None = None, chunk: int = 16384) -> torch.Tensor:
    """[T, M, F]: per node of hops 0..L-1, the ``aggr`` of its sampled neighbours' rows."""
    hops, sizes = sample.hops, sample.sizes
    T = hops[0].shape[0]
    ids = _flat_ids(hops[1:], table, sample.steps)
    bag = torch.cat([torch.full((h.shape[1],), s, dtype=torch.long, device=ids.device)
                     for h, s in zip(hops[:-1], sizes, strict=True)])
    lengths = bag.repeat(T)
    offsets = torch.zeros_like(lengths)
    torch.cumsum(lengths[:-1], 0, out=offsets[1:])
    out = _bag_rows(_flat_table(table), ids, offsets, aggr, release, chunk)
    return out.view(T, -1, table.shape[-1])


def layer0_inputs(self_table: torch.Tensor, neigh_table: torch.Tensor, sample: Sample, aggr: str,
                  device: torch.device | None = None, release: Callable[[], None] | None = None,
                  dtype: torch.dtype | None = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(self rows, neighbour aggregates), each [T, M, F], ``dtype`` (None: the table's) on ``device``.

    Gathering runs where the tables are (the sample's ids follow them), so with tables on the GPU
    nothing crosses the bus.
    """
    x_self = gather_self(self_table, sample, release)
    x_agg = gather_neighbour_aggregates(neigh_table, sample, aggr, release)
    return (x_self.to(device=device, dtype=dtype), x_agg.to(device=device, dtype=dtype))


class UniqueRows(NamedTuple):
    """A [T, M, F] block of layer 0's inputs with each distinct row once: ``rows[index]`` is the block, flat."""

    rows: torch.Tensor  # [U, F] the distinct rows
    index: torch.Tensor  # [T * M] slot in ``rows`` of every row, step-major as gather_self lays them out
    steps: int  # T

    @property
    def per_step(self) -> int:
        """M, the rows of each step."""
        return self.index.numel() // self.steps


def rows_per_step(block: torch.Tensor | UniqueRows) -> int:
    """M of a [T, M, F] layer-0 block, given as a tensor or as ``UniqueRows``."""
    return block.per_step if isinstance(block, UniqueRows) else block.shape[1]


def unique_keys(keys: torch.Tensor, key_space: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted distinct values of ``keys``, the position of every key among them) for keys in [0, key_space).

    Marks a dense table of ``key_space`` flags when that is at most 64x the number of keys (linear
    time), else sorts (``torch.unique``). Either way the result is ``torch.unique(keys, return_inverse=True)``.
    """
    if key_space <= 64 * max(keys.numel(), 1):
        seen = torch.zeros(key_space, dtype=torch.bool, device=keys.device)
        seen[keys] = True
        distinct = seen.nonzero().squeeze(1)
        slot = torch.empty(key_space, dtype=torch.long, device=keys.device)
        slot[distinct] = torch.arange(distinct.numel(), device=keys.device)
        return distinct, slot[keys]
    return torch.unique(keys, return_inverse=True)


def gather_unique_self(table: torch.Tensor, sample: Sample, release: Callable[[], None] | None = None,
                       chunk: int = 16384, dtype: torch.dtype | None = torch.float32) -> UniqueRows:
    """The self rows of hops 0..L-1 as ``UniqueRows`` (a [T, N, F] table keys rows by (step, node), an
    [N, F] table by node, so static features collapse over steps too)."""
    hops = sample.hops[:-1]
    T = hops[0].shape[0]
    ids = _flat_ids(hops, table, sample.steps)
    distinct, index = unique_keys(ids, _flat_table(table).shape[0])
    rows = _index_rows(_flat_table(table), distinct, release, chunk)
    return UniqueRows(rows if dtype is None else rows.to(dtype), index, T)


def gather_unique_neighbour_aggregates(table: torch.Tensor, sample: Sample, aggr: str = "mean",
                                      release: Callable[[], None] | None = None, chunk: int = 16384) -> UniqueRows:
    """``gather_neighbour_aggregates`` as ``UniqueRows``: a hop's bags that hold the same rows in the same
    order are aggregated once (same order, so the same value bit for bit).

    On DBLP about half of the last hop's pairs repeat within a step (a node with no new edge draws
    its own self-loop from ΔG_t). A hop is deduplicated where its bags fit one int64 key (size *
    log2(table rows) < 63); others keep one row per bag.
    """
    hops, sizes = sample.hops, sample.sizes
    T = hops[0].shape[0]
    flat = _flat_table(table)
    n_keys = flat.shape[0]
    parts, slots, offset = [], [], 0
    for h, size in enumerate(sizes):
        parents = hops[h].shape[1]
        ids = _flat_ids([hops[h + 1]], table, sample.steps).view(T * parents, size)
        if size * max(n_keys - 1, 1).bit_length() < 63:
            key = ids[:, 0]
            for j in range(1, size):
                key = key * n_keys + ids[:, j]
            distinct, slot = torch.unique(key, return_inverse=True)
            first = torch.empty(distinct.numel(), dtype=torch.long, device=ids.device)
            first.scatter_(0, slot, torch.arange(slot.numel(), device=ids.device))  # any bag with that key
            ids = ids[first]
        else:
            slot = torch.arange(T * parents, device=ids.device)
        offsets = torch.arange(0, ids.numel(), size, device=ids.device)
        parts.append(_bag_rows(flat, ids.reshape(-1), offsets, aggr, release, chunk))
        slots.append((slot + offset).view(T, parents))
        offset += parts[-1].shape[0]
    rows = parts[0] if len(parts) == 1 else torch.cat(parts)
    return UniqueRows(rows, torch.cat(slots, dim=1).reshape(-1), T)


def layer0_unique_inputs(table: torch.Tensor, sample: Sample, aggr: str, release: Callable[[], None] | None = None,
                         dtype: torch.dtype | None = torch.float32) -> tuple[UniqueRows, UniqueRows]:
    """(distinct self rows, distinct neighbour aggregates) of one feature table, where it lives."""
    x_self = gather_unique_self(table, sample, release, dtype=dtype)
    x_agg = gather_unique_neighbour_aggregates(table, sample, aggr, release)
    return x_self, (x_agg if dtype is None else x_agg._replace(rows=x_agg.rows.to(dtype)))
