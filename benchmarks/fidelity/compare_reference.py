"""Side-by-side DBLP epoch time: the official SpikeNet implementation against this project, one after the other.

    python benchmarks/fidelity/compare_reference.py --official /work/ref/SpikeNet \\
        --official-python /work/ref/venv/bin/python

Runs the official ``main.py --dataset dblp --hids 128 10 --batch_size 1024 --p 0.5 --train_size 0.4
--epochs E`` in its checkout, reads the cumulative ``Time elapsed`` it prints after every epoch, and
takes the mean of the per-epoch differences after the first ``--skip`` epochs. Then it runs
``benchmarks/speed/epoch_time.py`` with the same hyperparameters on the same feature file
(``dataset.root`` = the folder holding ``dblp/dblp.npy``, by default the checkout's ``data``;
``dataset.features=file``), ``--skip`` warm-up epochs and E - skip timed ones. It prints both
epoch times, the ratio official / ours and, last, one JSON line. The parsing and the path checks are
``spikenet.benchmarking.reference_spikenet``'s.

What an epoch holds: the official code trains, then scores validation and the whole test split;
ours trains and scores validation (test is scored once, at the best validation epoch, which gives
the same reported result). Measure on an idle machine: both use all cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from spikenet.benchmarking import SetupError, per_epoch_seconds, run_command
from spikenet.benchmarking.reference_spikenet import (
    OFFICIAL_ARGS,
    OURS_OVERRIDES,
    check_setup,
    parse_official_elapsed,
    parse_ours,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_official(official: Path, python: Path, epochs: int, seed: int | None, timeout: float) -> tuple[str, float]:
    cmd = [str(python), "main.py", *OFFICIAL_ARGS, "--epochs", str(epochs)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return run_command(cmd, official, timeout, "the official main.py")


def run_ours(data_root: Path, epochs: int, skip: int, extra: list[str], timeout: float) -> tuple[str, float]:
    cmd = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "speed" / "epoch_time.py"), *OURS_OVERRIDES,
           f"dataset.root={data_root}", f"bench.warmup={skip}", f"bench.epochs={epochs - skip}", *extra]
    return run_command(cmd, PROJECT_ROOT, timeout, "benchmarks/speed/epoch_time.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of EdisonLeeeee/SpikeNet, built")
    parser.add_argument("--official-python", type=Path, required=True, help="the Python of its environment")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding dblp/ for ours (default: <official>/data, the same files)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per side (default 3)")
    parser.add_argument("--skip", type=int, default=1, help="leading epochs left out of the means (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="model seed for the official run (default its own)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per side before giving up")
    parser.add_argument("--ours-only", action="store_true", help="skip the official run (still checks the paths)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for ours, e.g. dataset.mmap=false")
    args = parser.parse_args(argv)
    official = args.official.resolve()
    data_root = (args.data_root or official / "data").resolve()
    try:
        features = check_setup(official, args.official_python, data_root)
    except SetupError as err:
        print(f"compare_reference: {err}", file=sys.stderr)
        return 2
    if args.epochs <= args.skip:
        print(f"compare_reference: --epochs ({args.epochs}) must exceed --skip ({args.skip})", file=sys.stderr)
        return 2
    result: dict = {"features": str(features), "epochs": args.epochs, "skipped": args.skip}
    if not args.ours_only:
        out, wall = run_official(official, args.official_python, args.epochs, args.seed, args.timeout)
        cumulative = parse_official_elapsed(out)
        if len(cumulative) != args.epochs:
            raise RuntimeError(f"the official run printed {len(cumulative)} epochs, expected {args.epochs}")
        official_epochs = per_epoch_seconds(cumulative, args.skip)
        result["official"] = {"epoch_seconds": statistics.mean(official_epochs), "epochs": official_epochs,
                              "wall_seconds": wall}
    out, wall = run_ours(data_root, args.epochs, args.skip, list(args.overrides), args.timeout)
    ours = parse_ours(out)
    result["ours"] = {"epoch_seconds": ours["epoch_seconds"], "split": ours.get("split"), "wall_seconds": wall,
                      "overrides": list(args.overrides)}
    print()
    if "official" in result:
        result["ratio"] = result["official"]["epoch_seconds"] / ours["epoch_seconds"]
        print(f"official  {result['official']['epoch_seconds']:8.3f} s per epoch "
              f"(epochs {args.skip + 1}-{args.epochs}: {', '.join(f'{s:.2f}' for s in official_epochs)})")
    print(f"ours      {ours['epoch_seconds']:8.3f} s per epoch (median of {args.epochs - args.skip} after "
          f"{args.skip} warm-up)")
    if "ratio" in result:
        print(f"ratio     {result['ratio']:8.2f}x")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
