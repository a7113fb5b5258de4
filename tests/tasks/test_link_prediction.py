"""Temporal link prediction: metrics by hand, chronological splits, negatives, EdgeBank, no future edges, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from spikenet.contracts import Batch
from spikenet.data.temporal_graph import TemporalGraph, build_structure
from spikenet.experiment import build_experiment
from spikenet.tasks import build_task, check_task_config
from spikenet.tasks.link_edges import EdgeHistory, TemporalEdges, step_splits
from spikenet.tasks.link_metrics import link_scores, reciprocal_ranks

N, T = 40, 8


def graph_of(src, dst, step, num_nodes: int = N, num_steps: int = T, features: torch.Tensor | None = None
             ) -> TemporalGraph:
    """A labelled TemporalGraph of the given interactions (features fixed by a seed unless given)."""
    structure = build_structure(np.asarray(src), np.asarray(dst), np.asarray(step), num_nodes, num_steps)
    if features is None:
        features = torch.randn(num_steps, num_nodes, 6, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(num_nodes) % 3
    return TemporalGraph("toy", num_nodes, num_steps, features=features, labels=labels, num_classes=3, **structure)


def random_interactions(seed: int = 0, count: int = 400, num_nodes: int = N, num_steps: int = T):
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_nodes, count), rng.integers(0, num_nodes, count), rng.integers(0, num_steps, count)


@pytest.fixture
def lp_cfg(compose):
    def make(*overrides: str):
        return compose(["task=link_prediction", "task.window=3", "task.num_negatives=5", *overrides]).task

    return make


# --------------------------------------------------------------------------- metrics


def test_mrr_by_hand_with_tgb_ties() -> None:
    table = np.array([[0.9, 0.1, 0.2, 0.3],    # first: rank 1
                      [0.5, 0.7, 0.1, 0.5],    # one above, one tie: (2 + 3) / 2 = 2.5
                      [0.0, 0.0, 0.0, 0.0]])   # all tied: (1 + 4) / 2 = 2.5
    np.testing.assert_allclose(reciprocal_ranks(table), [1.0, 1 / 2.5, 1 / 2.5])
    assert link_scores(table)["mrr"] == pytest.approx((1 + 0.4 + 0.4) / 3)


def test_ap_and_auc_are_sklearns_on_first_negatives() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 4)) + np.array([1.0, 0, 0, 0])
    y = np.r_[np.ones(50), np.zeros(50)]
    s = np.r_[table[:, 0], table[:, 1]]
    got = link_scores(table)
    assert got["ap"] == pytest.approx(average_precision_score(y, s))
    assert got["auc"] == pytest.approx(roc_auc_score(y, s))
    noise = link_scores(rng.normal(size=(20000, 2)))
    assert noise["auc"] == pytest.approx(0.5, abs=0.02) and noise["mrr"] == pytest.approx(0.75, abs=0.01)
    with pytest.raises(ValueError, match="at least one negative"):
        link_scores(np.zeros((3, 1)))


# --------------------------------------------------------------------------- edges, splits, negatives


def test_edges_are_each_delta_edge_once_sorted_by_step() -> None:
    src, dst, step = random_interactions()
    edges = TemporalEdges.from_graph(graph_of(src, dst, step), seed=3)
    want = {(min(a, b), max(a, b), t) for a, b, t in zip(src, dst, step, strict=True) if a != b}
    got = [(min(a, b), max(a, b), t) for a, b, t in zip(edges.src, edges.dst, edges.step, strict=True)]
    assert len(got) == len(set(got)) and set(got) == want
    assert np.all(np.diff(edges.step) >= 0)
    assert 0.3 < np.mean(edges.src > edges.dst) < 0.7  # oriented at random


def test_step_splits_are_chronological() -> None:
    split = step_splits(21, 0.15, 0.15)
    assert split[0] == -1 and list(split[1:15]) == [0] * 14 and list(split[15:18]) == [1] * 3
    assert list(split[18:]) == [2] * 3
    with pytest.raises(ValueError, match="at least 4 snapshots"):
        step_splits(3, 0.15, 0.15)


def test_history_and_edgebank_match_brute_force(lp_cfg) -> None:
    src, dst, step = random_interactions(1)
    graph = graph_of(src, dst, step)
    history = EdgeHistory(graph)
    first: dict[tuple[int, int], int] = {}
    for a, b, t in sorted(zip(src, dst, step, strict=True), key=lambda x: x[2]):
        if a != b:
            first.setdefault((a, b), t)
            first.setdefault((b, a), t)
    rng = np.random.default_rng(2)
    u, v, t = rng.integers(0, N, 500), rng.integers(0, N, 500), rng.integers(1, T, 500)
    want = [(a, b) in first and first[(a, b)] < s for a, b, s in zip(u, v, t, strict=True)]
    np.testing.assert_array_equal(history.seen_before(u, v, t), want)
    task = build_task(lp_cfg(), graph, 0)
    table = task.edgebank_table("test")
    rows = task.split_rows["test"].numpy()
    cands = np.c_[task.edges.dst[rows], task.negatives["test"]]
    for r, row in enumerate(rows):
        for c in range(cands.shape[1]):
            key = (task.edges.src[row], cands[r, c])
            assert table[r, c] == float(key in first and first[key] < task.edges.step[row])
    assert task.baselines()["edgebank"]["test_mrr"] == pytest.approx(link_scores(table)["mrr"])


@pytest.mark.parametrize("setting", ["random", "historical"])
def test_negatives_are_valid_fixed_and_historical_from_the_past(lp_cfg, setting: str) -> None:
    graph = graph_of(*random_interactions(4, count=300))
    task = build_task(lp_cfg(f"task.negatives={setting}"), graph, 0)
    again = build_task(lp_cfg(f"task.negatives={setting}"), graph, 7)  # another model seed: same candidates
    positives = {(a, b, t) for a, b, t in zip(task.edges.src, task.edges.dst, task.edges.step, strict=True)}
    positives |= {(b, a, t) for a, b, t in positives}
    history = EdgeHistory(graph)
    from_history = []
    for split in ("val", "test"):
        np.testing.assert_array_equal(task.negatives[split], again.negatives[split])
        rows = task.split_rows[split].numpy()
        neg = task.negatives[split]
        assert neg.shape == (rows.size, 5)
        for r, row in enumerate(rows):
            u, t = task.edges.src[row], task.edges.step[row]
            for v in neg[r]:
                assert v != u and (u, v, t) not in positives
            from_history.append(history.seen_before(np.full(5, u), neg[r], np.full(5, t)).mean())
    if setting == "historical":  # sources with a past draw their partners from it (EdgeBank scores them 1)
        assert np.mean(from_history) > 0.6
    else:
        assert np.mean(from_history) < 0.4


# --------------------------------------------------------------------------- batches: the past only


class RecordingLoader:
    """Answers ``inputs`` with placeholders and records which nodes and steps each batch asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def inputs(self, nodes, generator, tables=None, steps=None):
        self.calls.append((nodes.clone(), steps.clone()))
        return (torch.zeros(0), torch.zeros(0))


