"""``dataset=edgelist``: a user's own dynamic graph, ``<root>/<name>/<edges>`` plus an optional label file.

    python src/run.py dataset=edgelist dataset.name=mygraph dataset.root=/data \\
        dataset.edges=interactions.csv dataset.labels=node_classes.csv

Edges: one interaction ``src dst time [more columns]`` per line; labels: ``node label [more columns]``
(docs/data.md has the rules). Node ids may be integers (dense ones are kept: node u is row u) or
anything else (strings, negative or sparse integers), which are renumbered 0..N-1
(``graph.meta['node_ids'][u]`` is the original id of node u, cached with the graph). Stamps become
snapshots: every distinct stamp, ``dataset.time_bins`` equal-width bins, or, with ``dataset.auto_bins``
(default), as many bins as the run's memory and time budgets allow (``snapshot_cost``): one info line
says what was chosen and how to override it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikenet.data.formats import table
from spikenet.data.formats.node_ids import NodeIndex, as_int_ids, compact_choice, index_nodes, lookup
from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError, encode_labels
from spikenet.data.readers import READERS
from spikenet.data.snapshots.plan import choose_steps, plan_holds
from spikenet.data.snapshots.stamps import Stamps, first_non_numeric, parse_stamps
from spikenet.data.storage import guards
from spikenet.data.storage.paths import dataset_dir
from spikenet.data.temporal_graph import TemporalGraph, build_structure

log = logging.getLogger(__name__)

EDGE_COLUMNS = ("src", "dst", "time")
LABEL_COLUMNS = ("node", "label")


def _file_keys(cfg: Any) -> dict[str, str]:
    """File name -> the key that names it (``dataset.edges``, ``dataset.labels``)."""
    keys = {str(cfg.edges): "dataset.edges"}
    labels = cfg.labels
    if labels:
        keys[str(labels)] = "dataset.labels"
    return keys


def edgelist_files(cfg: Any) -> list[str]:
    """The edge file, then the label file unless ``dataset.labels`` is null (an unlabelled graph)."""
    return list(_file_keys(cfg))


def require_own_files(cfg: Any, folder: Path) -> None:
    """Stop with one line naming the folder searched, what is there, and ``dataset.edges``/``dataset.labels``."""
    keys = _file_keys(cfg)
    wanted = ", ".join(f"{name} ({key})" for name, key in keys.items())
    where = f"dataset.root={cfg.get('root') or 'the repository data/ folder'}, dataset.name={cfg.name}"
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"{cfg.name}: dataset folder {folder} not found ({where}: the files go in <root>/<name>/); "
            f"expected {wanted} there"
        )
    missing = [(name, key) for name, key in keys.items() if not (folder / name).is_file()]
    if not missing:
        return
    present = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    shown = ", ".join(present[:12]) + (", ..." if len(present) > 12 else "") if present else "no files"
    what = "; ".join(f"{key}={name} not found" for name, key in missing)
    fix = "set " + " and ".join(f"{key}=FILE" for _, key in missing)
    if any(key == "dataset.labels" for _, key in missing):
        fix += " (dataset.labels=null for an unlabelled graph)"
    raise DatasetNotFoundError(f"{cfg.name}: {what} in {folder} (it holds: {shown}); {fix}")


# ---------------------------------------------------------------- edges


@dataclass
class EdgeColumns:
    """The edge file's ids (int64, or str tokens), stamps and how the file was read."""

    src: np.ndarray
    dst: np.ndarray
    stamps: Stamps
    fmt: table.TableFormat


def _fail_at(fmt: table.TableFormat, row: int, message: str) -> DataFormatError:
    return DataFormatError(fmt.path, table.row_line(fmt, row), message)


