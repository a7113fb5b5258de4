"""Report figures (matplotlib, Agg backend, PNG).

- ``firing_rates.png``: firing rate per time step, one panel per spiking layer, one line per variant
  (mean over seeds, band = ± std), like Fig. 12 of the SpikeNet paper.
- ``heatmap_tau_alpha.png``: the task's main metric (val and test) over the neuron.tau x surrogate.alpha
  grid, one row of panels per combination of the other varying overrides.
- ``score_vs_p.png``: the task's test metrics (main first, at most three) against ``sampler.p`` (when p varies).
- ``score_vs_cost.png``: the main test metric against energy per example and parameters, one point per
  variant (when they differ).
- ``bars.png``: per variant, the task's test metrics and selection metric, epoch time and parameter count.

The main metric is the test counterpart of the task's selection metric (Micro-F1 for node classification),
else its first metric (``TaskSpec.main``). With runs of several tasks, each figure name gets ``_<task>``.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikenet.reporting.collect import Variant  # noqa: E402
from spikenet.reporting.labels import axis_label, metric_label, scale  # noqa: E402
from spikenet.reporting.task_spec import TaskSpec  # noqa: E402

TAU, ALPHA = "neuron.tau", "surrogate.alpha"
MAX_GRID = 15  # a key with more distinct values than this (e.g. a random search) gets no heatmap
MIN_FILL = 0.75  # share of tau x alpha cells that must hold runs (a random search's scattered points do not)


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "viridis")
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]


def _legend_title(varying: list[str]) -> str:
    return " / ".join(varying) if varying else None


def _by_name(own: list[str], rates: tuple[list, list], names: list[str]) -> tuple[list, list]:
    """A variant's (mean, std) rows placed at the panels ``names`` (None where it has no such row)."""
    mean, std = rates
    at = dict(zip(own, zip(mean, std, strict=True), strict=True))
    return [at[n][0] if n in at else None for n in names], [at[n][1] if n in at else None for n in names]


