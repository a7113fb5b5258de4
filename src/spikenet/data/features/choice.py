"""Which node features a dataset gets (``dataset.features``): its own file, SMF, DeepWalk or FastRP."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from spikenet.data.features.cache import fastrp_features, load_feature_file, smf_cached
from spikenet.data.features.files import feature_file_candidates, find_feature_file, generate_deepwalk
from spikenet.data.formats.parsing import REFERENCE_HINT, DatasetNotFoundError
from spikenet.data.storage import hints
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)

FEATURE_CHOICES = ("auto", "file", "smf", "deepwalk", "fastrp")


def resolve_features(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """Features per ``dataset.features``: ``auto`` (the .npy file if present, else SMF), ``file`` (the file,
    else an error), ``smf`` (DeepWalk-grade in seconds, ``spikenet.data.features.smf``), ``deepwalk`` (the file,
    generated first with gensim if absent: the reference recipe, minutes), ``fastrp``."""
    choice = str(cfg.features)
    if choice not in FEATURE_CHOICES:
        raise ValueError(f"dataset.features must be one of {', '.join(FEATURE_CHOICES)}, got '{choice}'")
    if choice == "fastrp":
        return fastrp_features(graph, cfg)
    if choice == "smf":
        return smf_cached(graph, cfg)
    path = find_feature_file(cfg)
    if path is None and choice == "deepwalk":
        path, _ = generate_deepwalk(graph, cfg)
    if path is not None:
        return load_feature_file(path, graph, cfg)
    if choice == "file":
        raise DatasetNotFoundError(
            f"{cfg.name}: feature file {feature_file_candidates(cfg)[0]} not found (dataset.features=file); "
            f"generate it with `{hints.command(cfg, 'features')}`; {REFERENCE_HINT}"
        )
    log.info(
        "%s: no feature file %s; using SMF features (DeepWalk-grade, cached). For the reference recipe "
        "generate DeepWalk features with `%s`.",
        graph.name,
        feature_file_candidates(cfg)[0],
        hints.command(cfg, "features"),
    )
    return smf_cached(graph, cfg)
