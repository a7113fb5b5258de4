"""``summary.csv`` (machine-readable, scores as fractions) and ``summary.md`` (scores in %, mean ± std).

Each task's runs get their own Markdown table whose score columns are the task's test metrics and its
selection metric, followed by its reference rows (baselines and published numbers); the CSV holds every
variant of every task, one row each, with a ``task`` column.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from spikenet.reporting.collect import COSTS, Run, Section, Variant, display
from spikenet.reporting.labels import column_header, is_fraction, metric_label, metric_name, scale, split_key
from spikenet.reporting.reference_rows import ReferenceRow, data_notes, reference_rows

SIGNIFICANT_METRICS = ("sops", "macs", "energy_uj", "ann_energy_uj", "memory_energy_uj", "ann_memory_energy_uj",
                       "break_even_rate_compute", "break_even_rate_memory", "break_even_scale_compute",
                       "break_even_scale_memory", "ann_int8_energy_uj", "ann_int8_memory_energy_uj",
                       "break_even_rate_memory_int8")  # wide ranges: 4 significant digits
# task-independent Markdown columns: metrics.json key -> header ({unit}: what one example is)
COST_HEADERS = {
    "epoch_seconds": "epoch time (s)",
    "params": "params",
    "firing_rate": "firing rate",
    "sops": "SOPs / {unit}",
    "energy_uj": "energy / {unit} (µJ)",
    "ann_energy_uj": "twin / {unit} (µJ)",
    "memory_energy_uj": "energy + memory / {unit} (µJ)",
    "ann_memory_energy_uj": "twin + memory / {unit} (µJ)",
    "mean_rate": "unit rate",
    "break_even_rate_compute": "break-even rate",
    "break_even_rate_memory": "break-even rate + memory",
    "ann_int8_memory_energy_uj": "int8 twin + memory / {unit} (µJ)",
    "break_even_rate_memory_int8": "break-even rate + memory vs int8",
}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def write_csv(path: Path, sections: list[Section]) -> Path:
    """One row per variant of every task: task, varying override values, runs, seeds, mean/std per score
    (each task's test and validation metrics; empty where a task has no such metric) and cost, run dirs."""
    varying = _unique([k for s in sections for k in s.varying])
    scores = _unique([k for s in sections for k in s.task.csv_columns])
    header = ["task", "variant", *varying, "runs", "seeds"]
    for metric in [*scores, *COSTS]:
        header += [f"{metric}_mean", f"{metric}_std"]
    header.append("run_dirs")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for section in sections:
            for v in section.variants:
                labels = [v.labels[k] if k in v.labels else v.runs[0].value_of(k) for k in varying]
                row: list = [section.task.name, v.label, *labels, len(v.runs), " ".join(map(str, v.seeds))]
                for metric in [*scores, *COSTS]:
                    mine = metric in COSTS or metric in section.task.csv_columns
                    row += [_csv_number(v.mean(metric)), _csv_number(v.std(metric))] if mine else ["", ""]
                row.append(" ".join(str(r.path) for r in v.runs))
                writer.writerow(row)
    return path


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6g}"


def _score_text(mean: float, std: float, key: str, spread: bool) -> str:
    """A score in % with two decimals (fractions) or four significant digits (others)."""
    if math.isnan(mean):
        return "–"
    k = scale(key)
    if is_fraction(key):
        return f"{k * mean:.2f}" + (f" ± {k * std:.2f}" if spread else "")
    return f"{mean:.4g}" + (f" ± {std:.2g}" if spread else "")


def _cell(v: Variant, metric: str) -> str:
    mean, std = v.mean(metric), v.std(metric)
    repeats = len(v.values(metric)) > 1
    if metric not in COSTS:
        return _score_text(mean, std, metric, repeats)
    if math.isnan(mean):
        return "–"
    if metric == "params":
        return f"{mean:,.0f}"
    if metric in ("firing_rate", "mean_rate"):
        return f"{mean:.4f}" + (f" ± {std:.4f}" if repeats else "")
    if metric in SIGNIFICANT_METRICS:
        return f"{mean:.4g}" + (f" ± {std:.2g}" if repeats else "")
    return f"{mean:.3f}" + (f" ± {std:.3f}" if repeats else "")


def _reference_cell(row: ReferenceRow, key: str) -> str:
    std = row.spread(key)
    return _score_text(row.value(key), std, key, row.runs > 1 and std > 0)


def _names(keys: list[str]) -> str:
    """``test_macro_f1, test_micro_f1`` -> ``test Macro-F1 and Micro-F1``."""
    names = [metric_name(split_key(k)[1]) for k in keys]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"test {joined}"


