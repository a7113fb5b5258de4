"""SiGNN against its official code on DBLP: the same feature file, the official README's settings, a few seeds.

    python benchmarks/signn_fidelity.py --official /work/ref/SiGNN --official-python /work/ref/venv/bin/python \\
        --data-root /work/dblp_root --epochs 10 --seeds 2024 2025 2026 --threads 1

For each seed it runs the official ``main.py --dataset dblp --cuda cpu --epochs E --seed S`` in its checkout
(built as ``../shared/REFERENCE.md`` says, ``data/dblp/`` holding the same three files as
``<data-root>/dblp/``) and reads its per-epoch lines (validation and test Micro-F1, the best test Macro/Micro
so far, the cumulative time). Then ``src/run.py experiment=signn_dblp trainer.epochs=E seed=S
dataset.features=file trainer.test_schedule=every`` on the same files, and reads ``metrics.json``. Both sides
report test at the best validation Micro-F1 with the official tie rule (``>=``: the later epoch wins a tie;
this project's trainer keeps the earlier one, so ours is re-selected from its per-epoch history). Both split
with seed 42 (train 0.4, val 0.05). It prints one row per seed, mean ± std per side and, last, one JSON line.
``--threads`` pins both sides' torch threads (``OMP_NUM_THREADS``; ``trainer.num_threads``).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from compare_reference import SetupError, mean_std, per_epoch_seconds, run_command

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"Epoch:\s*(\d+),\s*Val:\s*([0-9.]+),\s*Test:\s*([0-9.]+),\s*Best:\s*Macro-([0-9.]+),\s*"
                   r"Micro-([0-9.]+),\s*Time elapsed\s+([0-9.]+)\s*s")


def last_best(values: list[float]) -> int:
    """Index of the last occurrence of the maximum: the official ``>=`` rule (a tie moves to the later epoch)."""
    top = max(values)
    return max(i for i, v in enumerate(values) if v == top)


def parse_official(text: str) -> dict:
    """Per-epoch val/test Micro-F1, the final best test Macro/Micro and the per-epoch seconds of one run."""
    rows = {int(m.group(1)): m.groups()[1:] for m in _LINE.finditer(text)}
    epochs = sorted(rows)
    if not epochs or epochs != list(range(1, len(epochs) + 1)):
        raise ValueError(f"official SiGNN output: epochs {epochs} are not 1..n")
    val = [float(rows[e][0]) for e in epochs]
    test = [float(rows[e][1]) for e in epochs]
    last = rows[epochs[-1]]
    best = last_best(val)
    return {"macro_f1": float(last[2]), "micro_f1": float(last[3]), "best_epoch": best + 1, "val": val,
            "test": test, "epoch_seconds": per_epoch_seconds([float(rows[e][4]) for e in epochs], 0)}


def select_like_official(history: list[dict]) -> dict:
    """Test Macro/Micro at the last epoch with the best validation Micro-F1 (the official ``>=`` rule)."""
    best = last_best([h["val_micro_f1"] for h in history])
    h = history[best]
    if h.get("test_micro_f1") is None:
        raise ValueError("the run has no test scores per epoch: run it with trainer.test_schedule=every")
    return {"macro_f1": h["test_macro_f1"], "micro_f1": h["test_micro_f1"], "best_epoch": best + 1}


def check_setup(official: Path, python: Path, data_root: Path) -> None:
    """Fail with a clear message unless both sides can run on the same three files."""
    if not (official / "main.py").is_file() or not (official / "src" / "model.py").is_file():
        raise SetupError(f"{official} is not a checkout of the official SiGNN (no main.py / src/model.py)")
    if not python.is_file() or not os.access(python, os.X_OK):
        raise SetupError(f"--official-python {python} is not an executable file")
    for name in ("dblp.txt", "node2label.txt", "dblp.npy"):
        ours, theirs = data_root / "dblp" / name, official / "data" / "dblp" / name
        if not ours.is_file():
            raise SetupError(f"--data-root {data_root} must hold dblp/{name}")
        if not theirs.is_file():
            raise SetupError(f"the official code needs {theirs}: link the three files of {data_root / 'dblp'} there")
        if not (os.path.samefile(ours, theirs) or filecmp.cmp(ours, theirs, shallow=False)):
            raise SetupError(f"{ours} and {theirs} differ: both sides must read the same files")


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
