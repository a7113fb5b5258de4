"""Node features: validation, per-step standardisation (chunked, any dtype, memory-mappable) and FastRP.

The reference standardises a feature file per time step over all N·F entries. Done here one step at
a time and in row blocks, so a [T, N, F] file read through ``mmap`` never costs more than one block
of float64 temporaries; the result goes into a float32 or float16 array that may itself be a
memory-mapped cache file.

FastRP (Chen et al. 2019) embeds each cumulative snapshot G_t with a few sparse products of the
row-normalised adjacency (self-loops included) with one random Gaussian matrix shared by all
steps, so embeddings of different steps live in the same coordinates. It is the cheap fallback
when a dataset ships no feature file (DeepWalk is the reference's recipe, minutes to hours).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from spikenet.data.formats.parsing import DataFormatError
from spikenet.data.temporal_graph import TemporalGraph

FEATURE_DTYPES = {"float32": np.float32, "float16": np.float16}
BLOCK_ROWS = 1 << 16


def feature_dtype(name: str) -> type[np.floating]:
    """``dataset.feature_dtype`` -> numpy dtype (float32 | float16)."""
    if str(name) not in FEATURE_DTYPES:
        raise ValueError(f"dataset.feature_dtype must be float32 or float16, got '{name}'")
    return FEATURE_DTYPES[str(name)]


def check_feature_shape(shape: tuple[int, ...], num_steps: int, num_nodes: int, source: str) -> None:
    """Rank 2 ([N, F]) or 3 ([T, N, F]) with matching T and N, else a ``DataFormatError`` naming source."""
    ok = len(shape) in (2, 3) and shape[-2] == num_nodes and shape[-1] > 0
    ok = ok and (len(shape) == 2 or shape[0] == num_steps)
    if not ok:
        raise DataFormatError(
            source,
            None,
            f"expected features of shape [T={num_steps}, N={num_nodes}, F] or [N={num_nodes}, F], "
            f"got {tuple(shape)}",
        )


def _step_moments(x: np.ndarray, source: str, step: int | None) -> tuple[float, float]:
    """Mean and standard deviation of one step over all entries, in row blocks of float64 (Chan's merge)."""
    count, mean, m2 = 0, 0.0, 0.0
    for start in range(0, x.shape[0], BLOCK_ROWS):
        block = np.asarray(x[start : start + BLOCK_ROWS], dtype=np.float64)
        if not np.isfinite(block).all():
            where = f"step {step}" if step is not None else "the array"
            raise DataFormatError(source, None, f"expected finite features, got NaN or inf in {where}")
        n_b = block.size
        if n_b == 0:
            continue
        mean_b = float(block.mean())
        m2_b = float(np.square(block - mean_b).sum())
        delta = mean_b - mean
        total = count + n_b
        mean += delta * n_b / total
        m2 += m2_b + delta * delta * count * n_b / total
        count = total
    return mean, float(np.sqrt(m2 / count)) if count else 1.0


def _standardize_2d(x: np.ndarray, out: np.ndarray, source: str, step: int | None) -> None:
    mean, std = _step_moments(x, source, step)
    scale = 1.0 / std if std > 0 else 1.0  # a constant step becomes zeros (as sklearn's scale does)
    for start in range(0, x.shape[0], BLOCK_ROWS):
        block = np.asarray(x[start : start + BLOCK_ROWS], dtype=np.float64)
        out[start : start + BLOCK_ROWS] = (block - mean) * scale


def standardize_per_step(
    x: np.ndarray,
    out: np.ndarray | None = None,
    dtype: type[np.floating] | str = np.float32,
    source: str = "features",
) -> np.ndarray:
    """Zero mean, unit variance per time step over all N·F entries (the reference's preprocessing).

    ``x`` may be memory-mapped; ``out`` (may be ``x`` itself, or a memory-mapped file) receives the
    result in ``dtype``. Raises ``DataFormatError`` naming ``source`` on NaN/inf.
    """
    dtype = feature_dtype(dtype) if isinstance(dtype, str) else dtype
    out = np.empty(x.shape, dtype=dtype) if out is None else out
    if x.ndim == 2:
        _standardize_2d(x, out, source, None)
    else:
        for t in range(x.shape[0]):  # one step at a time keeps temporaries at one block, not T·N·F
            _standardize_2d(x[t], out[t], source, t)
    return out


def standardize_file(
    src: Path, num_steps: int, num_nodes: int, dtype: type[np.floating], target: Path | None
) -> np.ndarray:
    """Validate and standardise ``src`` (read with mmap) into ``target`` (an .npy written here) or memory."""
    try:
        x = np.load(src, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(
            src, None, f"expected a numpy .npy float array, could not read it ({err})"
        ) from None
    check_feature_shape(tuple(x.shape), num_steps, num_nodes, str(src))
    if not np.issubdtype(x.dtype, np.number):
        raise DataFormatError(src, None, f"expected a numeric array, got dtype {x.dtype}")
    if target is None:
        return standardize_per_step(x, dtype=dtype, source=str(src))
    out = np.lib.format.open_memmap(target, mode="w+", dtype=dtype, shape=x.shape)
    standardize_per_step(x, out=out, source=str(src))
    out.flush()
    del out
    return np.load(target, mmap_mode="c")


def snapshot_adjacency(graph: TemporalGraph, t: int) -> sp.csr_matrix:
    """G_t as a binary symmetric CSR matrix with self-loops."""
    n = graph.num_nodes
    indptr = graph.cum_indptr.numpy()
    deg_t = graph.cum_degree[t].numpy()
    rows = np.repeat(np.arange(n), np.diff(indptr))
    pos = np.arange(indptr[-1]) - indptr[rows]
    keep = pos < deg_t[rows]
    adj = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], graph.cum_indices.numpy()[keep])),
        shape=(n, n),
    )
    return adj + sp.identity(n, dtype=np.float32, format="csr")


