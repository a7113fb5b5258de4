"""``task=node_property``: NDCG@10 against TGB's evaluator, scikit-learn and a hand computation; splits and the
persistence / moving-average forecasts against TGB's own loop; the task contract; the end-to-end run."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT, dataset_config, missing
from omegaconf import OmegaConf

from spikenet.contracts import Batch
from spikenet.data.properties import NodeProperties
from spikenet.data.readers.tgb import parse
from spikenet.tasks import build_task, check_task_config
from spikenet.tasks.ndcg import block_ndcg, scorer
from spikenet.tasks.node_property import METRIC, label_time_splits
from spikenet.tasks.windows import window_steps

TOY = DATA_ROOT / "tgbn-toy"


def tgb_or_missing() -> None:
    try:
        import tgb.nodeproppred.evaluate  # noqa: F401
    except ImportError:
        missing("py-tgb (pip install -e '.[dev]')")


def task_cfg(**extra) -> OmegaConf:
    base = {"name": "node_property", "window": 3, "val_ratio": 0.15, "test_ratio": 0.15, "evaluator": "tgb",
            "moving_average_window": 7}
    return OmegaConf.create({**base, **extra})


@pytest.fixture(scope="module")
def toy_graph():
    cfg = dataset_config("tgbn", name="tgbn-toy", root=str(DATA_ROOT), cache=False)
    return parse(cfg, TOY)


@pytest.fixture(scope="module")
def toy_task(toy_graph):
    tgb_or_missing()
    return build_task(task_cfg(), toy_graph, 0)


# --------------------------------------------------------------------------- the metric


def test_ndcg_matches_hand_sklearn_and_tgb() -> None:
    tgb_or_missing()
    from sklearn.metrics import ndcg_score

    y_true = np.array([[0.0, 1.0, 2.0, 3.0], [0.5, 0.0, 0.0, 0.5]])
    y_pred = np.array([[4.0, 3.0, 2.0, 1.0], [0.1, 0.4, 0.3, 0.2]])
    # row 1 ranks items 0, 1, 2, 3: gains 0, 1, 2, 3 at discounts 1/log2(2..5); ideal 3, 2, 1, 0
    dcg = 1 / math.log2(3) + 2 / math.log2(4) + 3 / math.log2(5)
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    # row 2 ranks 1, 2, 3, 0: gains 0, 0, 0.5, 0.5; ideal 0.5, 0.5
    dcg2 = 0.5 / math.log2(4) + 0.5 / math.log2(5)
    ideal2 = 0.5 + 0.5 / math.log2(3)
    hand = (dcg / ideal + dcg2 / ideal2) / 2
    ours_tgb, ours_sk = scorer("tgb", "tgbn-trade"), scorer("sklearn", "tgbn-trade")
    assert ours_tgb(y_true, y_pred) == pytest.approx(hand, abs=1e-12)
    assert ours_sk(y_true, y_pred) == pytest.approx(hand, abs=1e-12)
    assert ndcg_score(y_true, y_pred, k=10) == pytest.approx(hand, abs=1e-12)
    tied = np.zeros_like(y_pred)  # an all-zero forecast (a node never seen): ties, averaged by both
    assert ours_tgb(y_true, tied) == ours_sk(y_true, tied) == ndcg_score(y_true, tied, k=10)


def test_ndcg_in_chunks_equals_one_call() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.random((11, 30)) * (rng.random((11, 30)) < 0.3)
    y_pred = rng.standard_normal((11, 30))
    score = scorer("sklearn", "tgbn-toy")
    assert block_ndcg(score, y_true, y_pred, chunk_rows=4) == pytest.approx(score(y_true, y_pred), abs=1e-12)


# --------------------------------------------------------------------------- splits and forecasts vs TGB's loop


def tgb_loop(root: Path, batch_size: int) -> dict[str, dict]:
    """TGB's persistence / moving-average example loop (``examples/nodeproppred/tgbn-trade``), on TGB's own
    ``NodePropPredDataset`` reading the toy files as tgbn-trade: label times and mean NDCG@10 per split."""
    from tgb.nodeproppred.dataset import NodePropPredDataset
    from tgb.nodeproppred.evaluate import Evaluator
    from tgb.utils.info import PROJ_DIR

    dataset = NodePropPredDataset(name="tgbn-trade", root=os.path.relpath(root, PROJ_DIR), download=False)
    evaluator = Evaluator(name="tgbn-trade")
    data = dataset.full_data
    states = {"persistence": {}, "moving_average": {}}
    out = {}
    for split, mask in (("train", dataset.train_mask), ("val", dataset.val_mask), ("test", dataset.test_mask)):
        t = data["timestamps"][mask]
        label_t = dataset.return_label_ts()
        times, scores = [], {f: [] for f in states}
        for start in range(0, t.size, batch_size):
            if t[start : start + batch_size][-1] > label_t:
                found = dataset.find_next_labels_batch(t[start : start + batch_size][-1])
                if found is None:
                    break
                label_ts, nodes, labels = found
                label_t = dataset.return_label_ts()
                times.append(int(label_ts[0]))
                for f, state in states.items():
                    pred = np.stack([state.get(n, np.zeros(labels.shape[1])) for n in nodes])
                    scored = evaluator.eval({"y_true": labels, "y_pred": pred, "eval_metric": ["ndcg"]})
                    scores[f].append(scored["ndcg"])
                    for n, y in zip(nodes, labels, strict=True):
                        if f == "persistence" or n not in state:
                            state[n] = y
                        else:
                            state[n] = (state[n] * 6 + y) / 7
        out[split] = {"times": times, **{f: float(np.mean(s)) for f, s in scores.items()}}
    return out


def test_splits_and_forecasts_match_tgb_loop(tmp_path: Path, toy_graph, toy_task) -> None:
    """TGB's loop over its own dataset class (batches smaller than a year, as on the real tgbn-trade, so no
    batch spans two label times) fetches the same label times per split and scores the same forecasts."""
    folder = tmp_path / "tgbn_trade"
    folder.mkdir()
    for kind in ("edgelist", "node_labels"):
        shutil.copy(TOY / f"tgbn-toy_{kind}.csv", folder / f"tgbn-trade_{kind}.csv")
    reference = tgb_loop(tmp_path, batch_size=20)
    props = toy_task.props
    for i, split in enumerate(("train", "val", "test")):
        ours = props.times[toy_task.time_split == i].astype(int).tolist()
        assert ours == reference[split]["times"], split
    assert props.times[toy_task.time_split == -1].astype(int).tolist() == []  # every toy label time is scored
    base = toy_task.baselines()
    for f in ("persistence", "moving_average"):
        for split in ("val", "test"):
            assert base[f][f"{split}_{METRIC}"] == pytest.approx(reference[split][f], abs=1e-12), (f, split)


def test_label_time_splits_by_hand() -> None:
    # 20 events: quantile indices floor(19 * 0.7) = 13 and floor(19 * 0.85) = 16
    events = np.array([5, 5, 3, 3, 2, 2])  # cumulative 5, 10, 13, 16, 18, 20
    assert label_time_splits(events, 5, 0.15, 0.15).tolist() == [0, 0, 0, 1, 2]
    # no interaction after the last label time (cumulative 5, 10, 13, 16, 20 = n): never fetched, never scored
    assert label_time_splits(np.array([5, 5, 3, 3, 4]), 5, 0.15, 0.15).tolist() == [0, 0, 0, 1, -1]
    rng = np.random.default_rng(1)  # against numpy's quantiles on explicit stamps
    for _ in range(20):
        counts = rng.integers(0, 6, 12)
        stamps = np.repeat(np.arange(12.0), counts)
        q1, q2 = np.quantile(stamps, [1 - 0.15 - 0.15, 1 - 0.15])
        first_after = [stamps[stamps > k].min() if (stamps > k).any() else None for k in range(11)]
        expected = [-1 if e is None else 0 if e <= q1 else 1 if e <= q2 else 2 for e in first_after]
        assert label_time_splits(counts, 11, 0.15, 0.15).tolist() == expected


# --------------------------------------------------------------------------- the task contract


class RecordingLoader:
    """Answers ``inputs`` with placeholders and records which nodes and steps each batch asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def inputs(self, nodes, generator, tables=None, steps=None):
        self.calls.append((nodes.clone(), steps.clone()))
        return (torch.zeros(0), torch.zeros(0))


