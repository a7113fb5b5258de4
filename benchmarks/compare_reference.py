"""Side-by-side DBLP epoch time: the official SpikeNet implementation against this project, one after the other.

    python benchmarks/compare_reference.py --official /work/ref/SpikeNet --official-python /work/ref/venv/bin/python

Runs the official ``main.py --dataset dblp --hids 128 10 --batch_size 1024 --p 0.5 --train_size 0.4
--epochs E`` in its checkout, reads the cumulative ``Time elapsed`` it prints after every epoch, and
takes the mean of the per-epoch differences after the first ``--skip`` epochs. Then it runs
``benchmarks/epoch_time.py`` with the same hyperparameters on the same feature file
(``dataset.root`` = the folder holding ``dblp/dblp.npy``, by default the checkout's ``data``;
``dataset.features=file``), ``--skip`` warm-up epochs and E - skip timed ones. It prints both
epoch times, the ratio official / ours and, last, one JSON line.

What an epoch holds: the official code trains, then scores validation and the whole test split;
ours trains and scores validation (test is scored once, at the best validation epoch, which gives
the same reported result). Measure on an idle machine: both use all cores.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_ARGS = ["--dataset", "dblp", "--hids", "128", "10", "--sizes", "5", "2", "--batch_size", "1024", "--p", "0.5",
                 "--train_size", "0.4"]
OURS_OVERRIDES = ["dataset=dblp", "dataset.features=file", "model.hids=[128,10]", "sampler.sizes=[5,2]",
                  "sampler.p=0.5", "trainer.batch_size=1024", "task.train_size=0.4"]
_EPOCH_LINE = re.compile(r"Epoch:\s*(\d+),.*?Time elapsed\s+([0-9.]+)\s*s")


class SetupError(RuntimeError):
    """A path or file the comparison needs is missing or wrong."""


def parse_official_elapsed(text: str) -> list[float]:
    """Cumulative seconds after each epoch, in epoch order, from the official ``main.py`` output."""
    found = {}
    for match in _EPOCH_LINE.finditer(text):
        found[int(match.group(1))] = float(match.group(2))
    epochs = sorted(found)
    if epochs != list(range(1, len(epochs) + 1)):
        raise ValueError(f"official output: epochs {epochs} are not 1..n")
    return [found[e] for e in epochs]


def per_epoch_seconds(cumulative: list[float], skip: int = 1) -> list[float]:
    """Seconds of each epoch after the first ``skip`` ones, from cumulative elapsed times."""
    if len(cumulative) <= skip:
        raise ValueError(f"need more than {skip} epochs to skip {skip}, got {len(cumulative)}")
    steps = [b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
    if any(s <= 0 for s in steps):
        raise ValueError(f"cumulative times must increase: {cumulative}")
    return steps[skip:]


def mean_std(values: list[float]) -> str:
    """``mean ± std`` at 4 decimals (std 0 for one value), for the side-by-side tables."""
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def parse_ours(stdout: str) -> dict:
    """The JSON line ``benchmarks/epoch_time.py`` prints last."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            result = json.loads(line)
            if "epoch_seconds" in result:
                return result
    raise ValueError("no JSON line with epoch_seconds in the output of benchmarks/epoch_time.py")


def check_setup(official: Path, python: Path, data_root: Path) -> Path:
    """Fail with a clear message unless both sides can run on the same features; returns the feature file."""
    if not (official / "main.py").is_file() or not (official / "spikenet").is_dir():
        raise SetupError(f"{official} is not a checkout of the official SpikeNet (no main.py / spikenet/)")
    if not python.is_file() or not os.access(python, os.X_OK):
        raise SetupError(f"--official-python {python} is not an executable file")
    official_dblp = official / "data" / "dblp"
    for name in ("dblp.txt", "node2label.txt", "dblp.npy"):
        if not (official_dblp / name).is_file():
            raise SetupError(f"the official code needs {official_dblp / name}: put dblp.txt, node2label.txt and "
                             "dblp.npy there (see the README)")
    features = data_root / "dblp" / "dblp.npy"
    if not features.is_file():
        raise SetupError(f"--data-root {data_root} must hold dblp/dblp.npy (and dblp.txt, node2label.txt)")
    for name in ("dblp.txt", "node2label.txt"):
        if not (data_root / "dblp" / name).is_file():
            raise SetupError(f"--data-root {data_root} must hold dblp/{name}")
    theirs = official_dblp / "dblp.npy"
    if not (os.path.samefile(theirs, features) or filecmp.cmp(theirs, features, shallow=False)):
        raise SetupError(f"{theirs} and {features} differ: both sides must read the same features")
    return features


def run_command(cmd: list[str], cwd: Path, timeout: float, what: str, env: dict[str, str] | None = None
                ) -> tuple[str, float]:
    """Run ``cmd`` in ``cwd`` (echoed first); its stdout and wall seconds, or an error with its stderr's tail."""
    print(f"$ (cd {cwd} && {' '.join(cmd)})", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, wall


def run_official(official: Path, python: Path, epochs: int, seed: int | None, timeout: float) -> tuple[str, float]:
    cmd = [str(python), "main.py", *OFFICIAL_ARGS, "--epochs", str(epochs)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return run_command(cmd, official, timeout, "the official main.py")


def run_ours(data_root: Path, epochs: int, skip: int, extra: list[str], timeout: float) -> tuple[str, float]:
    cmd = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "epoch_time.py"), *OURS_OVERRIDES,
           f"dataset.root={data_root}", f"bench.warmup={skip}", f"bench.epochs={epochs - skip}", *extra]
    return run_command(cmd, PROJECT_ROOT, timeout, "benchmarks/epoch_time.py")


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