def fastrp(
    graph: TemporalGraph,
    dim: int = 128,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    seed: int = 0,
    out: np.ndarray | None = None,
    dtype: type[np.floating] = np.float32,
) -> np.ndarray:
    """FastRP features [T, N, dim] of every cumulative snapshot, standardised per step; seeded.

    ``out`` (e.g. a memory-mapped file of shape [T, N, dim]) receives the result, one step at a time.
    """
    rng = np.random.default_rng(seed)
    proj = rng.normal(scale=1.0 / np.sqrt(dim), size=(graph.num_nodes, dim)).astype(np.float32)
    out = np.empty((graph.num_steps, graph.num_nodes, dim), dtype=dtype) if out is None else out
    for t in range(graph.num_steps):
        adj = snapshot_adjacency(graph, t)
        inv_deg = 1.0 / np.asarray(adj.sum(axis=1)).ravel()
        walk = sp.diags(inv_deg.astype(np.float32)) @ adj
        cur, acc = proj, np.zeros((graph.num_nodes, dim), dtype=np.float32)
        for w in weights:
            cur = walk @ cur
            norms = np.linalg.norm(cur, axis=1, keepdims=True)
            acc += w * cur / np.maximum(norms, 1e-12)
        _standardize_2d(acc, out[t], "fastrp", t)
    return out


def attach_features(graph: TemporalGraph, features: np.ndarray | torch.Tensor) -> TemporalGraph:
    """Return ``graph`` with ``features`` ([T, N, F] or [N, F]) after checking their shape."""
    check_feature_shape(tuple(features.shape), graph.num_steps, graph.num_nodes, f"{graph.name} features")
    if isinstance(features, np.ndarray) and not features.flags.writeable:
        features = features.copy()  # torch wants writable memory; memory maps are opened copy-on-write ('c')
    graph.features = torch.as_tensor(features)
    if isinstance(features, np.memmap):  # lets the trainer bound the resident set while gathering
        graph.feature_array = features
        graph.advise_feature_access()
    return graph
