"""Training in-process on tiny synthetic runs: seeds that matter, the best epoch's weights restored for the
reported test score, and the other neurons, surrogates and samplers training end to end."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SHARED_DATA, TINY_OVERRIDES, compose_config, missing

from spikenet.experiment import build_experiment

BASE = [*TINY_OVERRIDES, "trainer.save_checkpoint=false"]


def _fit(overrides: list[str]) -> tuple[dict, torch.nn.Module]:
    exp = build_experiment(compose_config([*BASE, *overrides]))
    return exp.trainer.fit(), exp.trainer.model


def _scores(history: list[dict]) -> list[tuple]:
    return [(h["loss"], h["val_macro_f1"], h["val_micro_f1"]) for h in history]


@pytest.fixture(scope="module")
def schedules() -> dict[str, dict]:
    """lr 0.05 for 3 epochs: validation peaks at epoch 2 (epoch 3 only ties it), so the best epoch is not the last."""
    return {s: _fit(["trainer.epochs=3", "trainer.lr=0.05", f"trainer.test_schedule={s}"])[0]
            for s in ("every", "best", "improved")}


def test_best_epoch_weights_are_restored_for_the_reported_test_score(schedules):
    every = schedules["every"]
    best = every["best_epoch"]
    history = every["history"]
    assert best < len(history), f"the setting must make an earlier epoch the best (best {best} of {len(history)})"
    at_best, at_last = history[best - 1], history[-1]
    assert at_best["val_micro_f1"] == max(h["val_micro_f1"] for h in history)
    assert (at_best["test_macro_f1"], at_best["test_micro_f1"]) != (at_last["test_macro_f1"], at_last["test_micro_f1"])
    for schedule in ("best", "improved"):
        r = schedules[schedule]
        assert _scores(r["history"]) == _scores(history), f"{schedule}: scoring test must not change training"
        assert r["best_epoch"] == best
        # best: scored once after training from the restored weights; improved: when validation improved
        assert r["test_macro_f1"] == at_best["test_macro_f1"], schedule
        assert r["test_micro_f1"] == at_best["test_micro_f1"], schedule
    assert all(h["test_micro_f1"] is None for h in schedules["best"]["history"])


def test_same_seed_repeats_and_another_seed_differs(schedules):
    again, _ = _fit(["trainer.epochs=3", "trainer.lr=0.05", "trainer.test_schedule=every"])
    reference = schedules["every"]
    assert _scores(again["history"]) == _scores(reference["history"])
    assert again["test_micro_f1"] == reference["test_micro_f1"]
    other, _ = _fit(["trainer.epochs=3", "trainer.lr=0.05", "trainer.test_schedule=every", "seed=7"])
    assert [h["loss"] for h in other["history"]] != [h["loss"] for h in reference["history"]], "seed was ignored"


@pytest.mark.parametrize(
    "overrides,neuron",
    [(["neuron=lif", "surrogate=triangle", "sampler=rw"], "LIFNode"), (["neuron=if"], "IFNode"),
     (["neuron=plif", "surrogate=arctan"], "ParametricLIFNode")],
)
def test_other_neurons_surrogates_and_samplers_train(overrides, neuron):
    result, model = _fit(overrides)
    nodes = [m for m in model.modules() if type(m).__name__ == neuron]
    assert nodes, f"no {neuron} in the model"
    (record,) = result["history"]
    assert math.isfinite(record["loss"]) and 0.0 <= result["test_micro_f1"] <= 1.0
    if neuron == "ParametricLIFNode":  # tau is learned: one epoch of AdamW moves it off its initial value
        taus = [1 / torch.sigmoid(n.w).item() for n in nodes]
        assert all(abs(tau - 2.0) > 1e-4 for tau in taus), taus


def test_dblp_smoke():
    """The shipped DBLP end to end in-process: read, FastRP features, two training batches, predictions."""
    if not (SHARED_DATA / "dblp" / "dblp.txt").exists():
        missing(f"DBLP not found at {SHARED_DATA / 'dblp'}")
    overrides = ["dataset=dblp", f"dataset.root={SHARED_DATA}", "dataset.features=fastrp", "dataset.feature_dim=8",
                 "++dataset.cache=false", "trainer.epochs=1", "model.hids=[8,4]", "sampler.sizes=[2,2]",
                 "trainer.batch_size=256", "trainer.progress=false", "device=cpu", "trainer.save_checkpoint=false"]
    exp = build_experiment(compose_config(overrides))
    graph, trainer = exp.graph, exp.trainer
    assert graph.name == "dblp" and (graph.num_nodes, graph.num_steps, graph.num_classes) == (25387, 25, 10)
    assert math.isfinite(trainer.train_epoch(max_batches=2))
    nodes = trainer.task.splits.test[:512]
    pred = trainer.predict(nodes, torch.Generator().manual_seed(0))
    assert pred.shape == (512,) and pred.min() >= 0 and pred.max() < graph.num_classes