def _section_lines(section: Section, figures: list[Path], heading: bool) -> list[str]:
    task = section.task
    select = metric_label(task.select)
    per = f" per {', '.join(f'`{k}`' for k in section.data_keys)}" if section.data_keys else ""
    lines = [f"## Task: {task.name}", ""] if heading else []
    lines += [
        (f"{len(section.runs)} run(s) in {len(section.variants)} variant(s). " if heading else "")
        + f"Scores: {_names([f'test_{m}' for m in task.metrics])} at the epoch with the best {select} "
        f"(`{task.select}`); in bold the variant with the best mean {select}{per}.",
        "",
    ]
    if section.common:
        lines += ["Common overrides: " + " ".join(f"`{o}`" for o in section.common), ""]
    columns = list(task.table_columns)
    costs = {k: h.format(unit=task.unit) for k, h in COST_HEADERS.items()}
    cols = [*(f"`{k}`" for k in section.varying), "runs", *(column_header(c) for c in columns), *costs.values()]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    best = section.best()
    for v in section.variants:
        cells = [*(display(v.labels[k]) for k in section.varying), str(len(v.runs)),
                 *(_cell(v, m) for m in [*columns, *costs])]
        if any(v is b for b in best) and len(section.variants) > len(best):
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    references = reference_rows(section)
    if references:
        lines += [
            "Reference rows: predictors that need no training (the runs' own `baselines`, mean over the runs "
            "that share them) and published numbers (runs: –).",
            "",
            "| reference | for | runs | " + " | ".join(column_header(c) for c in columns) + " |",
            "|" + "---|" * (3 + len(columns)),
        ]
        for row in references:
            cells = [row.label, row.where or "all runs", str(row.runs) if row.runs else "–",
                     *(_reference_cell(row, c) for c in columns)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        notes = data_notes(section)
        if notes:
            lines += ["Note on published numbers: " + "; ".join(notes) + ".", ""]
    if figures:
        lines += (["### Figures", ""] if heading else ["## Figures", ""])
        lines += [*(f"![{f.stem}]({f.name})" for f in figures), ""]
    return lines


def write_markdown(
    path: Path,
    roots: list[Path],
    runs: list[Run],
    sections: list[Section],
    unfinished: list[Path],
    figures: list[list[Path]],
) -> Path:
    """Per task a table of variants (best selection metric in bold) with its reference rows and figures
    (``figures``: one list per section)."""
    variants = sum(len(s.variants) for s in sections)
    title = f"# Summary of {roots[0]}" if len(roots) == 1 else f"# Summary of {len(roots)} run folders"
    lines = [title, ""]
    if len(roots) > 1:
        lines += [*(f"- {r}" for r in roots), ""]
    lines += [
        f"{len(runs)} finished run(s) in {variants} variant(s)"
        + (f" of {len(sections)} tasks" if len(sections) > 1 else "")
        + (f"; {len(unfinished)} unfinished (no metrics.json)" if unfinished else "")
        + ".",
        "Scores: each task's test metrics at the epoch with the best value of its selection metric; mean ± "
        "sample std over the runs of a variant (seeds). Epoch time: median seconds per epoch (train + eval). "
        "Firing rate: spikes per neuron per time step on the validation split at the best epoch, mean over "
        "layers and steps. SOPs (spike-driven accumulates) and energy: per example (a classified node, a scored "
        "edge, ...) and inference, from those firing rates and the per-operation costs in each run's config "
        "(`energy.*`; `spikenet/energy.py`); dense models spend multiply-accumulates only. Two accounts "
        "(docs/energy.md): compute only (the field's convention), and compute plus memory traffic (weight reads, "
        "neuron state read and written every step, spike events written and read, features and activations); "
        "twin: the spiking model's dense twin (ReLU units, real inputs) under the same account. Break-even rate: "
        "the mean firing rate at which the spiking model's energy equals its twin's, every measured rate (layers, "
        "steps, coder) scaled by one factor (energy is linear in the rates), given as a unit rate (spikes per unit "
        "and step over all spiking units, the coder's included: the `unit rate` column); above the measured unit "
        "rate means cheaper than the twin now, negative means more expensive even without spikes. The int8 twin: "
        "the same twin deployed in int8 (`energy.pj_per_mac_int8`, 8-bit weights and activations).",
        "",
    ]
    for section, pngs in zip(sections, figures, strict=True):
        lines += _section_lines(section, pngs, heading=len(sections) > 1)
    if unfinished:
        lines += ["Unfinished runs:", "", *(f"- {p}" for p in unfinished), ""]
    path.write_text("\n".join(lines))
    return path
