"""``TemporalGraph``: a discrete-time dynamic graph stored as a temporal CSR.

Snapshots: ΔG_t holds the (undirected, deduplicated) edges stamped t and
G_t = ΔG_0 ∪ … ∪ ΔG_t. Every node has a self-loop in both, kept implicit: a node of stored
degree d has d + 1 neighbours, position 0 being the node itself.

Storage is O(E + N·T) integers, never one CSR per step:
- G_t: each node's neighbour list sorted by the step the edge first appears, so G_t is a
  prefix of it; ``cum_degree[t, u]`` is that prefix's length.
- ΔG_t: one CSR keyed by (t, u) (``delta_indptr`` has T·N + 1 entries), whose rows hold the
  edges stamped t; an edge repeated at several steps appears once per step, so the total is
  at most the number of input interactions.
"""

from __future__ import annotations

import dataclasses
import mmap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class TemporalGraph:
    """Graph structure, node features and labels of one dynamic graph."""

    name: str
    num_nodes: int
    num_steps: int
    cum_indptr: torch.Tensor  # [N + 1] int64
    cum_indices: torch.Tensor  # [E_und] int64, per node sorted by first step
    cum_degree: torch.Tensor  # [T, N] int64, neighbours (self-loop excluded) in G_t
    delta_indptr: torch.Tensor  # [T * N + 1] int64
    delta_indices: torch.Tensor  # [sum_t |ΔG_t|] int64
    features: torch.Tensor  # [T, N, F] or [N, F]; float32, or float16 (possibly memory-mapped)
    labels: torch.Tensor  # [N] int64, -1 where unlabelled
    num_classes: int
    meta: dict = field(default_factory=dict)
    feature_array: Any = None  # the numpy array behind ``features`` when it is a memory map

    def __post_init__(self) -> None:
        self.advise_feature_access()

    @classmethod
    def from_interactions(cls, name: str, src: Any, dst: Any, step: Any, labels: Any, num_nodes: int | None = None,
                          num_steps: int | None = None, features: torch.Tensor | None = None,
                          meta: dict | None = None) -> TemporalGraph:
        """A graph from timed interactions: node ids ``src``/``dst`` in 0..N-1, ``step`` in 0..T-1 (e.g. from
        ``steps_from_stamps``), ``labels`` [N] (-1: unlabelled; classes 0..C-1). Features stay empty unless
        given, so the dataset's ``features`` key picks them (SMF, DeepWalk, a file). What a reader of a format
        of its own returns (docs/extending.md)."""
        src, dst, step = (np.asarray(a, dtype=np.int64) for a in (src, dst, step))
        labels = np.asarray(labels, dtype=np.int64)
        n = int(num_nodes) if num_nodes is not None else int(max(src.max(), dst.max(), labels.size - 1)) + 1
        t = int(num_steps) if num_steps is not None else int(step.max()) + 1
        if labels.shape != (n,):
            raise ValueError(f"{name}: {labels.size} labels for {n} nodes")
        if step.size and (step.min() < 0 or step.max() >= t):
            raise ValueError(f"{name}: steps must lie in 0..{t - 1}, got {step.min()}..{step.max()}")
        return cls(name=name, num_nodes=n, num_steps=t, features=features if features is not None else torch.empty(0),
                   labels=torch.from_numpy(labels), num_classes=int(labels.max()) + 1 if labels.size else 0,
                   meta=dict(meta or {}), **build_structure(src, dst, step, n, t))

    def advise_feature_access(self) -> None:
        """Tell the OS that a memory-mapped feature file is read at random (no readahead)."""
        handle = getattr(self.feature_array, "_mmap", None)
        if handle is not None and hasattr(mmap, "MADV_RANDOM"):
            # random row gathers: no readahead or fault-around pulling whole neighbourhoods of the file in
            handle.madvise(mmap.MADV_RANDOM)

    def release_feature_pages(self) -> None:
        """Drop a memory-mapped feature file's pages from this process's resident set.

        They stay in the OS page cache (re-reading is cheap); only the process's RSS, which would
        otherwise grow towards the whole file as random gathers touch it, is kept to one batch's pages.
        """
        handle = getattr(self.feature_array, "_mmap", None)
        if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TemporalGraph:
        """A graph whose structure, labels and features live on ``device`` (this one when nothing moves).

        Memory-mapped features become an ordinary in-memory copy there (``feature_array`` is dropped: there
        are no pages to release any more); name, sizes and ``meta`` (shallow-copied) are kept.
        """
        device = torch.device(device)
        tensors = ("cum_indptr", "cum_indices", "cum_degree", "delta_indptr", "delta_indices", "labels")
        moved = {k: getattr(self, k).to(device, non_blocking=non_blocking) for k in tensors}
        features = self.features
        if self.feature_array is not None and features.device == device:
            features = features.clone()  # .to() would keep the view of the file
        moved["features"] = features.to(device, non_blocking=non_blocking)
        mapped = self.feature_array is not None
        same = not mapped and all(moved[k] is getattr(self, k) for k in (*tensors, "features"))
        if same:
            return self
        return dataclasses.replace(self, **moved, meta=dict(self.meta), feature_array=None)

    @property
    def num_features(self) -> int:
        return int(self.features.shape[-1])

    @property
    def labelled_nodes(self) -> torch.Tensor:
        """Ids of the nodes that enter the splits."""
        return torch.nonzero(self.labels >= 0).flatten()

    def neighbours(self, t: int, u: int, delta: bool = False) -> torch.Tensor:
        """Neighbours of ``u`` in G_t (or ΔG_t with ``delta``), self-loop first. For tests and inspection."""
        if delta:
            row = t * self.num_nodes + u
            start, stop = int(self.delta_indptr[row]), int(self.delta_indptr[row + 1])
            rest = self.delta_indices[start:stop]
        else:
            start = int(self.cum_indptr[u])
            rest = self.cum_indices[start : start + int(self.cum_degree[t, u])]
        return torch.cat([torch.tensor([u]), rest])

    def structure_nbytes(self) -> int:
        """Bytes held by the graph structure (features and labels excluded)."""
        parts = (self.cum_indptr, self.cum_indices, self.cum_degree, self.delta_indptr, self.delta_indices)
        return sum(p.numel() * p.element_size() for p in parts)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Structure and labels as numpy arrays (for caching)."""
        return {
            "cum_indptr": self.cum_indptr.numpy(),
            "cum_indices": self.cum_indices.numpy(),
            "cum_degree": self.cum_degree.numpy(),
            "delta_indptr": self.delta_indptr.numpy(),
            "delta_indices": self.delta_indices.numpy(),
            "labels": self.labels.numpy(),
        }


def steps_from_stamps(stamps: np.ndarray, merge: int = 1) -> tuple[np.ndarray, int]:
    """Map raw time stamps to step ids 0..T-1 (sorted distinct stamps), merging ``merge`` consecutive steps."""
    if merge < 1:
        raise ValueError(f"dataset.merge must be >= 1, got {merge}")
    _, step = np.unique(stamps, return_inverse=True)
    step = step.astype(np.int64) // merge
    return step, int(step.max()) + 1 if step.size else 0


def build_structure(src: np.ndarray, dst: np.ndarray, step: np.ndarray, num_nodes: int, num_steps: int
                    ) -> dict[str, torch.Tensor]:
    """Temporal CSR of G_t and ΔG_t from directed interactions (src, dst, step); vectorised, O(E log E)."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    keep = src != dst  # self-loops are implicit
    u = np.concatenate([src[keep], dst[keep]])
    v = np.concatenate([dst[keep], src[keep]])
    t = np.concatenate([step[keep], step[keep]])
    n, T = np.int64(num_nodes), np.int64(num_steps)
    # ΔG_t: unique (t, u, v), sorted by t, then u, then v
    key = np.unique((t * n + u) * n + v)
    tu, dv = np.divmod(key, n)
    delta_counts = np.bincount(tu, minlength=int(T * n))
    delta_indptr = np.zeros(int(T * n) + 1, dtype=np.int64)
    np.cumsum(delta_counts, out=delta_indptr[1:])
    # G_t: first step of every undirected pair; key is sorted by t, so the first occurrence is the earliest
    du = tu % n
    dt = tu // n
    uv, first = np.unique(du * n + dv, return_index=True)
    first_t = dt[first]
    cu, cv = np.divmod(uv, n)
    order = np.lexsort((cv, first_t, cu))  # by node, then first step, then neighbour id
    cu, cv, first_t = cu[order], cv[order], first_t[order]
    cum_indptr = np.zeros(int(n) + 1, dtype=np.int64)
    np.cumsum(np.bincount(cu, minlength=int(n)), out=cum_indptr[1:])
    new_per_step = np.bincount(first_t * n + cu, minlength=int(T * n)).reshape(int(T), int(n))
    cum_degree = np.cumsum(new_per_step, axis=0)
    return {
        "cum_indptr": torch.from_numpy(cum_indptr),
        "cum_indices": torch.from_numpy(cv),
        "cum_degree": torch.from_numpy(cum_degree),
        "delta_indptr": torch.from_numpy(delta_indptr),
        "delta_indices": torch.from_numpy(dv),
    }
