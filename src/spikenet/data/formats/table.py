"""Delimited text tables of the generic readers (edge lists, label files): format sniffing and fast parsing.

A user's file may be whitespace-, comma-, tab- or semicolon-separated, quote its fields (CSV style,
``"a,b"`` and ``""`` inside quotes), carry ``#`` comments, a header line and more columns than are
read. ``sniff`` decides the format from the first lines (``dataset.delimiter``, ``dataset.header``);
``read_columns`` parses the whole file with numpy's C parser (typed first, strings when that fails)
and only rescans line by line to name the first bad line. Every error is one line naming the file,
the line and the ``dataset.*`` key that changes how the file is read.

Header detection (``dataset.header=auto``) never takes a line for a header merely because it is not
numeric: the first line is a header only when it does not parse like the lines after it (text in a
column whose other values are all numbers, or a text shape none of them has), and what was decided is
logged with the override that reverses it.
"""

from __future__ import annotations

import csv
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikenet.data.formats.parsing import DataFormatError

log = logging.getLogger(__name__)

SAMPLE_LINES = 1000  # lines looked at to decide the delimiter and the header
DELIMITERS = {"auto": "auto", "whitespace": None, "space": None, "comma": ",", "tab": "\t", "semicolon": ";"}
_DIGIT = re.compile(r"[0-9]")
MIN_BODY = 3  # the digit rule needs this many lines after the first


@dataclass(frozen=True)
class TableFormat:
    """How a table file is read: its delimiter (None: runs of whitespace), quote and comment characters,
    the physical line of its header (None: no header) and what the reader calls it in messages."""

    path: Path
    delimiter: str | None
    quote: str | None
    comments: str | None
    header_line: int | None
    columns: tuple[str, ...]  # names of the columns read, for messages ("src", "dst", "time")
    positions: tuple[int, ...] = ()  # 0-based field of each of ``columns`` (default: the first ones, in order)

    @property
    def usecols(self) -> tuple[int, ...]:
        return self.positions or tuple(range(len(self.columns)))

    def where(self) -> str:
        """``'src dst time'`` / ``'src dst time' in fields 2, 3, 1``, for messages."""
        names = "'" + " ".join(self.columns) + "'"
        if self.usecols == tuple(range(len(self.columns))):
            return names
        return f"{names} in fields {', '.join(str(p + 1) for p in self.usecols)}"

    @property
    def skiprows(self) -> int:
        return self.header_line or 0

    def describe(self) -> str:
        """``split at ','`` / ``split at whitespace``, for messages."""
        return "split at whitespace" if self.delimiter is None else f"split at {self.delimiter!r}"


def delimiter_choice(value: object) -> str | None:
    """``dataset.delimiter`` -> 'auto', None (whitespace) or the one character to split at."""
    text = "auto" if value is None else str(value)
    if text in DELIMITERS:
        return DELIMITERS[text]
    if text == "\\t":
        return "\t"
    if len(text) != 1 or text in "\"#\n\r":
        raise ValueError(
            f"dataset.delimiter must be auto, whitespace, comma, tab, semicolon or one character, got '{text}'"
        )
    return text


def header_choice(value: object) -> str:
    """``dataset.header`` -> 'auto' | 'true' | 'false'."""
    text = str(value).lower() if value is not None else "auto"
    if text not in ("auto", "true", "false"):
        raise ValueError(f"dataset.header must be auto, true or false, got '{value}'")
    return text


