"""TGB node-property datasets (``dataset=tgbn``: tgbn-trade, tgbn-genre, tgbn-reddit, tgbn-token) as snapshots.

Files, in ``<root>/<name>/`` (or TGB's own folder name ``<root>/<name with _>/``), exactly as TGB ships them:
``<name>_edgelist.csv`` and ``<name>_node_labels.csv``, comma-separated with a header line. Their columns,
as TGB's ``tgb/utils/pre_process.py`` reads them:

- trade: edges ``year, nation, trading nation, weight``; labels the same four columns. Nations are one id
  space, numbered by first appearance in the edge file (row by row, nation before trading nation); a label
  row gives ``weight`` to item ``trading nation`` of ``nation``'s vector (length: the number of nations).
- genre / reddit / token: edges ``ts, user, item, ...`` (weight column 3, or 4 for reddit's ``score``);
  items are numbered 0.. by first appearance, users from TGB's class count on (513 / 698 / 1001) by first
  appearance; labels ``ts, user, item, weight``.

A repeated (time, node, item) label row keeps its last weight, as TGB's dictionary assignment does.

Snapshots: one step per label time. With the distinct label times L_0 < ... < L_{K-1}, step k holds the
interactions with L_{k-1} < t <= L_k (step 0 everything up to L_0); interactions after L_{K-1} form one last
step. The label rows of time L_k are predicted from steps 0..k: TGB's loop processes every interaction
stamped up to L_k before it asks for those labels (plus, for sub-day stamps, up to one 200-event batch after
L_k, which we leave out). Within a step repeated interactions collapse (``TemporalGraph``'s G_t / ΔG_t are
binary); their weights are summed per (step, node, item) and kept only as node features
(``dataset.features=weights``). The CSV is read in chunks of ``dataset.chunk_rows`` rows and deduplicated as
it goes, so memory follows the distinct (step, node, item) triples and N x T, not the event count.

Node features (``dataset.features``): ``labels`` (each node's property vector of its latest label time
before the step, no later ones), ``weights`` (the node's own edge weights of the step as shares over the
items), or the framework's choices (``auto``, ``fastrp``, ``file``, ``deepwalk``). Features are
standardised per step.

Downloads (``dataset.download=true``) fetch TGB's zip from the URL in py-tgb's own table
(``pip install -e ".[tgb]"``) into the dataset folder; with ``false`` (default) nothing is fetched and a
missing file stops the run with the command that fixes it. TGB's own ``download()`` (which asks y/N on
standard input in py-tgb releases before October 2025) is never called.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikenet.data.features.arrays import standardize_per_step
from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError, require_files
from spikenet.data.properties import NodeProperties, step_weight_features
from spikenet.data.readers import READERS
from spikenet.data.storage import cache, guards
from spikenet.data.storage.paths import data_root, dataset_dir
from spikenet.data.temporal_graph import TemporalGraph, build_structure

log = logging.getLogger(__name__)

READER = "tgbn"
OWN_FEATURES = ("labels", "weights")
_BITS = 21  # node and item ids < 2**21 and steps < 2**21 pack into one int64 key per (step, node, item)
_MASK = (1 << _BITS) - 1


@dataclass(frozen=True)
class TgbFormat:
    """How one TGB node-property dataset's CSV files map to nodes and items."""

    name: str
    bipartite: bool  # users -> items (genre, reddit, token); trade: nations on both sides
    weight_col: int  # column of the edge weight in the edge file
    user_offset: int | None  # first user id (TGB's class count); None: the number of items

    @property
    def edge_cols(self) -> list[int]:
        return [0, 1, 2, self.weight_col]


FORMATS = {
    "trade": TgbFormat("trade", bipartite=False, weight_col=3, user_offset=None),
    "genre": TgbFormat("genre", bipartite=True, weight_col=3, user_offset=513),
    "reddit": TgbFormat("reddit", bipartite=True, weight_col=4, user_offset=698),
    "token": TgbFormat("token", bipartite=True, weight_col=3, user_offset=1001),
    "bipartite": TgbFormat("bipartite", bipartite=True, weight_col=3, user_offset=None),
}


