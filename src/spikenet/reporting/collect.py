"""Find finished runs under a directory and aggregate them per task and variant.

A run is a directory holding ``metrics.json`` (written by ``src/run.py``) and, normally,
``.hydra/config.yaml``; Hydra multirun job folders, W&B sweep run folders and single runs all
qualify. Runs are grouped by task first (each task has its own metrics: one table per task), then
into *variants*: a run's command-line overrides without ``seed`` and ``hydra.*``. Runs that differ
only in their seed are repeats of one variant, and the report gives mean and standard deviation
over them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spikenet.reporting.task_spec import LEGACY, RunFormatError, TaskSpec, read_baselines, read_task

# Task-independent columns aggregated per variant (the scores are each task's own: ``TaskSpec``):
# metrics.json key -> label.
COSTS = {
    "epoch_seconds": "epoch time (s)",
    "params": "parameters",
    "firing_rate": "firing rate",
    "sops": "SOPs per example",
    "macs": "MACs per example",
    "energy_uj": "energy per example (µJ)",
    "ann_energy_uj": "ANN-twin energy per example (µJ)",
    "memory_energy_uj": "energy with memory per example (µJ)",
    "ann_memory_energy_uj": "ANN-twin energy with memory per example (µJ)",
    "ann_int8_energy_uj": "int8 ANN-twin energy per example (µJ)",
    "ann_int8_memory_energy_uj": "int8 ANN-twin energy with memory per example (µJ)",
    "mean_rate": "mean firing rate per unit and step (spikes / unit-steps, the coder's units included)",
    "break_even_rate_compute": "break-even mean firing rate, compute account",
    "break_even_rate_memory": "break-even mean firing rate, compute + memory account",
    "break_even_scale_compute": "break-even factor on every firing rate, compute account",
    "break_even_scale_memory": "break-even factor on every firing rate, compute + memory account",
    "break_even_rate_memory_int8": "break-even mean firing rate against the int8 twin, compute + memory account",
}
IGNORED_KEYS = ("seed",)  # overrides that make repeats, not variants
# overrides that change the data or the split: the best variant is chosen per value of these (plus dataset.*)
DATA_KEYS = ("dataset", "experiment", "task", "task.train_size", "task.val_size", "task.split_seed",
             "trainer.train_size", "trainer.val_size", "trainer.split_seed")


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def override_key(override: str) -> str:
    """``+neuron.tau=1.5`` -> ``neuron.tau``; ``sampler=rw`` -> ``sampler``."""
    return override.split("=", 1)[0].lstrip("+~")


def override_value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


def display(value: str) -> str:
    """An override value for tables and plots: long floats (a random search's) cut to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    short = f"{number:.4g}"
    return short if len(value) > 7 and len(short) < len(value) else value


def is_variant_override(override: str) -> bool:
    key = override_key(override)
    return key not in IGNORED_KEYS and not key.startswith(("hydra.", "hydra/"))


@dataclass
class Run:
    """One finished run: its directory, flattened config, overrides, metrics, task and reference scores."""

    path: Path
    config: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, Any]
    task: TaskSpec = LEGACY
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # {predictor: {"<split>_<m>": value}}

    @property
    def variant(self) -> tuple[str, ...]:
        return tuple(sorted(o for o in self.overrides if is_variant_override(o)))

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def value_of(self, key: str) -> str:
        """The run's value for an override key: the override itself, else the composed config's value."""
        for o in self.overrides:
            if override_key(o) == key:
                return override_value(o)
        if key in self.config:
            return str(self.config[key])
        if f"{key}.name" in self.config:  # a config group: the option's name
            return str(self.config[f"{key}.name"])
        return "-"

    def best_firing_rates(self) -> list[list[float]] | None:
        """Per-layer, per-step firing rates of the best-validation epoch (else the last epoch with rates)."""
        history = self.metrics.get("history") or []
        with_rates = [r for r in history if r.get("firing_rates")]
        if not with_rates:
            return None
        best = self.metrics.get("best_epoch")
        for record in with_rates:
            if record.get("epoch") == best:
                return record["firing_rates"]
        return with_rates[-1]["firing_rates"]

    def value(self, metric: str) -> float:
        """A metric as float (NaN when missing); ``firing_rate`` is the mean over layers and steps."""
        if metric == "firing_rate":
            rates = self.best_firing_rates()
            flat = [x for layer in rates or [] for x in layer if x is not None]
            return sum(flat) / len(flat) if flat else math.nan
        value = self.metrics.get(metric)
        return float(value) if isinstance(value, int | float) else math.nan


