"""The timed edges of a snapshot graph, their chronological split, their negatives and EdgeBank's memory.

An example of temporal link prediction is an edge of ΔG_t (an edge stamped t; one that recurs is an
example at each of its steps), scored from the snapshots before t. Edges are undirected in the graph;
each example gets one orientation (source, destination), drawn once with the task's seed, and its
negatives replace the destination, so a source is asked to rank its true partner above others.

Negatives (``task.negatives``), in DyGLib's two settings, drawn per source as TGB draws them:

- ``random``: destinations uniform over all nodes;
- ``historical``: destinations the source was linked to before t (its neighbours in G_{t-1}), so a
  model must tell "linked again now" from "was linked once" (drawn with replacement); a source
  without history, or a draw that hits a partner it links to again at t, gets a random one instead.

Either way a negative is never the source itself nor a partner the source really links to at t.
Evaluation negatives are drawn once per split (``task.negative_seed``), so every epoch and every
model is scored against the same candidates. EdgeBank (TGB's memorisation baseline, unlimited
memory) scores a pair 1 when it was an edge before t, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikenet.data.temporal_graph import TemporalGraph

NEGATIVE_SETTINGS = ("random", "historical")
SPLITS = ("train", "val", "test")


@dataclass
class TemporalEdges:
    """Examples sorted by step: ``src[i]`` -- ``dst[i]`` is an edge stamped ``step[i]``."""

    src: np.ndarray
    dst: np.ndarray
    step: np.ndarray

    @classmethod
    def from_graph(cls, graph: TemporalGraph, seed: int) -> TemporalEdges:
        """Every edge of every ΔG_t once (u < v in the CSR), oriented at random with ``seed``."""
        n = graph.num_nodes
        indptr = graph.delta_indptr.cpu().numpy()
        counts = np.diff(indptr)
        row = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        u, t, v = row % n, row // n, graph.delta_indices.cpu().numpy().astype(np.int64)
        keep = u < v
        u, v, t = u[keep], v[keep], t[keep]
        flip = np.random.default_rng(seed).random(u.size) < 0.5
        src, dst = np.where(flip, v, u), np.where(flip, u, v)
        order = np.argsort(t, kind="stable")
        return cls(src[order], dst[order], t[order])

    def __len__(self) -> int:
        return int(self.src.size)


def step_splits(num_steps: int, val_ratio: float, test_ratio: float) -> np.ndarray:
    """The split of each step (0 train, 1 val, 2 test, -1 none): steps 1..T-1 chronologically, the last
    ``round(test_ratio · (T - 1))`` (at least 1) to test, the ``val_ratio`` share before them to
    validation, the rest to training; step 0 has no snapshot before it and is never an example."""
    usable = num_steps - 1
    n_test = max(1, round(test_ratio * usable))
    n_val = max(1, round(val_ratio * usable))
    if usable - n_test - n_val < 1:
        raise ValueError(f"temporal link prediction needs at least 4 snapshots (one to read, then one each to "
                         f"train, validate and test on); the graph has {num_steps} (val_ratio {val_ratio}, "
                         f"test_ratio {test_ratio} give {n_val} and {n_test} steps): use more dataset.time_bins")
    out = np.full(num_steps, -1, dtype=np.int8)
    out[1:] = 0
    out[num_steps - n_test - n_val:num_steps - n_test] = 1
    out[num_steps - n_test:] = 2
    return out


class EdgeHistory:
    """When each undirected pair first became an edge, for "was (u, v) an edge before step t?" in bulk."""

    def __init__(self, graph: TemporalGraph) -> None:
        self.num_nodes = n = graph.num_nodes
        if n > 3_000_000_000:
            raise ValueError(f"{graph.name}: {n} nodes do not fit the pair keys of temporal link prediction")
        indptr = graph.cum_indptr.cpu().numpy().astype(np.int64)
        indices = graph.cum_indices.cpu().numpy().astype(np.int64)
        degree = graph.cum_degree.cpu().numpy()  # [T, N]: prefix lengths of each node's row
        self.indptr, self.indices, self.degree = indptr, indices, degree
        u = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        position = np.arange(indices.size, dtype=np.int64) - indptr[u]
        first = np.zeros(indices.size, dtype=np.int64)
        for t in range(degree.shape[0]):  # the step at which each row entry enters the prefix
            first += degree[t, u] <= position
        keys = u * n + indices
        order = np.argsort(keys)
        self.keys, self.first = keys[order], first[order]

    def seen_before(self, u: np.ndarray, v: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Whether each (u, v) was an edge at some step before ``step`` (same shapes, broadcast)."""
        keys = np.asarray(u, dtype=np.int64) * self.num_nodes + np.asarray(v, dtype=np.int64)
        if self.keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        at = np.searchsorted(self.keys, keys).clip(max=self.keys.size - 1)
        return (self.keys[at] == keys) & (self.first[at] < step)

    def history_size(self, u: np.ndarray, step: np.ndarray) -> np.ndarray:
        """How many partners ``u`` had before ``step`` (its degree in G_{step - 1})."""
        return self.degree[step - 1, u]


def positive_keys(edges: TemporalEdges, num_nodes: int) -> np.ndarray:
    """Sorted keys (t, u, v) of every example in both orientations, for "is (u, v) an edge at t?"."""
    n = np.int64(num_nodes)
    both_u, both_v = np.r_[edges.src, edges.dst], np.r_[edges.dst, edges.src]
    return np.sort((np.r_[edges.step, edges.step] * n + both_u) * n + both_v)


def _is_positive(keys: np.ndarray, u: np.ndarray, v: np.ndarray, step: np.ndarray, num_nodes: int) -> np.ndarray:
    n = np.int64(num_nodes)
    query = (step * n + u) * n + v
    at = np.searchsorted(keys, query).clip(max=keys.size - 1)
    return keys[at] == query


def draw_negatives(edges: TemporalEdges, rows: np.ndarray, count: int, setting: str, history: EdgeHistory,
                   positives: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[len(rows), ``count``] negative destinations for the examples ``rows`` (see the module docstring)."""
    if setting not in NEGATIVE_SETTINGS:
        raise ValueError(f"task.negatives must be one of {', '.join(NEGATIVE_SETTINGS)}, got '{setting}'")
    n = history.num_nodes
    u = np.repeat(edges.src[rows], count).reshape(len(rows), count)
    t = np.repeat(edges.step[rows], count).reshape(len(rows), count)
    out = np.full(u.shape, -1, dtype=np.int64)
    if setting == "historical":
        size = history.history_size(u, t)
        has = size > 0
        pick = (rng.random(u.shape) * np.maximum(size, 1)).astype(np.int64)
        out[has] = history.indices[history.indptr[u[has]] + pick[has]]
    for _ in range(64):  # replace what is missing or invalid with uniform draws until all are valid
        bad = (out < 0) | (out == u)
        bad[~bad] = _is_positive(positives, u[~bad], out[~bad], t[~bad], n)
        if not bad.any():
            return out
        out[bad] = rng.integers(0, n, int(bad.sum()))
    raise ValueError("could not draw valid negatives: some sources link to almost every node at their step")
