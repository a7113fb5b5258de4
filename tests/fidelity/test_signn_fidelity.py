"""benchmarks/fidelity/signn_fidelity.py: the official output's parsing, the shared tie rule and the path checks
(``spikenet.benchmarking.reference_signn``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spikenet.benchmarking import SetupError
from spikenet.benchmarking import reference_signn as sf

# The official SiGNN main.py's lines (its tqdm bars go to stderr), with a validation tie at epochs 2 and 3.
OFFICIAL_OUTPUT = """\
Epoch: 001, Val: 0.4213, Test: 0.4190, Best: Macro-0.3001, Micro-0.4190, Time elapsed 35.20s
Epoch: 002, Val: 0.5217, Test: 0.5100, Best: Macro-0.4100, Micro-0.5100, Time elapsed 70.75s
Epoch: 003, Val: 0.5217, Test: 0.5190, Best: Macro-0.4200, Micro-0.5190, Time elapsed 104.35s
"""


def test_official_lines_parsed_with_the_later_epoch_winning_a_tie():
    r = sf.parse_official(OFFICIAL_OUTPUT)
    assert (r["macro_f1"], r["micro_f1"], r["best_epoch"]) == (0.42, 0.519, 3)
    assert r["val"] == [0.4213, 0.5217, 0.5217] and r["test"] == [0.419, 0.51, 0.519]
    assert r["epoch_seconds"] == pytest.approx([35.20, 35.55, 33.60])


def test_official_output_without_epochs_is_an_error():
    with pytest.raises(ValueError, match="not 1..n"):
        sf.parse_official("Epoch: 002, Val: 0.5, Test: 0.5, Best: Macro-0.4, Micro-0.5, Time elapsed 3.0s\n")


def test_ours_reselected_with_the_official_rule():
    history = [{"val_micro_f1": 0.42, "test_macro_f1": 0.30, "test_micro_f1": 0.41},
               {"val_micro_f1": 0.52, "test_macro_f1": 0.41, "test_micro_f1": 0.51},
               {"val_micro_f1": 0.52, "test_macro_f1": 0.42, "test_micro_f1": 0.52},
               {"val_micro_f1": 0.50, "test_macro_f1": 0.45, "test_micro_f1": 0.55}]
    assert sf.select_like_official(history) == {"macro_f1": 0.42, "micro_f1": 0.52, "best_epoch": 3}
    history[2]["test_micro_f1"] = None  # trainer.test_schedule=best: no test score at that epoch
    with pytest.raises(ValueError, match="test_schedule=every"):
        sf.select_like_official(history)


def test_setup_errors_name_the_missing_piece(tmp_path: Path):
    official, root = tmp_path / "SiGNN", tmp_path / "root"
    with pytest.raises(SetupError, match="not a checkout of the official SiGNN"):
        sf.check_setup(official, Path(sys.executable), root)
    (official / "src").mkdir(parents=True)
    (official / "main.py").write_text("")
    (official / "src" / "model.py").write_text("")
    (root / "dblp").mkdir(parents=True)
    for name in ("dblp.txt", "node2label.txt", "dblp.npy"):
        (root / "dblp" / name).write_text(name)
    with pytest.raises(SetupError, match="the official code needs .*dblp.txt"):
        sf.check_setup(official, Path(sys.executable), root)
    (official / "data" / "dblp").mkdir(parents=True)
    for name in ("dblp.txt", "node2label.txt", "dblp.npy"):
        (official / "data" / "dblp" / name).symlink_to(root / "dblp" / name)
    sf.check_setup(official, Path(sys.executable), root)
    (official / "data" / "dblp" / "dblp.npy").unlink()
    (official / "data" / "dblp" / "dblp.npy").write_text("other features")
    with pytest.raises(SetupError, match="differ"):
        sf.check_setup(official, Path(sys.executable), root)


def test_script_exits_with_the_setup_error(tmp_path: Path):
    """``benchmarks/fidelity/signn_fidelity.py`` turns a setup error into exit code 2 and a message, running nothing."""
    import processes
    from conftest import PROJECT_ROOT

    done = processes.run([sys.executable, PROJECT_ROOT / "benchmarks" / "fidelity" / "signn_fidelity.py",
                          "--official", tmp_path / "SiGNN", "--official-python", sys.executable,
                          "--data-root", tmp_path / "root"], cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 2 and "not a checkout of the official SiGNN" in done.stderr, done.explain()
