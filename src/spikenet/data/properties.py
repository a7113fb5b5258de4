"""Time-keyed node property vectors (TGB's node labels): one sparse row per (label time, node).

TGB's node-property datasets label a node at a label time L_k with a weight vector over C items
(trade partners, genres, subreddits, tokens); the task predicts that vector from the graph up to
L_k. A reader that has such labels stores them in ``TemporalGraph.meta`` through ``to_meta`` (so
the preprocessing cache keeps them) and the ``node_property`` task reads them back with
``from_meta``. Step k of the graph ends at label time L_k, so a row's step is the last snapshot its
prediction may read.

Rows are sorted by (step, node); row r holds the entries ``index[indptr[r]:indptr[r+1]]`` (item ids
< ``dim``) with their ``weight`` (as given in the label file: proportions for TGB). Memory is
O(label entries), never R x C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_KEYS = ("times", "row_step", "row_node", "indptr", "index", "weight", "step_events")
PREFIX = "property_"


@dataclass
class NodeProperties:
    """Sparse property rows of (label time, node) pairs, plus the event count of every graph step."""

    times: np.ndarray  # [K] float64, sorted distinct label times; step k ends at times[k]
    row_step: np.ndarray  # [R] int64, the step (label time index) of each row, non-decreasing
    row_node: np.ndarray  # [R] int64, increasing within a step
    indptr: np.ndarray  # [R + 1] int64
    index: np.ndarray  # [nnz] int64, item ids in [0, dim)
    weight: np.ndarray  # [nnz] float64 (exactly as parsed: the evaluator sees the true weights)
    step_events: np.ndarray  # [T] int64, interactions (before deduplication) per graph step
    dim: int

    @property
    def num_rows(self) -> int:
        return int(self.row_step.size)

    def to_meta(self) -> dict[str, Any]:
        """``TemporalGraph.meta`` entries (arrays, and the dimension as a scalar) that ``from_meta`` reads."""
        out: dict[str, Any] = {PREFIX + k: getattr(self, k) for k in _KEYS}
        out[PREFIX + "dim"] = int(self.dim)
        return out

    @classmethod
    def from_meta(cls, meta: dict) -> NodeProperties | None:
        """The properties a reader stored in ``meta``, or None when it stored none."""
        if PREFIX + "dim" not in meta:
            return None
        return cls(**{k: np.asarray(meta[PREFIX + k]) for k in _KEYS}, dim=int(meta[PREFIX + "dim"]))

    def dense(self, rows: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Rows ``rows`` as a dense [len(rows), dim] array of the raw weights (zero where absent)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((rows.size, self.dim), dtype=dtype)
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        counts = stops - starts
        if counts.sum() == 0:
            return out
        which = np.repeat(np.arange(rows.size), counts)
        pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
        out[which, self.index[pos]] = self.weight[pos]
        return out

    def rows_of_step(self, step: int) -> np.ndarray:
        """Row ids of label time ``step`` (in node order)."""
        lo, hi = np.searchsorted(self.row_step, [step, step + 1])
        return np.arange(lo, hi, dtype=np.int64)

    def history_features(self, num_steps: int, num_nodes: int, out: np.ndarray | None = None,
                         dtype: type = np.float32) -> np.ndarray:
        """[T, N, dim]: at step k, each node's property row at its latest label time before k (zeros before
        its first one). Step k never sees the labels of time k or later, which are what step k predicts."""
        out = np.zeros((num_steps, num_nodes, self.dim), dtype=dtype) if out is None else out
        out[0] = 0
        for k in range(1, num_steps):
            out[k] = out[k - 1]
            rows = self.rows_of_step(k - 1)
            if rows.size:
                out[k, self.row_node[rows]] = self.dense(rows, dtype)
        return out


def step_weight_features(src: np.ndarray, dst: np.ndarray, step: np.ndarray, weight: np.ndarray, num_steps: int,
                         num_nodes: int, dim: int, out: np.ndarray | None = None,
                         dtype: type = np.float32) -> np.ndarray:
    """[T, N, dim]: node u's summed edge weights to items v < ``dim`` at step t, each (t, u) row divided by its
    sum of absolute weights (its share per item). Rows without edges stay zero."""
    out = np.zeros((num_steps, num_nodes, dim), dtype=dtype) if out is None else out
    keep = dst < dim
    src, dst, step, weight = src[keep], dst[keep], step[keep], weight[keep]
    totals = np.bincount(step * num_nodes + src, weights=np.abs(weight), minlength=num_steps * num_nodes)
    share = weight / np.where(totals[step * num_nodes + src] > 0, totals[step * num_nodes + src], 1.0)
    out[step, src, dst] = share
    return out
