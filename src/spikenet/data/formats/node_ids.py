"""Node ids of a user's files -> 0..N-1, and back.

Edge lists name nodes by whatever their source uses: dense integers, sparse or negative integers, or
strings (``user_42``). ``index_nodes`` keeps dense non-negative integers as they are (node ``u`` is row
``u``) and otherwise renumbers the ids that occur to 0..N-1 in sorted order (numeric order for integers,
code-point order for strings), keeping ``node_ids[compact] = original`` for the outputs. Strings are
indexed with one dict pass (linear time; ``np.unique`` on long unicode arrays is several times slower),
then only the distinct ids are sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPACT_CHOICES = ("auto", "true", "false")
# auto renumbers non-negative integer ids when fewer than this share of 0..max occur (each unused id would be
# an isolated node in every [T, N] array); denser ids are kept as they are (node u is id u), so that a label
# file may name nodes of 0..max that have no interaction.
SPARSE_SHARE = 0.5


@dataclass
class NodeIndex:
    """Compact ids of the endpoints and the original id of every compact id (None: ids kept as given)."""

    src: np.ndarray  # int64 [E]
    dst: np.ndarray  # int64 [E]
    num_nodes: int
    node_ids: np.ndarray | None  # [N] int64 or str; None when node u is original id u
    reason: str  # why ids were (not) renumbered, for the log


def compact_choice(value: object) -> str:
    """``dataset.compact``: auto | true | false (booleans accepted)."""
    text = "auto" if value is None else str(value).lower()
    if text not in COMPACT_CHOICES:
        raise ValueError(f"dataset.compact must be auto, true or false, got '{value}'")
    return text


def as_int_ids(tokens: np.ndarray) -> np.ndarray | None:
    """String tokens as int64 when every one is an integer, else None."""
    if tokens.dtype.kind in "iu":
        return tokens.astype(np.int64, copy=False)
    try:
        return tokens.astype(np.int64)
    except (ValueError, OverflowError):
        return None


def _index_strings(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct strings, compact id of every token) in linear time plus a sort of the distinct."""
    first: dict[str, int] = {}
    codes = np.fromiter((first.setdefault(t, len(first)) for t in tokens.tolist()), dtype=np.int64,
                        count=tokens.size)
    distinct = np.array(list(first), dtype=str) if first else np.empty(0, dtype=str)
    order = np.argsort(distinct, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return distinct[order], rank[codes]


def index_nodes(src: np.ndarray, dst: np.ndarray, compact: str = "auto") -> NodeIndex:
    """Endpoints (int64 or string tokens) -> compact ids. ``compact``: true renumbers always, false never
    (ids must then be non-negative integers), auto when ids are strings, negative or sparse."""
    e = src.size
    ints_src, ints_dst = as_int_ids(src), as_int_ids(dst)
    if ints_src is not None and ints_dst is not None:
        both = np.concatenate([ints_src, ints_dst])
        lo, hi = (int(both.min()), int(both.max())) if both.size else (0, -1)
        if compact == "false":
            return NodeIndex(ints_src, ints_dst, hi + 1, None, "integer ids kept (dataset.compact=false)")
        if compact == "auto" and lo >= 0:
            used = int(np.count_nonzero(np.bincount(both))) if hi < 8 * both.size + 1024 else np.unique(both).size
            if used >= SPARSE_SHARE * (hi + 1):
                unused = hi + 1 - used
                note = (f"; {unused} of ids 0..{hi} in no edge, isolated nodes (dataset.compact=true drops them)"
                        if unused else "")
                return NodeIndex(ints_src, ints_dst, hi + 1, None, f"integer ids kept (node u is id u{note})")
        distinct, inverse = np.unique(both, return_inverse=True)
        why = "negative ids occur" if lo < 0 else (
            "dataset.compact=true" if compact == "true" else f"sparse: {distinct.size} of 0..{hi} occur")
        reason = f"{distinct.size} distinct integer ids renumbered 0..{distinct.size - 1} in numeric order ({why})"
        return NodeIndex(inverse[:e], inverse[e:], int(distinct.size), distinct, reason)
    tokens = np.concatenate([src.astype(str), dst.astype(str)])
    distinct, inverse = _index_strings(tokens)
    reason = f"{distinct.size} distinct string ids renumbered 0..{distinct.size - 1} in sorted order"
    return NodeIndex(inverse[:e], inverse[e:], int(distinct.size), distinct, reason)


def lookup(index: NodeIndex, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(compact id, known) of label-file node tokens; ``known`` false where the id is not a node of the edge
    file (compact id 0 there)."""
    n = tokens.size
    if index.node_ids is None:
        ids = as_int_ids(tokens)
        if ids is None:
            known = np.zeros(n, dtype=bool)
            ints = np.zeros(n, dtype=np.int64)
            for i, t in enumerate(tokens.tolist()):  # only the integer tokens can name a node
                try:
                    ints[i] = int(t)
                    known[i] = True
                except ValueError:
                    pass
            ids = ints
        else:
            known = np.ones(n, dtype=bool)
        known &= (ids >= 0) & (ids < index.num_nodes)
        return np.where(known, ids, 0), known
    table = index.node_ids
    if table.dtype.kind in "iu":
        keys = as_int_ids(tokens)
        if keys is None:  # a non-integer token cannot name an integer id; match the integer ones
            keys = np.array([_int_or(t, table.min() - 1 if table.size else -1) for t in tokens.tolist()],
                            dtype=np.int64)
    else:
        keys = tokens.astype(str)
    pos = np.searchsorted(table, keys)
    pos = np.minimum(pos, max(table.size - 1, 0))
    known = table[pos] == keys if table.size else np.zeros(n, dtype=bool)
    return np.where(known, pos, 0), known


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return int(default)
