"""Static graphs presented for T steps (``dataset=static``), as the official ``main_static.py`` does.

A static graph has no time stamps: every edge is placed at step 0, so G_t is the whole graph at
every step t = 0..T-1 and ΔG_t is empty for t > 0. With ``sampler.p = 1.0`` (the preset's value)
every step draws a fresh neighbour sample of the whole graph, and the spiking layers see those
T sampled subgraphs as a sequence. (With p < 1 the ΔG_t share of steps t > 0 falls back to the
node itself.) Features are one [N, F] table shared by all steps.

Sources (``dataset.source``):
- ``files``: ``<root>/<name>/<edges>`` (``src dst`` per line, more columns ignored) and ``<labels>``
  (``node label``; nodes without a line get -1 and stay out of the splits), read as the edge-list
  reader reads them (any separator, quotes, header, string ids renumbered: ``graph.meta['node_ids']``;
  ``dataset.delimiter``, ``header``, ``columns``, ``compact``, ``drop_unknown_labels``), and
  optionally ``<node_features>`` (``.npy`` [N, F], row u = node u, so ids are kept as they are);
  without features, FastRP embeddings of the graph.
- ``pyg``: a PyTorch Geometric dataset (``pyg_name``: Flickr, Reddit, Cora, CiteSeer, PubMed),
  downloaded to ``<root>/<name>`` on first use; needs ``pip install -e ".[pyg]"``.

Features are row-L2-normalised by default, as ``main_static.py`` does (``dataset.normalize``:
l2 | standardize | none). The datasets' own train/val/test masks are not used: splits follow
``task.train_size`` like every other dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikenet.data.features.arrays import fastrp, standardize_per_step
from spikenet.data.formats import table
from spikenet.data.formats.node_ids import compact_choice
from spikenet.data.formats.parsing import DataFormatError, require_files
from spikenet.data.readers import READERS
from spikenet.data.readers.edgelist import index_ids, read_labels
from spikenet.data.storage.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph, build_structure

PYG_DATASETS = ("Flickr", "Reddit", "Cora", "CiteSeer", "PubMed")
NORMALIZE = ("l2", "standardize", "none")


def read_static_edges(path: Path, cfg: Any) -> tuple[np.ndarray, np.ndarray, table.TableFormat]:
    """``src dst [more columns]`` rows -> ids (int64, or string tokens) as the edge-list reader reads them:
    any separator, quotes, header (``dataset.delimiter``, ``dataset.header``, ``dataset.columns``)."""
    fmt = table.sniff(path, "edge", ("src", "dst"), cfg.delimiter, cfg.header,
                      cfg.comments, select=cfg.get("columns"), select_key="dataset.columns")
    typed = table.read_typed_columns(fmt, [("s", "i8"), ("d", "i8")], fmt.usecols)
    if typed is not None:
        src, dst = typed["s"], typed["d"]
    else:
        ids = table.read_text_columns(fmt, fmt.usecols, "dataset.delimiter sets the separator, dataset.header "
                                                        "whether line 1 is a header")
        src, dst = ids[:, 0], ids[:, 1]
    if src.size == 0:
        raise DataFormatError(path, None, "empty edge file; expected lines 'src dst'")
    return src, dst, fmt


def static_graph(name: str, src: np.ndarray, dst: np.ndarray, num_nodes: int, num_steps: int, labels: np.ndarray,
                 num_classes: int, meta: dict | None = None) -> TemporalGraph:
    """A ``TemporalGraph`` of ``num_steps`` identical snapshots: every edge stamped 0 (features left empty)."""
    if num_steps < 1:
        raise ValueError(f"dataset.num_steps must be >= 1, got {num_steps}")
    structure = build_structure(src, dst, np.zeros(src.size, dtype=np.int64), num_nodes, num_steps)
    return TemporalGraph(name=name, num_nodes=num_nodes, num_steps=num_steps, features=torch.empty(0),
                         labels=torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
                         num_classes=int(num_classes), meta={"static": True, **(meta or {})}, **structure)


def first_snapshot(graph: TemporalGraph) -> TemporalGraph:
    """The same graph with its first step only (all snapshots are equal)."""
    n = graph.num_nodes
    return TemporalGraph(name=graph.name, num_nodes=n, num_steps=1, cum_indptr=graph.cum_indptr,
                         cum_indices=graph.cum_indices, cum_degree=graph.cum_degree[:1],
                         delta_indptr=graph.delta_indptr[: n + 1], delta_indices=graph.delta_indices,
                         features=torch.empty(0), labels=graph.labels, num_classes=graph.num_classes)


def normalize_features(x: np.ndarray, how: str) -> np.ndarray:
    """Float32 [N, F]: rows scaled to unit L2 norm (zero rows stay zero), standardised, or as given."""
    if how not in NORMALIZE:
        raise ValueError(f"dataset.normalize must be one of {NORMALIZE}, got '{how}'")
    x = np.asarray(x, dtype=np.float32)
    if how == "l2":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if how == "standardize":
        return standardize_per_step(x, source="static features")
    return x


def _read_files(cfg: Any) -> tuple[TemporalGraph, np.ndarray | None]:
    folder = dataset_dir(cfg)
    edges_name, labels_name = str(cfg.edges), str(cfg.labels)
    feats_name = cfg.get("node_features")
    require_files(folder, str(cfg.name), [edges_name, labels_name] + ([str(feats_name)] if feats_name else []))
    src, dst, fmt = read_static_edges(folder / edges_name, cfg)
    features = np.load(folder / str(feats_name), allow_pickle=False) if feats_name else None
    if features is not None and features.ndim != 2:
        raise DataFormatError(folder / str(feats_name), None, f"expected features [N, F], got shape {features.shape}")
    # a feature file's row u is node u: its ids are kept as they are
    choice = "false" if features is not None else compact_choice(cfg.compact)
    index = index_ids(src, dst, fmt, choice, "edges", "dataset.node_features: row u is node u" if feats_name else "")
    if features is not None:
        if features.shape[0] < index.num_nodes:
            raise DataFormatError(folder / str(feats_name), None,
                                  f"{features.shape[0]} feature rows, but node ids go up to {index.num_nodes - 1}")
        index.num_nodes = int(features.shape[0])
    labels, num_classes, _ = read_labels(folder / labels_name, cfg, index)
    meta = {"source": "files", "edges": int(src.size)}
    if index.node_ids is not None:
        meta["node_ids"] = index.node_ids
    graph = static_graph(str(cfg.name), index.src, index.dst, index.num_nodes, int(cfg.num_steps), labels,
                         num_classes, meta)
    return graph, features


def _read_pyg(cfg: Any) -> tuple[TemporalGraph, np.ndarray]:
    name = str(cfg.get("pyg_name") or "")
    if name not in PYG_DATASETS:
        raise ValueError(f"dataset.pyg_name must be one of {PYG_DATASETS}, got '{name}'")
    try:
        import torch_geometric.datasets as pyg_datasets
    except ImportError as err:
        raise ImportError(
            f"dataset.source=pyg needs PyTorch Geometric: pip install -e \".[pyg]\" ({err})"
        ) from err
    root = str(dataset_dir(cfg))
    dataset = pyg_datasets.Planetoid(root, name) if name in ("Cora", "CiteSeer", "PubMed") else (
        getattr(pyg_datasets, name)(root))
    data = dataset[0]
    edge_index = data.edge_index.numpy()
    labels = data.y.numpy().astype(np.int64).reshape(-1)
    graph = static_graph(str(cfg.name), edge_index[0], edge_index[1], int(data.num_nodes),
                         int(cfg.num_steps), labels, int(labels.max()) + 1,
                         {"source": f"pyg:{name}", "edges": int(edge_index.shape[1])})
    return graph, data.x.numpy()


@READERS.register("static")
def read_static(cfg: Any) -> TemporalGraph:
    """A static graph (files or a PyG dataset) as ``dataset.num_steps`` identical snapshots, with features."""
    source = str(cfg.source)
    if source not in ("files", "pyg"):
        raise ValueError(f"dataset.source must be files or pyg, got '{source}'")
    graph, features = _read_pyg(cfg) if source == "pyg" else _read_files(cfg)
    if features is None:
        dim, seed = int(cfg.feature_dim), int(cfg.feature_seed)
        features = fastrp(first_snapshot(graph), dim=dim, seed=seed)[0]
        graph.meta["features"] = f"fastrp{dim}"
    graph.features = torch.from_numpy(normalize_features(features, str(cfg.normalize)))
    return graph
