"""Hydra multirun: a 2 x 2 grid + src/report.py on it, an Optuna search, the launcher presets."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "src" / "run.py"


def has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def multirun(args: list[str], cwd: Path, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(PYTHONWARNINGS="ignore", WANDB_MODE="disabled")
    proc = subprocess.run(
        [sys.executable, str(RUN), "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_grid_multirun_and_report(tmp_path, tiny_overrides):
    sweep_dir = tmp_path / "multirun"
    multirun(
        [
            "neuron.tau=1.0,2.0",
            "surrogate.alpha=0.5,1.0",
            "trainer.record_firing_rates=true",
            *tiny_overrides,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        seen.add((cfg["neuron"]["tau"], cfg["surrogate"]["alpha"]))
        assert metrics["history"][0]["firing_rates"], "trainer.record_firing_rates=true records rates"
    assert seen == {(1.0, 0.5), (1.0, 1.0), (2.0, 0.5), (2.0, 1.0)}

    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / "report.py"), str(sweep_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 run(s), 4 variant(s), varying neuron.tau, surrogate.alpha" in proc.stdout
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 4 and all(r["runs"] == "1" for r in rows)
    assert {(r["neuron.tau"], r["surrogate.alpha"]) for r in rows} == {
        ("1.0", "0.5"),
        ("1.0", "1.0"),
        ("2.0", "0.5"),
        ("2.0", "1.0"),
    }
    assert all(0 < float(r["firing_rate_mean"]) < 1 for r in rows)
    assert "| `neuron.tau` | `surrogate.alpha` |" in (sweep_dir / "summary.md").read_text()
    for name in ("firing_rates.png", "heatmap_tau_alpha.png", "bars.png"):
        assert (sweep_dir / name).read_bytes().startswith(b"\x89PNG"), name


@pytest.mark.skipif(
    not has("hydra_plugins.hydra_optuna_sweeper"), reason="hydra-optuna-sweeper not installed"
)
def test_optuna_search_maximises_val_micro_f1(tmp_path, tiny_overrides):
    sweep_dir = tmp_path / "optuna"
    multirun(
        [
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            *tiny_overrides,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 2
    vals = [json.loads((j / "metrics.json").read_text())["val_micro_f1"] for j in jobs]
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(
        max(vals)
    )  # direction: maximize, objective = main()'s return
    assert set(result["best_params"]) == {"trainer.lr", "model.dropout", "neuron.tau", "surrogate.alpha"}


@pytest.mark.skipif(
    not (has("hydra_plugins.hydra_joblib_launcher") and has("hydra_plugins.hydra_submitit_launcher")),
    reason="launcher plugins not installed",
)
def test_launcher_presets_compose(conf_dir):
    from hydra import compose, initialize_config_dir

    from spikenet.cli import check_group_overrides

    args = ["hydra/launcher=joblib", "+launcher=slurm", "hparams_search=optuna"]
    check_group_overrides(args, conf_dir)  # run.py's own option check lets them through (no SystemExit)
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        joblib = compose("config", overrides=["hydra/launcher=joblib"], return_hydra_config=True)
        slurm = compose(
            "config", overrides=["+launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    assert joblib.hydra.launcher._target_.endswith("JoblibLauncher")
    launcher = slurm.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min > 0


@pytest.mark.parametrize(
    ("name", "hids", "batch", "p", "merge"),
    [
        ("dblp", [128, 10], 1024, 0.5, 1),
        ("tmall", [512, 10], 1024, 1.0, 10),  # the official README: hids 512 10, p 1.0
        ("patent", [512, 10], 2048, 1.0, 2),
    ],
)
def test_paper_presets(compose, name, hids, batch, p, merge):
    cfg = compose([f"experiment={name}", "trainer.train_size=0.8"])
    assert cfg.dataset.name == name and cfg.dataset.merge == merge
    assert list(cfg.model.hids) == hids and cfg.model.dropout == 0.7
    assert list(cfg.sampler.sizes) == [5, 2] and cfg.sampler.p == p and cfg.sampler.name == "sage"
    assert cfg.trainer.batch_size == batch and cfg.trainer.lr == 5e-3 and cfg.trainer.train_size == 0.8
    assert (cfg.neuron.name, cfg.neuron.tau) == ("adaptive_lif", 1.0)
    assert (cfg.surrogate.name, cfg.surrogate.alpha) == ("sigmoid", 1.0)
