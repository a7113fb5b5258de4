"""Node-classification scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(Macro-F1, Micro-F1)."""
    return (
        float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
    )
