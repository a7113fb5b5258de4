"""Fit/evaluate loop: minibatches of target nodes -> temporal samples -> SpikeNet -> cross-entropy.

After every epoch the validation split is scored. The result is the test score of the epoch with
the best validation Micro-F1. Evaluation draws its neighbour samples from generators seeded by
(seed, epoch, split), so that score does not depend on when test is evaluated, and
``trainer.test_schedule`` picks when: ``best`` (default) once after training, with the best
epoch's weights and that epoch's sampling seed; ``improved`` whenever validation improves;
``every`` each epoch (full test curves). The first is the cheapest: the test split is usually the
largest, and scoring it each epoch cost the reference half its epoch time.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from spikenet.data.temporal_graph import TemporalGraph
from spikenet.sampling import TemporalSampler
from spikenet.training.loader import NodeLoader
from spikenet.training.loggers import Logger
from spikenet.training.metrics import f1_scores
from spikenet.training.splits import Splits

EVAL_SPLITS = ("val", "test")
TEST_SCHEDULES = ("best", "improved", "every")


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    val_macro_f1: float
    val_micro_f1: float
    test_macro_f1: float | None
    test_micro_f1: float | None
    seconds: float
    train_seconds: float
    eval_seconds: float
    firing_rates: list[list[float]] | None = field(default=None)


class Trainer:
    """Trains ``model`` on ``graph`` with the reference protocol (AdamW, CE, best-val model selection)."""

    def __init__(self, model: nn.Module, graph: TemporalGraph, sampler: TemporalSampler, splits: Splits,
                 cfg: Any, device: torch.device, seed: int, logger: Logger | None = None,
                 run_dir: str | Path | None = None, loader: NodeLoader | None = None) -> None:
        self.model = model.to(device)
        self.graph = graph
        self.sampler = sampler
        self.splits = splits
        self.cfg = cfg
        self.device = device
        self.seed = seed
        self.logger = logger or Logger()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.labels = graph.labels.to(device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg.lr),
                                           weight_decay=float(cfg.get("weight_decay", 0.01)))
        self.loss_fn = nn.CrossEntropyLoss()
        self.train_gen = torch.Generator().manual_seed(seed)
        self.loader = loader if loader is not None else NodeLoader(graph, sampler, model.aggr, device)
        self.timings: dict[str, float] = self.loader.timings  # sample/gather from the loader, the rest from here
        self.eval_cache_bytes = float(cfg.get("eval_cache_mb", 2048)) * 2**20

    # --- one epoch of training ---------------------------------------------------------------
    def train_epoch(self, max_batches: int | None = None) -> float:
        """One pass over the shuffled training nodes (or its first ``max_batches``); returns the mean loss."""
        self.model.train()
        total, count = 0.0, 0
        for batch in self.loader.train_batches(self.splits.train, int(self.cfg.batch_size), self.train_gen,
                                               limit=max_batches):
            t0 = time.perf_counter()
            logits = self.model(*batch.inputs)
            loss = self.loss_fn(logits, self.labels[batch.nodes.to(self.device)])
            t1 = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.timings["forward"] += t1 - t0
            self.timings["backward"] += time.perf_counter() - t1
            total += loss.item() * batch.size
            count += batch.size
        return total / max(count, 1)

    # --- evaluation --------------------------------------------------------------------------
    def _projection_pays(self, num_targets: int) -> bool:
        """Whether evaluation should gather from layer 0's projected tables (the model decides what pays)."""
        if not self.cfg.get("eval_project_first", True) or not hasattr(self.model, "projection_pays"):
            return False
        feature_steps = self.graph.num_steps if self.graph.features.dim() == 3 else 1
        return self.model.projection_pays(num_targets, self.graph.num_nodes, feature_steps, self.eval_cache_bytes)

    @torch.no_grad()
    def predict(self, nodes: torch.Tensor, gen: torch.Generator, projected: tuple | None = None,
                record_rates: bool = False) -> np.ndarray:
        """Predicted classes of ``nodes`` (eval mode, sampled neighbourhoods).

        With ``record_rates``, ``self.rates`` gets the mean firing rate per layer per time step.
        """
        self.model.eval()
        self.model.record_spikes = record_rates
        preds, rate_sum, batches = [], None, 0
        for batch in self.loader.batches(nodes, int(self.cfg.get("eval_batch_size", 4096)), gen, projected):
            logits = self.model(*batch.inputs, projected=batch.projected)
            preds.append(logits.argmax(-1).cpu())
            if record_rates:
                rates = torch.stack(self.model.spike_rates).cpu()
                rate_sum = rates if rate_sum is None else rate_sum + rates
                batches += 1
        self.model.record_spikes = False
        if record_rates:
            self.rates = (rate_sum / batches).tolist()
        return torch.cat(preds).numpy()

    def evaluate(self, epoch: int, splits: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
        """(Macro-F1, Micro-F1) per named split; sampling seeded by (seed, epoch, split)."""
        t0 = time.perf_counter()
        total = sum(n.numel() for n in splits.values())
        projected = None
        if self._projection_pays(total):
            projected = self.model.project_inputs(self.graph.features.to(self.device))
        record_rates = self.logger.wants_spike_rates or bool(self.cfg.get("record_firing_rates", False))
        scores = {}
        for name, nodes in splits.items():
            pred = self.predict(nodes, self._eval_generator(epoch, name), projected, record_rates and name == "val")
            scores[name] = f1_scores(self.graph.labels[nodes].numpy(), pred)
        self.timings["evaluate"] += time.perf_counter() - t0
        return scores

    def _eval_generator(self, epoch: int, split: str) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 7919 + epoch * 31 + EVAL_SPLITS.index(split) + 1)

    # --- the whole run -----------------------------------------------------------------------
    def fit(self) -> dict:
        """Train for ``cfg.epochs``; returns the summary (test scores at the best-val epoch, history, ...).

        Afterwards the model holds the best epoch's weights.
        """
        epochs = int(self.cfg.epochs)
        schedule = str(self.cfg.get("test_schedule", "best"))
        if schedule not in TEST_SCHEDULES:
            raise ValueError(f"trainer.test_schedule must be one of {TEST_SCHEDULES}, got '{schedule}'")
        history: list[EpochRecord] = []
        best = {"val_micro_f1": -1.0, "val_macro_f1": float("nan"), "best_epoch": -1,
                "test_macro_f1": float("nan"), "test_micro_f1": float("nan")}
        best_state = None
        bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not self.cfg.get("progress", True),
                   dynamic_ncols=True)
        for epoch in bar:
            self.rates = None
            t0 = time.perf_counter()
            loss = self.train_epoch()
            t1 = time.perf_counter()
            val = self.evaluate(epoch, {"val": self.splits.val})["val"]
            improved = val[1] > best["val_micro_f1"]
            test = None
            if schedule == "every" or (improved and schedule == "improved"):
                test = self.evaluate(epoch, {"test": self.splits.test})["test"]
            t2 = time.perf_counter()
            rec = EpochRecord(epoch, loss, *val, *(test or (None, None)), t2 - t0, t1 - t0, t2 - t1, self.rates)
            history.append(rec)
            if improved:
                best.update(val_macro_f1=val[0], val_micro_f1=val[1], best_epoch=epoch)
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.save_checkpoint(epoch)
            self.logger.log_epoch(epoch, asdict(rec))
            bar.set_postfix(loss=f"{loss:.3f}", val_mi=f"{val[1]:.3f}", best_val_mi=f"{best['val_micro_f1']:.3f}")
        bar.close()
        test_seconds = 0.0
        if best_state is not None:
            self.model.load_state_dict(best_state)
            best_rec = history[best["best_epoch"] - 1]
            test = (best_rec.test_macro_f1, best_rec.test_micro_f1)
            if test[1] is None:  # test_schedule=best: score it now, with that epoch's weights and sampling seed
                t0 = time.perf_counter()
                test = self.evaluate(best["best_epoch"], {"test": self.splits.test})["test"]
                test_seconds = time.perf_counter() - t0
            best.update(test_macro_f1=test[0], test_micro_f1=test[1])
        seconds = [r.seconds for r in history]
        return {
            **best,
            "epoch_seconds": statistics.median(seconds) if seconds else float("nan"),
            "train_seconds": statistics.median(r.train_seconds for r in history) if history else float("nan"),
            "final_test_seconds": test_seconds,
            "test_schedule": schedule,
            "history": [asdict(r) for r in history],
        }

    def save_checkpoint(self, epoch: int) -> None:
        """Write the current (best-so-far) weights to ``run_dir/best.pt``, atomically."""
        if self.run_dir is None or not self.cfg.get("save_checkpoint", True):
            return
        path = self.run_dir / "best.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"epoch": epoch, "model": self.model.state_dict()}, tmp)
        tmp.replace(path)