def read_edges(path: Path, cfg: Any) -> EdgeColumns:
    """Parse the edge file: typed (int ids, float stamps) in one C pass when it can, else as text."""
    fmt = table.sniff(path, "edge", EDGE_COLUMNS, cfg.delimiter, cfg.header,
                      _comments(cfg), select=cfg.get("columns"), select_key="dataset.columns")
    hint = ("dataset.delimiter sets the separator, dataset.header whether line 1 is a header, dataset.columns "
            "which fields hold src dst time")
    cols = fmt.usecols
    typed = table.read_typed_columns(fmt, [("s", "i8"), ("d", "i8"), ("t", "f8")], cols)
    if typed is not None:
        src, dst, stamps = typed["s"], typed["d"], Stamps(typed["t"].astype(np.float64), "numeric")
    else:
        ids = table.read_text_columns(fmt, cols[:2], hint)
        times = table.read_typed_columns(fmt, [("t", "f8")], cols[2:])
        tokens = times["t"] if times is not None else table.read_text_columns(fmt, cols[2:], hint)[:, 0]
        src, dst = ids[:, 0], ids[:, 1]
        for column, values in (("src", src), ("dst", dst), ("time", tokens)):
            if values.dtype.kind == "U":
                empty = np.flatnonzero(values == "")
                if empty.size:
                    raise _fail_at(fmt, int(empty[0]), f"empty {column} field; {hint}")
        stamps = parse_stamps(tokens)
        if not stamps.numeric:
            _check_mixed_stamps(fmt, tokens)
    if src.size == 0:
        raise DataFormatError(path, None, "empty edge file; expected lines 'src dst time'"
                              + (" after the header (dataset.header)" if fmt.header_line else ""))
    if stamps.numeric:
        bad = np.flatnonzero(~np.isfinite(stamps.values))
        if bad.size:
            raise _fail_at(fmt, int(bad[0]), f"expected a finite time stamp, got {stamps.values[bad[0]]}")
    edges = EdgeColumns(src, dst, stamps, fmt)
    _explain_columns(edges)
    return edges


def _explain_columns(edges: EdgeColumns) -> None:
    """One info line showing how the first data line was read, and a warning when the file is sorted by an id
    column but not by the time column (stamps in another field, e.g. SocioPatterns' ``t i j``)."""
    fmt = edges.fmt
    stamp = edges.stamps.values[0]
    if edges.stamps.kind == "numeric" and float(stamp).is_integer():
        stamp = int(stamp)
    first = (str(edges.src[0]), str(edges.dst[0]), str(stamp))
    log.info("%s: line %s read as src=%s dst=%s time=%s (dataset.columns=[%s], 0-based field numbers)",
             fmt.path.name, table.row_line(fmt, 0), *first, ",".join(str(c) for c in fmt.usecols))
    if edges.src.size < 3 or edges.src.dtype.kind not in "iu" or not edges.stamps.numeric:
        return
    if bool(np.all(np.diff(edges.src) >= 0)) and not bool(np.all(np.diff(edges.stamps.values) >= 0)):
        c = fmt.usecols
        log.warning("%s: the src field (field %d) is sorted like time stamps and the time field (field %d) is not: if "
                    "field %d holds the stamps, set dataset.columns=[%d,%d,%d] (0-based src, dst, time)", fmt.path.name,
                    c[0], c[2], c[0], c[1], c[2], c[0])


def _check_mixed_stamps(fmt: table.TableFormat, tokens: np.ndarray) -> None:
    """String stamps must be strings throughout: numbers among them would sort as text ('10' < '9'), so a
    column mixing both names the first line of the rarer kind."""
    numeric = np.fromiter((_is_float(t) for t in tokens.tolist()), dtype=bool, count=tokens.size)
    count = int(numeric.sum())
    if 0 < count < tokens.size:
        odd = int(np.flatnonzero(~numeric if 2 * count >= tokens.size else numeric)[0])
        kind = "numeric" if 2 * count >= tokens.size else "non-numeric"
        header = "; dataset.header=true if line 1 is a header" if odd == 0 and fmt.header_line is None else ""
        raise _fail_at(fmt, odd, f"expected a {kind} time stamp like the other lines, got {str(tokens[odd])!r} "
                                 f"({count} of {tokens.size} stamps are numbers){header}")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _comments(cfg: Any) -> str | None:
    value = cfg.comments
    return None if value in (None, "", "null") else str(value)


