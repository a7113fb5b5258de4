"""Resume: a run killed (SIGKILL) after a checkpoint, relaunched with ``trainer.resume=auto``, ends with the
``metrics.json`` of an uninterrupted run with the same seed (timings aside)."""

from __future__ import annotations

import time

import torch
from conftest import compose_config, finish, run_cli_async, without_timings

from spikenet.experiment import build_experiment
from spikenet.training.checkpoint import LAST

# Tiny and quick (~0.05 s per epoch): enough epochs that the kill lands well before the end.
EPOCHS = 10
ARGS = [f"trainer.epochs={EPOCHS}", "dataset.num_nodes=300", "dataset.num_steps=4", "model.hids=[16,4]",
        "model.dropout=0.3", "trainer.lr=0.01", "trainer.batch_size=64", "trainer.progress=false", "device=cpu",
        "trainer.num_threads=1", "logger=none"]


def _epoch_of(path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return 0


def _kill_after_epoch(run_dir, min_epoch: int = 2, timeout: float = 240) -> int:
    """Start the run, SIGKILL it once its last.pt holds ``min_epoch`` or later; returns the checkpoint's epoch."""
    proc, _ = started = run_cli_async(ARGS, run_dir)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if _epoch_of(run_dir / LAST) >= min_epoch:
            proc.kill()  # SIGKILL: no handler, no cleanup
            break
        time.sleep(0.005)
    result = finish(started)
    assert result.returncode == -9, "the run ended before it could be killed: " + result.explain()
    return _epoch_of(run_dir / LAST)


def _fit(overrides: list[str], run_dir=None) -> dict:
    """``build_experiment`` + ``fit`` in this process (what ``src/run.py`` does before writing metrics.json)."""
    threads = torch.get_num_threads()
    try:
        exp = build_experiment(compose_config(overrides), run_dir=None if run_dir is None else str(run_dir))
        return exp.trainer.fit()
    finally:
        torch.set_num_threads(threads)


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, caplog):
    run_dir = tmp_path / "run"
    killed_at = _kill_after_epoch(run_dir)
    assert 2 <= killed_at < EPOCHS
    assert not (run_dir / "metrics.json").exists()

    with caplog.at_level("INFO", logger="spikenet"):
        resumed = _fit([*ARGS, "trainer.resume=auto"], run_dir)
    assert f"after epoch {killed_at}" in caplog.text  # it continued, it did not start over
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, EPOCHS + 1))
    assert _epoch_of(run_dir / LAST) == EPOCHS

    reference = _fit(ARGS)  # uninterrupted, no run directory
    losses = [h["loss"] for h in reference["history"]]
    assert len(set(losses)) == EPOCHS  # the loss moves every epoch: a wrong random stream would show
    assert without_timings(resumed) == without_timings(reference)
