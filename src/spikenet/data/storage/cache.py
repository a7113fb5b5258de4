"""Preprocessing cache: parsed structure + labels as ``.npz``, standardised features as ``.npy``.

Where: ``dataset.cache_dir`` if set, else ``<dataset folder>/.cache``; when that cannot be written
(a read-only data mount) a per-dataset folder under the user cache
(``$SPIKENET_CACHE``, else ``$XDG_CACHE_HOME/spikenet``, else ``~/.cache/spikenet``).

What: one file per reader configuration (a hash of every dataset key that changes the parsed graph,
plus the folder's absolute path and ``CACHE_VERSION``). Inside it, the size and mtime of every source
file; a mismatch means the source changed and the entry is rebuilt and overwritten.

How: written to a temporary file in the same folder (its name carries the writer's host and PID), then
``os.replace``: a crash or an error never leaves a partial cache file, and a temporary left by a killed
writer is removed by the next run (``hygiene``). Entries are touched when used and each folder keeps the
``dataset.cache_keep`` most recently used per dataset and kind. ``dataset.cache=false`` turns all of it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikenet.data.storage import guards, hints, hygiene
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when a reader's output changes for the same input
# Dataset keys that do not change the parsed structure or labels (features, caching, DeepWalk settings).
NON_STRUCTURE_KEYS = frozenset(
    {
        "root",
        "features",
        "feature_dim",
        "feature_seed",
        "feature_dtype",
        "mmap",
        "mmap_share",
        "max_steps",
        "cache",
        "cache_dir",
        "cache_keep",
        "deepwalk",
        # the automatic snapshot choice's inputs: a cached graph is checked against them instead
        # (the reader's ``check_cached`` metadata in ``READERS``), so that a run with other settings reuses the
        # parse when the choice holds
        "auto_bins",
        "epoch_seconds",
        "memory_share",
        "cost",
        "smf",
    }
)
STRUCTURE_ARRAYS = ("cum_indptr", "cum_indices", "cum_degree", "delta_indptr", "delta_indices", "labels")


def cfg_to_dict(cfg: Any) -> dict:
    """A plain dict of a DictConfig or mapping (interpolations resolved)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        pass
    return dict(cfg) if isinstance(cfg, Mapping) else dict(vars(cfg))


def enabled(cfg: Any) -> bool:
    """``dataset.cache``."""
    return bool(cfg.cache)