def test_examples_are_chronological_and_disjoint(toy_task) -> None:
    parts = {s: toy_task.examples(s) for s in ("train", "val", "test")}
    steps = {s: toy_task.props.row_step[p.numpy()] for s, p in parts.items()}
    for s in parts:
        assert np.all(np.diff(steps[s]) >= 0), s  # sorted by label time: evaluation keeps this order
    assert steps["train"].max() < steps["val"].min() and steps["val"].max() < steps["test"].min()
    everything = torch.cat(list(parts.values()))
    assert everything.unique().numel() == everything.numel() == toy_task.props.num_rows


def test_batches_read_the_window_ending_at_their_label_time(toy_task) -> None:
    loader = RecordingLoader()
    examples = toy_task.examples("train")
    gen = torch.Generator().manual_seed(0)
    batches = list(toy_task.batches(loader, examples, 7, gen, shuffle=True))
    seen = torch.cat([b.examples for b in batches])
    assert sorted(seen.tolist()) == sorted(examples.tolist())
    for batch, (nodes, steps) in zip(batches, loader.calls, strict=True):
        step = toy_task.props.row_step[batch.examples.numpy()]
        assert (step == step[0]).all() and batch.examples.numel() <= 7  # one label time per batch
        assert steps.equal(window_steps(int(step[0]), 3))  # never a step after the label time
        assert nodes.equal(torch.from_numpy(toy_task.props.row_node[batch.examples.numpy()]))
        target = batch.extra["target"]
        dense = torch.from_numpy(toy_task.props.dense(batch.examples.numpy()))
        torch.testing.assert_close(target, dense / dense.sum(1, keepdim=True))
    assert [int(toy_task.props.row_step[b.examples[0]]) for b in batches] != sorted(
        int(toy_task.props.row_step[b.examples[0]]) for b in batches)  # shuffled over label times
    assert len(list(toy_task.batches(loader, examples, 7, gen, limit=2))) == 2


