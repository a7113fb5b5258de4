"""benchmarks/fidelity/compare_reference.py: parsing of both sides' output and the path checks
(``spikenet.benchmarking.reference_spikenet``), and the script's exit on a bad setup (no official run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import processes
import pytest
from conftest import PROJECT_ROOT

from spikenet.benchmarking import SetupError, per_epoch_seconds
from spikenet.benchmarking import reference_spikenet as cr

SCRIPT = PROJECT_ROOT / "benchmarks" / "fidelity" / "compare_reference.py"

# What the official main.py prints (tqdm bars go to stderr; shown here interleaved as a terminal would).
OFFICIAL_OUTPUT = """\
+------------+--------+
| Parameter  | Value  |
+------------+--------+
| Dataset    | dblp   |
+------------+--------+
Training: 100%|##########| 9/9 [00:09<00:00,  1.01s/it]
Epoch: 001, Val: 0.4213, Test: 0.4190, Best: Macro-0.3001, Micro-0.4190, Time elapsed 13.20s
Training: 100%|##########| 9/9 [00:08<00:00,  1.10it/s]
Epoch: 002, Val: 0.4902, Test: 0.4876, Best: Macro-0.3805, Micro-0.4876, Time elapsed 24.75s
Epoch: 003, Val: 0.5217, Test: 0.5190, Best: Macro-0.4100, Micro-0.5190, Time elapsed 36.35s
"""


def test_official_elapsed_and_per_epoch_times():
    cumulative = cr.parse_official_elapsed(OFFICIAL_OUTPUT)
    assert cumulative == [13.20, 24.75, 36.35]
    # per epoch: 13.20, 11.55, 11.60; the first is skipped
    assert per_epoch_seconds(cumulative, skip=1) == pytest.approx([11.55, 11.60])
    assert per_epoch_seconds(cumulative, skip=0) == pytest.approx([13.20, 11.55, 11.60])
    with pytest.raises(ValueError):
        per_epoch_seconds(cumulative[:1], skip=1)


def test_official_parse_rejects_gaps_and_decreasing_times():
    with pytest.raises(ValueError, match="epochs"):
        cr.parse_official_elapsed(OFFICIAL_OUTPUT.replace("Epoch: 002", "Epoch: 005"))
    assert cr.parse_official_elapsed("no epochs here") == []
    with pytest.raises(ValueError, match="increase"):
        per_epoch_seconds([10.0, 9.0, 20.0], skip=1)


def test_ours_takes_the_last_json_line():
    payload = {"dataset": "dblp", "epoch_seconds": 1.875, "split": {"forward": 0.5}}
    stdout = "metric value\nepoch_seconds 1.875\n{\"not\": \"this\"}\n" + json.dumps(payload) + "\n"
    assert cr.parse_ours(stdout) == payload
    with pytest.raises(ValueError, match="epoch_seconds"):
        cr.parse_ours("epoch_seconds 1.0\n{\"other\": 1}\n")


def _official_tree(root, features: np.ndarray):
    (root / "spikenet").mkdir(parents=True)
    (root / "main.py").write_text("print('stub')\n")
    data = root / "data" / "dblp"
    data.mkdir(parents=True)
    for name in ("dblp.txt", "node2label.txt"):
        (data / name).write_text("0 1 2\n")
    np.save(data / "dblp.npy", features)
    return data


def test_setup_checks_fail_clearly(tmp_path):
    features = np.zeros((2, 3, 4), dtype=np.float32)
    official = tmp_path / "SpikeNet"
    data = _official_tree(official, features)
    python = sys.executable
    # defaults to the checkout's own data: the same file on both sides
    assert cr.check_setup(official, Path(python), official / "data") == data / "dblp.npy"
    with pytest.raises(SetupError, match="main.py"):
        cr.check_setup(tmp_path / "elsewhere", Path(python), official / "data")
    with pytest.raises(SetupError, match="executable"):
        cr.check_setup(official, tmp_path / "no-python", official / "data")
    other = tmp_path / "other"
    (other / "dblp").mkdir(parents=True)
    with pytest.raises(SetupError, match="dblp.npy"):
        cr.check_setup(official, Path(python), other)
    for name in ("dblp.txt", "node2label.txt"):
        (other / "dblp" / name).write_text("0 1 2\n")
    np.save(other / "dblp" / "dblp.npy", features + 1)
    with pytest.raises(SetupError, match="differ"):
        cr.check_setup(official, Path(python), other)
    np.save(other / "dblp" / "dblp.npy", features)  # identical copy: accepted
    assert cr.check_setup(official, Path(python), other) == other / "dblp" / "dblp.npy"
    # the script turns a setup error into exit code 2 and a message, without running anything
    done = processes.run([sys.executable, SCRIPT, "--official", tmp_path / "elsewhere", "--official-python", python],
                         cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 2 and "not a checkout" in done.stderr, done.explain()
