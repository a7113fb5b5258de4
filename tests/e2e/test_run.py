"""The Hydra entry point end to end: ``python src/run.py ...`` in one subprocess with tiny settings (the suite's
single run, launched as a W&B sweep agent would: ``conftest.agent_run``), and its bad-input paths in-process
(``runpy``, as ``python src/run.py`` runs it).

Training variants (other neurons, seeds, test schedules, DBLP) are checked in-process in
``test_checks_training.py``: after the config is composed they share the code path.
"""

from __future__ import annotations

import re
import runpy
import sys

import pytest
import yaml
from conftest import RUN_SCRIPT, TINY_OVERRIDES

BASE = [*TINY_OVERRIDES, "trainer.num_threads=1"]


def test_tiny_run_writes_results(agent_run):
    r = agent_run.result
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
    assert (cfg["neuron"]["tau"], cfg["surrogate"]["alpha"]) == (1.0, 0.5) == tuple(agent_run.params.values())


def test_last_stdout_line_is_the_summary(agent_run):
    r = agent_run.result
    assert r.returncode == 0, r.explain()
    last = r.stdout.strip().splitlines()[-1]
    m = r.metrics
    assert last.startswith("[synthetic/spikenet/adaptive_lif node_classification]"), last
    assert f"{m['test_macro_f1']:.4f}" in last and f"{m['test_micro_f1']:.4f}" in last
    assert re.search(rf"epoch {m['best_epoch']}\b", last), last
    assert str(r.run_dir) in last


@pytest.mark.parametrize(
    "args,needle",
    [([*BASE, "sampler.p=2"], "sampler.p"), ([*BASE, "neuron=nope"], "nope"), ([*BASE, "trainer.epochs=0"], "epochs")],
)
def test_bad_input_exits_nonzero_with_one_line(monkeypatch, capsys, tmp_path, args, needle):
    monkeypatch.setattr(sys, "argv", [str(RUN_SCRIPT), *args, f"hydra.run.dir={tmp_path}"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(RUN_SCRIPT), run_name="__main__")
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "metrics.json").exists()
    if needle == "nope":
        assert all(c in lines[0] for c in ("adaptive_lif", "if", "lif", "plif"))