def test_loss_is_soft_cross_entropy(toy_task) -> None:
    rows = toy_task.examples("train")[:5]
    target = toy_task.targets(rows)
    logits = torch.randn(5, toy_task.num_items, generator=torch.Generator().manual_seed(3))
    batch = Batch(rows, (None, None), False, examples=rows, extra={"target": target})
    hand = -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(toy_task.loss(logits, batch), hand)


def test_score_of_true_and_persistent_rows(toy_task) -> None:
    """Kept rows equal to the truth score 1 at every label time; the last labels score as persistence."""
    for split in ("val", "test"):
        rows = toy_task.examples(split)
        truth = torch.from_numpy(toy_task.props.dense(rows.numpy()))
        assert toy_task.score(split, rows, truth)[METRIC] == pytest.approx(1.0)
    props = toy_task.props
    rows = toy_task.examples("test").numpy()
    previous = []  # each row's node at its latest earlier label time (every toy node is labelled every year)
    for r in rows:
        earlier = np.flatnonzero((props.row_node == props.row_node[r]) & (props.row_step < props.row_step[r]))
        previous.append(earlier[-1])
    kept = torch.from_numpy(props.dense(np.array(previous)))
    assert toy_task.score("test", torch.from_numpy(rows), kept)[METRIC] == pytest.approx(
        toy_task.baselines()["persistence"][f"test_{METRIC}"], abs=1e-12)


def test_config_checks_and_wrong_dataset(compose) -> None:
    for override, key in (("task.window=0", "task.window"), ("task.evaluator=exact", "task.evaluator"),
                          ("task.val_ratio=0.9", "task.val_ratio")):
        cfg = compose(["task=node_property", override])
        with pytest.raises(ValueError, match=key):
            check_task_config(cfg.task)
    from spikenet.data.readers.synthetic import make_synthetic

    graph = make_synthetic(num_nodes=50, num_steps=3, num_classes=2, num_features=4, num_edges=100)
    with pytest.raises(ValueError, match="no time-keyed node property labels"):
        build_task(compose(["task=node_property"]).task, graph, 0)


def test_props_round_trip_through_meta(toy_graph) -> None:
    props = NodeProperties.from_meta(toy_graph.meta)
    again = NodeProperties.from_meta(props.to_meta())
    assert again.dim == props.dim == toy_graph.num_classes
    assert NodeProperties.from_meta({}) is None


# --------------------------------------------------------------------------- end to end


def test_run_writes_ndcg_by_tgb_beside_persistence(cli, tmp_path: Path) -> None:
    tgb_or_missing()
    result = cli(["task=node_property", "dataset=tgbn", "dataset.name=tgbn-toy", f"dataset.cache_dir={tmp_path}",
                  "trainer.epochs=2", "model.hids=[16,4]", "trainer.progress=false", "device=cpu",
                  "trainer.num_threads=1"], tmp_path / "run")
    assert result.returncode == 0, result.explain()
    m = result.metrics
    assert m["task"] == "node_property" and m["select_metric"] == "val_ndcg@10" and m["metrics"] == ["ndcg@10"]
    assert 0.0 < m["test_ndcg@10"] <= 1.0 and 0.0 < m["val_ndcg@10"] <= 1.0
    assert set(m["baselines"]) == {"persistence", "moving_average"}
    cfg = dataset_config("tgbn", name="tgbn-toy", root=str(DATA_ROOT), cache=False)
    task = build_task(task_cfg(window=7), parse(cfg, TOY), 0)
    assert m["baselines"] == task.baselines()
    assert "test NDCG@10" in result.stdout and "persistence test" in result.stdout
