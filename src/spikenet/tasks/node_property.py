"""Node-property prediction (TGB's tgbn-* task): forecast each labelled node's next property vector, NDCG@10.

An example is one label row: a node and a label time L_k, whose property vector (e.g. next year's trade
shares) is the target. The graph's step k ends at L_k (``spikenet.data.readers.tgb``), so the example's node is
embedded from the ``task.window`` snapshots ending at step k (``window_steps``; earlier steps repeat
snapshot 0): everything up to L_k and nothing later, as TGB's loop sees it. Batches hold the examples
of one step (``step_batches``); the head is a Linear map from the embedding to the C items, trained
with cross-entropy against the row's weights normalised to sum 1 (soft targets, as TGB's examples).

Splits follow TGB's chronological 70/15/15 split of the interactions (``task.val_ratio`` and
``task.test_ratio``): TGB scores the labels of L_k in the split of the first interaction after L_k, and
never scores a label time after the last interaction. The metric is NDCG@10 from TGB's ``Evaluator``
(``spikenet.tasks.ndcg``), per label time and averaged over the split's label times (``ndcg@10``, which
also picks the best epoch). TGB's persistence and moving-average forecasts are scored alongside
(``baselines``), with the same evaluator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikenet.contracts import TASKS, Batch, BatchLoader, Encoder, Tables, Task
from spikenet.data.properties import NodeProperties
from spikenet.data.temporal_graph import TemporalGraph
from spikenet.energy import LayerOps
from spikenet.tasks.forecasts import forecast_scores
from spikenet.tasks.ndcg import block_ndcg, check_evaluator, mean_over_times, scorer
from spikenet.tasks.windows import check_window_and_ratios, step_batches, window_steps

SPLITS = ("train", "val", "test")
METRIC = "ndcg@10"


class PropertyHead(nn.Module):
    """Scores over the C items = W · embedding + b (a ranking: NDCG reads their order)."""

    def __init__(self, in_features: int, num_items: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_items)

    def forward(self, embeddings: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(embeddings)


def label_time_splits(step_events: np.ndarray, num_times: int, val_ratio: float, test_ratio: float) -> np.ndarray:
    """The split (0 train, 1 val, 2 test, -1 never scored) of each of ``num_times`` label times, as TGB's loop.

    TGB splits the interactions at the quantiles ``1 - val - test`` and ``1 - test`` of their time stamps
    (numpy's linear interpolation): train t <= q1, val q1 < t <= q2, test t > q2. The labels of L_k are
    fetched by the first interaction after L_k, whose index in the sorted stamps is j = #(t <= L_k), the
    cumulative count through step k. With i = floor((n - 1) · q), that interaction lies at or below the
    quantile exactly when j <= i, so only the per-step counts are needed, not the stamps.
    """
    n = int(step_events.sum())
    before = np.cumsum(step_events)[:num_times]
    out = np.full(num_times, -1, dtype=np.int8)
    scored = before < n
    i_val = np.floor((n - 1) * (1 - val_ratio - test_ratio))
    i_test = np.floor((n - 1) * (1 - test_ratio))
    out[scored] = np.where(before[scored] <= i_val, 0, np.where(before[scored] <= i_test, 1, 2))
    return out


def _check(cfg: Any) -> None:
    check_window_and_ratios(cfg)
    if int(cfg.moving_average_window) < 1:
        raise ValueError(f"task.moving_average_window must be >= 1, got {cfg.moving_average_window}")
    check_evaluator(str(cfg.evaluator))


class NodePropertyPrediction(Task):
    """Forecast the property vectors of (node, label time) rows from the snapshots up to that time."""

    name = "node_property"
    metrics = (METRIC,)
    select = METRIC

    def __init__(self, graph: TemporalGraph, props: NodeProperties, window: int, val_ratio: float,
                 test_ratio: float, evaluator: str, moving_average_window: int) -> None:
        self.graph = graph
        self.props = props
        self.window = int(window)
        self.num_items = int(props.dim)
        self.time_split = label_time_splits(props.step_events, props.times.size, val_ratio, test_ratio)
        row_split = self.time_split[props.row_step]
        self.split_rows = {s: torch.from_numpy(np.flatnonzero(row_split == i)) for i, s in enumerate(SPLITS)}
        for s, rows in self.split_rows.items():
            if rows.numel() == 0:
                raise ValueError(f"{graph.name}: no label time falls in the {s} split ({props.times.size} label "
                                 f"times; task.val_ratio={val_ratio}, task.test_ratio={test_ratio})")
        self.row_step = torch.from_numpy(props.row_step)
        self.row_node = torch.from_numpy(props.row_node)
        self.score_fn = scorer(evaluator, graph.name)
        self.moving_average_window = int(moving_average_window)
        self.model_device = self.data_device = torch.device("cpu")
        self._baselines: dict | None = None

    def place(self, model_device: torch.device, data_device: torch.device) -> NodePropertyPrediction:
        self.model_device, self.data_device = torch.device(model_device), torch.device(data_device)
        return self

    def encoder_steps(self) -> int:
        return self.window

    def build_head(self, encoder: Encoder) -> nn.Module:
        return PropertyHead(encoder.embedding_dim, self.num_items)

    def examples(self, split: str) -> torch.Tensor:
        """Row ids of the split, sorted by label time (evaluation keeps this order)."""
        return self.split_rows[split].to(self.data_device)

    def targets(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, C] soft targets: each row's weights divided by their sum (all zero for a row without weight)."""
        dense = torch.from_numpy(self.props.dense(rows.numpy()))
        total = dense.sum(dim=1, keepdim=True)
        return (dense / torch.where(total > 0, total, torch.ones_like(total))).to(self.model_device)

    def batches(self, loader: BatchLoader, examples: torch.Tensor, batch_size: int,
                generator: torch.Generator | None, tables: Tables | None = None, limit: int | None = None,
                shuffle: bool = False) -> Iterator[Batch]:
        """Batches of one label time each: the nodes' windows end at that time's step."""
        rows = examples.cpu()
        chunks = step_batches(self.row_step[rows], rows, batch_size, generator, shuffle)
        for count, (step, positions) in enumerate(chunks):
            if limit is not None and count >= limit:
                return
            chunk = rows[positions.cpu()]
            nodes = self.row_node[chunk].to(self.data_device)
            inputs = loader.inputs(nodes, generator, tables, window_steps(step, self.window, self.data_device))
            yield Batch(nodes, inputs, tables is not None, examples=chunk, extra={"target": self.targets(chunk)})

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(output.float(), batch.extra["target"])

    def keep(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return output.float()

    def score(self, split: str, examples: torch.Tensor, kept: torch.Tensor) -> dict[str, float]:
        """NDCG@10 per label time of ``examples`` (rows of ``kept`` in the same order), averaged over the times."""
        rows = examples.cpu().numpy()
        pred = kept.cpu().numpy().astype(np.float64)
        steps = self.props.row_step[rows]
        per_time = []
        for k in np.unique(steps):
            at = np.flatnonzero(steps == k)
            per_time.append(block_ndcg(self.score_fn, self.props.dense(rows[at], np.float64), pred[at]))
        return {METRIC: mean_over_times(per_time)}

    def baselines(self) -> dict[str, dict[str, float]]:
        """TGB's persistence and moving-average forecasts: ``{name: {'<split>_ndcg@10': value}}``."""
        if self._baselines is None:
            self._baselines = forecast_scores(self.props, self.time_split, self.graph.num_nodes, self.score_fn,
                                              ("val", "test"), SPLITS, self.moving_average_window)
        return self._baselines

    def warnings(self, result: dict) -> list[str]:
        """A model that never beat persistence on validation forecasts worse than repeating the last label."""
        persistence = self.baselines()["persistence"][f"val_{METRIC}"]
        if result.get(f"val_{METRIC}", -1.0) <= persistence:
            return [f"validation NDCG@10 never beat the persistence forecast ({result.get(f'val_{METRIC}'):.4f} <= "
                    f"{persistence:.4f}): the model ranks worse than repeating each node's last label; try more "
                    "epochs, another task.window or trainer.lr, or dataset.features=labels if another was chosen"]
        return []

    def head_ops(self, encoder: Encoder, head: nn.Module, rates: list[list[float]] | None) -> list[LayerOps]:
        return [encoder.embedding_ops("readout", self.num_items, rates)]

    def summary(self, metrics: dict) -> str:
        base = metrics["baselines"]
        return (f"test NDCG@10 {metrics[f'test_{METRIC}']:.4f} at epoch {metrics['best_epoch']} (val "
                f"{metrics[f'val_{METRIC}']:.4f}; persistence test {base['persistence'][f'test_{METRIC}']:.4f}, "
                f"moving average {base['moving_average'][f'test_{METRIC}']:.4f})")


@TASKS.register("node_property", check=_check,
                tiny=("dataset=tgbn", "dataset.name=tgbn-toy", "task.window=2"))
def _build(cfg: Any, graph: TemporalGraph, seed: int) -> Task:
    props = NodeProperties.from_meta(graph.meta)
    if props is None:
        raise ValueError(f"{graph.name} has no time-keyed node property labels; task=node_property reads TGB's "
                         "node-property datasets (dataset=tgbn)")
    return NodePropertyPrediction(graph, props, int(cfg.window), float(cfg.val_ratio), float(cfg.test_ratio),
                                  str(cfg.evaluator), int(cfg.moving_average_window))
