"""Time stamps of a user's edge list -> snapshot steps.

A stamp column is numeric (any float: seconds, days, years), ISO dates or date-times
(``2021-03-01``, ``2021-03-01 10:00:00``; read as seconds, so they can be binned), or any other
sortable string (then only its distinct values, in string order, make the steps). Steps are either
every distinct stamp (``dataset.merge`` consecutive ones merged) or ``dataset.time_bins`` equal-width
bins over the stamps' range.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class Stamps:
    """Stamp values (float64 for numeric and date stamps, str otherwise) and their kind."""

    values: np.ndarray
    kind: str  # numeric | datetime | string

    @property
    def numeric(self) -> bool:
        return self.kind != "string"

    def describe_range(self) -> str:
        """``5.0..7.5`` / ``2021-01-01T00:00:00..2021-03-01T00:00:00``, for messages."""
        if self.values.size == 0:
            return "none"
        lo, hi = self.values.min(), self.values.max()
        if self.kind == "datetime":
            lo, hi = (np.datetime64(int(v), "s") for v in (lo, hi))
        elif self.kind == "numeric":
            lo, hi = (int(v) if float(v).is_integer() else f"{v:g}" for v in (lo, hi))
        return f"{lo}..{hi}"


def as_datetime_seconds(tokens: np.ndarray) -> np.ndarray | None:
    """ISO dates / date-times as float seconds since 1970, or None when some token is not one (a bare
    number is not taken for a year)."""
    if tokens.size == 0 or not np.char.count(tokens[: min(tokens.size, 1000)], "-").all():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # time-zone suffixes: numpy converts them to UTC and warns
            values = tokens.astype("datetime64[s]")
    except (ValueError, OverflowError):
        return None
    if np.isnat(values).any():
        return None
    return values.astype(np.int64).astype(np.float64)


def parse_stamps(tokens: np.ndarray) -> Stamps:
    """Text tokens -> numeric, datetime or string stamps (numbers first, then ISO dates)."""
    if tokens.dtype.kind == "f":
        return Stamps(tokens.astype(np.float64, copy=False), "numeric")
    try:
        return Stamps(tokens.astype(np.float64), "numeric")
    except ValueError:
        pass
    seconds = as_datetime_seconds(tokens)
    if seconds is not None:
        return Stamps(seconds, "datetime")
    return Stamps(tokens, "string")


def first_non_numeric(tokens: np.ndarray) -> int | None:
    """Row of the first token that is not a number (for the error naming it), None if all are."""
    for i, t in enumerate(tokens.tolist()):
        try:
            float(t)
        except ValueError:
            return i
    return None


def bin_stamps(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins 0..bins-1 over [min, max] of numeric stamps (the maximum goes into the last bin)."""
    if bins < 1:
        raise ValueError(f"dataset.time_bins must be >= 1, got {bins}")
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return np.zeros(values.size, dtype=np.int64)
    out = np.floor((values - lo) / (hi - lo) * bins).astype(np.int64)
    return np.minimum(out, bins - 1)


def distinct_steps(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(step of every stamp, number of distinct stamps): the sorted distinct stamps are steps 0..T-1."""
    distinct, step = np.unique(values, return_inverse=True)
    return step.astype(np.int64).reshape(-1), int(distinct.size)


def empty_steps(step: np.ndarray, num_steps: int, keep: np.ndarray | None = None) -> int:
    """How many of ``num_steps`` steps receive no interaction (``keep``: which interactions count)."""
    used = step if keep is None else step[keep]
    return int(num_steps - np.unique(used).size) if num_steps else 0
