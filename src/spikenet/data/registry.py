"""Dataset registry: ``dataset.name`` (or ``dataset.reader``) -> a reader that returns a ``TemporalGraph``.

Readers take the ``dataset`` config node and know nothing about models. ``load_dataset`` adds what
every reader shares: the preprocessing cache (readers that declare their source files) and node
features (``dataset.features``: auto | file | deepwalk | fastrp), validated and standardised per step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikenet.data import cache
from spikenet.data.features import attach_features, fastrp, feature_dtype, standardize_file
from spikenet.data.parsing import REFERENCE_HINT, DatasetNotFoundError, require_files
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)

Reader = Callable[[Any], TemporalGraph]
READERS: dict[str, Reader] = {}
FEATURE_CHOICES = ("auto", "file", "deepwalk", "fastrp")
MMAP_AUTO_BYTES = 256 << 20  # dataset.mmap=auto memory-maps standardised features from this size up


@dataclass(frozen=True)
class ReaderSpec:
    """A reader and the files it reads (relative to the dataset folder); readers with files are cached."""

    fn: Reader
    files: Callable[[Any], list[str]] | None = None
    optional: Callable[[Any], list[str]] | None = None


SPECS: dict[str, ReaderSpec] = {}


def register_reader(
    name: str,
    files: Callable[[Any], list[str]] | None = None,
    optional: Callable[[Any], list[str]] | None = None,
) -> Callable[[Reader], Reader]:
    """Decorator: make a reader available as ``dataset.name=<name>``. ``files(cfg)`` lists the source files
    (enables the cache and the missing-file message); ``optional(cfg)`` the optional ones."""

    def wrap(fn: Reader) -> Reader:
        READERS[name] = fn
        SPECS[name] = ReaderSpec(fn, files, optional)
        return fn

    return wrap


def _as_config(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        from omegaconf import OmegaConf

        return OmegaConf.create(cfg)
    return cfg


def dataset_dir(cfg: Any) -> Path:
    """``<dataset.root>/<dataset.folder or dataset.name>``."""
    if cfg.get("root") is None:
        raise ValueError(
            f"dataset.root is not set for dataset '{cfg.name}' (the folder that holds {cfg.name}/)"
        )
    return Path(str(cfg.root)).expanduser() / str(cfg.get("folder", cfg.name))


def reader_name(cfg: Any) -> str:
    """``dataset.reader`` if set, else ``dataset.name``; must be registered."""
    reader = str(cfg.get("reader") or cfg.name)
    if reader not in READERS:
        raise ValueError(f"unknown dataset reader '{reader}'; choose one of {sorted(READERS)}")
    return reader


def source_files(cfg: Any) -> list[Path] | None:
    """The files the dataset's reader parses (checked to exist), or None for readers without files."""
    reader = reader_name(cfg)
    spec = SPECS[reader]
    if spec.files is None:
        return None
    folder, names = dataset_dir(cfg), spec.files(cfg)
    optional = tuple(spec.optional(cfg)) if spec.optional else ()
    require_files(folder, str(cfg.name), names, optional)
    return [folder / n for n in names]


def load_graph(cfg: Any) -> TemporalGraph:
    """The graph structure and labels (features as the reader left them), through the cache when enabled."""
    cfg = _as_config(cfg)
    reader = reader_name(cfg)
    sources = source_files(cfg)
    if sources is None or not cache.enabled(cfg):
        return READERS[reader](cfg)
    folder = dataset_dir(cfg)
    graph = cache.load_graph(cfg, reader, folder, sources)
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


def feature_file_candidates(cfg: Any) -> list[Path]:
    """Where ``<name>.npy`` is looked for: the dataset folder, then (for generated files when that folder is
    read-only) the dataset's folder in the user cache."""
    folder = dataset_dir(cfg)
    return [folder / f"{cfg.name}.npy", cache.cache_dirs(cfg, folder)[-1] / f"{cfg.name}.npy"]


def find_feature_file(cfg: Any) -> Path | None:
    """The first existing feature file among ``feature_file_candidates``."""
    return next((p for p in feature_file_candidates(cfg) if p.is_file()), None)


def feature_file_target(cfg: Any) -> tuple[Path, str | None]:
    """Where a generated feature file goes: the dataset folder if writable, else the user cache
    (with a one-line note saying so)."""
    primary, fallback = feature_file_candidates(cfg)
    if cache.is_writable(primary.parent):
        return primary, None
    if not cache.is_writable(fallback.parent):
        raise PermissionError(f"{primary.parent} is read-only and {fallback.parent} is not writable either")
    return (
        fallback,
        f"{primary.parent} is read-only; writing {fallback} instead (found there by dataset.features)",
    )


