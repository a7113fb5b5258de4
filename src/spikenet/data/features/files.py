"""A dataset's own feature file ``<name>.npy``: where it is looked for, where a generated one goes, and
DeepWalk generation of it (size-guarded, written atomically)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from spikenet.data.features.deepwalk import DeepWalkConfig, corpus_bytes, write_feature_file
from spikenet.data.storage import cache, guards, hints
from spikenet.data.storage.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)


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


def check_deepwalk_space(graph: TemporalGraph, cfg: Any, dw: DeepWalkConfig, target: Path) -> None:
    """Refuse before writing when the feature file or one snapshot's walk corpus would not fit on disk."""
    shape = (graph.num_steps, graph.num_nodes, dw.dim)
    guards.check_features(cfg, "DeepWalk feature file", shape, 4, target.parent, script="features",
                          dtype_fix=False)
    tmp_dir = Path(dw.tmp_dir) if dw.tmp_dir else Path(tempfile.gettempdir())
    need = corpus_bytes(graph.num_nodes, dw)
    features = guards.feature_bytes(*shape, 4)
    if need + features <= guards.HEADROOM * guards.free_disk(target.parent):
        fix = f"`{hints.command(cfg, 'features', f'dataset.deepwalk.tmp_dir={target.parent}')}`"
    else:
        fix = f"`{hints.command(cfg, 'features', 'dataset.deepwalk.tmp_dir=DIR')}` with DIR on a disk with room"
    guards.require(
        f"{cfg.name}: DeepWalk walk corpus of one snapshot ({dw.walks} walks of {dw.length} per node)",
        need, tmp_dir, fix,
    )


def generate_deepwalk(
    graph: TemporalGraph, cfg: Any, force: bool = False, progress: bool = True
) -> tuple[Path, bool]:
    """Make sure a DeepWalk feature file exists (per ``dataset.deepwalk``); returns (path, generated)."""
    dw = DeepWalkConfig.from_cfg(cfg.deepwalk)
    existing = find_feature_file(cfg)
    if existing is not None and not force:
        return existing, False
    target, note = feature_file_target(cfg)
    check_deepwalk_space(graph, cfg, dw, target)
    if note:
        log.warning(note)
    log.info("%s: generating DeepWalk features -> %s (%s)", graph.name, target, dw)
    write_feature_file(graph, dw, target, progress=progress)
    return target, True
