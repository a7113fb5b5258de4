"""``summary.csv`` (machine-readable, F1 as fractions) and ``summary.md`` (F1 in %, mean ± std)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from spikenet.reporting.collect import METRICS, Run, Variant, display

F1_METRICS = ("test_macro_f1", "test_micro_f1", "val_micro_f1")
SIGNIFICANT_METRICS = ("sops", "macs", "energy_uj", "ann_energy_uj")  # wide ranges: 4 significant digits


def write_csv(path: Path, variants: list[Variant], varying: list[str]) -> Path:
    """One row per variant: the varying override values, run count, seeds, mean/std per metric, run dirs."""
    header = ["variant", *varying, "runs", "seeds"]
    for metric in METRICS:
        header += [f"{metric}_mean", f"{metric}_std"]
    header.append("run_dirs")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for v in variants:
            row: list = [v.label, *(v.labels[k] for k in varying), len(v.runs), " ".join(map(str, v.seeds))]
            for metric in METRICS:
                row += [_csv_number(v.mean(metric)), _csv_number(v.std(metric))]
            row.append(" ".join(str(r.path) for r in v.runs))
            writer.writerow(row)
    return path


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6g}"


def _cell(v: Variant, metric: str) -> str:
    mean, std = v.mean(metric), v.std(metric)
    if math.isnan(mean):
        return "–"
    if metric in F1_METRICS:
        mean, std = 100 * mean, 100 * std
        text = f"{mean:.2f}"
        return text + (f" ± {std:.2f}" if len(v.values(metric)) > 1 else "")
    if metric == "params":
        return f"{mean:,.0f}"
    if metric == "firing_rate":
        return f"{mean:.4f}" + (f" ± {std:.4f}" if len(v.values(metric)) > 1 else "")
    if metric in SIGNIFICANT_METRICS:
        return f"{mean:.4g}" + (f" ± {std:.2g}" if len(v.values(metric)) > 1 else "")
    return f"{mean:.3f}" + (f" ± {std:.3f}" if len(v.values(metric)) > 1 else "")


def write_markdown(
    path: Path,
    root: Path,
    runs: list[Run],
    variants: list[Variant],
    varying: list[str],
    common: list[str],
    unfinished: list[Path],
    figures: list[Path],
) -> Path:
    """A table of variants (best validation Micro-F1 in bold) plus what was run and the figures."""
    headers = {
        "test_macro_f1": "test Ma-F1 (%)",
        "test_micro_f1": "test Mi-F1 (%)",
        "val_micro_f1": "val Mi-F1 (%)",
        "epoch_seconds": "epoch time (s)",
        "params": "params",
        "firing_rate": "firing rate",
        "sops": "SOPs / node",
        "energy_uj": "energy / node (µJ)",
    }
    best = max(
        variants, key=lambda v: -math.inf if math.isnan(v.mean("val_micro_f1")) else v.mean("val_micro_f1")
    )
    lines = [
        f"# Summary of {root}",
        "",
        f"{len(runs)} finished run(s) in {len(variants)} variant(s)"
        + (f"; {len(unfinished)} unfinished (no metrics.json)" if unfinished else "")
        + ".",
        "Scores: test Macro-/Micro-F1 at the epoch with the best validation Micro-F1; mean ± sample std "
        "over the runs of a variant (seeds). Epoch time: median seconds per epoch (train + eval). Firing "
        "rate: spikes per neuron per time step on the validation split at the best epoch, mean over layers "
        "and steps. SOPs (spike-driven accumulates) and energy: per classified node and inference, from "
        "those firing rates and the per-operation costs in each run's config (`energy.*`; "
        "`spikenet/energy.py`); dense models spend multiply-accumulates only.",
        "",
    ]
    if common:
        lines += ["Common overrides: " + " ".join(f"`{o}`" for o in common), ""]
    cols = [*(f"`{k}`" for k in varying), "runs", *headers.values()]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for v in variants:
        cells = [*(display(v.labels[k]) for k in varying), str(len(v.runs)), *(_cell(v, m) for m in headers)]
        if v is best and len(variants) > 1:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if unfinished:
        lines += ["Unfinished runs:", "", *(f"- {p}" for p in unfinished), ""]
    if figures:
        lines += ["## Figures", "", *(f"![{f.stem}]({f.name})" for f in figures), ""]
    path.write_text("\n".join(lines))
    return path
