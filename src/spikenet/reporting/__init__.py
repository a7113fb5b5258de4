"""Reports over many runs (a Hydra multirun, a W&B sweep's run folders, any tree of runs, several of them).

``make_report(root)`` collects every run's ``.hydra/config.yaml`` + ``metrics.json`` under ``root`` (or
under each of several roots) and writes ``summary.csv``, ``summary.md`` and PNG figures; ``python
src/report.py <dir> [<dir> ...]`` is its CLI. Each task's runs get their own table, with the task's own
metrics, its best variant by the task's selection metric, and reference rows (baselines, published numbers).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from spikenet.reporting.collect import Run, Section, Variant, find_runs, group_variants, sections
from spikenet.reporting.task_spec import RunFormatError, TaskSpec


class NoRunsError(RuntimeError):
    """The directory holds no finished run."""


@dataclass
class Report:
    runs: list[Run]
    sections: list[Section]
    unfinished: list[Path]
    files: list[Path]

    @property
    def variants(self) -> list[Variant]:
        """Every task's variants, in section order."""
        return [v for s in self.sections for v in s.variants]

    @property
    def varying(self) -> list[str]:
        """The override keys that tell variants apart, over all tasks (first-seen order)."""
        return list(dict.fromkeys(k for s in self.sections for k in s.varying))


# What a report reads of a run folder: kept by ``keep_runs`` so the report can be rebuilt from them alone.
RUN_RECORD = ("metrics.json", ".hydra/config.yaml", ".hydra/overrides.yaml")


def keep_run_records(runs: list[Run], roots: list[Path], dest: Path) -> Path:
    """Copy each run's record files (``RUN_RECORD``, not checkpoints or logs) to ``dest``, at the run's path
    below the folder holding every root; ``make_report(dest)`` then rebuilds the same tables and figures.
    ``metrics.json`` keeps every field but the firing rates of epochs no table reads (``_metrics_record``).

    Why: run folders hold checkpoints and live outside version control; these few kilobytes per run let a
    results page be rebuilt, and seeds be added to it later, from what is committed beside it.
    """
    base = default_out(roots).resolve()
    dest = dest.resolve()
    for root in roots:
        r = root.resolve()
        if dest == r or r in dest.parents:
            raise ValueError(f"cannot keep run records in {dest}: it lies inside the report's root {root}, "
                             "so the copies would be found as runs of their own; pick --out outside the roots")
    for run in runs:
        target = dest / run.path.resolve().relative_to(base)
        for name in RUN_RECORD:
            source = run.path / name
            if not source.is_file():
                continue
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            if name == "metrics.json":
                (target / name).write_text(json.dumps(_metrics_record(run), indent=1) + "\n")
            else:
                shutil.copyfile(source, target / name)
    return dest


def _metrics_record(run: Run) -> dict:
    """``metrics.json`` with the per-epoch firing rates dropped except the epoch the report reads
    (``Run.best_firing_rates``): they are most of the file (layers x steps x epochs), and no table or
    figure uses the other epochs'."""
    if not run.metrics.get("history"):
        return dict(run.metrics)
    kept = run.best_firing_rates()
    history = [
        {**record, "firing_rates": None} if record.get("firing_rates") and record["firing_rates"] is not kept
        else record
        for record in run.metrics["history"]
    ]
    return {**run.metrics, "history": history}


def _collect(roots: list[Path]) -> tuple[list[Run], list[Path]]:
    """Finished and unfinished runs under every root; a run reached from two roots counts once."""
    runs, unfinished, seen = [], [], set()
    for root in roots:
        found, started = find_runs(root)
        for run in found:
            if run.path.resolve() not in seen:
                seen.add(run.path.resolve())
                runs.append(run)
        for path in started:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                unfinished.append(path)
    return runs, unfinished


def default_out(roots: list[Path]) -> Path:
    """Where a report goes without ``out``: the root itself, or the deepest folder holding all roots."""
    if len(roots) == 1:
        return roots[0]
    return Path(os.path.commonpath([r.resolve() for r in roots]))


def _suffixes(specs: list[TaskSpec]) -> list[str]:
    """Figure-name suffixes: none for one task, ``_<task>`` (plus the selection metric when a task repeats)."""
    if len(specs) == 1:
        return [""]
    names = [s.name for s in specs]
    return [f"_{s.name}" + (f"_{s.select}" if names.count(s.name) > 1 else "") for s in specs]


def make_report(
    root: str | Path | list[str | Path],
    out: str | Path | None = None,
    figures: bool = True,
    keep_runs: bool = False,
) -> Report:
    """Write ``summary.csv``, ``summary.md`` and (``figures``) PNGs for the runs under ``root`` (one folder
    or a list of folders, e.g. the protocol runs of several models side by side).

    ``out`` defaults to ``default_out(roots)``. A malformed ``metrics.json`` raises ``RunFormatError``.
    ``keep_runs`` also copies each run's record to ``out/runs`` (``keep_run_records``), which must lie
    outside the roots.
    """
    from spikenet.reporting.figures import make_figures, remove_stale
    from spikenet.reporting.tables import write_csv, write_markdown

    roots = [Path(r) for r in (root if isinstance(root, list | tuple) else [root])]
    for r in roots:
        if not r.is_dir():
            raise FileNotFoundError(f"no such directory: {r}")
    runs, unfinished = _collect(roots)
    if not runs:
        extra = (
            f" ({len(unfinished)} run folder(s) without metrics.json: unfinished or crashed)"
            if unfinished
            else ""
        )
        where = roots[0] if len(roots) == 1 else ", ".join(map(str, roots))
        raise NoRunsError(
            f"no finished runs under {where}: found no metrics.json beside a .hydra/ folder{extra}. "
            "Point it at a multirun folder (outputs/multirun/<date>/<time>) or a sweep's output folder."
        )
    out = Path(out) if out is not None else default_out(roots)
    if keep_runs:  # first: a refused destination must leave nothing behind
        keep_run_records(runs, roots, out / "runs")
    out.mkdir(parents=True, exist_ok=True)
    groups = sections(runs)
    pngs: list[list[Path]] = [[] for _ in groups]
    if figures:
        for i, (section, suffix) in enumerate(zip(groups, _suffixes([s.task for s in groups]), strict=True)):
            pngs[i] = make_figures(out, section.variants, section.varying, section.task, suffix)
        remove_stale(out, [p for made in pngs for p in made])
    files = [
        write_csv(out / "summary.csv", groups),
        write_markdown(out / "summary.md", roots, runs, groups, unfinished, pngs),
        *(p for made in pngs for p in made),
    ]
    return Report(runs, groups, unfinished, files)


__all__ = ["NoRunsError", "Report", "Run", "RunFormatError", "Section", "Variant", "find_runs", "group_variants",
           "keep_run_records", "make_report", "sections"]
