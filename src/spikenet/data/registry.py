"""Dataset registry: ``dataset.name`` -> a reader that returns a ``TemporalGraph``.

Readers take the ``dataset`` config node and know nothing about models; features are attached
by ``load_dataset`` (a file, or a fallback) so every reader gets the same feature handling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spikenet.data.features import attach_features, fastrp, standardize_per_step
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)

Reader = Callable[[Any], TemporalGraph]
READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator: make a reader available as ``dataset.name=<name>``."""

    def wrap(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return wrap


def dataset_dir(cfg: Any) -> Path:
    """``<dataset.root>/<dataset.name>``."""
    return Path(str(cfg.root)).expanduser() / str(cfg.get("folder", cfg.name))


def load_dataset(cfg: Any) -> TemporalGraph:
    """Read the dataset named by ``cfg.reader`` (default ``cfg.name``) and attach its features."""
    reader = str(cfg.get("reader", cfg.name))
    if reader not in READERS:
        raise ValueError(f"unknown dataset reader '{reader}'; choose one of {sorted(READERS)}")
    start = time.perf_counter()
    graph = READERS[reader](cfg)
    if graph.features is None or graph.features.numel() == 0:
        graph = attach_features(graph, resolve_features(graph, cfg))
    log.info(
        "%s: %d nodes, %d steps, %d labelled, %d classes, %d features, loaded in %.1f s",
        graph.name, graph.num_nodes, graph.num_steps, graph.labelled_nodes.numel(), graph.num_classes,
        graph.num_features, time.perf_counter() - start,
    )
    return graph


def resolve_features(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """Features per ``dataset.features``: ``auto`` (the .npy file if present, else FastRP), ``file``, ``fastrp``."""
    choice = str(cfg.get("features", "auto"))
    path = dataset_dir(cfg) / f"{cfg.name}.npy"
    if choice in ("auto", "file") and path.exists():
        return standardize_per_step(np.load(path, mmap_mode="r"))
    if choice == "file":
        raise FileNotFoundError(f"{path}: feature file not found (dataset.features=file)")
    if choice == "auto":
        log.warning(
            "%s: no feature file %s; using FastRP structural features (dim %d). "
            "Generate DeepWalk features with `python src/features.py dataset=%s` for the reference recipe.",
            graph.name, path, int(cfg.get("feature_dim", 128)), cfg.name,
        )
    elif choice != "fastrp":
        raise ValueError(f"dataset.features must be auto, file or fastrp, got '{choice}'")
    return fastrp(graph, dim=int(cfg.get("feature_dim", 128)), seed=int(cfg.get("feature_seed", 0)))
