"""What a run's ``metrics.json`` says about its task: the task's name, its metrics, the selection metric, its
reference predictors' scores.

``src/run.py`` writes ``task``, ``metrics`` (bare names), ``select_metric`` (``val_<name>``) and ``baselines``
(``{predictor: {"<split>_<metric>": value}}``). Runs made before the task layer have none of these: they were
node classification with Macro-/Micro-F1, selected by validation Micro-F1, and are read as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_CLASSIFICATION = "node_classification"


class RunFormatError(ValueError):
    """A ``metrics.json`` whose task fields are not what ``src/run.py`` writes (one line: file, key, expected)."""


@dataclass(frozen=True)
class TaskSpec:
    """A task as the report sees it: ``metrics`` are bare names, ``select`` the ``val_<name>`` key that picks
    the best epoch and the best variant (higher is better)."""

    name: str
    metrics: tuple[str, ...]
    select: str

    @property
    def main(self) -> str:
        """The bare name figures plot: the selection metric's, when the task reports it, else the first metric."""
        chosen = self.select.removeprefix("val_")
        return chosen if chosen in self.metrics else self.metrics[0]

    @property
    def main_test(self) -> str:
        return f"test_{self.main}"

    @property
    def main_val(self) -> str:
        return f"val_{self.main}"

    @property
    def table_columns(self) -> tuple[str, ...]:
        """The score columns of a summary table: every test metric, then the selection metric."""
        return (*(f"test_{m}" for m in self.metrics), self.select)

    @property
    def csv_columns(self) -> tuple[str, ...]:
        """The score columns of ``summary.csv``: every test and every validation metric."""
        vals = [f"val_{m}" for m in self.metrics]
        if self.select not in vals:
            vals.append(self.select)
        return (*(f"test_{m}" for m in self.metrics), *vals)

    @property
    def unit(self) -> str:
        """What one example is, for per-example costs (``SOPs / node``)."""
        return "node" if self.name == NODE_CLASSIFICATION else "example"

    def merged(self, other: TaskSpec) -> TaskSpec:
        """The same task with the metrics of both (first-seen order), for runs whose metric lists differ."""
        return TaskSpec(self.name, tuple(dict.fromkeys((*self.metrics, *other.metrics))), self.select)


LEGACY = TaskSpec(NODE_CLASSIFICATION, ("macro_f1", "micro_f1"), "val_micro_f1")


def _fail(path: Path, key: str, expected: str, got: Any) -> RunFormatError:
    return RunFormatError(f"{path}: key '{key}' should be {expected}, got {got!r}")


def read_task(metrics: dict, path: Path) -> TaskSpec:
    """The task of one run's ``metrics.json`` (``path``, named in errors); old runs are node classification."""
    name = metrics.get("task", NODE_CLASSIFICATION)
    if not isinstance(name, str) or not name:
        raise _fail(path, "task", "a task name (e.g. 'node_classification')", name)
    if "metrics" not in metrics and "select_metric" not in metrics:
        if name == NODE_CLASSIFICATION:
            return LEGACY
        raise RunFormatError(f"{path}: task '{name}' without the key 'metrics' (a list of metric names)")
    names = metrics.get("metrics")
    if not isinstance(names, list) or not names or not all(isinstance(m, str) and m for m in names):
        raise _fail(path, "metrics", "a non-empty list of metric names (e.g. ['ap', 'auc'])", names)
    select = metrics.get("select_metric")
    if not isinstance(select, str) or not select.startswith("val_") or len(select) == len("val_"):
        raise _fail(path, "select_metric", "a validation key 'val_<metric>' (e.g. 'val_micro_f1')", select)
    return TaskSpec(name, tuple(names), select)


def read_baselines(metrics: dict, path: Path) -> dict[str, dict[str, float]]:
    """``{predictor: {"<split>_<metric>": value}}`` of one run (``{}`` when it has none; null scores are NaN)."""
    raw = metrics.get("baselines")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, "baselines", "a mapping {predictor: {'<split>_<metric>': value}}", raw)
    out: dict[str, dict[str, float]] = {}
    for predictor, scores in raw.items():
        if not isinstance(scores, dict):
            raise _fail(path, f"baselines.{predictor}", "a mapping {'<split>_<metric>': value}", scores)
        out[str(predictor)] = {}
        for key, value in scores.items():
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise _fail(path, f"baselines.{predictor}.{key}", "a number or null", value)
            out[str(predictor)][str(key)] = math.nan if value is None else float(value)
    return out
