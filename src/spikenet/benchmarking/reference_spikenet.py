"""The official SpikeNet implementation against this project (``benchmarks/fidelity/compare_reference.py``):
both sides' hyperparameters, the parsing of both sides' output and the checks that both read the same files."""

from __future__ import annotations

import filecmp
import os
import re
from pathlib import Path

from spikenet.benchmarking import SetupError, last_json

OFFICIAL_ARGS = ["--dataset", "dblp", "--hids", "128", "10", "--sizes", "5", "2", "--batch_size", "1024", "--p", "0.5",
                 "--train_size", "0.4"]
OURS_OVERRIDES = ["dataset=dblp", "dataset.features=file", "model.hids=[128,10]", "sampler.sizes=[5,2]",
                  "sampler.p=0.5", "trainer.batch_size=1024", "task.train_size=0.4"]
_EPOCH_LINE = re.compile(r"Epoch:\s*(\d+),.*?Time elapsed\s+([0-9.]+)\s*s")


def parse_official_elapsed(text: str) -> list[float]:
    """Cumulative seconds after each epoch, in epoch order, from the official ``main.py`` output."""
    found = {}
    for match in _EPOCH_LINE.finditer(text):
        found[int(match.group(1))] = float(match.group(2))
    epochs = sorted(found)
    if epochs != list(range(1, len(epochs) + 1)):
        raise ValueError(f"official output: epochs {epochs} are not 1..n")
    return [found[e] for e in epochs]


def parse_ours(stdout: str) -> dict:
    """The JSON line ``benchmarks/speed/epoch_time.py`` prints last."""
    return last_json(stdout, "epoch_seconds", "benchmarks/speed/epoch_time.py")


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
