"""Readers for the reference layouts (DATA.md) and the built-in synthetic graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spikenet.data.registry import dataset_dir, register_reader
from spikenet.data.synthetic import make_synthetic
from spikenet.data.temporal_graph import TemporalGraph, build_structure, steps_from_stamps


@register_reader("synthetic")
def read_synthetic(cfg: Any) -> TemporalGraph:
    """The seeded generator; every key of ``dataset`` but name/reader is an argument."""
    kwargs = {k: v for k, v in dict(cfg).items() if k not in ("name", "reader", "root", "features")}
    return make_synthetic(name=str(cfg.name), **kwargs)


@register_reader("dblp")
def read_dblp(cfg: Any) -> TemporalGraph:
    """``dblp.txt`` (``src dst t``) and ``node2label.txt`` (``node label``, every node labelled)."""
    folder = dataset_dir(cfg)
    edges = np.loadtxt(folder / "dblp.txt", dtype=np.float64, ndmin=2)
    src, dst = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)
    step, num_steps = steps_from_stamps(edges[:, 2], int(cfg.get("merge", 1)))
    node_label = np.loadtxt(folder / "node2label.txt", dtype=np.int64, ndmin=2)
    num_nodes = int(max(src.max(), dst.max(), node_label[:, 0].max())) + 1
    labels = np.full(num_nodes, -1, dtype=np.int64)
    labels[node_label[:, 0]] = node_label[:, 1]
    _, labels_dense = np.unique(labels[labels >= 0], return_inverse=True)
    labels[labels >= 0] = labels_dense
    return TemporalGraph(
        name="dblp",
        num_nodes=num_nodes,
        num_steps=num_steps,
        features=torch.empty(0),
        labels=torch.from_numpy(labels),
        num_classes=int(labels.max()) + 1,
        meta={"interactions": int(src.size)},
        **build_structure(src, dst, step, num_nodes, num_steps),
    )