def data_lines(path: Path, comments: str | None = "#", start: int = 0) -> Iterator[tuple[int, str]]:
    """(1-based physical line number, text) of every line that holds data: not blank once a comment is cut
    off, and after physical line ``start`` (a header)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        for number, line in enumerate(f, start=1):
            if number <= start:
                continue
            text = _uncomment(line, comments)
            if text.strip():
                yield number, line.rstrip("\r\n")


def _uncomment(line: str, comments: str | None) -> str:
    """The line without its comment; a comment character inside quotes does not start one."""
    if not comments or comments not in line:
        return line
    if '"' not in line:
        return line.split(comments, 1)[0]
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == comments and not quoted:
            return line[:i]
    return line


def split_fields(line: str, delimiter: str | None, quote: str | None, comments: str | None = "#") -> list[str]:
    """The fields of one line as the fast parser sees them (quotes removed, fields stripped)."""
    line = _uncomment(line, comments).rstrip("\r\n")
    if quote and quote in line:
        if delimiter is None:
            row = next(csv.reader([line.replace("\t", " ").strip()], delimiter=" ", quotechar=quote,
                                  skipinitialspace=True))
            return [f for f in row if f != ""]
        row = next(csv.reader([line], delimiter=delimiter, quotechar=quote, skipinitialspace=True))
        return [f.strip() for f in row]
    if delimiter is None:
        return line.split()
    return [f.strip() for f in line.split(delimiter)]


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a finite or infinite float (what a numeric column holds)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sniff_delimiter(lines: list[str], ncols: int, quote: str | None, comments: str | None) -> str | None:
    """',' '\\t' ';' or '|' when every sampled line splits into at least ``ncols`` fields at it (the first
    such in that order), else whitespace."""
    for cand in (",", "\t", ";", "|"):
        if all(cand in _uncomment(line, comments) for line in lines) and all(
            len(split_fields(line, cand, quote, comments)) >= ncols for line in lines
        ):
            return cand
    return None


def _header_reason(sample: list[list[str]], columns: Sequence[str], positions: Sequence[int]) -> str | None:
    """Why the first sampled row is a header, or None when it parses like the rows after it: a column whose
    later values are all numbers has text in row 1, or (with at least ``MIN_BODY`` later rows) a column
    whose later values all contain a digit has none in row 1 (``user_7`` ids or ISO dates under ``user``
    or ``date``)."""
    first, body = sample[0], sample[1:]
    for rule in ("number", "digit"):
        if rule == "digit" and len(body) < MIN_BODY:
            break
        for c, name in zip(positions, columns, strict=True):
            values = [row[c] for row in body if len(row) > c]
            if c >= len(first) or not values or is_number(first[c]):
                continue
            token = first[c]
            if rule == "number" and all(is_number(v) for v in values):
                return f"its {name} field {token!r} is text where the lines after it have numbers"
            if rule == "digit" and not _DIGIT.search(token) and all(_DIGIT.search(v) for v in values):
                return f"its {name} field {token!r} has no digit where every line after it has one"
    return None


def selection(select: object, columns: Sequence[str], key: str) -> list[int] | list[str]:
    """A ``dataset.columns``-style value: None -> the first fields in order; else one 0-based field number or
    one header name per column."""
    if select is None:
        return list(range(len(columns)))
    chosen = list(select)  # type: ignore[call-overload]
    if len(chosen) != len(columns):
        raise ValueError(f"{key} must list {len(columns)} fields ({' '.join(columns)}) as 0-based numbers or "
                         f"header names, got {chosen}")
    if all(isinstance(c, int) and not isinstance(c, bool) for c in chosen):
        if min(chosen) < 0 or len(set(chosen)) != len(chosen):
            raise ValueError(f"{key} must be distinct field numbers >= 0, got {chosen}")
        return chosen
    return [str(c) for c in chosen]


def sniff(path: Path, what: str, columns: Sequence[str], delimiter: object = "auto", header: object = "auto",
          comments: str | None = "#", header_key: str = "dataset.header", select: object = None,
          select_key: str = "dataset.columns") -> TableFormat:
    """Decide how ``path`` (the ``what`` file: edge, label) is read: delimiter, quoting, header (auto, or as
    ``dataset.delimiter`` / ``dataset.header`` say) and the fields holding ``columns`` (``select``: field
    numbers or header names, e.g. ``dataset.columns``); logs the header decision."""
    wanted = selection(select, columns, select_key)
    by_name = isinstance(wanted[0], str)
    sample = []
    for item in data_lines(path, comments):
        sample.append(item)
        if len(sample) >= SAMPLE_LINES:
            break
    if not sample:
        raise DataFormatError(path, None, f"empty {what} file; expected lines '{' '.join(columns)}'")
    texts = [line for _, line in sample]
    quote = '"' if any('"' in line for line in texts) else None
    choice = delimiter_choice(delimiter)
    ncols = len(columns) if by_name else max(int(c) for c in wanted) + 1
    sep = _sniff_delimiter(texts[:50], ncols, quote, comments) if choice == "auto" else choice
    first_number, first_text = sample[0]
    mode = header_choice(header)
    name = path.name
    if by_name:
        if mode == "false":
            raise ValueError(f"{select_key} names header fields {wanted}, but {header_key}=false says {name} has "
                             "no header; give 0-based field numbers instead")
        fields = split_fields(first_text, sep, quote, comments)
        missing = [c for c in wanted if c not in fields]
        if missing:
            raise DataFormatError(path, first_number, f"expected a header naming {', '.join(map(repr, missing))} "
                                                      f"({select_key}), got {fields}")
        positions = tuple(fields.index(str(c)) for c in wanted)
        return TableFormat(path, sep, quote, comments, first_number, tuple(columns), positions)
    positions = tuple(int(c) for c in wanted)
    fmt_args = dict(path=path, delimiter=sep, quote=quote, comments=comments, columns=tuple(columns),
                    positions=positions)
    if mode == "true":
        return TableFormat(header_line=first_number, **fmt_args)
    if mode == "false":
        return TableFormat(header_line=None, **fmt_args)
    rows = [split_fields(line, sep, quote, comments) for line in texts]
    reason = _header_reason(rows, columns, positions)
    if reason is not None:
        log.info("%s: line %d %s read as a header: %s (%s=false reads it as data)",
                 name, first_number, _short(first_text), reason, header_key)
        return TableFormat(header_line=first_number, **fmt_args)
    log.info("%s: no header line (line %d parses like the lines after it; %s=true skips it)",
             name, first_number, header_key)
    return TableFormat(header_line=None, **fmt_args)


def _short(text: str, limit: int = 60) -> str:
    text = text.rstrip("\r\n")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def row_lines(fmt: TableFormat, rows: Sequence[int]) -> dict[int, int]:
    """Physical line numbers of the given 0-based data rows (one pass over the file)."""
    wanted = set(int(r) for r in rows)
    out: dict[int, int] = {}
    if not wanted:
        return out
    last = max(wanted)
    for i, (number, _) in enumerate(data_lines(fmt.path, fmt.comments, fmt.skiprows)):
        if i in wanted:
            out[i] = number
        if i >= last:
            break
    return out


def row_line(fmt: TableFormat, row: int) -> int | None:
    """Physical line number of one 0-based data row."""
    return row_lines(fmt, [row]).get(int(row))


def _loadtxt(fmt: TableFormat, dtype: object, usecols: Sequence[int]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": emptiness is reported by us
        return np.loadtxt(fmt.path, dtype=dtype, delimiter=fmt.delimiter, quotechar=fmt.quote,
                          comments=fmt.comments, skiprows=fmt.skiprows, usecols=tuple(usecols), ndmin=1,
                          encoding="utf-8-sig")


def rescan(fmt: TableFormat, key_hint: str) -> None:
    """Name the first line with fewer fields than the columns read (raises ``DataFormatError``); returns when
    every line has them."""
    need = max(fmt.usecols) + 1
    for number, line in data_lines(fmt.path, fmt.comments, fmt.skiprows):
        fields = split_fields(line, fmt.delimiter, fmt.quote, fmt.comments)
        if len(fields) < need:
            hint = key_hint
            if fmt.comments and fmt.comments in line:
                hint += f"; a {fmt.comments!r} starts a comment (dataset.comments=null if it is data)"
            raise DataFormatError(
                fmt.path, number,
                f"expected {need} fields {fmt.where()} ({fmt.describe()}), got {len(fields)}: "
                f"{_short(line)}; {hint}",
            )


def read_text_columns(fmt: TableFormat, usecols: Sequence[int], key_hint: str) -> np.ndarray:
    """Columns ``usecols`` of every data row as strings, [rows, len(usecols)]; quotes removed and fields
    stripped (numpy sizes the strings to the longest field)."""
    try:
        table = _loadtxt(fmt, str, usecols)
    except ValueError as err:
        rescan(fmt, key_hint)
        raise DataFormatError(fmt.path, None, f"could not split the rows ({fmt.describe()}): {err}; {key_hint}"
                              ) from err
    table = table.reshape(-1, len(usecols)) if table.size else np.empty((0, len(usecols)), dtype=str)
    if fmt.delimiter is not None:
        table = np.char.strip(table)
    return table


def read_typed_columns(fmt: TableFormat, dtype: list[tuple[str, str]], usecols: Sequence[int]) -> np.ndarray | None:
    """The fast path: columns parsed straight into numbers (structured ``dtype``), or None when some field
    does not parse (the caller then reads text)."""
    try:
        return _loadtxt(fmt, dtype, usecols)
    except ValueError:
        return None
