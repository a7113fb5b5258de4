"""src/report.py on hand-made run folders: grouping per variant, mean ± std over seeds, files, messages."""

from __future__ import annotations

import csv
import json
import math
import runpy
import statistics
from pathlib import Path

import pytest
import yaml

from spikenet.reporting import NoRunsError, make_report

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(path: Path, tau: float, alpha: float, seed: int, val: float, rates: bool = True) -> None:
    """A run folder as src/run.py leaves it (only the fields the report reads)."""
    overrides = [f"neuron.tau={tau}", f"surrogate.alpha={alpha}", f"seed={seed}", "trainer.epochs=2"]
    config = {
        "seed": seed,
        "neuron": {"name": "adaptive_lif", "tau": tau},
        "surrogate": {"name": "sigmoid", "alpha": alpha},
    }
    history = [
        {
            "epoch": e,
            "loss": 1.0,
            "val_micro_f1": val - 0.1 * (2 - e),
            "seconds": 0.5,
            "firing_rates": [[0.1 * e * tau, 0.2], [0.05, 0.3 * alpha]] if rates else None,
        }
        for e in (1, 2)
    ]
    metrics = {
        "dataset": "synthetic",
        "neuron": "adaptive_lif",
        "val_micro_f1": val,
        "val_macro_f1": val,
        "test_macro_f1": val - 0.05,
        "test_micro_f1": val + 0.01,
        "best_epoch": 2,
        "epoch_seconds": 0.5 + seed % 2,
        "params": 1000,
        "overrides": overrides,
        "history": history,
    }
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (path / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    job = 0
    for tau in (1.0, 2.0):
        for alpha in (0.5, 1.0):
            for seed in (1, 2):
                fake_run(root / str(job), tau, alpha, seed, val=0.5 + 0.1 * tau + 0.01 * seed + 0.02 * alpha)
                job += 1
    (root / "99" / ".hydra").mkdir(parents=True)  # a crashed job: config but no metrics.json
    (root / "99" / ".hydra" / "config.yaml").write_text("seed: 3\n")
    return root


def test_summary_groups_seeds_into_variants(sweep_dir):
    report = make_report(sweep_dir)
    assert report.varying == ["neuron.tau", "surrogate.alpha"]
    assert len(report.runs) == 8 and len(report.variants) == 4
    assert report.unfinished == [sweep_dir / "99"]
    names = {p.name for p in report.files}
    assert {"summary.csv", "summary.md", "firing_rates.png", "heatmap_tau_alpha.png", "bars.png"} <= names

    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 4
    row = next(r for r in rows if r["neuron.tau"] == "2.0" and r["surrogate.alpha"] == "1.0")
    assert row["runs"] == "2" and row["seeds"] == "1 2"
    vals = [0.5 + 0.2 + 0.01 * s + 0.02 for s in (1, 2)]
    assert float(row["val_micro_f1_mean"]) == pytest.approx(statistics.fmean(vals), rel=1e-5)
    assert float(row["val_micro_f1_std"]) == pytest.approx(statistics.stdev(vals), rel=1e-4)
    assert float(row["test_micro_f1_mean"]) == pytest.approx(statistics.fmean(vals) + 0.01, rel=1e-5)
    assert float(row["params_mean"]) == 1000
    assert float(row["epoch_seconds_mean"]) == pytest.approx(1.0)  # seeds 1, 2 -> 1.5, 0.5
    # firing rate: best epoch (2), mean over layers and steps
    expected_rate = statistics.fmean([0.2 * 2.0, 0.2, 0.05, 0.3 * 1.0])
    assert float(row["firing_rate_mean"]) == pytest.approx(expected_rate, rel=1e-5)

    md = (sweep_dir / "summary.md").read_text()
    assert "8 finished run(s) in 4 variant(s); 1 unfinished" in md
    assert "Common overrides: `trainer.epochs=2`" in md
    assert "| `neuron.tau` | `surrogate.alpha` | runs | test Ma-F1 (%)" in md
    best = 100 * statistics.fmean(vals)
    assert f"**{best:.2f} ± {100 * statistics.stdev(vals):.2f}**" in md  # best val Mi-F1 in bold
    assert "![bars](bars.png)" in md

    for name in ("firing_rates.png", "heatmap_tau_alpha.png", "bars.png"):
        data = (sweep_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name


def test_figures_that_do_not_apply_are_left_out(tmp_path):
    root = tmp_path / "runs"
    for k, alpha in enumerate((0.5, 1.0, 2.0)):  # tau fixed: no heatmap; no firing rates: no curves
        fake_run(root / str(k), 1.0, alpha, seed=1, val=0.4 + k / 10, rates=False)
    (root / "firing_rates.png").write_bytes(PNG_MAGIC)  # stale figure of an earlier report
    out = tmp_path / "report"
    report = make_report(root, out)
    assert report.varying == ["surrogate.alpha"]
    assert sorted(p.name for p in out.iterdir()) == ["bars.png", "summary.csv", "summary.md"]
    md = (out / "summary.md").read_text()
    assert "| 2 |" not in md and "| 0.5 | 1 |" in md  # single runs: no ± part
    make_report(root)
    assert not (root / "firing_rates.png").exists()


def test_no_runs_message(tmp_path, capsys):
    """src/report.py's error paths, in-process (its one subprocess run is in test_multirun.py)."""
    with pytest.raises(NoRunsError, match="no finished runs"):
        make_report(tmp_path)
    main = runpy.run_path(str(ROOT / "src" / "report.py"))["main"]
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no finished runs under" in err and "Traceback" not in err
    assert main([str(tmp_path / "missing")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_nan_scores_do_not_break_the_tables(tmp_path):
    fake_run(tmp_path / "0", 1.0, 1.0, seed=1, val=0.5)
    metrics = json.loads((tmp_path / "0" / "metrics.json").read_text())
    metrics["test_macro_f1"] = None  # metrics.json writes NaN as null
    (tmp_path / "0" / "metrics.json").write_text(json.dumps(metrics))
    report = make_report(tmp_path)
    assert math.isnan(report.variants[0].mean("test_macro_f1"))
    assert "–" in (tmp_path / "summary.md").read_text()


def test_kept_run_records_rebuild_the_same_report(sweep_dir, tmp_path, capsys):
    """--keep-runs copies what the report reads (no checkpoints) beside it; a report over the copies is the same."""
    (sweep_dir / "0" / "best.pt").write_bytes(b"weights")
    out = tmp_path / "page"
    main = runpy.run_path(str(ROOT / "src" / "report.py"))["main"]
    assert main([str(sweep_dir), "--out", str(out), "--keep-runs", "--no-figures"]) == 0
    assert f"kept the records of 8 run(s) in {out / 'runs'}" in capsys.readouterr().out
    kept = out / "runs"
    assert sorted(p.relative_to(kept / "0").as_posix() for p in (kept / "0").rglob("*") if p.is_file()) == [
        ".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json"]
    assert not (kept / "99").exists()  # unfinished: nothing to keep
    history = json.loads((kept / "0" / "metrics.json").read_text())["history"]
    original = json.loads((sweep_dir / "0" / "metrics.json").read_text())["history"]
    assert [r["firing_rates"] for r in history] == [None, original[1]["firing_rates"]]  # best epoch's only
    assert [{k: v for k, v in r.items() if k != "firing_rates"} for r in history] == [
        {k: v for k, v in r.items() if k != "firing_rates"} for r in original]

    def rows(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "run_dirs"} for r in csv.DictReader(path.open())]

    first = rows(out / "summary.csv")
    rebuilt = make_report(kept, tmp_path / "again", figures=False)
    assert len(rebuilt.runs) == 8 and rows(tmp_path / "again" / "summary.csv") == first


def test_run_records_are_not_kept_inside_the_runs_they_come_from(sweep_dir):
    with pytest.raises(ValueError, match="inside the report's root"):
        make_report(sweep_dir, figures=False, keep_runs=True)  # out defaults to the root: copies would be runs
    assert not (sweep_dir / "runs").exists()
    with pytest.raises(ValueError, match="inside the report's root"):
        make_report(sweep_dir, sweep_dir / "report", figures=False, keep_runs=True)
    assert not (sweep_dir / "report").exists()  # refused before anything is written
