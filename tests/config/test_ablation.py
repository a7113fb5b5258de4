"""Ablation presets (conf/ablation/*.yaml): every variant composes, and every preset runs as a Hydra multirun on
tiny synthetic data (1 epoch, 2 seeds, in this process) and gets its report."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
import yaml
from conftest import CONF_DIR, RUN_SCRIPT
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from spikenet.config import validate
from spikenet.neurons import NEURONS, SURROGATES
from spikenet.reporting import make_report

PRESETS = {  # neuron and surrogate: glob(*), every option of the config group, i.e. every registered part
    "neuron": {"neuron": sorted(NEURONS.where(config=None))},  # (a plugin neuron without a conf file: not swept)
    "surrogate": {"surrogate": sorted(SURROGATES.where(config=None))},
    "tau_alpha": {"neuron.tau": ["1.0", "1.5", "2.0", "3.0"], "surrogate.alpha": ["0.5", "1.0", "2.0", "5.0"]},
    "p": {"sampler.p": ["0.0", "0.25", "0.5", "0.75", "1.0"]},
    "sampler": {"sampler": ["sage", "rw"]},
    "model": {"model": ["spikenet", "ann", "gru", "signn"]},
    "coding": {"coding": ["real", "rate", "threshold", "latency"]},
}
# the tiny run: 1 epoch, 2 seeds, one thread (two threads on a shared two-core machine cost 10x), no checkpoint
TINY = ["seed=1,2", "trainer.epochs=1", "dataset.num_nodes=200", "dataset.num_steps=3", "model.hids=[8,4]",
        "trainer.progress=false", "trainer.save_checkpoint=false", "trainer.num_threads=1", "device=cpu",
        "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def sweep_params(name: str) -> dict[str, list[str]]:
    """A preset's swept values; ``glob(*)`` on a config group expanded as Hydra does (the group's options, sorted)."""
    params = yaml.safe_load((CONF_DIR / "ablation" / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
    out = {}
    for k, values in params.items():
        if str(values).strip() == "glob(*)":
            out[k] = sorted(p.stem for p in (CONF_DIR / k).glob("*.yaml"))
        else:
            out[k] = [v.strip() for v in str(values).split(",")]
    return out


def test_presets_sweep_what_they_say():
    assert sorted(p.stem for p in (CONF_DIR / "ablation").glob("*.yaml")) == sorted(PRESETS)
    for name, expected in PRESETS.items():
        params = sweep_params(name)
        assert len(params.pop("seed")) >= 3, f"{name}: several seeds"
        assert params == expected, name


GROUP_KEYS = ("neuron", "surrogate", "sampler", "model", "coding")


def test_every_swept_value_composes_with_the_dblp_experiment(compose):
    """Each swept config-group option composes with ``experiment=dblp`` and validates (LIF/PLIF keep their
    tau > 1 and each surrogate its own alpha, since the experiment no longer pins them); each swept number
    passes validation in that config."""
    base = compose(["experiment=dblp"])
    for name in PRESETS:
        params = sweep_params(name)
        params.pop("seed")
        for key, values in params.items():
            for value in values:
                if key in GROUP_KEYS:
                    cfg = compose([f"+ablation={name}", "experiment=dblp", f"{key}={value}"])
                    assert (cfg.model.coding if key == "coding" else cfg[key]).name == value  # @package model.coding
                    if key == "surrogate":
                        own = yaml.safe_load((CONF_DIR / "surrogate" / f"{value}.yaml").read_text())["alpha"]
                        assert cfg.surrogate.alpha == own
                else:
                    cfg = base.copy()
                    OmegaConf.update(cfg, key, float(value))
                validate(cfg)


def _multirun(monkeypatch, args: list[str]) -> None:
    """``python src/run.py -m <args>`` in this process (Hydra's basic launcher runs the jobs in turn)."""
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")  # resolve config_path against src/run.py
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", [str(RUN_SCRIPT), "-m", *args])
    spec = importlib.util.spec_from_file_location("spikenet_run_entry", RUN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main()
    finally:
        GlobalHydra.instance().clear()


# The runs take a subset of each preset's values (every value composes, above): Hydra composes each job's
# config twice on top of the run itself, so all 35 variants x 2 seeds would cost several times more.
RUN_SUBSET = {
    "neuron": ["neuron=lif"],  # SpikingJelly's node with its own tau = 2.0
    "surrogate": ["surrogate=arctan"],
    "tau_alpha": ["neuron.tau=1.0,2.0", "surrogate.alpha=0.5,1.0"],
    "p": ["sampler.p=0.0,1.0"],
    "sampler": ["sampler=rw"],
    "model": ["++model.hidden=8"],
    "coding": ["coding=rate"],
}
VARIANTS = {"tau_alpha": 4, "p": 2, "model": 4}  # 1 for the others
FIGURES = ("tau_alpha", "p", "model")  # the presets whose own figures are checked (each figure costs ~0.6 s)


@pytest.mark.timeout(600)  # 24 in-process training runs: the suite's longest test (~40 s on 2 loaded cores)
def test_each_preset_runs_and_reports(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    reports = {}
    try:
        for name in PRESETS:
            sweep = tmp_path / name
            _multirun(monkeypatch, [f"+ablation={name}", *TINY, *RUN_SUBSET[name], f"hydra.sweep.dir={sweep}"])
            variants = VARIANTS.get(name, 1)
            jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
            assert len(jobs) == 2 * variants, name
            reports[name] = make_report(sweep, figures=name in FIGURES)
    finally:
        torch.set_num_threads(threads)

    for name, report in reports.items():
        assert len(report.runs) == VARIANTS.get(name, 1) * 2 and not report.unfinished, name
        assert all(sorted(v.seeds) == [1, 2] for v in report.variants), name
        md = (tmp_path / name / "summary.md").read_text()
        assert " ± " in md, f"{name}: mean ± std over the two seeds"
    assert reports["tau_alpha"].varying == ["neuron.tau", "surrogate.alpha"]
    figures = {name: {p.name for p in r.files if p.suffix == ".png"} for name, r in reports.items()}
    assert "heatmap_tau_alpha.png" in figures["tau_alpha"]
    assert "score_vs_p.png" in figures["p"] and "score_vs_p.png" not in figures["tau_alpha"]
    assert "firing_rates.png" in figures["tau_alpha"] and "firing_rates.png" in figures["model"]
    assert "score_vs_cost.png" in figures["model"]
    lif = reports["neuron"].runs[0]
    assert lif.config["neuron.name"] == "lif" and lif.config["neuron.tau"] == 2.0

    # the model ablation: metrics.json carries params, epoch time, peak memory, F1 and the costs
    by_model = {}
    for job in (tmp_path / "model").iterdir():
        if job.name.isdigit():
            metrics = json.loads((job / "metrics.json").read_text())
            by_model[metrics["model"]] = metrics
    assert set(by_model) == {"spikenet", "ann", "gru", "signn"}
    for m in by_model.values():
        for key in ("params", "epoch_seconds", "peak_rss_mb", "test_macro_f1", "test_micro_f1", "macs", "ann_macs",
                    "energy_uj"):
            assert m[key] is not None and m[key] >= 0, key
    spiking = by_model["spikenet"]
    assert spiking["firing_rates"] and len(spiking["firing_rates"]) == 2 and len(spiking["firing_rates"][0]) == 3
    assert spiking["sops"] > 0 and by_model["ann"]["sops"] == 0 == by_model["gru"]["sops"]
    # SpikeNet's dense first layer alone is cheaper than its ANN twin's whole network
    assert spiking["macs"] < by_model["ann"]["macs"] == spiking["ann_macs"]
    assert by_model["gru"]["params"] != by_model["ann"]["params"]
    # SiGNN: one rate row per (channel, layer); its maps read real values (gate times spikes): MACs, no SOPs
    assert len(by_model["signn"]["firing_rates"]) == 3 * 2 and by_model["signn"]["sops"] == 0