def test_batches_read_only_steps_before_the_edge_and_embed_every_candidate(lp_cfg) -> None:
    task = build_task(lp_cfg(), graph_of(*random_interactions(5)), 0)
    for split in ("train", "val", "test"):
        loader = RecordingLoader()
        gen = torch.Generator().manual_seed(0)
        batches = list(task.batches(loader, task.examples(split), 16, gen, shuffle=split == "train"))
        seen = torch.cat([b.examples for b in batches])
        assert sorted(seen.tolist()) == sorted(task.examples(split).tolist())
        for batch, (nodes, steps) in zip(batches, loader.calls, strict=True):
            t = task.edges.step[batch.examples.numpy()]
            assert (t == t[0]).all() and batch.examples.numel() <= 16
            assert int(steps.max()) == t[0] - 1 and steps.numel() == 3  # the window ends before the edge's step
            src, dst = batch.extra["src"], batch.extra["dst"]
            assert nodes[src].equal(task.src[batch.examples]) and nodes[dst[:, 0]].equal(task.dst[batch.examples])
            assert dst.shape == (batch.examples.numel(), 1 + (1 if split == "train" else 5))
            if split != "train":
                pos = torch.searchsorted(task.split_rows[split], batch.examples)
                assert nodes[dst[:, 1:]].equal(torch.from_numpy(task.negatives[split][pos.numpy()]))


