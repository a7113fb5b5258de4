"""Link-prediction metrics from a score table: AP and AUC-ROC (DyGLib's form) and MRR (TGB's form).

Each row of the table is one positive edge: column 0 its score, columns 1..K the scores of its K
negatives (the same source with K other destinations). AP and AUC-ROC are scikit-learn's, over the
positives against their first negatives, one negative per positive as DyGLib evaluates them, so a
random scorer gets 0.5 on both. MRR ranks each positive among its own 1 + K candidates as TGB's
evaluator does: rank = (optimistic + pessimistic) / 2 with optimistic = 1 + #(neg > pos) and
pessimistic = 1 + #(neg >= pos), so ties cost half a place each (a scorer that ties everything,
such as an EdgeBank that never saw the pair, gets rank (K + 2) / 2, not 1).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

LINK_METRICS = ("ap", "auc", "mrr")


def check_score_table(scores: np.ndarray) -> np.ndarray:
    """``scores`` as a float64 [P, 1 + K] array with K >= 1 (a clear error for any other shape)."""
    table = np.asarray(scores, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"expected a [positives, 1 + negatives] score table with at least one negative, "
                         f"got shape {table.shape}")
    return table


def reciprocal_ranks(scores: np.ndarray) -> np.ndarray:
    """1 / rank of each row's positive (column 0) among the row's candidates, TGB's tie rule."""
    table = check_score_table(scores)
    pos, neg = table[:, :1], table[:, 1:]
    optimistic = 1.0 + (neg > pos).sum(axis=1)
    pessimistic = 1.0 + (neg >= pos).sum(axis=1)
    return 1.0 / (0.5 * (optimistic + pessimistic))


def link_scores(scores: np.ndarray) -> dict[str, float]:
    """``{"ap", "auc", "mrr"}`` of a score table (NaN for all three when it has no rows)."""
    table = check_score_table(scores)
    if table.shape[0] == 0:
        return {m: float("nan") for m in LINK_METRICS}
    y_true = np.r_[np.ones(table.shape[0]), np.zeros(table.shape[0])]
    y_score = np.r_[table[:, 0], table[:, 1]]
    return {"ap": float(average_precision_score(y_true, y_score)), "auc": float(roc_auc_score(y_true, y_score)),
            "mrr": float(reciprocal_ranks(table).mean())}