def tgb_format(cfg: Any) -> TgbFormat:
    """``dataset.format``, else the format named by ``tgbn-<format>``; other names read as tgbn-trade's."""
    choice = cfg.get("format")
    if choice is not None:
        if str(choice) not in FORMATS:
            raise ValueError(f"dataset.format must be one of {', '.join(FORMATS)}, got '{choice}'")
        return FORMATS[str(choice)]
    suffix = str(cfg.name).removeprefix("tgbn-")
    return FORMATS.get(suffix, FORMATS["trade"])


def tgb_files(name: str) -> tuple[str, str]:
    """TGB's file names: (edge list, node labels)."""
    return f"{name}_edgelist.csv", f"{name}_node_labels.csv"


def tgb_folder(cfg: Any) -> Path:
    """``<root>/<name>``, or TGB's own ``<root>/<name with _>`` when only that one holds the files."""
    folder = dataset_dir(cfg)
    if cfg.get("folder"):
        return folder
    tgb_style = data_root(cfg) / str(cfg.name).replace("-", "_")
    edges, _ = tgb_files(str(cfg.name))
    if not (folder / edges).is_file() and (tgb_style / edges).is_file():
        return tgb_style
    return folder


# --------------------------------------------------------------------------- downloads


def download(name: str, folder: Path, timeout: float = 60.0) -> None:
    """Fetch TGB's zip of ``name`` (URL from py-tgb's table) into ``folder`` and unpack its two CSV files there."""
    try:
        import requests
        from tgb.utils.info import DATA_URL_DICT
    except ImportError as err:
        raise DatasetNotFoundError(
            f"{name}: dataset.download=true needs py-tgb (`pip install -e \".[tgb]\"`): {err}") from None
    if name not in DATA_URL_DICT:
        raise DatasetNotFoundError(f"{name}: TGB has no download for this name; put {', '.join(tgb_files(name))} "
                                   f"in {folder} yourself")
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{name}.zip"
    log.info("%s: downloading %s", name, DATA_URL_DICT[name])
    with requests.get(DATA_URL_DICT[name], stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with cache.atomic_path(archive) as tmp, open(tmp, "wb") as f:
            for block in response.iter_content(chunk_size=1 << 20):
                f.write(block)
    with zipfile.ZipFile(archive) as z:
        for member in z.namelist():
            target = Path(member).name
            if target in tgb_files(name):
                with z.open(member) as src, cache.atomic_path(folder / target) as tmp, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    archive.unlink()
    require_files(folder, name, list(tgb_files(name)))


def ensure_files(cfg: Any) -> Path:
    """The dataset folder holding both CSV files; downloads them first with ``dataset.download=true``."""
    name = str(cfg.name)
    folder = tgb_folder(cfg)
    files = list(tgb_files(name))
    if all((folder / f).is_file() for f in files):
        return folder
    if cfg.download:
        download(name, folder)
        return folder
    missing = ", ".join(f for f in files if not (folder / f).is_file())
    raise DatasetNotFoundError(
        f"{name}: missing {missing} in {folder}; put TGB's files there (dataset.root=DIR points elsewhere), or "
        f"fetch them with `python src/run.py task=node_property dataset=tgbn dataset.name={name} "
        f"dataset.download=true` (needs py-tgb: pip install -e \".[tgb]\", and a network)")


# --------------------------------------------------------------------------- chunked CSV reading


def _bad_row(path: Path, numeric: tuple[int, ...], needed: int) -> DataFormatError:
    """The first row (by its line) that lacks columns or has a non-finite number where one is expected."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            if not row:
                continue
            if len(row) < needed:
                return DataFormatError(path, reader.line_num, f"expected at least {needed} comma-separated columns, "
                                                              f"got {len(row)}")
            for c in numeric:
                try:
                    value = float(row[c])
                except ValueError:
                    value = math.nan
                if not math.isfinite(value):
                    return DataFormatError(path, reader.line_num, f"expected a finite number in column {c + 1}, "
                                                                  f"got {row[c]!r}")
    return DataFormatError(path, None, "could not parse the file as comma-separated values with a header line")


def pandas() -> Any:
    """pandas (its C parser reads the CSV chunks), or a one-line error naming the extra that brings it."""
    try:
        import pandas as pd
    except ImportError:
        raise ValueError('dataset=tgbn reads its CSV files with pandas: pip install -e ".[tgb]"') from None
    return pd


def read_chunks(path: Path, cols: list[int], chunk_rows: int, names: tuple[int, ...] = (1, 2)
                ) -> Iterator[list[np.ndarray]]:
    """The columns ``cols`` of a CSV file with a header line, ``chunk_rows`` rows at a time: float64 for
    numeric columns, strings (object) for the ``names`` columns. Bad input -> one line naming the file's line."""
    pd = pandas()

    numeric = tuple(c for c in cols if c not in names)
    dtype = {c: (str if c in names else np.float64) for c in cols}
    try:
        reader = pd.read_csv(path, header=None, skiprows=1, usecols=cols, dtype=dtype, chunksize=chunk_rows,
                             na_filter=False, skip_blank_lines=True)
        for chunk in reader:
            values = [chunk[c].to_numpy() for c in cols]
            for c, v in zip(cols, values, strict=True):
                if c in numeric and not np.isfinite(v).all():
                    raise ValueError("non-finite")
            yield values
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        raise _bad_row(path, numeric, max(cols) + 1) from None


class IdMap:
    """Names -> ids 0, 1, ... in order of first appearance (as TGB's dictionaries number them)."""

    def __init__(self) -> None:
        self._pd = pandas()
        self.index = self._pd.Index([], dtype=object)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, names: np.ndarray) -> np.ndarray:
        """Ids of ``names``, numbering the unseen ones in their order of first appearance."""
        first = self._pd.unique(names)
        new = first[self.index.get_indexer(first) < 0]
        if new.size:
            self.index = self.index.append(self._pd.Index(new, dtype=object))
        return self.index.get_indexer(names).astype(np.int64)

    def lookup(self, names: np.ndarray) -> np.ndarray:
        """Ids of ``names``; -1 for a name never added."""
        return self.index.get_indexer(names).astype(np.int64)

    @property
    def names(self) -> np.ndarray:
        return np.asarray(self.index, dtype=str)