def _open_features(path: Path, cfg: Any) -> np.ndarray:
    """Open standardised features: memory-mapped (copy-on-write) when large or ``dataset.mmap=true``."""
    mode = str(cfg.get("mmap", "auto")).lower()
    use_mmap = mode == "true" or (mode == "auto" and path.stat().st_size >= MMAP_AUTO_BYTES)
    return np.load(path, mmap_mode="c" if use_mmap else None, allow_pickle=False)


def _cached_features(cfg: Any, kind: str, key: list, build: Callable[[Path | None], np.ndarray]) -> np.ndarray:
    """Open the cached features for ``key``, or ``build`` them: into a temporary cache file that is then
    renamed into place (atomic), or in memory (``build(None)``) when no cache folder is writable."""
    folder = dataset_dir(cfg)
    hit = cache.feature_cache_path(cfg, folder, kind, key, write=False)
    if hit is not None:
        return _open_features(hit, cfg)
    target = cache.feature_cache_path(cfg, folder, kind, key, write=True)
    if target is None:
        return build(None)
    with cache.atomic_path(target) as tmp:
        build(tmp)
    return _open_features(target, cfg)


def _structure_key(graph: TemporalGraph, cfg: Any) -> Any | None:
    """What identifies the graph for feature caches: its structure cache key and source signature."""
    sources = source_files(cfg)
    if sources is None or "cache_key" not in graph.meta:
        return None
    return [graph.meta["cache_key"], cache.source_signature(sources)]


def load_feature_file(path: Path, graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """Validate and standardise a ``.npy`` feature file per step into ``dataset.feature_dtype``; with the
    cache on, the result is stored as a ``.npy`` (keyed by the file's size and mtime) and reopened."""
    dtype = feature_dtype(cfg.get("feature_dtype", "float32"))
    if not cache.enabled(cfg):
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
    return _cached_features(
        cfg, "features", key, lambda tmp: standardize_file(path, graph.num_steps, graph.num_nodes, dtype, tmp)
    )


def fastrp_features(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """FastRP features per ``dataset.feature_dim`` / ``feature_seed`` / ``feature_dtype``, cached."""
    dim, seed = int(cfg.get("feature_dim", 128)), int(cfg.get("feature_seed", 0))
    dtype = feature_dtype(cfg.get("feature_dtype", "float32"))
    skey = _structure_key(graph, cfg) if cache.enabled(cfg) else None
    if skey is None:
        return fastrp(graph, dim=dim, seed=seed, dtype=dtype)
    key = ["fastrp", skey, dim, seed, np.dtype(dtype).name]

    def build(tmp: Path | None) -> np.ndarray:
        if tmp is None:
            return fastrp(graph, dim=dim, seed=seed, dtype=dtype)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(graph.num_steps, graph.num_nodes, dim))
        fastrp(graph, dim=dim, seed=seed, out=out)
        out.flush()
        return out

    return _cached_features(cfg, "fastrp", key, build)


def generate_deepwalk(
    graph: TemporalGraph, cfg: Any, force: bool = False, progress: bool = True
) -> tuple[Path, bool]:
    """Make sure a DeepWalk feature file exists (per ``dataset.deepwalk``); returns (path, generated)."""
    from spikenet.data.deepwalk import DeepWalkConfig, write_feature_file

    dw = DeepWalkConfig.from_cfg(cfg.get("deepwalk"))
    existing = find_feature_file(cfg)
    if existing is not None and not force:
        return existing, False
    target, note = feature_file_target(cfg)
    if note:
        log.warning(note)
    log.info("%s: generating DeepWalk features -> %s (%s)", graph.name, target, dw)
    write_feature_file(graph, dw, target, progress=progress)
    return target, True


def resolve_features(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """Features per ``dataset.features``: ``auto`` (the .npy file if present, else FastRP with a warning),
    ``file`` (the file, else an error), ``deepwalk`` (the file, generated first if absent), ``fastrp``."""
    choice = str(cfg.get("features", "auto"))
    if choice not in FEATURE_CHOICES:
        raise ValueError(f"dataset.features must be one of {', '.join(FEATURE_CHOICES)}, got '{choice}'")
    if choice == "fastrp":
        return fastrp_features(graph, cfg)
    path = find_feature_file(cfg)
    if path is None and choice == "deepwalk":
        path, _ = generate_deepwalk(graph, cfg)
    if path is not None:
        return load_feature_file(path, graph, cfg)
    if choice == "file":
        raise DatasetNotFoundError(
            f"{cfg.name}: feature file {feature_file_candidates(cfg)[0]} not found (dataset.features=file); "
            f"generate it with `python src/features.py dataset={cfg.name} dataset.root={cfg.root}`; "
            f"{REFERENCE_HINT}"
        )
    log.warning(
        "%s: no feature file %s; using FastRP structural features (dim %d). "
        "Generate DeepWalk features with `python src/features.py dataset=%s` for the reference recipe.",
        graph.name,
        feature_file_candidates(cfg)[0],
        int(cfg.get("feature_dim", 128)),
        cfg.name,
    )
    return fastrp_features(graph, cfg)