def index_edges(edges: EdgeColumns, cfg: Any) -> NodeIndex:
    """Compact ids per ``dataset.compact`` (``index_ids``)."""
    return index_ids(edges.src, edges.dst, edges.fmt, compact_choice(cfg.compact), "interactions")


def index_ids(src: np.ndarray, dst: np.ndarray, fmt: table.TableFormat, choice: str, what: str = "edges",
              why_false: str = "") -> NodeIndex:
    """Compact ids (``node_ids.index_nodes``); with ``choice`` false every id must be a non-negative integer
    (the error names the line and ``dataset.compact``, or ``why_false`` when something else forces it)."""
    fix = why_false or "dataset.compact=auto renumbers them"
    if choice == "false":
        for column, values in (("src", src), ("dst", dst)):
            ints = as_int_ids(values)
            if ints is None:
                row = next(i for i, t in enumerate(values.tolist()) if not _is_int(t))
                raise _fail_at(fmt, row, f"expected an integer node id as {column}, got {str(values[row])!r} ({fix})")
            bad = np.flatnonzero(ints < 0)
            if bad.size:
                raise _fail_at(fmt, int(bad[0]), f"expected a non-negative node id as {column}, got "
                                                 f"{ints[bad[0]]} ({fix})")
    index = index_nodes(src, dst, choice)
    log.info("%s: %d %s, %d nodes: %s", fmt.path.name, src.size, what, index.num_nodes, index.reason)
    return index


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- labels


def read_labels(path: Path, cfg: Any, index: NodeIndex) -> tuple[np.ndarray, int, dict]:
    """Labels [N] (-1 where a node has none), the class count and what was dropped."""
    header = cfg.get("labels_header")
    fmt = table.sniff(path, "label", LABEL_COLUMNS, cfg.delimiter,
                      cfg.header if header is None else header, _comments(cfg),
                      header_key="dataset.labels_header", select=cfg.get("label_columns"),
                      select_key="dataset.label_columns")
    hint = ("dataset.delimiter sets the separator, dataset.labels_header whether line 1 is a header, "
            "dataset.label_columns which fields hold node label")
    cols = table.read_text_columns(fmt, fmt.usecols, hint)
    if cols.shape[0] == 0:
        raise DataFormatError(path, None, "empty label file; expected lines 'node label'"
                              + (" after the header (dataset.labels_header)" if fmt.header_line else ""))
    nodes, raw = cols[:, 0], cols[:, 1]
    for column, values in (("node", nodes), ("label", raw)):
        empty = np.flatnonzero(values == "")
        if empty.size:
            raise _fail_at(fmt, int(empty[0]), f"empty {column} field; {hint}")
    ids, known = lookup(index, nodes)
    mode = table.header_choice(cfg.header if header is None else header)
    if mode == "auto" and fmt.header_line is None and nodes.size > 1 and not known[0] \
            and known[1:table.SAMPLE_LINES].all():  # a header of text ids: its "node" is no node
        line = table.row_line(fmt, 0)
        log.info("%s: line %s read as a header: its node %r is no node of the edge file while the lines after "
                 "it name nodes (dataset.labels_header=false reads it as data)", path.name, line, str(nodes[0]))
        fmt = dataclasses.replace(fmt, header_line=line)
        nodes, raw, ids, known = nodes[1:], raw[1:], ids[1:], known[1:]
    unknown = np.flatnonzero(~known)
    info: dict = {"labels_dropped": 0}
    if unknown.size:
        row = int(unknown[0])
        if not cfg.drop_unknown_labels:
            raise _fail_at(fmt, row, f"expected a node of the edge file, got unknown node {str(nodes[row])!r} "
                                     f"(no interaction; {unknown.size} such label line(s)); if the edge "
                                     "file's fields were misread (its 'read as src=... dst=... time=...' line "
                                     "above), dataset.columns fixes that; else dataset.drop_unknown_labels=true "
                                     "skips them")
        log.warning("%s: dropped %d label line(s) of nodes without interactions (first: line %s, node %r; "
                    "dataset.drop_unknown_labels=true)", path.name, unknown.size, table.row_line(fmt, row),
                    str(nodes[row]))
        ids, raw = ids[known], raw[known]
        info["labels_dropped"] = int(unknown.size)
    order_rows = np.flatnonzero(known)
    _, first = np.unique(ids, return_index=True)
    if first.size < ids.size:
        is_first = np.zeros(ids.size, dtype=bool)
        is_first[first] = True
        row = int(order_rows[np.flatnonzero(~is_first)[0]])
        raise _fail_at(fmt, row, f"expected each node once, got node {str(nodes[row])!r} again (one label per node)")
    ids, raw = _drop_rare_classes(cfg, path, ids, raw, info)
    dense, num_classes = encode_labels(raw)
    labels = np.full(index.num_nodes, -1, dtype=np.int64)
    labels[ids] = dense
    return labels, num_classes, info


