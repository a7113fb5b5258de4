"""How many snapshots a user's edge list becomes (``dataset=edgelist``): every distinct stamp, given
``dataset.time_bins``, or, with ``dataset.auto_bins``, as many as the run's budgets allow.

``choose_steps`` maps stamps to steps: the cost model (``snapshot_cost``) says whether the stamps' own count
fits the memory budget (``dataset.memory_share`` of the machine's memory, within what is free) and the target
epoch time (``dataset.epoch_seconds``); when it does not, numeric stamps get the largest equal-width bin count
whose non-empty bins fit (empty bins dropped, ``dataset.empty_bins``) and string stamps a merge of consecutive
ones, with one info line saying so and how to override it; when not even one snapshot fits, one error with a
command that does. Empty snapshots that are kept get one warning. The choice depends on the machine, so a
cached graph is checked against it again (``plan_holds``), and hints printed afterwards pin it (``hints.pin``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from spikenet.data.snapshots import cost as snapshot_cost
from spikenet.data.snapshots.stamps import Stamps, bin_stamps, distinct_steps, empty_steps
from spikenet.data.storage import guards, hints
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)


def _budget(cfg: Any) -> snapshot_cost.Budget:
    """``dataset.memory_share`` of the machine's memory (a choice that does not follow what other processes
    hold at the moment), but never more than is available; ``dataset.epoch_seconds``."""
    share = float(cfg.memory_share)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"dataset.memory_share must be in (0, 1], got {share}")
    seconds = float(cfg.epoch_seconds)
    if not seconds > 0:
        raise ValueError(f"dataset.epoch_seconds must be > 0, got {seconds}")
    return snapshot_cost.Budget(min(share * guards.total_ram(), guards.HEADROOM * guards.available_ram()), seconds)


def positive_key(cfg: Any, key: str) -> int | None:
    """``dataset.<key>`` as an integer >= 1 (None when null or unset), else a one-line error naming the key."""
    value = cfg.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"dataset.{key} must be an integer >= 1, got '{value}'") from None
    if number < 1 or float(value) != number:
        raise ValueError(f"dataset.{key} must be an integer >= 1, got {value}")
    return number


def merge_key(cfg: Any) -> int:
    """``dataset.merge``: consecutive steps merged into one (every reader with stamps sets it in its YAML)."""
    merge = positive_key(cfg, "merge")
    if merge is None:
        raise ValueError("dataset.merge must be an integer >= 1, got null")
    return merge


def _fmt_estimate(e: snapshot_cost.Estimate) -> str:
    seconds = f"{e.epoch_seconds:.2g}" if e.epoch_seconds < 10 else f"{e.epoch_seconds:.0f}"
    return f"about {guards.fmt_bytes(e.peak_bytes)} and {seconds} s per training epoch"


def plan_for(cfg: Any, raw_steps: int, nodes: int, interactions: int, labelled: int) -> snapshot_cost.Plan:
    """The snapshot plan of this dataset config for graphs of this shape (``snapshot_cost.choose_steps``)."""
    shape = snapshot_cost.TrainShape.from_cfg(cfg)
    return snapshot_cost.choose_steps(raw_steps, nodes, interactions, labelled, shape, _budget(cfg),
                                      guards.max_steps(cfg))


def auto_bins(cfg: Any) -> bool:
    value = cfg.auto_bins
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"dataset.auto_bins must be true or false, got '{value}'")
        return value.lower() == "true"
    return bool(value)


def refuse(cfg: Any, plan: snapshot_cost.Plan, nodes: int, interactions: int, labelled: int, numeric: bool) -> None:
    """Not even one snapshot fits the memory budget: one line with a command that fits (smaller batches),
    or the size of the data alone."""
    budget = _budget(cfg)
    shape = snapshot_cost.TrainShape.from_cfg(cfg)
    batch = shape.batch_size // 2
    while batch >= 16:
        smaller = dataclasses.replace(shape, batch_size=batch, eval_batch_size=min(batch, shape.eval_batch_size))
        trial = snapshot_cost.choose_steps(plan.raw_steps, nodes, interactions, labelled, smaller, budget,
                                           guards.max_steps(cfg))
        if trial.fits:
            steps = (f"dataset.time_bins={trial.steps}" if numeric else
                     f"dataset.merge={math.ceil(plan.raw_steps / trial.steps)}")
            fixes = ([steps] if trial.changed else []) + [f"trainer.batch_size={batch}"] + (
                [f"trainer.eval_batch_size={batch}"] if batch < shape.eval_batch_size else [])
            fix = f"`{hints.command(cfg, 'run', *fixes)}`"
            break
        batch //= 2
    else:
        fix = ("the graph's data alone exceed it; use a machine with more memory, or raise dataset.memory_share "
               "if the machine has nothing else to run")
    raise guards.TooLargeError(
        f"{cfg.name}: even 1 snapshot needs {_fmt_estimate(plan.estimate)} at trainer.batch_size="
        f"{shape.batch_size}, above the memory budget of {guards.fmt_bytes(budget.memory_bytes)} "
        f"(dataset.memory_share of the machine's memory, within what is free); fix: {fix}"
    )


def empty_mode(cfg: Any) -> str:
    """``dataset.empty_bins``: auto (drop the empty bins of automatic time bins, keep those of a given
    ``time_bins``) | keep | drop."""
    mode = str(cfg.empty_bins).lower()
    if mode not in ("auto", "keep", "drop"):
        raise ValueError(f"dataset.empty_bins must be auto, keep or drop, got '{mode}'")
    return mode


def drop_empty(step: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber steps so that only those with an interaction remain (a self-loop-only step joins the one
    before it); returns (steps, count)."""
    used = np.unique(step[keep])
    if used.size == 0:
        return np.zeros_like(step), 1
    return np.maximum(np.searchsorted(used, step, side="right") - 1, 0), int(used.size)