def _read_overrides(run_dir: Path, metrics: dict) -> list[str]:
    if isinstance(metrics.get("overrides"), list):
        return [str(o) for o in metrics["overrides"]]
    path = run_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        return [str(o) for o in yaml.safe_load(path.read_text()) or []]
    return []


def find_runs(root: str | Path) -> tuple[list[Run], list[Path]]:
    """(finished runs, directories of started but unfinished runs) under ``root``, in path order.

    Unfinished: a ``.hydra/config.yaml`` without ``metrics.json`` beside it (a crashed or running job).
    A ``metrics.json`` whose task fields are malformed raises ``RunFormatError`` naming the file and key.
    """
    root = Path(root)
    runs, unfinished = [], []
    dirs = {p.parent for p in root.rglob("metrics.json")} | {
        p.parent.parent for p in root.rglob(".hydra/config.yaml")
    }
    for run_dir in sorted(dirs, key=_natural_key):
        if "wandb" in run_dir.relative_to(root).parts:
            continue
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.is_file():
            unfinished.append(run_dir)
            continue
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError:
            unfinished.append(run_dir)
            continue
        if not isinstance(metrics, dict):
            raise RunFormatError(f"{metrics_path}: expected a JSON object of metrics, got {type(metrics).__name__}")
        config_path = run_dir / ".hydra" / "config.yaml"
        config = _flatten(yaml.safe_load(config_path.read_text()) or {}) if config_path.is_file() else {}
        runs.append(Run(run_dir, config, _read_overrides(run_dir, metrics), metrics,
                        read_task(metrics, metrics_path), read_baselines(metrics, metrics_path)))
    return runs, unfinished


def _natural_key(path: Path) -> list:
    """Sort multirun job folders 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return [int(part) if part.isdigit() else part for part in path.parts]


@dataclass
class Variant:
    """Runs sharing one set of overrides (seed and hydra.* aside)."""

    overrides: tuple[str, ...]
    runs: list[Run] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # varying override key -> this variant's value

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={display(v)}" for k, v in self.labels.items()) or "(all runs)"

    @property
    def short_label(self) -> str:
        return " / ".join(display(v) for v in self.labels.values()) or "all runs"

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    def values(self, metric: str) -> list[float]:
        return [v for v in (r.value(metric) for r in self.runs) if not math.isnan(v)]

    def mean(self, metric: str) -> float:
        vals = self.values(metric)
        return statistics.fmean(vals) if vals else math.nan

    def std(self, metric: str) -> float:
        """Sample standard deviation over the variant's runs (0 for a single run, NaN for none)."""
        vals = self.values(metric)
        if not vals:
            return math.nan
        return statistics.stdev(vals) if len(vals) > 1 else 0.0

    def firing_rates(self) -> tuple[list[list[float]], list[list[float]]] | None:
        """(mean, std) over runs of the per-layer, per-step firing rates; None without recorded rates."""
        all_rates = [r.best_firing_rates() for r in self.runs]
        all_rates = [r for r in all_rates if r]
        if not all_rates:
            return None
        shape = [len(layer) for layer in all_rates[0]]
        all_rates = [r for r in all_rates if [len(layer) for layer in r] == shape]
        mean = [[statistics.fmean(r[i][t] for r in all_rates) for t in range(n)] for i, n in enumerate(shape)]
        std = [
            [statistics.stdev(r[i][t] for r in all_rates) if len(all_rates) > 1 else 0.0 for t in range(n)]
            for i, n in enumerate(shape)
        ]
        return mean, std

    def rate_names(self) -> list[str]:
        """A name per row of ``firing_rates``: ``coder`` first for spike-coded runs (metrics.json ``coding``), then
        ``layer 1``, ``layer 2``, ..."""
        rates = self.firing_rates()
        if rates is None:
            return []
        coded = self.runs[0].metrics.get("coding") not in (None, "real")
        return [*(["coder"] if coded else []), *(f"layer {i + 1}" for i in range(len(rates[0]) - coded))]


