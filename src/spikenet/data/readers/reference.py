"""Readers for the reference layouts, DBLP, Tmall and Patent (docs/data.md; own edge lists: ``edgelist.py``).

Each reader parses its files (``parsing``: vectorised, strict, errors naming file and line), maps
time stamps to steps (sorted distinct stamps, ``dataset.merge`` consecutive steps merged) and returns a
``TemporalGraph`` with empty features;
``load_dataset`` caches the result and attaches features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikenet.data.formats.parsing import (
    DataFormatError,
    check_label_nodes,
    encode_labels,
    line_of_row,
    read_edge_file,
    read_json_rows,
    read_label_file,
    require_all_labelled,
    require_files,
)
from spikenet.data.readers import READERS
from spikenet.data.snapshots.plan import merge_key
from spikenet.data.storage import guards
from spikenet.data.storage.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph, build_structure, steps_from_stamps


def _steps(stamps: np.ndarray, merge: int) -> tuple[np.ndarray, int, int]:
    """(step per interaction, steps after merging, distinct stamps before merging)."""
    step, raw_steps = steps_from_stamps(stamps, 1)
    step //= merge
    return step, -(-raw_steps // merge), raw_steps


def _make_graph(
    cfg: Any,
    src: np.ndarray,
    dst: np.ndarray,
    step: np.ndarray,
    num_steps: int,
    num_nodes: int,
    labels: np.ndarray,
    num_classes: int,
    meta: dict,
    can_bin: bool = False,
    name: str | None = None,
) -> TemporalGraph:
    """Build the snapshots after the size guard (``dataset.max_steps``, memory); ``meta['raw_steps']`` is the
    step count before merging; ``can_bin``: the reader takes ``dataset.time_bins`` (for the fix it names)."""
    guards.check_snapshots(cfg, int(num_steps), int(num_nodes), int(src.size), int(meta["raw_steps"]), can_bin)
    return TemporalGraph(
        name=name or str(cfg.name),
        num_nodes=int(num_nodes),
        num_steps=int(num_steps),
        features=torch.empty(0),
        labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        num_classes=int(num_classes),
        meta=meta,
        **build_structure(src, dst, step, int(num_nodes), int(num_steps)),
    )


def _all_labelled(
    path: Path, nodes: np.ndarray, raw: np.ndarray, num_nodes: int, name: str
) -> tuple[np.ndarray, int]:
    """Labels [N] when the label file must cover every node exactly once (DBLP)."""
    check_label_nodes(path, nodes, num_nodes)
    labelled = np.zeros(num_nodes, dtype=bool)
    labelled[nodes] = True
    require_all_labelled(path, labelled, name)
    dense, num_classes = encode_labels(raw)
    labels = np.empty(num_nodes, dtype=np.int64)
    labels[nodes] = dense
    return labels, num_classes


@READERS.register("dblp", files=lambda cfg: ["dblp.txt", "node2label.txt"], optional=lambda cfg: ["dblp.npy"])
def read_dblp(cfg: Any) -> TemporalGraph:
    """``dblp.txt`` (``src dst t``) and ``node2label.txt`` (``node label``, every node labelled once)."""
    folder = dataset_dir(cfg)
    require_files(folder, "dblp", ["dblp.txt", "node2label.txt"], ("dblp.npy",))
    edges = read_edge_file(folder / "dblp.txt")
    nodes, raw, _ = read_label_file(folder / "node2label.txt")
    num_nodes = int(max(edges.src.max(), edges.dst.max(), nodes.max())) + 1
    labels, num_classes = _all_labelled(folder / "node2label.txt", nodes, raw, num_nodes, "dblp")
    merge = merge_key(cfg)  # conf/dataset: DBLP 1, Tmall 10, Patent 2
    step, num_steps, raw_steps = _steps(edges.time, merge)
    meta = {"interactions": int(edges.src.size), "raw_steps": raw_steps, "merge": merge}
    return _make_graph(cfg, edges.src, edges.dst, step, num_steps, num_nodes, labels, num_classes, meta,
                       name="dblp")


@READERS.register(
    "tmall", files=lambda cfg: ["tmall.txt", "node2label.txt"], optional=lambda cfg: ["tmall.npy"]
)
def read_tmall(cfg: Any) -> TemporalGraph:
    """``tmall.txt`` (``src dst t``) and ``node2label.txt`` for a subset of nodes.

    As in the reference: labelled nodes are renumbered first (in label-file order, the rest by id), every
    10 consecutive steps are merged (``dataset.merge``), and unlabelled nodes get label -1 (no split).
    ``meta['node_ids'][new] = old``.
    """
    folder = dataset_dir(cfg)
    require_files(folder, "tmall", ["tmall.txt", "node2label.txt"], ("tmall.npy",))
    edges = read_edge_file(folder / "tmall.txt")
    num_nodes = int(max(edges.src.max(), edges.dst.max())) + 1
    nodes, raw, _ = read_label_file(folder / "node2label.txt")
    check_label_nodes(folder / "node2label.txt", nodes, num_nodes)
    dense, num_classes = encode_labels(raw)
    is_labelled = np.zeros(num_nodes, dtype=bool)
    is_labelled[nodes] = True
    original = np.concatenate([nodes, np.flatnonzero(~is_labelled)])  # new id -> old id
    mapping = np.empty(num_nodes, dtype=np.int64)
    mapping[original] = np.arange(num_nodes)
    labels = np.full(num_nodes, -1, dtype=np.int64)
    labels[: nodes.size] = dense
    merge = merge_key(cfg)
    step, num_steps, raw_steps = _steps(edges.time, merge)
    meta = {
        "interactions": int(edges.src.size),
        "raw_steps": raw_steps,
        "merge": merge,
        "node_ids": original,
    }
    return _make_graph(
        cfg, mapping[edges.src], mapping[edges.dst], step, num_steps, num_nodes, labels, num_classes, meta,
        name="tmall",
    )


@READERS.register(
    "patent",
    files=lambda cfg: ["patent_edges.json", "patent_nodes.json"],
    optional=lambda cfg: ["patent.npy"],
)
def read_patent(cfg: Any) -> TemporalGraph:
    """``patent_edges.json`` (``[src, dst, date, src_orig, dst_orig]`` per line, date YYYYMMDD, step = year)
    and ``patent_nodes.json`` (``[node, orig, date, label]``, labels 1-based, all nodes labelled); merge 2."""
    folder = dataset_dir(cfg)
    edges_path, nodes_path = folder / "patent_edges.json", folder / "patent_nodes.json"
    require_files(folder, "patent", ["patent_edges.json", "patent_nodes.json"], ("patent.npy",))
    e = read_json_rows(edges_path, 5, usecols=(0, 1, 2), int_cols=(0, 1, 2))
    n = read_json_rows(nodes_path, 4, usecols=(0, 3), int_cols=(0,))
    src, dst = e[:, 0].astype(np.int64), e[:, 1].astype(np.int64)
    year = np.floor_divide(e[:, 2], 10000).astype(np.int64)
    nodes = n[:, 0].astype(np.int64)
    raw_label = n[:, 1]
    bad = np.flatnonzero((raw_label < 1) | (raw_label != np.floor(raw_label)))
    if bad.size:
        row = int(bad[0])
        raise DataFormatError(
            nodes_path,
            line_of_row(nodes_path, row),
            f"expected a 1-based integer label, got {raw_label[row]}",
        )
    num_nodes = int(max(src.max(), dst.max(), nodes.max())) + 1
    check_label_nodes(nodes_path, nodes, num_nodes)
    labelled = np.zeros(num_nodes, dtype=bool)
    labelled[nodes] = True
    require_all_labelled(nodes_path, labelled, "patent")
    labels = np.empty(num_nodes, dtype=np.int64)
    labels[nodes] = raw_label.astype(np.int64) - 1
    merge = merge_key(cfg)
    step, num_steps, raw_steps = _steps(year, merge)
    meta = {"interactions": int(src.size), "raw_steps": raw_steps, "merge": merge}
    return _make_graph(cfg, src, dst, step, num_steps, num_nodes, labels, int(labels.max()) + 1, meta,
                       name="patent")