def user_cache_root() -> Path:
    """``$SPIKENET_CACHE``, else ``$XDG_CACHE_HOME/spikenet``, else ``~/.cache/spikenet``."""
    if os.environ.get("SPIKENET_CACHE"):
        return Path(os.environ["SPIKENET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "spikenet"


def cache_dirs(cfg: Any, folder: Path) -> list[Path]:
    """Cache folders, preferred first: ``dataset.cache_dir`` or ``<folder>/.cache``, then the user cache."""
    primary = Path(str(cfg.cache_dir)).expanduser() if cfg.get("cache_dir") else folder / ".cache"
    tag = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    return [primary, user_cache_root() / f"{folder.name}-{tag}"]


def _marked_read_only(path: Path) -> bool:
    """An existing path without any write permission bit (root could still write there; we don't)."""
    try:
        return path.exists() and path.stat().st_mode & 0o222 == 0
    except OSError:
        return True


def is_writable(directory: Path) -> bool:
    """Whether a file can be written in ``directory`` (created if needed): neither it nor its parent is marked
    read-only (no write bit, respected even when running as root), and a probe file can be created."""
    if _marked_read_only(directory) or _marked_read_only(directory.parent):
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-", delete=True):
            pass
    except OSError:
        return False
    return True


def writable_dir(candidates: list[Path]) -> Path | None:
    """The first candidate folder that can be created and written, else None."""
    for i, directory in enumerate(candidates):
        if is_writable(directory):
            if i > 0:
                log.info("%s is not writable; caching in %s", candidates[0], directory)
            return directory
    log.warning("no writable cache folder among %s; not caching", [str(c) for c in candidates])
    return None


def digest(obj: Any, length: int = 16) -> str:
    """Stable short hash of a JSON-able object."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def structure_key(cfg: Any, reader: str, folder: Path) -> str:
    """Hash of what determines the parsed graph: reader, structure-relevant config, folder, version."""
    conf = {k: v for k, v in cfg_to_dict(cfg).items() if k not in NON_STRUCTURE_KEYS}
    return digest({"reader": reader, "cfg": conf, "folder": str(folder.resolve()), "version": CACHE_VERSION})


def source_signature(paths: list[Path]) -> list[list]:
    """(name, size, mtime_ns) of every source file: any change invalidates the cache entry."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([str(Path(p).name), int(st.st_size), int(st.st_mtime_ns)])
    return out


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success move it over ``target``, on error delete it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=hygiene.tmp_name(target), suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; give the result ordinary permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _graph_file(directory: Path, name: str, key: str) -> Path:
    return directory / f"{name}-graph-{key}.npz"


def load_graph(cfg: Any, reader: str, folder: Path, sources: list[Path]) -> TemporalGraph | None:
    """The cached graph (features empty) if a valid entry exists for this config and sources, else None."""
    key, signature = structure_key(cfg, reader, folder), source_signature(sources)
    for directory in cache_dirs(cfg, folder):
        path = _graph_file(directory, str(cfg.name), key)
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header["sources"] != signature:
                    log.info("cache %s is stale (source files changed); rebuilding", path)
                    continue
                arrays = {k: torch.from_numpy(z[k]) for k in STRUCTURE_ARRAYS}
                meta = dict(header["meta"])
                meta.update({k[5:]: z[k] for k in z.files if k.startswith("meta_")})
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable cache %s (%s)", path, err)
            continue
        labels = arrays.pop("labels")
        hygiene.touch(path)
        meta["cache_file"] = str(path)
        meta["cache_key"] = key
        meta["cache_sources"] = signature
        log.info("%s: structure loaded from cache %s", cfg.name, path)
        return TemporalGraph(
            name=header["name"],
            num_nodes=header["num_nodes"],
            num_steps=header["num_steps"],
            features=torch.empty(0),
            labels=labels,
            num_classes=header["num_classes"],
            meta=meta,
            **arrays,
        )
    return None


def save_graph(graph: TemporalGraph, cfg: Any, reader: str, folder: Path, sources: list[Path]) -> Path | None:
    """Write structure, labels and meta atomically; returns the file, or None if nowhere writable."""
    directory = writable_dir(cache_dirs(cfg, folder))
    if directory is None:
        return None
    key = structure_key(cfg, reader, folder)
    scalars = {k: v for k, v in graph.meta.items() if not isinstance(v, np.ndarray | torch.Tensor)}
    header = {
        "name": graph.name,
        "num_nodes": graph.num_nodes,
        "num_steps": graph.num_steps,
        "num_classes": graph.num_classes,
        "sources": source_signature(sources),
        "meta": json.loads(json.dumps(scalars, default=str)),
    }
    arrays = graph.to_arrays()
    for k, v in graph.meta.items():
        if isinstance(v, np.ndarray | torch.Tensor):
            arrays[f"meta_{k}"] = np.asarray(v)
    target = _graph_file(directory, str(cfg.name), key)
    nbytes = sum(int(a.nbytes) for a in arrays.values())
    guards.require(
        f"{cfg.name}: the structure cache", nbytes, directory,
        f"`{hints.command(cfg, 'run', 'dataset.cache=false')}` (parse the files on every run), "
        f"or dataset.cache_dir=DIR on a disk with room",
    )
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
    except OSError as err:
        log.warning("could not write cache %s (%s)", target, err)
        return None
    graph.meta["cache_file"] = str(target)
    graph.meta["cache_key"] = key
    graph.meta["cache_sources"] = header["sources"]
    hygiene.prune(directory, hygiene.cache_keep(cfg))
    return target


def feature_cache_path(cfg: Any, folder: Path, kind: str, key_obj: Any, write: bool) -> Path | None:
    """Path of a derived-feature cache file; with ``write``, in a writable folder (None if none), else the
    first existing one (None if none)."""
    name = f"{cfg.name}-{kind}-{digest([key_obj, CACHE_VERSION])}.npy"
    dirs = cache_dirs(cfg, folder)
    if write:
        directory = writable_dir(dirs)
        return None if directory is None else directory / name
    for directory in dirs:
        if (directory / name).is_file():
            hygiene.touch(directory / name)
            return directory / name
    return None
