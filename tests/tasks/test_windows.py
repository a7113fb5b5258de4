"""Windows of snapshots before an example's step, and batches that hold one step each."""

from __future__ import annotations

import pytest
import torch

from spikenet.tasks.windows import step_batches, window_steps


def test_window_ends_at_the_last_visible_step_and_repeats_step_zero():
    assert window_steps(5, 3).tolist() == [3, 4, 5]
    assert window_steps(1, 4).tolist() == [0, 0, 0, 1]  # before the first snapshot: snapshot 0 again
    assert window_steps(0, 1).tolist() == [0]
    with pytest.raises(ValueError, match="task.window"):
        window_steps(3, 0)
    with pytest.raises(ValueError, match="at least one snapshot"):
        window_steps(-1, 2)


def test_step_batches_group_by_step_and_keep_order_within_a_step():
    steps = torch.tensor([2, 1, 2, 1, 2, 3, 2])
    order = torch.tensor([10, 11, 12, 13, 14, 15, 16])
    got = [(s, order[p].tolist()) for s, p in step_batches(steps, order, batch_size=2)]
    assert got == [(1, [11, 13]), (2, [10, 12]), (2, [14, 16]), (3, [15])]


def test_shuffled_step_batches_cover_every_example_once_in_a_seeded_order():
    steps = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(0))
    order = torch.arange(200)

    def run(seed: int) -> list[tuple[int, list[int]]]:
        gen = torch.Generator().manual_seed(seed)
        return [(s, order[p].tolist()) for s, p in step_batches(steps, order, 16, gen, shuffle=True)]

    a, b, c = run(1), run(1), run(2)
    assert a == b and a != c
    assert sorted(i for _, ids in a for i in ids) == list(range(200))
    assert all(len(ids) <= 16 and all(steps[i] == s for i in ids) for s, ids in a)
    assert [s for s, _ in a] != sorted(s for s, _ in a)  # the steps interleave
