"""Human labels for metric keys and reference predictors, and whether a score reads as a percentage.

Metric names are a task's bare names (``micro_f1``, ``ap``, ``ndcg@10``); ``metrics.json`` holds them per
split as ``<split>_<name>``. A label is built from the split and the name, so a new task's metrics get
readable labels without a table entry (unknown names are shown as they are).
"""

from __future__ import annotations

# bare name (before any @k) -> (long label, short label for table headers)
NAMES = {
    "macro_f1": ("Macro-F1", "Ma-F1"),
    "micro_f1": ("Micro-F1", "Mi-F1"),
    "f1": ("F1", "F1"),
    "accuracy": ("accuracy", "acc."),
    "acc": ("accuracy", "acc."),
    "ap": ("AP", "AP"),
    "auc": ("AUC", "AUC"),
    "roc_auc": ("ROC-AUC", "ROC-AUC"),
    "mrr": ("MRR", "MRR"),
    "ndcg": ("NDCG", "NDCG"),
    "hits": ("Hits", "Hits"),
    "recall": ("recall", "recall"),
    "precision": ("precision", "precision"),
    "map": ("MAP", "MAP"),
}
# bare names whose values are fractions in [0, 1], shown in % (others, e.g. an error, are shown as they are)
FRACTIONS = {"macro_f1", "micro_f1", "f1", "accuracy", "acc", "ap", "auc", "roc_auc", "mrr", "ndcg", "hits",
             "recall", "precision", "map"}
SPLITS = ("train", "val", "test")

# reference predictors a task writes under metrics.json's ``baselines`` -> label in reports
PREDICTORS = {
    "majority": "majority class",
    "chance": "chance (training class frequencies)",
    "edgebank": "EdgeBank",
    "persistence": "persistence",
    "moving_average": "moving average",
}


def split_key(key: str) -> tuple[str, str]:
    """``test_micro_f1`` -> (``test``, ``micro_f1``); a key without a split prefix -> (``""``, key)."""
    split, sep, name = key.partition("_")
    return (split, name) if sep and name and split in SPLITS else ("", key)


def _base(name: str) -> tuple[str, str]:
    """``ndcg@10`` -> (``ndcg``, ``@10``)."""
    base, at, k = name.partition("@")
    return base, f"@{k}" if at else ""


def metric_name(name: str, short: bool = False) -> str:
    """``micro_f1`` -> ``Micro-F1`` (``Mi-F1`` when ``short``), ``ndcg@10`` -> ``NDCG@10``; unknown names unchanged."""
    base, k = _base(name)
    if base not in NAMES:
        return name
    return NAMES[base][1 if short else 0] + k


def is_fraction(key: str) -> bool:
    """Whether the metric (bare or ``<split>_`` key) is a score in [0, 1] that reports show in %."""
    return _base(split_key(key)[1])[0] in FRACTIONS


def scale(key: str) -> float:
    """The factor from ``metrics.json``'s value to the value shown: 100 for fractions, else 1."""
    return 100.0 if is_fraction(key) else 1.0


def metric_label(key: str, short: bool = False) -> str:
    """``test_ap`` -> ``test AP``; ``val_micro_f1`` -> ``val Micro-F1`` (``val Mi-F1`` when ``short``)."""
    split, name = split_key(key)
    return f"{split} {metric_name(name, short)}".strip()


def column_header(key: str) -> str:
    """A table header: ``test AP (%)``, ``test NDCG@10 (%)``, ``val Mi-F1 (%)``."""
    return metric_label(key, short=True) + (" (%)" if is_fraction(key) else "")


def axis_label(key: str) -> str:
    """A figure axis: ``test Micro-F1 (%)``."""
    return metric_label(key) + (" (%)" if is_fraction(key) else "")


def predictor_label(name: str) -> str:
    """``majority`` -> ``majority class``; unknown predictors keep their name."""
    return PREDICTORS.get(name, name)
