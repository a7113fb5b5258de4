"""Reference rows under a report's table: what needs no training (the runs' own baselines) and what was published.

Baselines (``metrics.json``'s ``baselines``: majority class, chance, EdgeBank, persistence, ...) depend on the
data and the split, not on the model, so variants with the same baseline scores share one row per predictor:
variants are grouped by their mean baseline scores, and a row is the mean (± std) over the runs of its
group. When several groups remain (e.g. three train sizes), each row says which overrides its group pins.
Published numbers (``references.py``) come after, for the datasets and train sizes the runs used.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from spikenet.reporting.collect import Run, Section, Variant, display
from spikenet.reporting.labels import predictor_label
from spikenet.reporting.references import DATA_NOTES, PAPER, spikenet_table2
from spikenet.reporting.task_spec import NODE_CLASSIFICATION

TOLERANCE = 1e-9  # baseline means closer than this are the same (float noise of a mean over the same seeds)


@dataclass
class ReferenceRow:
    """One reference row: ``mean``/``std`` per ``metrics.json`` key; ``runs`` = 0 for published numbers."""

    label: str
    where: str
    runs: int
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)

    def value(self, key: str) -> float:
        return self.mean.get(key, math.nan)

    def spread(self, key: str) -> float:
        return self.std.get(key, math.nan)


def _variant_scores(variant: Variant) -> dict[tuple[str, str], float]:
    """(predictor, key) -> mean over the variant's runs of that baseline score."""
    values: dict[tuple[str, str], list[float]] = {}
    for run in variant.runs:
        for predictor, scores in run.baselines.items():
            for key, value in scores.items():
                if not math.isnan(value):
                    values.setdefault((predictor, key), []).append(value)
    return {k: statistics.fmean(v) for k, v in values.items()}


def _same(a: dict[tuple[str, str], float], b: dict[tuple[str, str], float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= TOLERANCE for k in a)


def _groups(variants: list[Variant]) -> list[list[Variant]]:
    """Variants with baselines, grouped by equal mean baseline scores (first-seen order)."""
    groups: list[tuple[dict, list[Variant]]] = []
    for variant in variants:
        scores = _variant_scores(variant)
        if not scores:
            continue
        for signature, members in groups:
            if _same(signature, scores):
                members.append(variant)
                break
        else:
            groups.append((scores, [variant]))
    return [members for _, members in groups]


def _pinned(group: list[Variant], key: str) -> str | None:
    values = {v.labels[key] for v in group}
    return values.pop() if len(values) == 1 else None


def _where(groups: list[list[Variant]], varying: list[str], variants: int) -> list[str]:
    """Per group, the overrides it pins that tell it apart from the other groups (``key=value, ...``), else
    the labels of its variants; empty for a single group that holds every one of the ``variants``."""
    if len(groups) == 1 and len(groups[0]) < variants:  # the other variants' runs recorded no baselines
        return ["; ".join(v.label for v in groups[0])]
    if len(groups) < 2:
        return [""] * len(groups)
    telling = [k for k in varying
               if all(_pinned(g, k) is not None for g in groups) and len({_pinned(g, k) for g in groups}) > 1]
    if not telling:
        return ["; ".join(v.label for v in g) for g in groups]
    return [", ".join(f"{k}={display(_pinned(g, k))}" for k in telling) for g in groups]


def _row(label: str, where: str, runs: list[Run], scores: list[dict[str, float]]) -> ReferenceRow:
    keys = list(dict.fromkeys(k for s in scores for k in s))
    row = ReferenceRow(label, where, len(runs))
    for key in keys:
        values = [s[key] for s in scores if key in s and not math.isnan(s[key])]
        if values:
            row.mean[key] = statistics.fmean(values)
            row.std[key] = statistics.stdev(values) if len(values) > 1 else 0.0
    return row


def baseline_rows(section: Section) -> list[ReferenceRow]:
    """One row per predictor and group of variants with equal baselines, mean ± std over the group's runs."""
    groups = _groups(section.variants)
    rows = []
    for group, where in zip(groups, _where(groups, section.varying, len(section.variants)), strict=True):
        runs = [r for v in group for r in v.runs]
        predictors = list(dict.fromkeys(p for r in runs for p in r.baselines))
        for predictor in predictors:
            having = [r for r in runs if predictor in r.baselines]
            rows.append(_row(predictor_label(predictor), where, having, [r.baselines[predictor] for r in having]))
    return rows


def train_size(run: Run) -> float | None:
    """The run's training share: ``task.train_size`` (``trainer.train_size`` before the task layer)."""
    for key in ("task.train_size", "trainer.train_size"):
        value = run.value_of(key)
        try:
            return float(value)
        except ValueError:
            continue
    return None


def _dataset(run: Run) -> str | None:
    name = run.metrics.get("dataset") or run.config.get("dataset.name")
    return str(name).lower() if name else None


def paper_cases(section: Section) -> list[tuple[str, float]]:
    """The (dataset, train size) pairs of a node-classification section that the paper's Table 2 covers."""
    if section.task.name != NODE_CLASSIFICATION:
        return []
    cases = {(_dataset(r), train_size(r)) for r in section.runs}
    return sorted((d, t) for d, t in cases if d is not None and t is not None and spikenet_table2(d, t))


def paper_rows(section: Section) -> list[ReferenceRow]:
    """The paper's SpikeNet scores for each dataset and train size the section's runs used."""
    rows = []
    for dataset, size in paper_cases(section):
        scores = spikenet_table2(dataset, size)
        rows.append(ReferenceRow(PAPER, f"{dataset}, train size {size:g}", 0, dict(scores),
                                 dict.fromkeys(scores, 0.0)))
    return rows


def reference_rows(section: Section) -> list[ReferenceRow]:
    """The runs' baselines, then the published numbers that apply."""
    return [*baseline_rows(section), *paper_rows(section)]


def data_notes(section: Section) -> list[str]:
    """Why published numbers and ours differ, for each dataset with a paper row."""
    datasets = dict.fromkeys(d for d, _ in paper_cases(section))
    return [f"{d}: {DATA_NOTES[d]}" for d in datasets if d in DATA_NOTES]
