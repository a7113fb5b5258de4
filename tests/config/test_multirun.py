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
from conftest import missing

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="module")
def optuna_sweep(tmp_path_factory, tiny_overrides) -> Path:
    """One multirun for the module: a 2-trial Optuna search (it varies tau, alpha, lr and dropout) with firing rates."""
    if not has("hydra_plugins.hydra_optuna_sweeper"):
        missing("hydra-optuna-sweeper not installed: pip install -e '.[sweep]'")
    tmp = tmp_path_factory.mktemp("optuna")
    sweep_dir = tmp / "optuna"
    multirun(["hparams_search=optuna", "hydra.sweeper.n_trials=2", "trainer.record_firing_rates=true",
              *tiny_overrides, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp)
    return sweep_dir


@pytest.mark.timeout(600)  # the first user of optuna_sweep pays for the 2-trial multirun (~10-60 s on 2 cores)
def test_optuna_search_maximises_val_micro_f1(optuna_sweep):
    jobs = job_dirs(optuna_sweep)
    assert len(jobs) == 2
    vals = [json.loads((j / "metrics.json").read_text())["val_micro_f1"] for j in jobs]
    result = yaml.safe_load((optuna_sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(vals))  # direction: maximize, objective = main()'s return
    assert set(result["best_params"]) == {"trainer.lr", "model.dropout", "neuron.tau", "surrogate.alpha"}
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["history"][0]["firing_rates"], "trainer.record_firing_rates=true records rates"


@pytest.mark.timeout(600)  # runs the multirun itself when selected alone (-k)
def test_report_on_a_real_multirun(optuna_sweep):
    """src/report.py (its one subprocess run in the suite) on the search's output folder."""
    proc = subprocess.run([sys.executable, str(ROOT / "src" / "report.py"), str(optuna_sweep)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 run(s), 2 variant(s), varying " in proc.stdout
    rows = list(csv.DictReader((optuna_sweep / "summary.csv").open()))
    assert len(rows) == 2 and all(r["runs"] == "1" for r in rows)
    taus = {float(yaml.safe_load((j / ".hydra" / "config.yaml").read_text())["neuron"]["tau"])
            for j in job_dirs(optuna_sweep)}
    assert {float(r["neuron.tau"]) for r in rows} == taus
    assert all(0 < float(r["firing_rate_mean"]) < 1 for r in rows)
    assert "`neuron.tau`" in (optuna_sweep / "summary.md").read_text()
    for name in ("firing_rates.png", "bars.png"):  # the tau x alpha heatmap needs a grid: test_report.py
        assert (optuna_sweep / name).read_bytes().startswith(b"\x89PNG"), name


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
    cfg = compose([f"experiment={name}", "task.train_size=0.8"])
    assert cfg.dataset.name == name and cfg.dataset.merge == merge
    assert list(cfg.model.hids) == hids and cfg.model.dropout == 0.7
    assert list(cfg.sampler.sizes) == [5, 2] and cfg.sampler.p == p and cfg.sampler.name == "sage"
    assert cfg.trainer.batch_size == batch and cfg.trainer.lr == 5e-3 and cfg.task.train_size == 0.8
    assert (cfg.neuron.name, cfg.neuron.tau) == ("adaptive_lif", 1.0)
    assert (cfg.surrogate.name, cfg.surrogate.alpha) == ("sigmoid", 1.0)
