"""Fast, strict parsing of the dataset text formats (docs/data.md).

Every reader parses vectorised (``np.loadtxt``'s C parser, or one ``bytes.translate`` for JSON
lines) and only when that fails, or a vectorised check finds a bad row, rescans the file line by
line to name the offending line. Errors are one line: ``<file>:<line>: expected ..., got ...``.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REFERENCE_HINT = (
    "the full datasets are linked from the SpikeNet reference repository's README "
    "(github.com/EdisonLeeeee/SpikeNet); DBLP ships with this project in data/dblp, "
    "the default dataset.root (`python src/run.py dataset=dblp`)"
)


class DataFormatError(ValueError):
    """Malformed dataset input; the message names the file, the line (if any) and what was expected."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line = Path(path), line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is missing; the message names the expected files and where to get them."""

    def __str__(self) -> str:  # FileNotFoundError would prefix an errno; keep our one line
        return str(self.args[0])


def _short(text: str, limit: int = 60) -> str:
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def require_files(folder: Path, name: str, required: list[str], optional: tuple[str, ...] = ()) -> None:
    """Stop with one line naming the expected files and the place when the folder or a file is missing."""
    expected = ", ".join(required) + (f" (optional {', '.join(optional)})" if optional else "")
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"{name}: dataset folder {folder} not found; expected {expected} there; {REFERENCE_HINT}"
        )
    missing = [f for f in required if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: missing {', '.join(missing)} in {folder}; expected {expected}; {REFERENCE_HINT}"
        )


def data_lines(
    path: Path, skip_header: bool = False, comments: str | None = "#"
) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without comment) of every data line, as ``np.loadtxt`` sees them."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if skip_header and number == 1:
                continue
            if comments is not None:
                line = line.split(comments, 1)[0]
            if line.strip():
                yield number, line


def line_of_row(path: Path, row: int, skip_header: bool = False) -> int:
    """Physical line number of data row ``row`` (0-based), counting blank and comment lines."""
    for i, (number, _) in enumerate(data_lines(path, skip_header)):
        if i == row:
            return number
    return -1


def _split(line: str, delimiter: str | None) -> list[str]:
    return [f.strip() for f in line.split(delimiter)] if delimiter else line.split()


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@dataclass
class EdgeTable:
    """Parsed ``src dst time`` rows: int64 ids, float64 (or str) stamps, and how the file was read."""

    src: np.ndarray
    dst: np.ndarray
    time: np.ndarray
    path: Path
    delimiter: str | None
    skip_header: bool

    def line(self, row: int) -> int:
        return line_of_row(self.path, row, self.skip_header)


def _rescan_edges(
    path: Path, delimiter: str | None, skip_header: bool, exact: bool, numeric_time: bool
) -> None:
    """Find the first bad line of an edge file and raise a ``DataFormatError`` naming it."""
    fmt = "'src dst time'" + ("" if exact else " (extra columns allowed)")
    for number, line in data_lines(path, skip_header):
        fields = _split(line, delimiter)
        if len(fields) < 3 or (exact and len(fields) != 3):
            raise DataFormatError(path, number, f"expected 3 fields {fmt}, got {len(fields)}: {_short(line)}")
        for which, text in (("src", fields[0]), ("dst", fields[1])):
            if not _is_int(text) or int(text) < 0:
                raise DataFormatError(
                    path, number, f"expected a non-negative integer node id as {which}, got {_short(text)}"
                )
        if numeric_time:
            try:
                value = float(fields[2])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataFormatError(path, number, f"expected a numeric time stamp, got {_short(fields[2])}")


