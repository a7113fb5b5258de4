"""Reports over many runs (a Hydra multirun, a W&B sweep's run folders, any tree of runs).

``make_report(root)`` collects every run's ``.hydra/config.yaml`` + ``metrics.json`` under ``root``
and writes ``summary.csv``, ``summary.md`` and PNG figures; ``python src/report.py <dir>`` is its CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spikenet.reporting.collect import Run, Variant, common_overrides, find_runs, group_variants


class NoRunsError(RuntimeError):
    """The directory holds no finished run."""


@dataclass
class Report:
    runs: list[Run]
    variants: list[Variant]
    varying: list[str]
    unfinished: list[Path]
    files: list[Path]


def make_report(root: str | Path, out: str | Path | None = None, figures: bool = True) -> Report:
    """Write ``summary.csv``, ``summary.md`` and (``figures``) PNGs for the runs under ``root``.

    ``out`` defaults to ``root``.
    """
    from spikenet.reporting.tables import write_csv, write_markdown

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    runs, unfinished = find_runs(root)
    if not runs:
        extra = (
            f" ({len(unfinished)} run folder(s) without metrics.json: unfinished or crashed)"
            if unfinished
            else ""
        )
        raise NoRunsError(
            f"no finished runs under {root}: found no metrics.json beside a .hydra/ folder{extra}. "
            "Point it at a multirun folder (outputs/multirun/<date>/<time>) or a sweep's output folder."
        )
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    variants, varying = group_variants(runs)
    pngs: list[Path] = []
    if figures:
        from spikenet.reporting.figures import make_figures

        pngs = make_figures(out, variants, varying)
    files = [
        write_csv(out / "summary.csv", variants, varying),
        write_markdown(
            out / "summary.md",
            root,
            runs,
            variants,
            varying,
            common_overrides(runs, varying),
            unfinished,
            pngs,
        ),
        *pngs,
    ]
    return Report(runs, variants, varying, unfinished, files)


__all__ = ["NoRunsError", "Report", "Run", "Variant", "find_runs", "group_variants", "make_report"]
