"""Summarise a multirun or sweep: tables and figures over every run found below one or more directories.

    python src/report.py outputs/multirun/2026-01-01/12-00-00       # writes summary.csv/.md + PNGs there
    python src/report.py outputs/sweeps/<sweep id> --out reports/tau_alpha
    python src/report.py outputs/multirun --no-figures               # tables only
    python src/report.py outputs/protocol/dblp_spikenet/<stamp> outputs/protocol/dblp_ann/<stamp> \
        --out reports/dblp_protocol                                  # several folders in one report
    python src/report.py outputs/energy/dblp --out docs/energy-results/dblp --keep-runs
        # also copies each run's metrics.json and .hydra/*.yaml to <out>/runs: commit them, and
        # `python src/report.py docs/energy-results/dblp/runs --out docs/energy-results/dblp` rebuilds it

One table per task, one row per variant (the overrides without seed and hydra.*): mean ± std over seeds
of the task's test metrics (Macro-/Micro-F1 for node classification, AP/AUC/MRR for link prediction, ...)
and its selection metric, epoch time, parameters and mean firing rate; the best variant by the selection
metric in bold; under it the runs' baselines and, where they apply, published numbers as reference rows.
Firing-rate curves need runs made with ``trainer.record_firing_rates=true`` or ``logger=wandb``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # works without `pip install -e .` too

from spikenet.reporting import NoRunsError, RunFormatError, make_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", type=Path, nargs="+", metavar="ROOT",
                        help="multirun / sweep output folder(s), searched recursively")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the report (default: ROOT; with several, the folder holding them all)")
    parser.add_argument("--no-figures", action="store_true", help="write summary.csv and summary.md only")
    parser.add_argument("--keep-runs", action="store_true",
                        help="copy each run's metrics.json and .hydra/*.yaml (no checkpoints) to <out>/runs, "
                             "from which the report can be rebuilt")
    args = parser.parse_args(argv)
    try:
        report = make_report(args.roots, args.out, figures=not args.no_figures, keep_runs=args.keep_runs)
    except (FileNotFoundError, NoRunsError, RunFormatError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{len(report.runs)} run(s), {len(report.variants)} variant(s)"
        + (f" of {len(report.sections)} tasks" if len(report.sections) > 1 else "")
        + (f", varying {', '.join(report.varying)}" if report.varying else "")
        + (f"; {len(report.unfinished)} unfinished" if report.unfinished else "")
    )
    for path in report.files:
        print(f"wrote {path}")
    if args.keep_runs:
        print(f"kept the records of {len(report.runs)} run(s) in {report.files[0].parent / 'runs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
