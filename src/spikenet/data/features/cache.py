"""Standardised features, cached: a feature file standardised per step, SMF or FastRP, stored as ``.npy``.

Each kind is keyed by what determines it (the source file's size and mtime, or the graph's structure
key and source signature, plus dimension, seed and dtype). A build goes to a temporary file renamed
into place (``cache.atomic_path``), or into memory when no cache folder is writable, and is size-guarded
first. The result is loaded into memory or memory-mapped per ``guards.mmap_choice``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spikenet.data.features.arrays import check_feature_shape, fastrp, feature_dtype, standardize_file
from spikenet.data.features.smf import SMFConfig, smf_features
from spikenet.data.storage import cache, guards, hygiene
from spikenet.data.storage.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph

Build = Callable[[Path | None], np.ndarray]


def open_features(path: Path, cfg: Any) -> np.ndarray:
    """Open standardised features: memory-mapped (copy-on-write) or loaded, per ``guards.mmap_choice``."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    nbytes = int(mapped.nbytes)
    del mapped
    if guards.mmap_choice(cfg, nbytes):
        return np.load(path, mmap_mode="c", allow_pickle=False)
    return np.load(path, allow_pickle=False)


def cached_features(cfg: Any, kind: str, key: list, shape: tuple[int, int, int], dtype: Any, build: Build
                    ) -> np.ndarray:
    """Open the cached features for ``key``, or ``build`` them (after a size check for ``shape``/``dtype``):
    into a temporary cache file that is then renamed into place, or in memory (``build(None)``) when no
    cache folder is writable."""
    folder = dataset_dir(cfg)
    hit = cache.feature_cache_path(cfg, folder, kind, key, write=False)
    if hit is not None:
        return open_features(hit, cfg)
    target = cache.feature_cache_path(cfg, folder, kind, key, write=True)
    itemsize = np.dtype(dtype).itemsize
    if target is None:
        guards.check_features(cfg, f"{kind} features in memory", shape, itemsize, None)
        return build(None)
    guards.check_features(cfg, f"{kind} feature cache", shape, itemsize, target.parent)
    with cache.atomic_path(target) as tmp:
        build(tmp)
    hygiene.prune(target.parent, hygiene.cache_keep(cfg))
    return open_features(target, cfg)


def structure_key(graph: TemporalGraph) -> Any | None:
    """What identifies a cached graph for feature caches: its structure cache key, source signature and
    shape (one configuration can give several snapshot counts: automatic time bins follow the machine)."""
    if "cache_key" not in graph.meta or "cache_sources" not in graph.meta:
        return None
    return [graph.meta["cache_key"], graph.meta["cache_sources"], graph.num_steps, graph.num_nodes]


def load_feature_file(path: Path, graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """Validate and standardise a ``.npy`` feature file per step into ``dataset.feature_dtype``; with the
    cache on, the result is stored as a ``.npy`` (keyed by the file's size and mtime) and reopened."""
    dtype = feature_dtype(cfg.feature_dtype)
    shape = _file_shape(path, graph)
    if not cache.enabled(cfg):
        guards.check_features(cfg, "standardised features in memory", shape, np.dtype(dtype).itemsize, None)
        return standardize_file(path, graph.num_steps, graph.num_nodes, dtype, None)
    st = path.stat()
    key = [
        "file",
        str(path.resolve()),
        st.st_size,
        st.st_mtime_ns,
        np.dtype(dtype).name,
        graph.num_steps,
        graph.num_nodes,
    ]
    return cached_features(
        cfg, "features", key, shape, dtype,
        lambda tmp: standardize_file(path, graph.num_steps, graph.num_nodes, dtype, tmp),
    )


def _file_shape(path: Path, graph: TemporalGraph) -> tuple[int, int, int]:
    """[T, N, F] of a feature file for size estimates (an [N, F] file counts as one step); the shape is
    validated by ``standardize_file``, which names the file, so an unreadable header estimates nothing."""
    try:
        shape = tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    except (ValueError, OSError):
        return (0, 0, 0)
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1]))
    if len(shape) == 3:
        check_feature_shape(shape, graph.num_steps, graph.num_nodes, str(path))
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    return (0, 0, 0)


def fastrp_features(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """FastRP features per ``dataset.feature_dim`` / ``feature_seed`` / ``feature_dtype``, cached."""
    dim, seed = int(cfg.feature_dim), int(cfg.feature_seed)
    dtype = feature_dtype(cfg.feature_dtype)
    shape = (graph.num_steps, graph.num_nodes, dim)
    skey = structure_key(graph) if cache.enabled(cfg) else None
    if skey is None:
        guards.check_features(cfg, "FastRP features in memory", shape, np.dtype(dtype).itemsize, None)
        return fastrp(graph, dim=dim, seed=seed, dtype=dtype)
    key = ["fastrp", skey, dim, seed, np.dtype(dtype).name]

    def build(tmp: Path | None) -> np.ndarray:
        if tmp is None:
            return fastrp(graph, dim=dim, seed=seed, dtype=dtype)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        fastrp(graph, dim=dim, seed=seed, out=out)
        out.flush()
        return out

    return cached_features(cfg, "fastrp", key, shape, dtype, build)


def smf_cached(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """SMF features (``spikenet.data.features.smf``) per ``dataset.smf`` (dim and seed default to
    ``dataset.feature_dim`` / ``feature_seed``) and ``feature_dtype``, standardised per step and cached."""
    smf = SMFConfig.from_cfg(cfg.smf, dim=int(cfg.feature_dim),
                             seed=int(cfg.feature_seed))
    dtype = feature_dtype(cfg.feature_dtype)
    shape = (graph.num_steps, graph.num_nodes, smf.dim)
    skey = structure_key(graph) if cache.enabled(cfg) else None
    if skey is None:
        guards.check_features(cfg, "SMF features in memory", shape, np.dtype(dtype).itemsize, None)
        return smf_features(graph, smf, dtype=dtype)
    key = ["smf", skey, smf.key(), np.dtype(dtype).name]

    def build(tmp: Path | None) -> np.ndarray:
        if tmp is None:
            return smf_features(graph, smf, dtype=dtype)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        smf_features(graph, smf, out=out)
        out.flush()
        return out

    return cached_features(cfg, "smf", key, shape, dtype, build)
