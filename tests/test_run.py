"""The Hydra entry point end to end: ``python src/run.py ...`` in a subprocess with tiny settings.

The successful runs are started together (two at a time, one torch thread each) by one module
fixture, so the suite pays for the process start-ups in parallel; each test then checks one outcome.
"""

from __future__ import annotations

import math
import re
import time

import pytest
import yaml
from conftest import SHARED_DATA, TINY_OVERRIDES, RunResult, finish, run_cli_async

BASE = [*TINY_OVERRIDES, "trainer.num_threads=1"]
HAVE_DBLP = (SHARED_DATA / "dblp" / "dblp.txt").exists()
DBLP = ["dataset=dblp", f"dataset.root={SHARED_DATA}", "dataset.features=fastrp", "dataset.feature_dim=8",
        "++dataset.cache=false", "trainer.epochs=1", "trainer.train_size=0.1", "model.hids=[8,4]",
        "sampler.sizes=[2,2]", "trainer.progress=false", "device=cpu", "trainer.num_threads=1"]
RUNS = {
    **({"dblp": DBLP} if HAVE_DBLP else {}),  # the longest first
    "base": [*BASE, "trainer.epochs=2"],
    "repeat": [*BASE, "trainer.epochs=2"],
    "lif_triangle_rw": [*BASE, "neuron=lif", "surrogate=triangle", "sampler=rw"],
    "if": [*BASE, "neuron=if"],
    "plif": [*BASE, "neuron=plif"],
    "bad_p": [*BASE, "sampler.p=2"],
    "bad_group": [*BASE, "neuron=nope"],
}
TIMING_KEYS = {"epoch_seconds", "train_seconds", "wall_seconds", "peak_rss_mb", "seconds", "eval_seconds",
               "final_test_seconds"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunResult]:
    root = tmp_path_factory.mktemp("runs")
    pending = list(RUNS.items())
    active: dict[str, tuple] = {}
    results: dict[str, RunResult] = {}
    while pending or active:
        while pending and len(active) < 2:
            name, args = pending.pop(0)
            active[name] = run_cli_async(args, root / name)
        for name in list(active):
            if active[name][0].poll() is not None:
                results[name] = finish(active.pop(name))
        time.sleep(0.05)
    return results


def _strip_timings(value):
    if isinstance(value, dict):
        return {k: _strip_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip_timings(v) for v in value]
    return value


def test_tiny_run_writes_results(runs):
    r = runs["base"]
    assert r.returncode == 0, r.explain()
    m = r.metrics
    for key in ("test_macro_f1", "test_micro_f1", "val_micro_f1"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["best_epoch"] in (1, 2)
    assert isinstance(m["params"], int) and m["params"] > 0
    assert m["epoch_seconds"] > 0
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    best = m["history"][m["best_epoch"] - 1]
    assert best["val_micro_f1"] == pytest.approx(m["val_micro_f1"])
    if best["test_micro_f1"] is not None:  # per-epoch test scores exist only with test_schedule improved/every
        assert best["test_micro_f1"] == pytest.approx(m["test_micro_f1"])
    assert max(h["val_micro_f1"] for h in m["history"]) == pytest.approx(m["val_micro_f1"])
    assert (r.run_dir / "best.pt").stat().st_size > 0
    cfg = yaml.safe_load((r.run_dir / ".hydra" / "config.yaml").read_text())
    assert cfg["trainer"]["epochs"] == 2 and cfg["model"]["hids"] == [16, 4]
    assert cfg["dataset"]["num_nodes"] == 300


def test_last_stdout_line_is_the_summary(runs):
    r = runs["base"]
    assert r.returncode == 0, r.explain()
    last = r.stdout.strip().splitlines()[-1]
    m = r.metrics
    assert last.startswith("[synthetic/adaptive_lif]"), last
    assert f"{m['test_macro_f1']:.4f}" in last and f"{m['test_micro_f1']:.4f}" in last
    assert re.search(rf"epoch {m['best_epoch']}\b", last), last
    assert str(r.run_dir) in last


def test_same_seed_gives_identical_metrics(runs):
    a, b = runs["base"], runs["repeat"]
    assert a.returncode == 0 and b.returncode == 0, a.explain() + b.explain()
    ma, mb = _strip_timings(a.metrics), _strip_timings(b.metrics)
    assert ma == mb


@pytest.mark.parametrize("name,neuron", [("lif_triangle_rw", "lif"), ("if", "if"), ("plif", "plif")])
def test_other_neurons_surrogates_and_samplers_complete(runs, name, neuron):
    r = runs[name]
    assert r.returncode == 0, r.explain()
    m = r.metrics
    assert m["neuron"] == neuron and len(m["history"]) == 1
    assert math.isfinite(m["history"][0]["loss"])
    if name == "lif_triangle_rw":
        cfg = yaml.safe_load((r.run_dir / ".hydra" / "config.yaml").read_text())
        assert cfg["surrogate"]["name"] == "triangle" and cfg["sampler"]["name"] == "rw"


@pytest.mark.parametrize("name,needle", [("bad_p", "sampler.p"), ("bad_group", "nope")])
def test_bad_input_exits_nonzero_with_one_line(runs, name, needle):
    r = runs[name]
    assert r.returncode != 0, r.explain()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.explain()
    assert needle in lines[0] and "Traceback" not in r.stderr
    assert not (r.run_dir / "metrics.json").exists()
    if name == "bad_group":
        assert all(c in lines[0] for c in ("adaptive_lif", "if", "lif", "plif"))


@pytest.mark.skipif(not HAVE_DBLP, reason=f"DBLP not found at {SHARED_DATA / 'dblp'} (../shared/data)")
def test_dblp_smoke(runs):
    r = runs["dblp"]
    assert r.returncode == 0, r.explain()
    m = r.metrics
    assert m["dataset"] == "dblp"
    assert 0.0 <= m["test_micro_f1"] <= 1.0 and m["best_epoch"] == 1
    assert r.stdout.strip().splitlines()[-1].startswith("[dblp/")
