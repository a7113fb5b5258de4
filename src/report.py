"""Summarise a multirun or sweep: tables and figures over every run found below a directory.

    python src/report.py outputs/multirun/2026-01-01/12-00-00       # writes summary.csv/.md + PNGs there
    python src/report.py outputs/sweeps/<sweep id> --out reports/tau_alpha
    python src/report.py outputs/multirun --no-figures               # tables only

One row per variant (the overrides without seed and hydra.*), mean ± std over seeds of test
Macro-/Micro-F1, val Micro-F1, epoch time, parameters and mean firing rate. Firing-rate curves need
runs made with ``trainer.record_firing_rates=true`` or ``logger=wandb``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # works without `pip install -e .` too

from spikenet.reporting import NoRunsError, make_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="multirun / sweep output folder (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: ROOT)")
    parser.add_argument("--no-figures", action="store_true", help="write summary.csv and summary.md only")
    args = parser.parse_args(argv)
    try:
        report = make_report(args.root, args.out, figures=not args.no_figures)
    except (FileNotFoundError, NoRunsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{len(report.runs)} run(s), {len(report.variants)} variant(s)"
        + (f", varying {', '.join(report.varying)}" if report.varying else "")
        + (f"; {len(report.unfinished)} unfinished" if report.unfinished else "")
    )
    for path in report.files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