def busy_bins(values: np.ndarray, keep: np.ndarray, counts: list[int]) -> dict[int, int]:
    """Non-empty bins among ``bins`` equal-width bins of the kept interactions' stamps, per bin count."""
    kept = values[keep]
    return {int(b): int(np.unique(bin_stamps(kept, b)).size) if kept.size else 1 for b in counts}


def largest_bins(cfg: Any, plan: snapshot_cost.Plan, busy: dict[int, int], nodes: int, interactions: int,
                 labelled: int) -> tuple[int, snapshot_cost.Estimate]:
    """With empty bins dropped, the snapshots are the non-empty bins: the largest ladder count whose non-empty
    bins (``busy``) fit the budget; ``plan.steps`` (which fits even with none empty) at least."""
    shape, budget = snapshot_cost.TrainShape.from_cfg(cfg), _budget(cfg)
    for bins in sorted((b for b in busy if b > plan.steps), reverse=True):
        e = snapshot_cost.estimate(busy[bins], nodes, interactions, labelled, shape)
        if e.peak_bytes <= budget.memory_bytes and (e.epoch_seconds <= budget.epoch_seconds
                                                    or e.steps <= snapshot_cost.MIN_AUTO_STEPS):
            return bins, e
    return plan.steps, plan.estimate


def _ladder_above(plan: snapshot_cost.Plan, cfg: Any) -> list[int]:
    limit = guards.max_steps(cfg)
    return [c for c in snapshot_cost.LADDER if plan.steps < c < plan.raw_steps and c <= limit]