def firing_rate_figure(path: Path, variants: list[Variant], varying: list[str]) -> Path | None:
    """Firing rate per time step and layer; None when no run recorded firing rates."""
    rated = [(v, v.firing_rates()) for v in variants]
    rated = [(v, r) for v, r in rated if r is not None]
    if not rated:
        return None
    # one panel per named row (``Variant.rate_names``: a spike coder's rate first, then the layers)
    names = list(dict.fromkeys(n for v, _ in rated for n in sorted(v.rate_names(), key=lambda n: n != "coder")))
    rated = [(v, _by_name(v.rate_names(), r, names)) for v, r in rated]
    layers = len(names)
    fig, axes = plt.subplots(1, layers, figsize=(4.6 * layers + 2.8, 4.2), squeeze=False, sharey=False)
    colors = _colors(len(rated))
    for layer in range(layers):
        ax = axes[0, layer]
        for (variant, (mean, std)), color in zip(rated, colors, strict=True):
            if mean[layer] is None:
                continue
            steps = np.arange(1, len(mean[layer]) + 1)
            m, s = np.asarray(mean[layer]), np.asarray(std[layer])
            ax.plot(steps, m, marker="o", ms=3, lw=1.4, color=color, label=variant.short_label)
            if s.any():
                ax.fill_between(steps, m - s, m + s, color=color, alpha=0.15, lw=0)
        ax.set_title(names[layer] + (" (spike coder)" if names[layer] == "coder" else
                                     " (output layer)" if layer == layers - 1 else ""))
        ax.set_xlabel("time step t")
        ax.set_ylabel("firing rate (spikes / neuron / step)")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    legend = {}  # every variant once, whichever panel it first appears in (a real-coded run has no coder panel)
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(
        handles,
        labels,
        title=_legend_title(varying),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize="small",
        title_fontsize="small",
        frameon=False,
    )
    repeats = any(len(v.runs) > 1 for v, _ in rated)
    fig.suptitle(
        "Firing rate per time step and spiking layer, a spike coder's first (validation split, best-validation epoch"
        + ("; band: ± std over seeds)" if repeats else ")")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def heatmap_figure(path: Path, variants: list[Variant], varying: list[str], task: TaskSpec) -> Path | None:
    """Val and test main metric over tau x alpha; None unless both vary on a small numeric grid."""
    if TAU not in varying or ALPHA not in varying:
        return None
    taus = sorted({_as_number(v.labels[TAU]) for v in variants} - {None})
    alphas = sorted({_as_number(v.labels[ALPHA]) for v in variants} - {None})
    if not (2 <= len(taus) <= MAX_GRID and 2 <= len(alphas) <= MAX_GRID):
        return None
    cells = {(_as_number(v.labels[TAU]), _as_number(v.labels[ALPHA])) for v in variants}
    if len(cells) < MIN_FILL * len(taus) * len(alphas):
        return None
    others = [k for k in varying if k not in (TAU, ALPHA)]
    other_values = [sorted({v.labels[k] for v in variants}) for k in others]
    combos = list(itertools.product(*other_values))
    if len(combos) > 6:  # too many panels: average over the other overrides instead
        combos, others = [()], []
    metrics = [(task.main_val, axis_label(task.main_val)), (task.main_test, axis_label(task.main_test))]
    fig, axes = plt.subplots(
        len(combos),
        2,
        figsize=(2 * (1.1 * len(alphas) + 2.6), (0.55 * len(taus) + 1.6) * len(combos)),
        squeeze=False,
    )
    grids = {}
    for row, combo in enumerate(combos):
        chosen = [v for v in variants if all(v.labels[k] == c for k, c in zip(others, combo, strict=True))]
        for metric, _ in metrics:
            grid = np.full((len(taus), len(alphas)), np.nan)
            for i, tau in enumerate(taus):
                for j, alpha in enumerate(alphas):
                    cell = [
                        x
                        for v in chosen
                        if _as_number(v.labels[TAU]) == tau and _as_number(v.labels[ALPHA]) == alpha
                        for x in v.values(metric)
                    ]
                    if cell:
                        grid[i, j] = scale(metric) * float(np.mean(cell))
            grids[row, metric] = grid
    for row, combo in enumerate(combos):
        for col, (metric, title) in enumerate(metrics):
            grid = grids[row, metric]
            # one colour scale per metric across rows, so panels compare
            finite = np.concatenate([g[np.isfinite(g)] for (_, m), g in grids.items() if m == metric])
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            ax = axes[row, col]
            image = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto", vmin=lo, vmax=hi)
            mid = (lo + hi) / 2
            for i, j in itertools.product(range(len(taus)), range(len(alphas))):
                if math.isfinite(grid[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{grid[i, j]:.3g}" if scale(metric) == 1 else f"{grid[i, j]:.1f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="black" if grid[i, j] > mid else "white",
                    )
            ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
            ax.set_yticks(range(len(taus)), [f"{t:g}" for t in taus])
            ax.set_xlabel("surrogate.alpha (surrogate smoothing)")
            ax.set_ylabel("neuron.tau (membrane time constant)")
            where = ", ".join(f"{k}={c}" for k, c in zip(others, combo, strict=True))
            ax.set_title(title + (f"\n{where}" if where else ""), fontsize=10)
            fig.colorbar(image, ax=ax, label=title)
    rest = [k for k in varying if k not in (TAU, ALPHA) and k not in others]
    note = "mean over seeds" + (" and " + ", ".join(rest) if rest else "")
    fig.suptitle(f"{metric_label(task.main)} over neuron.tau x surrogate.alpha ({note})")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _err(stds: np.ndarray) -> np.ndarray | None:
    """Error bars only where some variant has repeats (no zero-width caps for single runs)."""
    stds = np.nan_to_num(stds)
    return stds if stds.any() else None


def bars_figure(path: Path, variants: list[Variant], varying: list[str], task: TaskSpec) -> Path:
    """Horizontal bars per variant: the task's scores, epoch time (s), parameters; error bars = std over seeds."""
    n = len(variants)
    y = np.arange(n)
    scores = list(task.table_columns)
    fig, axes = plt.subplots(
        1, 3, figsize=(15, 1.2 + 0.14 * n * max(len(scores), 3) + 0.8), sharey=True,
        gridspec_kw={"width_ratios": [2.2, 1, 1]},
    )
    height = 0.8 / len(scores)
    for k, metric in enumerate(scores):
        means = np.array([scale(metric) * v.mean(metric) for v in variants])
        stds = np.array([scale(metric) * v.std(metric) for v in variants])
        offset = (k - (len(scores) - 1) / 2) * height
        axes[0].barh(y + offset, means, height, xerr=_err(stds), label=axis_label(metric), capsize=2)
    percent = all(scale(m) == 100 for m in scores)
    axes[0].set_xlabel("score (%)" if percent else "score")
    axes[0].set_title(f"scores at the best-validation epoch ({task.name})")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax, metric, label, title in [
        (axes[1], "epoch_seconds", "seconds per epoch (s)", "epoch time (train + eval)"),
        (axes[2], "params", "trainable parameters", "model size"),
    ]:
        means = np.array([v.mean(metric) for v in variants])
        stds = np.array([v.std(metric) for v in variants])
        ax.barh(y, means, 0.6, xerr=_err(stds), color="tab:gray", capsize=2)
        ax.set_xlabel(label)
        ax.set_title(title)
    axes[0].set_yticks(y, [v.short_label for v in variants])
    axes[0].invert_yaxis()
    axes[0].set_ylabel(_legend_title(varying) or "variant")
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.3, 0.0), ncol=min(len(scores), 4),
               frameon=False)
    repeats = any(len(v.runs) > 1 for v in variants)
    fig.suptitle(
        f"Per-variant results ({n} variant(s)" + ("; error bars: ± std over seeds)" if repeats else ")")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


P_KEY = "sampler.p"
MAX_P_PANELS = 3


def p_figure(path: Path, variants: list[Variant], varying: list[str], task: TaskSpec) -> Path | None:
    """The task's test metrics (main first, at most three panels) against ``sampler.p``, one line per
    combination of the other varying overrides (mean over seeds, bars = ± std); None unless p varies
    numerically."""
    if P_KEY not in varying:
        return None
    points = [(v, _as_number(v.labels[P_KEY])) for v in variants]
    points = [(v, p) for v, p in points if p is not None]
    if len({p for _, p in points}) < 2:
        return None
    metrics = list(dict.fromkeys([task.main_test, *(f"test_{m}" for m in task.metrics)]))[:MAX_P_PANELS]
    others = [k for k in varying if k != P_KEY]
    groups: dict[tuple, list] = {}
    for v, p in points:
        groups.setdefault(tuple(v.labels[k] for k in others), []).append((p, v))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
    colors = _colors(len(groups))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (combo, members), color in zip(groups.items(), colors, strict=True):
            members.sort(key=lambda pv: pv[0])
            xs = [p for p, _ in members]
            means = np.array([scale(metric) * v.mean(metric) for _, v in members])
            stds = np.array([scale(metric) * v.std(metric) for _, v in members])
            label = " / ".join(combo) or None
            ax.errorbar(xs, means, yerr=_err(stds), marker="o", ms=4, lw=1.4, capsize=3, color=color, label=label)
        ax.set_xlabel("sampler.p (share of each hop's sample from G_t; the rest from ΔG_t)")
        ax.set_ylabel(axis_label(metric))
        ax.set_title(metric_label(metric))
        ax.grid(alpha=0.3)
    if others:
        axes[0, -1].legend(title=" / ".join(others), fontsize="small", title_fontsize="small", frameon=False)
    repeats = any(len(v.runs) > 1 for v, _ in points)
    fig.suptitle(f"{task.name}: scores against p" + (" (mean over seeds; bars: ± std)" if repeats else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def cost_figure(path: Path, variants: list[Variant], varying: list[str], task: TaskSpec) -> Path | None:
    """The main test metric against energy per example and against parameters, one point per variant (bars:
    ± std over seeds); None unless energy or parameters differ between variants. Variants without an
    energy estimate are left out of the energy panel."""
    spread = [{round(v.mean(c), 9) for v in variants if not math.isnan(v.mean(c))} for c in ("energy_uj", "params")]
    if all(len(values) < 2 for values in spread):
        return None
    panels = [("energy_uj", f"energy per {task.unit} and inference (µJ, log scale)"),
              ("params", "trainable parameters")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), squeeze=False)
    colors = _colors(len(variants))
    metric, k = task.main_test, scale(task.main_test)
    for ax, (cost, xlabel) in zip(axes[0], panels, strict=True):
        for v, color in zip(variants, colors, strict=True):
            x = v.mean(cost)
            if math.isnan(x) or math.isnan(v.mean(metric)):
                continue
            ax.errorbar(x, k * v.mean(metric), xerr=_err(np.array([v.std(cost)])),
                        yerr=_err(np.array([k * v.std(metric)])), fmt="o", ms=6, capsize=3, color=color,
                        label=v.short_label)
            ax.annotate(v.short_label, (x, k * v.mean(metric)), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        if cost == "energy_uj" and ax.has_data():
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(axis_label(metric))
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(f"{metric_label(metric)} against energy (spikenet/energy.py)")
    axes[0, 1].set_title(f"{metric_label(metric)} against model size")
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, title=_legend_title(varying), loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize="small", title_fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


FIGURES = ("firing_rates", "heatmap_tau_alpha", "score_vs_p", "score_vs_cost", "bars")
FORMER = ("f1_vs_p", "f1_vs_cost")  # names earlier versions wrote, removed as stale
STALE = re.compile(r"^(" + "|".join(FIGURES + FORMER) + r")(_[A-Za-z0-9_.@-]+)?\.png$")


def make_figures(out: Path, variants: list[Variant], varying: list[str], task: TaskSpec,
                 suffix: str = "") -> list[Path]:
    """The figures that apply to these runs of one task, named ``<figure><suffix>.png``."""
    made = [
        firing_rate_figure(out / f"firing_rates{suffix}.png", variants, varying),
        heatmap_figure(out / f"heatmap_tau_alpha{suffix}.png", variants, varying, task),
        p_figure(out / f"score_vs_p{suffix}.png", variants, varying, task),
        cost_figure(out / f"score_vs_cost{suffix}.png", variants, varying, task),
        bars_figure(out / f"bars{suffix}.png", variants, varying, task),
    ]
    return [p for p in made if p is not None]


def remove_stale(out: Path, keep: list[Path]) -> None:
    """Delete report figures in ``out`` from an earlier report that this one did not make."""
    keep_names = {p.name for p in keep}
    for path in out.glob("*.png"):
        if STALE.match(path.name) and path.name not in keep_names:
            path.unlink(missing_ok=True)