class TripleSum:
    """Distinct int64 keys with summed weights, merged as chunks arrive (memory: the distinct keys)."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)
        self.sums = np.empty(0, dtype=np.float64)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_size = 0

    def add(self, keys: np.ndarray, weights: np.ndarray) -> None:
        k, inv = np.unique(keys, return_inverse=True)
        self.pending.append((k, np.bincount(inv, weights=weights, minlength=k.size)))
        self.pending_size += k.size
        if self.pending_size > max(self.keys.size, 1 << 22):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        keys = np.concatenate([self.keys, *(k for k, _ in self.pending)])
        sums = np.concatenate([self.sums, *(s for _, s in self.pending)])
        self.keys, inv = np.unique(keys, return_inverse=True)
        self.sums = np.bincount(inv, weights=sums, minlength=self.keys.size)
        self.pending, self.pending_size = [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._merge()
        return self.keys, self.sums


def pack(step: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One sortable int64 key per (step, u, v)."""
    return (step.astype(np.int64) << (2 * _BITS)) | (u.astype(np.int64) << _BITS) | v.astype(np.int64)


def unpack(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return keys >> (2 * _BITS), (keys >> _BITS) & _MASK, keys & _MASK


# --------------------------------------------------------------------------- the two files


def label_times(path: Path, chunk_rows: int) -> np.ndarray:
    """The sorted distinct times of the label file."""
    times = np.empty(0)
    for (t,) in read_chunks(path, [0], chunk_rows, names=()):
        times = np.union1d(times, t)
    if times.size == 0:
        raise DataFormatError(path, None, "no label rows; expected lines 'time, node, item, weight' after the header")
    return times


@dataclass
class EdgeTable:
    """The edge file after one pass: distinct (step, source, item) triples with summed weights, ids, counts."""

    keys: np.ndarray
    sums: np.ndarray
    step_events: np.ndarray  # [K + 1] interactions per step (the last: after the last label time)
    nodes: IdMap  # trade: all nations; bipartite: users
    items: IdMap | None  # bipartite: the items


def read_edges(path: Path, fmt: TgbFormat, times: np.ndarray, chunk_rows: int) -> EdgeTable:
    """Stream the edge file: number nodes and items as TGB does, bin stamps into steps, deduplicate."""
    nodes, items = IdMap(), (IdMap() if fmt.bipartite else None)
    triples = TripleSum()
    counts = np.zeros(times.size + 1, dtype=np.int64)
    for t, a, b, w in read_chunks(path, fmt.edge_cols, chunk_rows):
        if items is None:
            both = np.empty(2 * a.size, dtype=object)  # TGB numbers row by row, nation before trading nation
            both[0::2], both[1::2] = a, b
            ids = nodes.add(both)
            u, v = ids[0::2], ids[1::2]
        else:
            u, v = nodes.add(a), items.add(b)
        if max(len(nodes), len(items or ())) > _MASK:
            raise DataFormatError(path, None, f"more than {_MASK} distinct nodes or items")
        step = np.searchsorted(times, t, side="left")
        counts += np.bincount(step, minlength=counts.size)
        triples.add(pack(step, u, v), w)
    if counts.sum() == 0:
        raise DataFormatError(path, None, "no edge rows; expected lines 'time, node, item, weight' after the header")
    keys, sums = triples.result()
    return EdgeTable(keys, sums, counts, nodes, items)


def read_labels(path: Path, fmt: TgbFormat, times: np.ndarray, edges: EdgeTable, offset: int, dim: int,
                chunk_rows: int) -> NodeProperties:
    """Stream the label file into sparse rows; names must occur in the edge file (TGB's KeyError)."""
    keys, weights, row0 = [], [], 0
    items = edges.items if edges.items is not None else edges.nodes
    for t, a, b, w in read_chunks(path, [0, 1, 2, 3], chunk_rows):
        u, v = edges.nodes.lookup(a), items.lookup(b)
        for ids, names, what in ((u, a, "node"), (v, b, "item")):
            bad = np.flatnonzero(ids < 0)
            if bad.size:
                raise DataFormatError(path, _line_of(path, row0 + int(bad[0])),
                                      f"{what} {names[bad[0]]!r} does not occur in the edge file")
        negative = np.flatnonzero(w < 0)
        if negative.size:
            raise DataFormatError(path, _line_of(path, row0 + int(negative[0])),
                                  f"expected a weight >= 0 (NDCG's gains), got {w[negative[0]]}")
        keys.append(pack(np.searchsorted(times, t), u + (offset if fmt.bipartite else 0), v))
        weights.append(w)
        row0 += t.size
    all_keys = np.concatenate(keys)
    all_weights = np.concatenate(weights)
    # the last row of a repeated (time, node, item) wins, as TGB's dictionary assignment
    unique, last_rev = np.unique(all_keys[::-1], return_index=True)
    weight = all_weights[::-1][last_rev]
    step, node, item = unpack(unique)
    row_key = step * (1 << _BITS) + node
    starts = np.flatnonzero(np.r_[True, row_key[1:] != row_key[:-1]])
    indptr = np.append(starts, unique.size).astype(np.int64)
    return NodeProperties(times=times, row_step=step[starts], row_node=node[starts], indptr=indptr, index=item,
                          weight=weight, step_events=np.empty(0, dtype=np.int64), dim=dim)


def _line_of(path: Path, row: int) -> int | None:
    """The line number of data row ``row`` (0-based, after the header) as the csv module counts lines."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        seen = -1
        for record in reader:
            seen += bool(record)
            if seen == row:
                return reader.line_num
    return None


# --------------------------------------------------------------------------- the reader


def parse(cfg: Any, folder: Path) -> TemporalGraph:
    """Both files -> a ``TemporalGraph`` (features empty) with the property rows in ``meta``."""
    name = str(cfg.name)
    fmt = tgb_format(cfg)
    chunk_rows = int(cfg.chunk_rows)
    if chunk_rows < 1:
        raise ValueError(f"dataset.chunk_rows must be >= 1, got {chunk_rows}")
    edges_path, labels_path = (folder / f for f in tgb_files(name))
    times = label_times(labels_path, chunk_rows)
    edges = read_edges(edges_path, fmt, times, chunk_rows)
    if fmt.bipartite:
        dim = len(edges.items)
        offset = dim if fmt.user_offset is None else fmt.user_offset
        if dim > offset:
            raise DataFormatError(edges_path, None, f"{dim} distinct items overlap the user ids, which start at "
                                                    f"{offset} in the {fmt.name} format")
        num_nodes = offset + len(edges.nodes)
    else:
        dim = offset = 0
        num_nodes = dim = len(edges.nodes)
    props = read_labels(labels_path, fmt, times, edges, offset, dim, chunk_rows)
    num_steps = times.size + int(edges.step_events[-1] > 0)
    props.step_events = edges.step_events[:num_steps]
    limit = guards.max_steps(cfg)
    if num_steps > limit:
        raise guards.TooLargeError(f"{name}: {num_steps} label times exceed dataset.max_steps={limit} (one snapshot "
                                   f"per label time); raise dataset.max_steps if that many are meant")
    step, u, v = unpack(edges.keys)
    if fmt.bipartite:
        u = u + offset
    guards.require(f"{name}: building {num_steps} snapshots of {num_nodes} nodes",
                   guards.snapshot_build_bytes(num_steps, num_nodes, int(step.size)), None,
                   "use a machine with more memory")
    node_names = np.full(num_nodes, "", dtype=object)
    if fmt.bipartite:
        node_names[:dim] = edges.items.names
        node_names[offset:] = edges.nodes.names
    else:
        node_names[:] = edges.nodes.names
    meta = {
        "interactions": int(edges.step_events.sum()),
        "unique_edges": int(step.size),
        "raw_steps": num_steps,
        "format": fmt.name,
        "node_names": node_names.astype(str),
        "edge_keys": pack(step, u, v),
        "edge_weights": edges.sums,
        **props.to_meta(),
    }
    return TemporalGraph(name=name, num_nodes=num_nodes, num_steps=num_steps, features=torch.empty(0),
                         labels=torch.full((num_nodes,), -1, dtype=torch.int64), num_classes=dim, meta=meta,
                         **build_structure(u, v, step, num_nodes, num_steps))


def own_features(graph: TemporalGraph, cfg: Any) -> np.ndarray:
    """``dataset.features=labels|weights`` as a standardised [T, N, C] array (``dataset.feature_dtype``)."""
    from spikenet.data.features.arrays import feature_dtype

    choice = str(cfg.features)
    props = NodeProperties.from_meta(graph.meta)
    dtype = feature_dtype(str(cfg.feature_dtype))
    shape = (graph.num_steps, graph.num_nodes, props.dim)
    guards.check_features(cfg, f"{choice} features", shape, np.dtype(dtype).itemsize, None)
    out = np.zeros(shape, dtype=dtype)
    if choice == "labels":
        props.history_features(graph.num_steps, graph.num_nodes, out=out, dtype=dtype)
    else:
        step, u, v = unpack(np.asarray(graph.meta["edge_keys"]))
        step_weight_features(u, v, step, np.asarray(graph.meta["edge_weights"]), graph.num_steps, graph.num_nodes,
                             props.dim, out=out, dtype=dtype)
    return standardize_per_step(out, out=out, source=f"{graph.name} {choice} features")


@READERS.register(READER)
def read_tgbn(cfg: Any) -> TemporalGraph:
    """A TGB node-property dataset (see the module docstring); parsed once, then from the cache."""
    folder = ensure_files(cfg)
    sources = [folder / f for f in tgb_files(str(cfg.name))]
    graph = cache.load_graph(cfg, READER, folder, sources) if cache.enabled(cfg) else None
    if graph is None:
        graph = parse(cfg, folder)
        if cache.enabled(cfg):
            cache.save_graph(graph, cfg, READER, folder, sources)
    if str(cfg.features) in OWN_FEATURES:
        graph.features = torch.from_numpy(own_features(graph, cfg))
    return graph
