"""Loading a dataset, top down: ``load_dataset`` = ``load_graph`` (the reader that ``dataset.reader``, else
``dataset.name``, names in ``readers.READERS``, through the graph cache for readers that declare their source
files) then the node features (``features.choice``: the dataset's file, SMF, DeepWalk or FastRP, standardised
and cached). Readers take the ``dataset`` config node and know nothing about models.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from spikenet.data.features.arrays import attach_features
from spikenet.data.features.choice import resolve_features
from spikenet.data.formats.parsing import require_files
from spikenet.data.readers import READERS
from spikenet.data.storage import cache, hygiene
from spikenet.data.storage.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)


def _as_config(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        from omegaconf import OmegaConf

        return OmegaConf.create(cfg)
    return cfg


def reader_name(cfg: Any) -> str:
    """``dataset.reader`` if set, else ``dataset.name``; an unregistered one raises one line naming that key."""
    chosen = cfg.get("reader")
    reader = str(chosen or cfg.name)
    try:
        READERS.entry(reader)
    except ValueError as err:
        if not chosen:
            raise
        raise ValueError("dataset.reader" + str(err)[len(READERS.key):]) from None
    return reader


def source_files(cfg: Any) -> list[Path] | None:
    """The files the dataset's reader parses (checked to exist), or None for readers without files."""
    entry = READERS.entry(reader_name(cfg))
    files, missing, optional = entry.get("files"), entry.get("missing"), entry.get("optional")
    if files is None:
        return None
    folder, names = dataset_dir(cfg), files(cfg)
    if missing is not None:
        missing(cfg, folder)
    else:
        optional = tuple(optional(cfg)) if optional else ()
        require_files(folder, str(cfg.name), names, optional)
    return [folder / n for n in names]


def load_graph(cfg: Any) -> TemporalGraph:
    """The graph structure and labels (features as the reader left them), through the cache when enabled."""
    cfg = _as_config(cfg)
    reader = reader_name(cfg)
    sources = source_files(cfg)
    read = READERS.get(reader)
    if sources is None:
        return read(cfg)
    folder = dataset_dir(cfg)
    # temporaries of killed writes, whether or not this run caches
    hygiene.remove_stale_temporaries([folder, *cache.cache_dirs(cfg, folder)])
    if not cache.enabled(cfg):
        return read(cfg)
    graph = cache.load_graph(cfg, reader, folder, sources)
    check = READERS.entry(reader).get("check_cached")
    if graph is not None and check is not None and not check(graph, cfg):
        log.info("%s: the cached graph's snapshot choice no longer fits this run's settings; rebuilding", cfg.name)
        graph = None
    if graph is None:
        graph = read(cfg)
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