@pytest.mark.parametrize("model", ["spikenet", "ann", "gru"])
def test_embedding_at_t_ignores_edges_from_t_on(compose, model: str) -> None:
    """Add edges at step t and replace every later one: the embeddings the task computes for the edges of
    step t (through its own batches, loader and encoder) do not move."""
    t = 5  # a training step of an 8-step graph
    src, dst, step = random_interactions(6)
    keep = step <= t
    rng = np.random.default_rng(9)
    extra_src, extra_dst = rng.integers(0, N, 300), rng.integers(0, N, 300)
    extra_step = np.r_[np.full(60, t), rng.integers(t + 1, T, 240)]
    a = graph_of(src, dst, step)
    b = graph_of(np.r_[src[keep], extra_src], np.r_[dst[keep], extra_dst], np.r_[step[keep], extra_step])
    shared = {(min(u, v), max(u, v)) for u, v, s in zip(src, dst, step, strict=True) if s == t and u != v}
    cfg = compose(["task=link_prediction", "task.window=3", f"model={model}", "model.hids=[8,4]",
                   "sampler.sizes=[3,2]"])
    seen = []
    for graph in (a, b):
        exp = build_experiment(cfg, graph=graph)
        task, trainer = exp.task, exp.trainer
        pairs = {(min(u, v), max(u, v)): i for i, (u, v, s) in
                 enumerate(zip(task.edges.src, task.edges.dst, task.edges.step, strict=True)) if s == t}
        rows = torch.tensor([pairs[k] for k in sorted(shared)])
        (batch,) = task.batches(trainer.loader, rows, 10_000, torch.Generator().manual_seed(11))
        trainer.model.eval()
        with torch.no_grad():
            embeddings = trainer.model.encoder(*batch.inputs)
        ends = torch.cat([batch.extra["src"], batch.extra["dst"][:, 0]])
        order = torch.argsort(batch.nodes[ends], stable=True)
        seen.append((trainer.model.state_dict(), batch.nodes[ends][order], embeddings[ends][order]))
    (w_a, nodes_a, emb_a), (w_b, nodes_b, emb_b) = seen
    for name, value in w_a.items():  # the same seed built the same model
        assert value.equal(w_b[name]), name
    assert not a.cum_indices.equal(b.cum_indices)  # the graphs do differ from t on
    assert nodes_a.equal(nodes_b)
    torch.testing.assert_close(emb_a, emb_b, rtol=0, atol=0)


def test_loss_weighs_positives_and_negatives_alike(lp_cfg) -> None:
    task = build_task(lp_cfg("task.train_negatives=3"), graph_of(*random_interactions(7)), 0)
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    batch = Batch(torch.arange(4), (None, None), False, examples=torch.arange(4))
    hand = 0.5 * (-torch.nn.functional.logsigmoid(logits[:, 0]).mean()
                  - torch.nn.functional.logsigmoid(-logits[:, 1:]).mean())
    torch.testing.assert_close(task.loss(logits, batch), hand)


def test_config_checks(compose) -> None:
    for override, key in (("task.window=0", "task.window"), ("task.negatives=hard", "task.negatives"),
                          ("task.num_negatives=0", "task.num_negatives"), ("task.test_ratio=0.9", "task.test_ratio")):
        with pytest.raises(ValueError, match=key):
            check_task_config(compose(["task=link_prediction", override]).task)
    few = graph_of(*random_interactions(count=50, num_steps=3), num_steps=3)
    with pytest.raises(ValueError, match="at least 4 snapshots"):
        build_task(compose(["task=link_prediction"]).task, few, 0)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("model", ["spikenet", "ann"])
def test_run_writes_ap_auc_mrr_beside_edgebank(cli, tmp_path: Path, model: str) -> None:
    result = cli(["task=link_prediction", f"model={model}", "trainer.epochs=3", "trainer.progress=false",
                  "device=cpu", "trainer.num_threads=1", "dataset.num_nodes=400"], tmp_path / "run")
    assert result.returncode == 0, result.explain()
    m = result.metrics
    assert m["task"] == "link_prediction" and m["select_metric"] == "val_mrr" and m["metrics"] == ["ap", "auc", "mrr"]
    for key in ("test_ap", "test_auc", "test_mrr", "val_ap", "val_auc", "val_mrr"):
        assert 0.0 < m[key] <= 1.0, key
    assert set(m["baselines"]) == {"edgebank"} and "test_mrr" in m["baselines"]["edgebank"]
    assert "EdgeBank test AP" in result.stdout
