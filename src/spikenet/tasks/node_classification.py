"""Node classification (the SpikeNet paper's task): labelled nodes, stratified splits, a Linear head on the
embedding, cross-entropy, Macro-/Micro-F1, the best epoch by validation Micro-F1.

The labelled nodes are split, stratified with ``task.split_seed``, into train (``train_size -
val_size``), validation (``val_size``) and test (``1 - train_size``). Every node is embedded from all
T snapshots. Beside the trained model's scores the task reports two references that need no
training: always predicting the training split's majority class, and predicting classes at random
with the training split's class frequencies (expected F1, computed exactly).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from spikenet.contracts import TASKS, Batch, BatchLoader, Encoder, Tables, Task
from spikenet.data.temporal_graph import TemporalGraph
from spikenet.energy import LayerOps
from spikenet.training.metrics import f1_scores
from spikenet.training.splits import Splits, check_split_sizes, stratified_splits

SPLITS = ("train", "val", "test")


class ClassifierHead(nn.Module):
    """Logits = W · embedding + b (for SpikeNet: the paper's readout of the flattened spike trains)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, embeddings: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(embeddings)


def _check(cfg: Any) -> None:
    check_split_sizes(float(cfg.train_size), float(cfg.val_size))


def chance_f1(train_labels: np.ndarray, split_labels: np.ndarray, num_classes: int) -> dict[str, dict[str, float]]:
    """Macro-/Micro-F1 on ``split_labels`` of two predictors that ignore the graph: the training split's
    majority class, and classes drawn at random with the training split's frequencies p.

    For the random one, class c's expected precision is its share q_c of the split and its expected
    recall p_c, so its F1 is 2 p_c q_c / (p_c + q_c) and Micro-F1 (accuracy) is sum_c p_c q_c (the
    large-sample values); Macro-F1 averages over the classes that occur in the split or the predictions,
    as scikit-learn does.
    """
    p = np.bincount(train_labels, minlength=num_classes) / max(train_labels.size, 1)
    q = np.bincount(split_labels, minlength=num_classes) / max(split_labels.size, 1)
    majority = np.full_like(split_labels, int(np.argmax(p)))
    ma, mi = f1_scores(split_labels, majority)
    seen = (p > 0) | (q > 0)
    per_class = 2 * p * q / np.where(seen, p + q, 1.0)
    return {"majority": {"macro_f1": ma, "micro_f1": mi},
            "chance": {"macro_f1": float(per_class[seen].mean()) if seen.any() else 0.0,
                       "micro_f1": float((p * q).sum())}}


class NodeClassification(Task):
    """Classify labelled nodes from their embedding over all snapshots."""

    name = "node_classification"
    metrics = ("macro_f1", "micro_f1")
    select = "micro_f1"

    def __init__(self, graph: TemporalGraph, splits: Splits) -> None:
        self.graph = graph
        self.num_classes = int(graph.num_classes)
        self.labels_cpu = graph.labels.cpu()
        self.labels = self.labels_cpu
        self.splits = splits
        self.loss_fn = nn.CrossEntropyLoss()

    def place(self, model_device: torch.device, data_device: torch.device) -> NodeClassification:
        self.labels = self.labels_cpu.to(model_device)
        self.splits = Splits(*(t.to(data_device) for t in (self.splits.train, self.splits.val, self.splits.test)))
        return self

    def encoder_steps(self) -> int:
        return self.graph.num_steps

    def build_head(self, encoder: Encoder) -> nn.Module:
        return ClassifierHead(encoder.embedding_dim, self.num_classes)

    def examples(self, split: str) -> torch.Tensor:
        return getattr(self.splits, split)

    def batches(self, loader: BatchLoader, examples: torch.Tensor, batch_size: int,
                generator: torch.Generator | None, tables: Tables | None = None, limit: int | None = None,
                shuffle: bool = False) -> Iterator[Batch]:
        return loader.batches(examples, batch_size, generator, tables, limit)

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss_fn(output, self.labels[batch.nodes.to(self.labels.device)])

    def keep(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return output.argmax(-1)

    def score(self, split: str, examples: torch.Tensor, kept: torch.Tensor) -> dict[str, float]:
        ma, mi = f1_scores(self.labels_cpu[examples.cpu()].numpy(), kept.cpu().numpy())
        return {"macro_f1": ma, "micro_f1": mi}

    def baselines(self) -> dict[str, dict[str, float]]:
        """``{predictor: {'<split>_<metric>': value}}`` for the majority class and stratified chance."""
        train = self.labels_cpu[self.splits.train.cpu()].numpy()
        out: dict[str, dict[str, float]] = {"majority": {}, "chance": {}}
        for split in ("val", "test"):
            scores = chance_f1(train, self.labels_cpu[self.examples(split).cpu()].numpy(), self.num_classes)
            for predictor, values in scores.items():
                out[predictor].update({f"{split}_{k}": v for k, v in values.items()})
        return out

    def warnings(self, result: dict) -> list[str]:
        """A model that never beat the majority class on validation learned nothing the labels' counts do not say."""
        majority = self.baselines()["majority"]["val_micro_f1"]
        if result.get("val_micro_f1", -1.0) <= majority:
            return [f"validation Micro-F1 never beat the majority class ({result.get('val_micro_f1'):.4f} <= "
                    f"{majority:.4f}): the model predicts little more than the most frequent label; try more "
                    "epochs, another lr, a smaller model.dropout, or check the labels and features"]
        return []

    def head_ops(self, encoder: Encoder, head: nn.Module, rates: list[list[float]] | None) -> list[LayerOps]:
        return [encoder.embedding_ops("readout", self.num_classes, rates)]

    def summary(self, metrics: dict) -> str:
        return (f"test Ma-F1 {metrics['test_macro_f1']:.4f} Mi-F1 {metrics['test_micro_f1']:.4f} at epoch "
                f"{metrics['best_epoch']} (val Mi-F1 {metrics['val_micro_f1']:.4f}; majority class "
                f"{metrics['baselines']['majority']['test_micro_f1']:.4f})")


@TASKS.register("node_classification", check=_check, tiny=())
def _build(cfg: Any, graph: TemporalGraph, seed: int) -> Task:
    if graph.labelled_nodes.numel() < 2 or graph.num_classes < 2:
        raise ValueError(f"task=node_classification needs labelled nodes of at least 2 classes; {graph.name} has "
                         f"{graph.labelled_nodes.numel()} labelled nodes: give a labels file (dataset.labels), or "
                         "choose task=link_prediction, or task=node_property for a dataset of label vectors (tgbn)")
    splits = stratified_splits(graph.labelled_nodes, graph.labels, float(cfg.train_size), float(cfg.val_size),
                               int(cfg.split_seed))
    return NodeClassification(graph, splits)
