"""``trainer.patience``: a run stops once ``patience`` epochs in a row bring no validation improvement, reports
the test scores of its best epoch, and trains exactly as the same seed would without early stopping."""

from __future__ import annotations

import pytest
from conftest import TINY_OVERRIDES, compose_config, without_timings

from spikenet.experiment import build_experiment

ARGS = [*TINY_OVERRIDES, "trainer.lr=0.01", "trainer.batch_size=64", "trainer.num_threads=1", "logger=none"]

# Scripted validation Micro-F1 per epoch: best 0.61 at epoch 4; epoch 7 only ties it (not an improvement);
# the jump at epoch 9 comes after a patience of 3 has run out.
VAL = [0.50, 0.60, 0.55, 0.61, 0.58, 0.60, 0.61, 0.59, 0.70, 0.52]


def _experiment(overrides: list[str]):
    return build_experiment(compose_config(overrides), run_dir=None)


def _scripted_fit(patience: int | None) -> tuple[dict, list[int]]:
    """Fit with the validation scores of ``VAL`` (and test = val + 0.1), no real training; returns the summary
    and the epochs that were trained."""
    wait = "null" if patience is None else patience
    exp = _experiment([*ARGS, f"trainer.epochs={len(VAL)}", f"trainer.patience={wait}", "trainer.test_schedule=every"])
    trainer = exp.trainer
    trained: list[int] = []

    def train_epoch(max_batches=None, epoch=None) -> float:
        trained.append(epoch)
        return 1.0 / epoch

    def evaluate(epoch: int, splits: tuple[str, ...]) -> dict[str, dict[str, float]]:
        score = VAL[epoch - 1]
        return {s: {"micro_f1": score + (0.1 if s == "test" else 0.0), "macro_f1": score / 2} for s in splits}

    trainer.train_epoch = train_epoch
    trainer.evaluate = evaluate
    return trainer.fit(), trained


@pytest.mark.usefixtures("keep_threads")
def test_stops_after_patience_epochs_without_improvement():
    summary, trained = _scripted_fit(patience=3)
    assert trained == [1, 2, 3, 4, 5, 6, 7]  # best at 4, then 5, 6, 7 without improvement (7 only ties)
    assert summary["early_stopped_at"] == 7
    assert summary["epochs_run"] == 7
    assert [h["epoch"] for h in summary["history"]] == trained
    assert summary["best_epoch"] == 4
    assert summary["val_micro_f1"] == pytest.approx(0.61)
    assert summary["test_micro_f1"] == pytest.approx(0.71)  # the best epoch's test score, not the last one's


@pytest.mark.usefixtures("keep_threads")
def test_without_patience_every_epoch_runs():
    summary, trained = _scripted_fit(patience=None)
    assert trained == list(range(1, len(VAL) + 1))
    assert summary["early_stopped_at"] is None
    assert summary["best_epoch"] == 9
    assert summary["test_micro_f1"] == pytest.approx(0.80)


@pytest.mark.usefixtures("keep_threads")
def test_patience_longer_than_the_run_changes_nothing():
    summary, trained = _scripted_fit(patience=len(VAL))
    assert trained == list(range(1, len(VAL) + 1))
    assert summary["early_stopped_at"] is None


@pytest.mark.usefixtures("keep_threads")
def test_early_stopped_run_trains_like_the_full_run():
    """Real training: the stopped run's epochs repeat the uninterrupted run's first epochs bit for bit, and its
    result is the best of those epochs."""
    epochs = 30
    stopped = _experiment([*ARGS, f"trainer.epochs={epochs}", "trainer.patience=1", "seed=3"]).trainer.fit()
    # the full run scores test every epoch; the stopped one only at the end, from its best epoch's weights
    full = _experiment([*ARGS, f"trainer.epochs={epochs}", "seed=3", "trainer.test_schedule=every"]).trainer.fit()
    end = stopped["early_stopped_at"]
    assert end is not None and end < epochs, "the tiny run never went an epoch without improving"
    assert end == stopped["best_epoch"] + 1
    unscored = [{**rec, "test_macro_f1": None, "test_micro_f1": None} for rec in full["history"][:end]]
    assert without_timings(stopped["history"]) == without_timings(unscored)
    vals = [h["val_micro_f1"] for h in full["history"][:end]]
    assert stopped["best_epoch"] == 1 + vals.index(max(vals))
    assert stopped["test_micro_f1"] == full["history"][stopped["best_epoch"] - 1]["test_micro_f1"]
