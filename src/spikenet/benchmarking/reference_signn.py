"""SiGNN against its official code (``benchmarks/fidelity/signn_fidelity.py``): the official output's parsing,
the official tie rule for the best epoch, and the checks that both sides read the same three files."""

from __future__ import annotations

import filecmp
import os
import re
from pathlib import Path

from spikenet.benchmarking import SetupError, per_epoch_seconds

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
