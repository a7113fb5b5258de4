"""Examples that happen at a step: the window of snapshots an embedding may read, and batches of one step each.

Link prediction scores the edges of step t from snapshots before t; node-property prediction forecasts
step t + 1 from snapshots up to t. Both embed a node from a fixed-length window of W steps that ends
at the last snapshot it may see, so every encoder (whose readout may flatten the steps) sees the same
number of steps for every example. Steps before the first snapshot repeat snapshot 0, so an early
example still gets W steps and never a later one. A batch holds examples of one step only: its
nodes are sampled and gathered once for that step's window.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def check_window_and_ratios(cfg: Any) -> None:
    """``task.window`` >= 1 and chronological ``task.val_ratio`` / ``task.test_ratio`` in (0, 1) with a sum below 1
    (one line naming the key), for the tasks whose examples happen at a step."""
    if int(cfg.window) < 1:
        raise ValueError(f"task.window must be >= 1, got {cfg.window}")
    val, test = float(cfg.val_ratio), float(cfg.test_ratio)
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"task.val_ratio and task.test_ratio must be in (0, 1) with a sum below 1, got {val}, {test}")


def window_steps(last: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """The ``width`` step ids ending at ``last`` (inclusive), oldest first; ids below 0 become 0."""
    if width < 1:
        raise ValueError(f"task.window must be >= 1, got {width}")
    if last < 0:
        raise ValueError(f"an example needs at least one snapshot before it (last visible step {last})")
    return torch.arange(last - width + 1, last + 1, device=device).clamp_min(0)


def step_batches(steps: torch.Tensor, order: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
                 shuffle: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
    """``(step, positions)`` chunks of at most ``batch_size`` positions into ``order`` whose examples share a step.

    ``steps[i]`` is the step of example ``order[i]``. Positions keep their order within a step; steps run in
    increasing order, or in an order drawn from ``generator`` with ``shuffle`` (training: the batches of all
    steps interleave, so no epoch ends on the latest snapshot's examples).
    """
    if steps.numel() != order.numel():
        raise ValueError(f"{steps.numel()} steps for {order.numel()} examples")
    by_step = torch.argsort(steps.cpu(), stable=True)
    values, counts = torch.unique_consecutive(steps.cpu()[by_step], return_counts=True)
    chunks: list[tuple[int, torch.Tensor]] = []
    for step, group in zip(values.tolist(), torch.split(by_step, counts.tolist()), strict=True):
        chunks.extend((int(step), part) for part in torch.split(group, int(batch_size)))
    if shuffle and chunks:
        perm = torch.randperm(len(chunks), generator=generator, device="cpu" if generator is None
                              else generator.device).tolist()
        chunks = [chunks[i] for i in perm]
    for step, positions in chunks:
        yield step, positions.to(order.device)
