"""Runs repeat bit for bit on the CPU with several threads.

Two checks per task and model, on tiny settings with two torch threads:
* no training graph holds an accumulating index backward (``z[idx]``'s backward is ``index_put_`` with
  accumulate, which adds rows with atomics across threads on the CPU, so repeated rows sum in thread
  order: the link head had one, and runs of the same seed differed in their last bits);
* a training step repeated from the same weights and random state gives the same loss and gradients.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR, TINY_OVERRIDES, compose_config

from spikenet.contracts import ENCODERS, TASKS
from spikenet.experiment import build_experiment

ACCUMULATING_INDEX = ("IndexBackward0", "UnsafeIndexBackward0")
REPEATS = 4

def _cases() -> dict[str, list[str]]:
    """Every registered task with every registered encoder (plugins included: ``$SPIKENET_PLUGINS``), each on
    the tiny settings its registry entry names."""
    return {f"{task}-{model}": [f"task={task}", *TASKS.entry(task).get("tiny", ()),
                                f"model={model}", *ENCODERS.entry(model).get("tiny", ())]
            for task in TASKS.names() for model in ENCODERS.names()}


CASES = _cases()
# every spike coding (conf/coding) on every encoder that takes one (node classification: the coder sits before
# any task's head)
CODINGS = sorted(p.stem for p in (CONF_DIR / "coding").glob("*.yaml") if p.stem != "real")
CASES.update({f"node_classification-{model}-{coding}": ["task=node_classification", f"model={model}",
                                                        *ENCODERS.entry(model).get("tiny", ()), f"coding={coding}"]
              for model in ENCODERS.names() if ENCODERS.get(model).takes_coding()
              for coding in CODINGS})


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _first_batch(overrides: list[str], tmp_path: Path):
    base = [o for o in TINY_OVERRIDES if not o.startswith("model.")]  # each encoder names its own tiny sizes
    if any(o.startswith("dataset=") for o in overrides):  # the task's own data instead of the synthetic sizes
        base = [o for o in base if not o.startswith("dataset.")] + [f"dataset.cache_dir={tmp_path}"]
    cfg = compose_config([*base, "trainer.save_checkpoint=false", "trainer.num_threads=2", *overrides])
    trainer = build_experiment(cfg).trainer
    gen = torch.Generator().manual_seed(0)
    order = trainer.loader.train_order(trainer.task.examples("train"), gen)
    batch = next(iter(trainer.task.batches(trainer.loader, order, int(cfg.trainer.batch_size), gen, limit=1,
                                           shuffle=True)))
    return trainer, batch


def _loss(trainer, batch) -> torch.Tensor:
    return trainer.task.loss(trainer.net(*batch.inputs, extra=batch.extra), batch)


def _backward_names(loss: torch.Tensor) -> set[str]:
    seen, stack, names = set(), [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(f for f, _ in node.next_functions)
    return names


@pytest.mark.parametrize("case", list(CASES))
def test_training_step_repeats_bit_for_bit_on_two_threads(case: str, tmp_path: Path, two_threads) -> None:
    trainer, batch = _first_batch(CASES[case], tmp_path)
    assert torch.get_num_threads() == 2
    model = trainer.model
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    def step() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.load_state_dict(weights)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)  # dropout and any other draw of the step
        loss = _loss(trainer, batch)
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    first_loss, first = step()
    assert first, "no parameter received a gradient"
    for _ in range(REPEATS - 1):
        loss, grads = step()
        assert torch.equal(loss, first_loss)
        differing = [k for k in first if not torch.equal(first[k], grads[k])]
        assert not differing, f"{case}: gradients of {differing} differ between repeats of one step"


@pytest.mark.parametrize("case", list(CASES))
def test_no_accumulating_index_backward_in_training_graph(case: str, tmp_path: Path, two_threads) -> None:
    trainer, batch = _first_batch(CASES[case], tmp_path)
    trainer.model.train()
    found = _backward_names(_loss(trainer, batch)) & set(ACCUMULATING_INDEX)
    assert not found, (f"{case}: {sorted(found)} in the training graph; gather with index_select (its backward, "
                       "index_add_, sums repeated rows in a fixed order)")


def test_vector_math_is_set_up_before_the_data_is_read(monkeypatch):
    """MKL's VML must first run on one thread (see ``settle_vector_math``): ``build_experiment`` does it
    before loading, since loading may split sqrt/exp over threads."""
    import spikenet.experiment as experiment

    calls: list[str] = []

    def stop_at_load(cfg):
        calls.append("load")
        raise RuntimeError("stop")

    monkeypatch.setattr(experiment, "settle_vector_math", lambda: calls.append("settle"))
    monkeypatch.setattr(experiment, "load_dataset", stop_at_load)
    with pytest.raises(RuntimeError, match="stop"):
        build_experiment(compose_config(TINY_OVERRIDES))
    assert calls == ["settle", "load"]


def test_vml_race_tally_names_the_outliers_and_their_elements():
    """The count ``benchmarks/reproducibility/vml_race.py`` prints (``spikenet.benchmarking.tally``)."""
    from spikenet.benchmarking import tally

    common = torch.arange(8, dtype=torch.float32).numpy().tobytes()
    outlier = torch.tensor([0, 1, 2, 3, 4, 5.5, 6, 7.5]).numpy().tobytes()
    result = tally([common, outlier, common, common])
    assert (result["agree"], result["differ"], result["distinct"]) == (3, 1, 2)
    assert result["changed_elements"] == [5, 7, 2]
    assert tally([common] * 3)["changed_elements"] == []
