"""Tasks: what is asked of a dynamic graph, apart from the encoder that embeds its nodes.

``conf/task/<name>.yaml`` selects one; ``build_task`` turns the ``task`` config and the loaded graph
into a ``spikenet.contracts.Task``. A task owns its examples, splits, head, loss, metrics and the
validation metric that picks the best epoch; ``TaskModel`` joins an encoder and the task's head into
the one module the trainer optimises. A new task is one module whose builder registers itself with
``@TASKS.register("name", check=...)`` plus ``conf/task/name.yaml`` (docs/extending.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikenet.contracts import TASKS, Encoder, Task
from spikenet.data.temporal_graph import TemporalGraph
from spikenet.energy import LayerOps


def check_task_config(cfg: Any) -> None:
    """Raise ``ValueError`` (one line naming the key) for an unknown task or an out-of-range ``task`` value."""
    check = TASKS.entry(str(cfg.name)).get("check")
    if check is not None:
        check(cfg)


def build_task(cfg: Any, graph: TemporalGraph, seed: int) -> Task:
    """The task named by ``cfg.name`` over ``graph`` (``seed``: the run's seed, for negative sampling); its
    config was checked by ``check_task_config`` before the data was read."""
    return TASKS.get(str(cfg.name))(cfg, graph, seed)


class TaskModel(nn.Module):
    """An encoder and a task's head: ``forward(x_self, x_agg, projected, extra)`` -> the head's output.

    One module, so that the optimiser, DDP, checkpoints and autocast see every parameter once.
    """

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x_self: Any, x_agg: Any, projected: bool = False,
                extra: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.head(self.encoder(x_self, x_agg, projected), extra or {})


def model_op_counts(task: Task, model: TaskModel, rates: list[list[float]] | None) -> list[LayerOps] | None:
    """The encoder's work per embedded node plus the head's per example (None when the encoder cannot count)."""
    ops = model.encoder.op_counts(rates)
    return None if ops is None else [*ops, *task.head_ops(model.encoder, model.head, rates)]


from spikenet.tasks import link_prediction as _link_prediction  # noqa: E402, F401  (registers it)
from spikenet.tasks import node_classification as _node_classification  # noqa: E402, F401  (registers it)
from spikenet.tasks import node_property as _node_property  # noqa: E402, F401  (registers it)

__all__ = ["TASKS", "Task", "TaskModel", "build_task", "check_task_config", "model_op_counts"]
