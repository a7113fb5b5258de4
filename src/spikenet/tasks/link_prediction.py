"""Temporal link prediction on snapshot graphs: score the edges of step t from the snapshots before t.

An example is an edge stamped t (``link_edges.TemporalEdges``). Its two endpoints are embedded from
the ``task.window`` snapshots ending at t - 1 (``window_steps``): nothing of step t or later reaches
the embedding (tested by changing later edges). Batches hold the examples of one step; the head
scores a pair by a bilinear form of the two embeddings (``LinkHead``: the dot product of their learned
projections), trained with binary cross-entropy
against one random negative destination per positive, drawn afresh each batch.

Steps are split chronologically (``link_edges.step_splits``). Validation and test rank each positive
against ``task.num_negatives`` destinations drawn once (``task.negatives``: random or historical,
``task.negative_seed``) and report AP, AUC-ROC and MRR (``link_metrics``); MRR picks the best epoch.
EdgeBank, scored by the same evaluator on the same candidates, stands beside every result.

The node features are read as given: features computed from the whole graph (a DeepWalk or SMF
file, ``dataset.features=smf``) have seen the test steps' edges, which flatters every model alike
(EdgeBank reads no features). For a strict protocol give features that do not come from the edges
(the synthetic generators' do not).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikenet.contracts import TASKS, Batch, BatchLoader, Encoder, Tables, Task
from spikenet.data.temporal_graph import TemporalGraph
from spikenet.energy import LayerOps
from spikenet.tasks.link_edges import (
    NEGATIVE_SETTINGS,
    SPLITS,
    EdgeHistory,
    TemporalEdges,
    draw_negatives,
    positive_keys,
    step_splits,
)
from spikenet.tasks.link_metrics import LINK_METRICS, link_scores
from spikenet.tasks.windows import check_window_and_ratios, step_batches, window_steps


class LinkHead(nn.Module):
    """Scores of (source, candidate) pairs: <P h_src, P h_dst> / sqrt(H) + b, one logit per pair.

    A symmetric bilinear form (the graph is undirected) through a learned projection P of width H.
    Measured on the default synthetic graph, it learns in a few epochs where TGB's summed-maps MLP
    (ReLU(A h_src + B h_dst), also with a product term) sat at chance for the first five. Each embedded
    node is projected once, then pairs are gathered with ``index_select``: its backward sums repeated rows
    in a fixed order, where ``z[idx]``'s (``index_put_`` with accumulate, atomic adds over threads on the
    CPU) does not, so runs would not repeat bit for bit.
    """

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.project = nn.Linear(in_features, hidden)
        self.bias = nn.Parameter(torch.zeros(()))
        self.scale = float(hidden) ** -0.5

    def forward(self, embeddings: torch.Tensor, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        """``extra["src"]`` [B] and ``extra["dst"]`` [B, C] index embedding rows -> [B, C] logits."""
        z = self.project(embeddings)
        src, dst = extra["src"], extra["dst"]
        z_src = z.index_select(0, src).unsqueeze(1)
        z_dst = z.index_select(0, dst.reshape(-1)).view(*dst.shape, -1)
        return (z_src * z_dst).sum(-1) * self.scale + self.bias


def _check(cfg: Any) -> None:
    check_window_and_ratios(cfg)
    if str(cfg.negatives) not in NEGATIVE_SETTINGS:
        raise ValueError(f"task.negatives must be one of {', '.join(NEGATIVE_SETTINGS)}, got '{cfg.negatives}'")
    if int(cfg.num_negatives) < 1:
        raise ValueError(f"task.num_negatives must be >= 1, got {cfg.num_negatives}")
    if int(cfg.train_negatives) < 1:
        raise ValueError(f"task.train_negatives must be >= 1, got {cfg.train_negatives}")
    if int(cfg.hidden) < 1:
        raise ValueError(f"task.hidden must be >= 1, got {cfg.hidden}")


class LinkPrediction(Task):
    """Rank each timed edge's true destination above sampled ones, from the snapshots before its step."""

    name = "link_prediction"
    metrics = LINK_METRICS
    select = "mrr"

    def __init__(self, graph: TemporalGraph, window: int, val_ratio: float, test_ratio: float, negatives: str,
                 num_negatives: int, negative_seed: int, hidden: int, train_negatives: int = 1) -> None:
        self.graph = graph
        self.train_negatives = int(train_negatives)
        self.window = int(window)
        self.hidden = int(hidden)
        self.edges = TemporalEdges.from_graph(graph, negative_seed)
        self.step_split = step_splits(graph.num_steps, val_ratio, test_ratio)
        split_of = self.step_split[self.edges.step]
        self.split_rows = {s: torch.from_numpy(np.flatnonzero(split_of == i)) for i, s in enumerate(SPLITS)}
        for s, rows in self.split_rows.items():
            if rows.numel() == 0:
                steps = np.flatnonzero(self.step_split == SPLITS.index(s)).tolist()
                raise ValueError(f"{graph.name}: no edge is stamped in the {s} steps {steps}; temporal link "
                                 "prediction needs new edges in every split (change task.val_ratio/test_ratio or "
                                 "dataset.time_bins)")
        self.history = EdgeHistory(graph)
        self.positives = positive_keys(self.edges, graph.num_nodes)
        rng = np.random.default_rng(negative_seed)
        self.negatives = {s: draw_negatives(self.edges, self.split_rows[s].numpy(), int(num_negatives), negatives,
                                            self.history, self.positives, rng) for s in ("val", "test")}
        self.src = torch.from_numpy(self.edges.src)
        self.dst = torch.from_numpy(self.edges.dst)
        self.step = torch.from_numpy(self.edges.step)
        self.model_device = self.data_device = torch.device("cpu")
        self._baselines: dict | None = None

    def place(self, model_device: torch.device, data_device: torch.device) -> LinkPrediction:
        self.model_device, self.data_device = torch.device(model_device), torch.device(data_device)
        return self

    def encoder_steps(self) -> int:
        return self.window

    def build_head(self, encoder: Encoder) -> nn.Module:
        return LinkHead(encoder.embedding_dim, self.hidden)

    def examples(self, split: str) -> torch.Tensor:
        """Edge ids of the split, in step order (evaluation keeps this order)."""
        return self.split_rows[split].to(self.data_device)

    def candidates(self, rows: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """[B, 1 + K] destinations of the edges ``rows``: the true one, then its negatives (evaluation: the
        split's fixed ones; training: ``task.train_negatives`` uniform draws from ``generator``)."""
        truth = self.dst[rows].unsqueeze(1)
        split = SPLITS[int(self.step_split[int(self.step[rows[0]])])]
        if split == "train":
            gen_device = generator.device if generator is not None else torch.device("cpu")
            draw = torch.randint(0, self.graph.num_nodes, (rows.numel(), self.train_negatives), generator=generator,
                                 device=gen_device)
            return torch.cat([truth, draw.cpu()], dim=1)
        position = torch.searchsorted(self.split_rows[split], rows)
        return torch.cat([truth, torch.from_numpy(self.negatives[split][position.numpy()])], dim=1)

    def batches(self, loader: BatchLoader, examples: torch.Tensor, batch_size: int,
                generator: torch.Generator | None, tables: Tables | None = None, limit: int | None = None,
                shuffle: bool = False) -> Iterator[Batch]:
        """Batches of one step each: both endpoints and every candidate are embedded from the steps before it."""
        rows = examples.cpu()
        chunks = step_batches(self.step[rows], rows, batch_size, generator, shuffle)
        for count, (step, positions) in enumerate(chunks):
            if limit is not None and count >= limit:
                return
            chunk = rows[positions.cpu()]
            candidates = self.candidates(chunk, generator)
            nodes, index = torch.unique(torch.cat([self.src[chunk], candidates.flatten()]), return_inverse=True)
            src, dst = index[: chunk.numel()], index[chunk.numel():].view_as(candidates)
            steps = window_steps(step - 1, self.window, self.data_device)
            nodes = nodes.to(self.data_device)
            inputs = loader.inputs(nodes, generator, tables, steps)
            extra = {"src": src.to(self.model_device), "dst": dst.to(self.model_device)}
            yield Batch(nodes, inputs, tables is not None, examples=chunk, extra=extra)

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Binary cross-entropy, the true destination (column 0) against 1 and the negatives against 0, each side
        weighted one half (so more negatives do not drown the positives)."""
        output = output.float()
        positive = F.binary_cross_entropy_with_logits(output[:, 0], torch.ones_like(output[:, 0]))
        negative = F.binary_cross_entropy_with_logits(output[:, 1:], torch.zeros_like(output[:, 1:]))
        return 0.5 * (positive + negative)

    def keep(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return output.float()

    def score(self, split: str, examples: torch.Tensor, kept: torch.Tensor) -> dict[str, float]:
        return link_scores(kept.cpu().numpy())

    def edgebank_table(self, split: str) -> np.ndarray:
        """EdgeBank's [P, 1 + K] score table of ``split``: 1 where the pair was an edge before the step."""
        rows = self.split_rows[split].numpy()
        candidates = np.concatenate([self.edges.dst[rows, None], self.negatives[split]], axis=1)
        src = np.broadcast_to(self.edges.src[rows, None], candidates.shape)
        step = np.broadcast_to(self.edges.step[rows, None], candidates.shape)
        return self.history.seen_before(src, candidates, step).astype(np.float64)

    def baselines(self) -> dict[str, dict[str, float]]:
        """EdgeBank (unlimited memory) on the same candidates: ``{"edgebank": {'<split>_<metric>': value}}``."""
        if self._baselines is None:
            self._baselines = {"edgebank": {f"{s}_{m}": v for s in ("val", "test")
                                            for m, v in link_scores(self.edgebank_table(s)).items()}}
        return self._baselines

    def warnings(self, result: dict) -> list[str]:
        """A model whose validation AUC never rose clearly above 0.5 separates edges no better than a coin."""
        auc = result.get("val_auc", float("nan"))
        if not auc > 0.52:
            return [f"validation AUC never rose clearly above chance ({auc:.4f}): the model does not tell edges from "
                    "non-edges; try more epochs, another trainer.lr or task.window, or check the features"]
        return []

    def head_ops(self, encoder: Encoder, head: nn.Module, rates: list[list[float]] | None) -> list[LayerOps]:
        """Per candidate pair: both endpoints' projections (an upper bound: shared endpoints are projected once)
        and their dot product."""
        return [encoder.embedding_ops(f"link_{end}", self.hidden, rates) for end in ("src", "dst")] + [
            LayerOps("link_dot", 1, self.hidden, 1, 1)]

    def summary(self, metrics: dict) -> str:
        bank = metrics["baselines"]["edgebank"]
        return (f"test AP {metrics['test_ap']:.4f} AUC {metrics['test_auc']:.4f} MRR {metrics['test_mrr']:.4f} at "
                f"epoch {metrics['best_epoch']} (val MRR {metrics['val_mrr']:.4f}; EdgeBank test AP "
                f"{bank['test_ap']:.4f} AUC {bank['test_auc']:.4f} MRR {bank['test_mrr']:.4f})")


@TASKS.register("link_prediction", check=_check, tiny=("task.window=2",))
def _build(cfg: Any, graph: TemporalGraph, seed: int) -> Task:
    return LinkPrediction(graph, int(cfg.window), float(cfg.val_ratio), float(cfg.test_ratio), str(cfg.negatives),
                          int(cfg.num_negatives), int(cfg.negative_seed), int(cfg.hidden), int(cfg.train_negatives))
