"""Node features: per-step standardisation and FastRP structural features.

FastRP (Chen et al. 2019) embeds each cumulative snapshot G_t with a few sparse products of the
row-normalised adjacency (self-loops included) with one random Gaussian matrix shared by all
steps, so embeddings of different steps live in the same coordinates. It is the cheap fallback
when a dataset ships no feature file (DeepWalk is the reference's recipe, minutes to hours).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from spikenet.data.temporal_graph import TemporalGraph


def standardize_per_step(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Zero mean, unit variance per time step over all N·F entries (the reference's preprocessing)."""
    if x.ndim == 2:
        return ((x - x.mean()) / (x.std() + 1e-12)).astype(np.float32)
    out = np.empty(x.shape, dtype=np.float32) if out is None else out
    for t in range(x.shape[0]):  # one pass per step keeps temporaries at N·F, not T·N·F
        xt = np.asarray(x[t], dtype=np.float64)
        out[t] = (xt - xt.mean()) / (xt.std() + 1e-12)
    return out


def snapshot_adjacency(graph: TemporalGraph, t: int) -> sp.csr_matrix:
    """G_t as a binary symmetric CSR matrix with self-loops."""
    n = graph.num_nodes
    indptr = graph.cum_indptr.numpy()
    deg_t = graph.cum_degree[t].numpy()
    rows = np.repeat(np.arange(n), np.diff(indptr))
    pos = np.arange(indptr[-1]) - indptr[rows]
    keep = pos < deg_t[rows]
    adj = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], graph.cum_indices.numpy()[keep])), shape=(n, n)
    )
    return adj + sp.identity(n, dtype=np.float32, format="csr")


def fastrp(
    graph: TemporalGraph,
    dim: int = 128,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    seed: int = 0,
) -> np.ndarray:
    """FastRP features [T, N, dim] of every cumulative snapshot, standardised per step."""
    rng = np.random.default_rng(seed)
    proj = rng.normal(scale=1.0 / np.sqrt(dim), size=(graph.num_nodes, dim)).astype(np.float32)
    out = np.zeros((graph.num_steps, graph.num_nodes, dim), dtype=np.float32)
    for t in range(graph.num_steps):
        adj = snapshot_adjacency(graph, t)
        inv_deg = 1.0 / np.asarray(adj.sum(axis=1)).ravel()
        walk = sp.diags(inv_deg.astype(np.float32)) @ adj
        cur = proj
        for w in weights:
            cur = walk @ cur
            norms = np.linalg.norm(cur, axis=1, keepdims=True)
            out[t] += w * cur / np.maximum(norms, 1e-12)
    return standardize_per_step(out, out=out)


def attach_features(graph: TemporalGraph, features: np.ndarray | torch.Tensor) -> TemporalGraph:
    """Return ``graph`` with ``features`` ([T, N, F] or [N, F]) after checking their shape."""
    shape = tuple(features.shape)
    if len(shape) not in (2, 3) or shape[-2] != graph.num_nodes or (len(shape) == 3 and shape[0] != graph.num_steps):
        raise ValueError(
            f"{graph.name}: features of shape {shape} do not fit the graph; expected "
            f"[T={graph.num_steps}, N={graph.num_nodes}, F] or [N={graph.num_nodes}, F]"
        )
    graph.features = torch.as_tensor(features)
    return graph