def _drop_rare_classes(cfg: Any, path: Path, ids: np.ndarray, raw: np.ndarray, info: dict
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Drop the labels of classes with fewer than ``dataset.min_class_size`` nodes (one warning): the
    stratified train/val/test splits cannot place a class of one or two nodes in every part."""
    value = cfg.min_class_size
    least = 1 if value is None else int(value)
    if least < 1:
        raise ValueError(f"dataset.min_class_size must be >= 1, got {value}")
    classes, counts = np.unique(raw, return_counts=True)
    rare = classes[counts < least]
    info["classes_dropped"] = int(rare.size)
    if not rare.size:
        return ids, raw
    keep = ~np.isin(raw, rare)
    shown = ", ".join(f"{str(c)!r} ({n})" for c, n in zip(rare[:6], counts[counts < least][:6], strict=False))
    log.warning("%s: %d class(es) with fewer than %d labelled nodes (dataset.min_class_size): %s%s; their %d "
                "label(s) are dropped (a stratified split needs a few nodes of every class)", path.name, rare.size,
                least, shown, ", ..." if rare.size > 6 else "", int((~keep).sum()))
    info["labels_dropped_rare"] = int((~keep).sum())
    return ids[keep], raw[keep]


# ---------------------------------------------------------------- the reader


@READERS.register("edgelist", files=edgelist_files, missing=require_own_files, check_cached=plan_holds)
def read_edgelist(cfg: Any) -> TemporalGraph:
    """A generic edge list plus an optional label file (module docstring; docs/data.md)."""
    folder = dataset_dir(cfg)
    require_own_files(cfg, folder)
    names = edgelist_files(cfg)
    edges = read_edges(folder / names[0], cfg)
    if cfg.get("time_bins") is not None and not edges.stamps.numeric:
        row = first_non_numeric(edges.stamps.values)
        raise _fail_at(edges.fmt, row or 0, f"expected a numeric time stamp or an ISO date for dataset.time_bins, "
                                            f"got {str(edges.stamps.values[row or 0])!r}; without dataset.time_bins "
                                            "every distinct stamp is a step (dataset.merge=M merges them)")
    index = index_edges(edges, cfg)
    labels = np.full(index.num_nodes, -1, dtype=np.int64)
    num_classes, info = 0, {}
    if len(names) > 1:
        labels, num_classes, info = read_labels(folder / names[1], cfg, index)
    keep = index.src != index.dst
    labelled = int((labels >= 0).sum())
    step, num_steps, meta = choose_steps(cfg, edges.stamps, keep, index.num_nodes, labelled)
    meta.update({"interactions": int(index.src.size), "structure_interactions": int(keep.sum()), **info})
    if index.node_ids is not None:
        meta["node_ids"] = index.node_ids
    guards.check_snapshots(cfg, num_steps, index.num_nodes, int(index.src.size), int(meta["raw_steps"]),
                           edges.stamps.numeric)
    return TemporalGraph(
        name=str(cfg.name), num_nodes=index.num_nodes, num_steps=num_steps, features=torch.empty(0),
        labels=torch.from_numpy(labels), num_classes=num_classes, meta=meta,
        **build_structure(index.src, index.dst, step, index.num_nodes, num_steps),
    )
