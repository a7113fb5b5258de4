"""A NaN training loss stops the run with one line naming the epoch and batch; the last good last.pt stays."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_config

from spikenet.experiment import build_experiment
from spikenet.training.checkpoint import LAST
from spikenet.training.trainer import NonFiniteLossError

ARGS = ["trainer.epochs=5", "dataset.num_nodes=300", "dataset.num_steps=4", "model.hids=[16,4]",
        "trainer.batch_size=40", "trainer.progress=false", "device=cpu", "trainer.num_threads=1"]


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_last_good_checkpoint(tmp_path):
    threads = torch.get_num_threads()
    try:
        trainer = build_experiment(compose_config(ARGS), run_dir=str(tmp_path)).trainer
    finally:
        torch.set_num_threads(threads)
    per_epoch = math.ceil(trainer.task.splits.train.numel() / 40)
    assert per_epoch >= 2
    poisoned = 2 * per_epoch + 1  # 0-based call number: epoch 3, batch 2
    real_loss, calls = trainer.task.loss, []

    def loss(output: torch.Tensor, batch) -> torch.Tensor:
        calls.append(None)
        value = real_loss(output, batch)
        return value * float("nan") if len(calls) - 1 == poisoned else value

    trainer.task.loss = loss
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert "\n" not in message
    assert f"epoch 3, batch 2 of {per_epoch}" in message, message
    assert str(tmp_path / LAST) in message and "(epoch 2)" in message, message
    assert len(calls) == 3 * per_epoch  # it stopped after the bad epoch, before epoch 4

    last = torch.load(tmp_path / LAST, map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and [h["epoch"] for h in last["history"]] == [1, 2]
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert math.isfinite(last["history"][-1]["loss"])
