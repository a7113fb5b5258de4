"""``stratified_splits``: sizes, disjoint cover of the labelled nodes, per-class proportions, split_seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikenet.training import stratified_splits

TRAIN, VAL = 0.4, 0.05


@pytest.fixture(scope="module")
def labelled():
    """1200 nodes in 4 imbalanced classes (600/360/180/60); every 7th node unlabelled (-1)."""
    labels = torch.tensor(np.repeat([0, 1, 2, 3], [600, 360, 180, 60]))
    labels = labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))]
    labels[::7] = -1
    return torch.nonzero(labels >= 0).flatten(), labels


def test_sizes_cover_and_disjointness(labelled):
    nodes, labels = labelled
    s = stratified_splits(nodes, labels, TRAIN, VAL, seed=1)
    n = nodes.numel()
    parts = (s.train, s.val, s.test)
    assert sum(p.numel() for p in parts) == n
    assert torch.equal(torch.sort(torch.cat(parts)).values, torch.sort(nodes).values)  # a disjoint cover
    for got, frac in zip(parts, (TRAIN - VAL, VAL, 1 - TRAIN), strict=True):
        assert abs(got.numel() - frac * n) <= 1.5, (got.numel(), frac * n)
        assert torch.equal(got, torch.sort(got).values)
        assert (labels[got] >= 0).all()


def test_every_class_keeps_its_share_in_every_split(labelled):
    nodes, labels = labelled
    s = stratified_splits(nodes, labels, TRAIN, VAL, seed=1)
    totals = torch.bincount(labels[nodes], minlength=4).double()
    for got, frac in zip((s.train, s.val, s.test), (TRAIN - VAL, VAL, 1 - TRAIN), strict=True):
        counts = torch.bincount(labels[got], minlength=4).double()
        # stratified: each class within 2 nodes of its exact share (a random split misses by ~sqrt(n))
        assert ((counts - frac * totals).abs() <= 2.0).all(), (counts.tolist(), (frac * totals).tolist())


def test_split_seed_decides_the_split(labelled):
    nodes, labels = labelled
    a, b = stratified_splits(nodes, labels, TRAIN, VAL, seed=5), stratified_splits(nodes, labels, TRAIN, VAL, seed=5)
    c = stratified_splits(nodes, labels, TRAIN, VAL, seed=6)
    assert all(torch.equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=True))
    assert not torch.equal(a.test, c.test) and not torch.equal(a.val, c.val)


@pytest.mark.parametrize("train_size", [0.05, 0.01, 1.0])
def test_bad_train_size_raises(labelled, train_size):
    nodes, labels = labelled
    with pytest.raises(ValueError, match="train_size"):
        stratified_splits(nodes, labels, train_size, VAL, seed=0)


def test_trainer_split_seed_reaches_the_splits(compose):
    from conftest import TINY_OVERRIDES

    from spikenet.experiment import build_experiment

    def test_nodes(seed):
        cfg = compose([*TINY_OVERRIDES, f"task.split_seed={seed}", "trainer.save_checkpoint=false"])
        return build_experiment(cfg).trainer.task.splits.test

    assert torch.equal(test_nodes(3), test_nodes(3))
    assert not torch.equal(test_nodes(3), test_nodes(4))
