"""SiGNN against its official code on DBLP: the same feature file, the official README's settings, a few seeds.

    python benchmarks/fidelity/signn_fidelity.py --official /work/ref/SiGNN \\
        --official-python /work/ref/venv/bin/python --data-root /work/dblp_root \\
        --epochs 10 --seeds 2024 2025 2026 --threads 1

For each seed it runs the official ``main.py --dataset dblp --cuda cpu --epochs E --seed S`` in its checkout
(built as ``../shared/REFERENCE.md`` says, ``data/dblp/`` holding the same three files as
``<data-root>/dblp/``) and reads its per-epoch lines (validation and test Micro-F1, the best test Macro/Micro
so far, the cumulative time). Then ``src/run.py experiment=signn_dblp trainer.epochs=E seed=S
dataset.features=file trainer.test_schedule=every`` on the same files, and reads ``metrics.json``. Both sides
report test at the best validation Micro-F1 with the official tie rule (``>=``: the later epoch wins a tie;
this project's trainer keeps the earlier one, so ours is re-selected from its per-epoch history). Both split
with seed 42 (train 0.4, val 0.05). It prints one row per seed, mean ± std per side and, last, one JSON line.
``--threads`` pins both sides' torch threads (``OMP_NUM_THREADS``; ``trainer.num_threads``). The parsing, the
tie rule and the path checks are ``spikenet.benchmarking.reference_signn``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from spikenet.benchmarking import SetupError, mean_std, run_command
from spikenet.benchmarking.reference_signn import check_setup, parse_official, select_like_official

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of CharliedoD/SiGNN, built")
    parser.add_argument("--official-python", type=Path, required=True, help="the Python of its environment")
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding dblp/ (the same files)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10; the paper's 100)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2024, 2025, 2026])
    parser.add_argument("--threads", type=int, default=None, help="torch threads on both sides")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per run before giving up")
    parser.add_argument("--out", type=Path, default=None, help="folder for our run directories (default: temporary)")
    args = parser.parse_args(argv)
    official, data_root = args.official.resolve(), args.data_root.resolve()
    try:
        check_setup(official, args.official_python, data_root)
    except SetupError as err:
        print(f"signn_fidelity: {err}", file=sys.stderr)
        return 2
    env = dict(os.environ, WANDB_MODE="disabled")
    threads = []
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
        threads = [f"trainer.num_threads={args.threads}"]
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="signn_fidelity_"))
    rows = []
    for seed in args.seeds:
        text, wall = run_command([str(args.official_python), "main.py", "--dataset", "dblp", "--cuda", "cpu",
                                  "--epochs", str(args.epochs), "--seed", str(seed)], official, args.timeout,
                                 "the official main.py", env)
        theirs = {**parse_official(text), "wall_seconds": wall}
        run_dir = out_dir / f"signn_{seed}"
        _, wall = run_command([sys.executable, str(PROJECT_ROOT / "src" / "run.py"), "experiment=signn_dblp",
                               f"seed={seed}", f"trainer.epochs={args.epochs}", f"dataset.root={data_root}",
                               "dataset.features=file", "trainer.test_schedule=every", "trainer.progress=false",
                               *threads, f"hydra.run.dir={run_dir}"], PROJECT_ROOT, args.timeout, "src/run.py", env)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        ours = {**select_like_official(metrics["history"]), "wall_seconds": wall,
                "epoch_seconds": [h["seconds"] for h in metrics["history"]],
                "val": [h["val_micro_f1"] for h in metrics["history"]]}
        rows.append({"seed": seed, "official": theirs, "ours": ours})
        print(f"seed {seed}: official Ma/Mi {theirs['macro_f1']:.4f} / {theirs['micro_f1']:.4f} "
              f"(epoch {theirs['best_epoch']}, {statistics.mean(theirs['epoch_seconds']):.1f} s/epoch) | ours "
              f"{ours['macro_f1']:.4f} / {ours['micro_f1']:.4f} (epoch {ours['best_epoch']}, "
              f"{statistics.mean(ours['epoch_seconds']):.1f} s/epoch)", flush=True)
    print()
    summary = {}
    for side in ("official", "ours"):
        macro = [r[side]["macro_f1"] for r in rows]
        micro = [r[side]["micro_f1"] for r in rows]
        secs = [s for r in rows for s in r[side]["epoch_seconds"]]
        summary[side] = {"macro_f1": macro, "micro_f1": micro, "epoch_seconds_mean": statistics.mean(secs)}
        print(f"{side:8s} Ma-F1 {mean_std(macro)}  Mi-F1 {mean_std(micro)}  "
              f"{statistics.mean(secs):.1f} s/epoch  ({len(rows)} seeds, {args.epochs} epochs)")
    print(json.dumps({"epochs": args.epochs, "seeds": args.seeds, "threads": args.threads, "summary": summary,
                      "runs": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