def choose_steps(cfg: Any, stamps: Stamps, keep: np.ndarray, nodes: int, labelled: int
                 ) -> tuple[np.ndarray, int, dict]:
    """(step of every interaction, snapshot count, meta) per ``dataset.time_bins``, ``merge``, ``auto_bins``
    and ``empty_bins``; one info line when the count was chosen automatically, one warning for empty steps."""
    merge = merge_key(cfg)
    time_bins = positive_key(cfg, "time_bins")
    interactions = int(keep.sum())
    mode = empty_mode(cfg)
    meta: dict = {"merge": merge, "time": stamps.kind}
    if time_bins is not None:
        step = bin_stamps(stamps.values, time_bins)
        raw_steps = time_bins
        meta["distinct_stamps"] = int(np.unique(stamps.values).size)
    else:
        step, raw_steps = distinct_steps(stamps.values)
        meta["distinct_stamps"] = raw_steps
    merged = -(-raw_steps // merge)
    note = None
    drop = mode == "drop"
    if time_bins is None and auto_bins(cfg):
        plan = plan_for(cfg, merged, nodes, interactions, labelled)
        if not plan.fits:
            refuse(cfg, plan, nodes, interactions, labelled, stamps.numeric)
        hints.unpin(cfg)
        meta["plan_steps"] = plan.steps
        estimate = plan.estimate
        if plan.changed:
            if stamps.numeric and merge == 1:
                drop = mode in ("auto", "drop")
                busy = busy_bins(stamps.values, keep, [plan.steps, *(_ladder_above(plan, cfg) if drop else [])])
                bins, estimate = (largest_bins(cfg, plan, busy, nodes, interactions, labelled) if drop
                                  else (plan.steps, plan.estimate))
                step, raw_steps = bin_stamps(stamps.values, bins), bins
                how = f"dataset.time_bins={bins} (equal-width bins over {stamps.describe_range()}"
                meta.update(auto_bins=bins, busy_bins={str(k): v for k, v in busy.items()})
                if drop:
                    meta["empty_bins"] = "drop"
                    how += f"; the {bins - busy[bins]} empty ones dropped: {busy[bins]} snapshots" if (
                        busy[bins] < bins) else ""
                how += ")"
            else:
                merge *= math.ceil(merged / plan.steps)
                how = f"dataset.merge={merge} (every {merge} consecutive distinct stamps merged)"
                meta["auto_merge"] = merge
            pin_choice(cfg, meta)
            budget = _budget(cfg)
            why = {"memory": f"above the memory budget of {guards.fmt_bytes(budget.memory_bytes)}, "
                             "dataset.memory_share of the machine's",
                   "time": f"above dataset.epoch_seconds={budget.epoch_seconds:g}",
                   "max_steps": f"above dataset.max_steps={guards.max_steps(cfg)}"}[plan.binding]
            note = (f"{cfg.name}: {meta['distinct_stamps']} distinct time stamps would make {merged} snapshots, "
                    f"{_fmt_estimate(plan.raw_estimate)} ({why}); using {how}: {_fmt_estimate(estimate)}. Override "
                    "with dataset.time_bins=K, or keep every stamp with dataset.auto_bins=false")
        meta["estimate"] = {"peak_mb": estimate.peak_bytes / 2**20, "epoch_seconds": estimate.epoch_seconds}
    step = step // merge
    num_steps = -(-raw_steps // merge)
    meta.update({"raw_steps": raw_steps, "merge": merge})
    empty = empty_steps(step, num_steps, keep)
    if note:
        log.info(note)
    if empty and drop:
        step, num_steps = drop_empty(step, keep)
        meta["empty_dropped"] = empty
        if "auto_bins" not in meta:
            log.info("%s: %d of %d snapshots have no interactions and are dropped (dataset.empty_bins=drop): %d "
                     "snapshots", cfg.name, empty, num_steps + empty, num_steps)
    elif empty:
        busy = num_steps - empty
        fix = f"dataset.time_bins={busy}" if stamps.numeric else f"dataset.merge={max(1, merge * 2)}"
        log.warning("%s: %d of %d snapshots have no interactions (stamps %s); fewer snapshots avoid empty steps, "
                    "e.g. %s, or dataset.empty_bins=drop removes them", cfg.name, empty, num_steps,
                    stamps.describe_range(), fix)
        meta["empty_steps"] = empty
    return step, num_steps, meta


def pin_choice(cfg: Any, meta: dict) -> None:
    """Make every hint printed for this dataset reproduce the automatic choice (``hints.pin``)."""
    if "auto_bins" in meta:
        hints.pin(cfg, "time_bins", int(meta["auto_bins"]))
        if meta.get("empty_bins") == "drop":
            hints.pin(cfg, "empty_bins", "drop")
    elif "auto_merge" in meta:
        hints.pin(cfg, "merge", int(meta["auto_merge"]))


def plan_holds(graph: TemporalGraph, cfg: Any) -> bool:
    """Whether a cached graph's automatic snapshot choice is still what this config and machine would
    choose (else it is rebuilt)."""
    if cfg.get("time_bins") is not None or not auto_bins(cfg):
        return "auto_bins" not in graph.meta and "auto_merge" not in graph.meta
    meta = graph.meta
    merge = merge_key(cfg)
    if "distinct_stamps" not in meta:
        return False
    merged = -(-int(meta["distinct_stamps"]) // merge)
    plan = plan_for(cfg, merged, graph.num_nodes, int(meta.get("structure_interactions", meta["interactions"])),
                    int(graph.labelled_nodes.numel()))
    holds = plan.fits and plan.steps == int(meta.get("plan_steps", merged)) and plan.changed == (
        "auto_bins" in meta or "auto_merge" in meta)
    if holds and meta.get("empty_bins") == "drop":  # the largest count whose non-empty bins fit, again
        busy = {int(k): int(v) for k, v in dict(meta.get("busy_bins", {})).items()}
        holds = set(busy) >= {plan.steps, *_ladder_above(plan, cfg)} and largest_bins(
            cfg, plan, busy, graph.num_nodes, int(meta.get("structure_interactions", meta["interactions"])),
            int(graph.labelled_nodes.numel()))[0] == int(meta["auto_bins"])
    if holds:
        hints.unpin(cfg)
        pin_choice(cfg, meta)
        if plan.changed:
            log.info("%s: %d snapshots of %d distinct time stamps (chosen automatically as when the graph was "
                     "cached; dataset.time_bins=K or dataset.auto_bins=false overrides it)", cfg.name,
                     graph.num_steps, int(meta["distinct_stamps"]))
    return holds
