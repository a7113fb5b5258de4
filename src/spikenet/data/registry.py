"""Dataset registry: ``dataset.name`` (or ``dataset.reader``) -> a reader that returns a ``TemporalGraph``.

Readers take the ``dataset`` config node and know nothing about models. ``load_graph`` adds the
preprocessing cache (for readers that declare their source files); ``load_dataset`` then attaches
node features (``feature_choice``: the dataset's file, DeepWalk or FastRP, standardised and cached).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikenet.data import cache, hygiene
from spikenet.data.feature_choice import resolve_features
from spikenet.data.features import attach_features
from spikenet.data.parsing import require_files
from spikenet.data.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)

Reader = Callable[[Any], TemporalGraph]
READERS: dict[str, Reader] = {}

__all__ = ["READERS", "SPECS", "ReaderSpec", "dataset_dir", "load_dataset", "load_graph", "reader_name",
           "register_reader", "source_files"]


@dataclass(frozen=True)
class ReaderSpec:
    """A reader and the files it reads (relative to the dataset folder); readers with files are cached."""

    fn: Reader
    files: Callable[[Any], list[str]] | None = None
    optional: Callable[[Any], list[str]] | None = None
    missing: Callable[[Any, Path], None] | None = None  # raises the reader's own missing-file message
    check_cached: Callable[[TemporalGraph, Any], bool] | None = None  # is a cached graph still what it would build


SPECS: dict[str, ReaderSpec] = {}


def register_reader(
    name: str,
    files: Callable[[Any], list[str]] | None = None,
    optional: Callable[[Any], list[str]] | None = None,
    missing: Callable[[Any, Path], None] | None = None,
    check_cached: Callable[[TemporalGraph, Any], bool] | None = None,
) -> Callable[[Reader], Reader]:
    """Decorator: make a reader available as ``dataset.name=<name>`` (or ``dataset.reader=<name>``).
    ``files(cfg)`` lists the source files (enables the cache and the missing-file message);
    ``optional(cfg)`` the optional ones; ``missing(cfg, folder)`` raises the reader's own message when one is
    absent (default: ``parsing.require_files``); ``check_cached(graph, cfg)`` says whether a cached graph is
    still what the reader would build (decisions that depend on the machine, e.g. automatic time bins)."""

    def wrap(fn: Reader) -> Reader:
        READERS[name] = fn
        SPECS[name] = ReaderSpec(fn, files, optional, missing, check_cached)
        return fn

    return wrap


def _as_config(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        from omegaconf import OmegaConf

        return OmegaConf.create(cfg)
    return cfg


def reader_name(cfg: Any) -> str:
    """``dataset.reader`` if set, else ``dataset.name``; must be registered."""
    reader = str(cfg.get("reader") or cfg.name)
    if reader not in READERS:
        field = "dataset.reader" if cfg.get("reader") else "dataset.name"
        raise ValueError(f"{field}: unknown dataset reader '{reader}'; choose one of {', '.join(sorted(READERS))}")
    return reader


def source_files(cfg: Any) -> list[Path] | None:
    """The files the dataset's reader parses (checked to exist), or None for readers without files."""
    reader = reader_name(cfg)
    spec = SPECS[reader]
    if spec.files is None:
        return None
    folder, names = dataset_dir(cfg), spec.files(cfg)
    if spec.missing is not None:
        spec.missing(cfg, folder)
    else:
        optional = tuple(spec.optional(cfg)) if spec.optional else ()
        require_files(folder, str(cfg.name), names, optional)
    return [folder / n for n in names]


def load_graph(cfg: Any) -> TemporalGraph:
    """The graph structure and labels (features as the reader left them), through the cache when enabled."""
    cfg = _as_config(cfg)
    reader = reader_name(cfg)
    sources = source_files(cfg)
    if sources is None:
        return READERS[reader](cfg)
    folder = dataset_dir(cfg)
    # temporaries of killed writes, whether or not this run caches
    hygiene.remove_stale_temporaries([folder, *cache.cache_dirs(cfg, folder)])
    if not cache.enabled(cfg):
        return READERS[reader](cfg)
    graph = cache.load_graph(cfg, reader, folder, sources)
    check = SPECS[reader].check_cached
    if graph is not None and check is not None and not check(graph, cfg):
        log.info("%s: the cached graph's snapshot choice no longer fits this run's settings; rebuilding", cfg.name)
        graph = None
    if graph is None:
        graph = READERS[reader](cfg)
        cache.save_graph(graph, cfg, reader, folder, sources)
    return graph


def load_dataset(cfg: Any) -> TemporalGraph:
    """Read the dataset named by ``cfg.reader`` (default ``cfg.name``) and attach its features."""
    cfg = _as_config(cfg)
    start = time.perf_counter()
    graph = load_graph(cfg)
    if graph.features is None or graph.features.numel() == 0:
        graph = attach_features(graph, resolve_features(graph, cfg))
    log.info(
        "%s: %d nodes, %d steps, %d labelled, %d classes, %d features, loaded in %.1f s",
        graph.name,
        graph.num_nodes,
        graph.num_steps,
        graph.labelled_nodes.numel(),
        graph.num_classes,
        graph.num_features,
        time.perf_counter() - start,
    )
    return graph