def _loadtxt(path: Path, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # "input contained no data": we report emptiness ourselves
        return np.loadtxt(path, ndmin=1, encoding="utf-8", **kwargs)


def read_edge_file(
    path: Path,
    *,
    exact: bool = True,
    time_kind: str = "numeric",
    delimiter: str | None = None,
    skip_header: bool = False,
) -> EdgeTable:
    """Parse ``src dst time`` rows (``exact``: exactly 3 fields); ``time_kind``: numeric | auto (str else)."""
    usecols = None if exact else (0, 1, 2)
    kwargs = {"delimiter": delimiter, "skiprows": 1 if skip_header else 0, "usecols": usecols}
    try:
        table = _loadtxt(path, dtype=[("s", "i8"), ("d", "i8"), ("t", "f8")], **kwargs)
        numeric = True
    except ValueError as err:
        if time_kind != "auto":
            _rescan_edges(path, delimiter, skip_header, exact, numeric_time=True)
            raise DataFormatError(path, None, f"could not parse 'src dst time' rows: {err}") from err
        try:
            table = _loadtxt(path, dtype=[("s", "i8"), ("d", "i8"), ("t", "U64")], **kwargs)
            numeric = False
        except ValueError as err2:
            _rescan_edges(path, delimiter, skip_header, exact, numeric_time=False)
            raise DataFormatError(path, None, f"could not parse 'src dst time' rows: {err2}") from err2
    if table.size == 0:
        raise DataFormatError(path, None, "empty edge file; expected lines 'src dst time'")
    src, dst, stamps = table["s"], table["d"], table["t"]
    edges = EdgeTable(src, dst, stamps, path, delimiter, skip_header)
    bad = np.flatnonzero((src < 0) | (dst < 0))
    if bad.size:
        r = int(bad[0])
        raise DataFormatError(path, edges.line(r), f"expected non-negative node ids, got {src[r]} {dst[r]}")
    if numeric:
        bad = np.flatnonzero(~np.isfinite(stamps))
        if bad.size:
            raise DataFormatError(
                path, edges.line(int(bad[0])), f"expected a finite time stamp, got {stamps[bad[0]]}"
            )
    return edges


def _rescan_labels(path: Path, delimiter: str | None, skip_header: bool) -> None:
    for number, line in data_lines(path, skip_header):
        fields = _split(line, delimiter)
        if len(fields) != 2:
            raise DataFormatError(
                path, number, f"expected 2 fields 'node label', got {len(fields)}: {_short(line)}"
            )
        if not _is_int(fields[0]) or int(fields[0]) < 0:
            raise DataFormatError(
                path, number, f"expected a non-negative integer node id, got {_short(fields[0])}"
            )


def read_label_file(path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """``node label`` rows (whitespace, no header: the reference layouts) -> (int64 node ids, raw label
    strings, header skipped: always False here). Checks fields and ids only; own label files are read by
    ``edgelist.read_labels``."""
    delimiter, skip_header = None, False
    try:
        table = _loadtxt(
            path, dtype=[("n", "i8"), ("l", "U64")], delimiter=delimiter, skiprows=1 if skip_header else 0
        )
    except ValueError as err:
        _rescan_labels(path, delimiter, skip_header)
        raise DataFormatError(path, None, f"could not parse 'node label' rows: {err}") from err
    if table.size == 0:
        raise DataFormatError(path, None, "empty label file; expected lines 'node label'")
    nodes = table["n"]
    bad = np.flatnonzero(nodes < 0)
    if bad.size:
        row = int(bad[0])
        raise DataFormatError(
            path, line_of_row(path, row, skip_header), f"expected a non-negative node id, got {nodes[row]}"
        )
    labels = np.char.strip(table["l"]) if delimiter else table["l"]
    return nodes, labels, skip_header


def encode_labels(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Raw labels -> dense class ids 0..C-1, in numeric order when all are integers, else string order."""
    try:
        keys = raw.astype(np.int64)
    except ValueError:
        keys = raw
    classes, dense = np.unique(keys, return_inverse=True)
    return dense.astype(np.int64), int(classes.size)


def check_label_nodes(
    path: Path, nodes: np.ndarray, num_nodes: int, known: np.ndarray | None = None, skip_header: bool = False
) -> None:
    """Reject label rows naming a node outside the graph (id >= ``num_nodes``, or ``known[row]`` false) and
    nodes named twice; the error names the label file's line."""
    ok = nodes < num_nodes
    if known is not None:
        ok &= known
    bad = np.flatnonzero(~ok)
    if bad.size:
        row = int(bad[0])
        raise DataFormatError(
            path,
            line_of_row(path, row, skip_header),
            f"expected a node of the edge file, got unknown node {nodes[row]}",
        )
    _, first = np.unique(nodes, return_index=True)
    if first.size < nodes.size:
        is_first = np.zeros(nodes.size, dtype=bool)
        is_first[first] = True
        row = int(np.flatnonzero(~is_first)[0])  # the first repeat in file order
        raise DataFormatError(
            path, line_of_row(path, row, skip_header), f"expected each node once, got node {nodes[row]} again"
        )


def require_all_labelled(path: Path, labelled: np.ndarray, name: str) -> None:
    """Every node must have a label (DBLP, Patent): name the first node without one."""
    missing = np.flatnonzero(~labelled)
    if missing.size:
        raise DataFormatError(
            path,
            None,
            f"expected a label for every node of {name}, got none for {missing.size} node(s), "
            f"first node {missing[0]}",
        )


def _json_rescan(path: Path, nfields: int, usecols: tuple[int, ...], int_cols: tuple[int, ...]) -> np.ndarray:
    """Per-line ``json.loads``: exact, slow path when the fast one fails; raises on the first bad line."""
    rows: list[list[float]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(
                    path, number, f"unreadable JSON line ({err.msg}): {_short(line)}"
                ) from None
            if not isinstance(item, list) or len(item) != nfields:
                got = f"{len(item)} fields" if isinstance(item, list) else type(item).__name__
                raise DataFormatError(path, number, f"expected a JSON array of {nfields} fields, got {got}")
            row = []
            for c in usecols:
                v = item[c]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise DataFormatError(
                        path, number, f"expected a number in field {c + 1}, got {_short(repr(v))}"
                    )
                if c in int_cols and (v != int(v) or v < 0):
                    raise DataFormatError(
                        path, number, f"expected a non-negative integer in field {c + 1}, got {v}"
                    )
                row.append(float(v))
            rows.append(row)
    if not rows:
        raise DataFormatError(
            path, None, f"empty file; expected JSON arrays of {nfields} fields, one per line"
        )
    return np.asarray(rows, dtype=np.float64)


def read_json_rows(
    path: Path, nfields: int, usecols: tuple[int, ...], int_cols: tuple[int, ...] = ()
) -> np.ndarray:
    """JSON lines, one flat array of ``nfields`` per line -> float64 [rows, len(usecols)]; never ``eval``.

    Fast path: when every line is one flat array (bracket and comma counts agree), strip the brackets in
    one C call and let ``np.loadtxt`` parse the CSV; anything unusual goes through per-line ``json.loads``,
    which also names the first bad line.
    """
    data = Path(path).read_bytes()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    fast = (
        lines > 0
        and data.count(b"[") == lines
        and data.count(b"]") == lines
        and data.count(b",") == (nfields - 1) * lines
        and b"\n\n" not in data
        and b"{" not in data
    )
    if fast:
        text = data.translate(None, b"[]").decode("utf-8", errors="replace")
        del data
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                out = np.loadtxt(
                    io.StringIO(text),
                    dtype=np.float64,
                    delimiter=",",
                    usecols=usecols,
                    quotechar='"',
                    ndmin=2,
                )
        except ValueError:
            out = None
        if out is not None and out.shape[0] == lines and np.isfinite(out).all():
            cols = [usecols.index(c) for c in int_cols]
            ints = out[:, cols]
            if ((ints == np.floor(ints)) & (ints >= 0)).all():
                return out
    return _json_rescan(path, nfields, usecols, int_cols)