def values_of(runs: list[Run], key: str) -> list[str]:
    """Each run's value for ``key``. A run without the key in its config (made before the key existed) takes the
    value of the runs with the same command line (seed aside) that have it, when they agree: it is the same
    variant, and a key added later must not set it apart."""
    values = [r.value_of(key) for r in runs]
    known: dict[tuple[str, ...], set[str]] = {}
    for run, value in zip(runs, values, strict=True):
        if value != "-":
            known.setdefault(run.variant, set()).add(value)
    return [next(iter(known[r.variant])) if v == "-" and len(known.get(r.variant, ())) == 1 else v
            for r, v in zip(runs, values, strict=True)]


def varying_keys(runs: Iterable[Run]) -> list[str]:
    """Override keys (seed and hydra.* aside) whose value differs between runs, in first-seen order."""
    runs = list(runs)
    keys: list[str] = []
    for run in runs:
        for o in run.overrides:
            key = override_key(o)
            if is_variant_override(o) and key not in keys:
                keys.append(key)
    return [k for k in keys if len(set(values_of(runs, k))) > 1]


def common_overrides(runs: list[Run], varying: list[str]) -> list[str]:
    """Variant overrides that every run shares (shown once, above the table)."""
    if not runs:
        return []
    shared = set(runs[0].variant)
    for run in runs[1:]:
        shared &= set(run.variant)
    return [o for o in runs[0].variant if o in shared and override_key(o) not in varying]


def group_variants(runs: list[Run]) -> tuple[list[Variant], list[str]]:
    """Variants in order of first appearance, and the override keys that tell them apart."""
    varying = varying_keys(runs)
    columns = {k: values_of(runs, k) for k in varying}
    variants: dict[tuple, Variant] = {}
    for i, run in enumerate(runs):
        labels = {k: columns[k][i] for k in varying}
        key = tuple(labels.items())
        if key not in variants:
            variants[key] = Variant(run.variant, labels=labels)
        variants[key].runs.append(run)
    return list(variants.values()), varying


@dataclass
class Section:
    """The runs of one task: its variants, the override keys that tell them apart, the overrides all share."""

    task: TaskSpec
    runs: list[Run]
    variants: list[Variant]
    varying: list[str]
    common: list[str]

    @property
    def data_keys(self) -> list[str]:
        """The varying override keys that change the data or the split (scores across them do not compare)."""
        return [k for k in self.varying if k in DATA_KEYS or k.startswith("dataset.")]

    def best(self) -> list[Variant]:
        """Per combination of the data keys' values (one, when no data key varies), the variant with the
        highest mean selection metric; variants without one are never best."""
        groups: dict[tuple, list[Variant]] = {}
        for v in self.variants:
            if not math.isnan(v.mean(self.task.select)):
                groups.setdefault(tuple(v.labels[k] for k in self.data_keys), []).append(v)
        return [max(members, key=lambda v: v.mean(self.task.select)) for members in groups.values()]


def sections(runs: list[Run]) -> list[Section]:
    """The runs split by task (and selection metric), in order of first appearance, each grouped into variants.

    Runs of one task whose metric lists differ (an older and a newer version) share a section with the
    union of the metrics; a score a run lacks is NaN (shown as a dash).
    """
    groups: dict[tuple[str, str], tuple[TaskSpec, list[Run]]] = {}
    for run in runs:
        key = (run.task.name, run.task.select)
        spec, members = groups.get(key, (run.task, []))
        members.append(run)
        groups[key] = (spec.merged(run.task), members)
    out = []
    for spec, members in groups.values():
        variants, varying = group_variants(members)
        out.append(Section(spec, members, variants, varying, common_overrides(members, varying)))
    return out
