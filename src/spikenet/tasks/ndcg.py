"""NDCG@10 as TGB scores node-property predictions: its ``Evaluator`` per label time, averaged over label times.

TGB's examples call ``Evaluator.eval`` once per label time on the stacked label vectors of that time's
nodes and average those scores over the label times of a split (``examples/nodeproppred/*``). The
evaluator itself is scikit-learn's ``ndcg_score(y_true, y_pred, k=10)`` (mean over rows, ties
averaged); ``task.evaluator=sklearn`` calls that directly for machines without py-tgb. Rows are
scored in chunks of ``CHUNK_ROWS`` (the score of a label time is the row-weighted mean of its chunks,
which equals the one-call score), so a label time of many nodes never needs one huge dense block.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np

K = 10  # TGB's NDCG cut-off
EVALUATORS = ("tgb", "sklearn")
CHUNK_ROWS = 1 << 15
TGB_HINT = 'pip install -e ".[tgb]" (py-tgb), or task.evaluator=sklearn (the same ndcg_score without py-tgb)'

Scorer = Callable[[np.ndarray, np.ndarray], float]


def check_evaluator(choice: str) -> None:
    """``task.evaluator`` is known and, for ``tgb``, py-tgb is installed (checked before any data is read)."""
    if choice not in EVALUATORS:
        raise ValueError(f"task.evaluator must be one of {', '.join(EVALUATORS)}, got '{choice}'")
    if choice == "tgb" and importlib.util.find_spec("tgb") is None:
        raise ValueError(f"task.evaluator=tgb needs TGB's evaluator: {TGB_HINT}")


def scorer(choice: str, dataset: str) -> Scorer:
    """NDCG@10 of a block of rows: TGB's ``Evaluator`` (for ``dataset``'s name where TGB knows it, else
    tgbn-trade's: every tgbn evaluator is the same NDCG) or scikit-learn's ``ndcg_score``."""
    check_evaluator(choice)
    if choice == "sklearn":
        from sklearn.metrics import ndcg_score

        return lambda y_true, y_pred: float(ndcg_score(y_true, y_pred, k=K))
    from tgb.nodeproppred.evaluate import Evaluator
    from tgb.utils.info import DATA_EVAL_METRIC_DICT

    name = dataset if DATA_EVAL_METRIC_DICT.get(dataset) == "ndcg" else "tgbn-trade"
    evaluator = Evaluator(name=name)

    def tgb_ndcg(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(evaluator.eval({"y_true": y_true, "y_pred": y_pred, "eval_metric": ["ndcg"]})["ndcg"])

    return tgb_ndcg


def block_ndcg(score: Scorer, y_true: np.ndarray, y_pred: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> float:
    """NDCG@10 of all rows (one label time), in chunks of ``chunk_rows`` rows."""
    total = 0.0
    for start in range(0, y_true.shape[0], chunk_rows):
        part = slice(start, start + chunk_rows)
        total += score(y_true[part], y_pred[part]) * y_true[part].shape[0]
    return total / y_true.shape[0]


def mean_over_times(per_time: list[float]) -> float:
    """A split's score: the unweighted mean over its label times (NaN when it has none)."""
    return float(np.mean(per_time)) if per_time else float("nan")
