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

import logging
import math
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
from spikenet.training import checkpoint
from spikenet.training.distributed import Distributed
from spikenet.training.loader import NodeLoader
from spikenet.training.loggers import Logger
from spikenet.training.metrics import f1_scores
from spikenet.training.precision import Precision
from spikenet.training.splits import Splits

log = logging.getLogger(__name__)
EVAL_SPLITS = ("val", "test")
TEST_SCHEDULES = ("best", "improved", "every")
DEDUP_CHOICES = ("auto", "true", "false")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and batch (one line)."""


def check_trainer_config(cfg: Any) -> None:
    """Raise ``ValueError`` (one line naming the key) for an out-of-range ``trainer`` value.

    The trainer calls it when built; ``spikenet.config.validate`` calls it before any data is read.
    """
    if int(cfg.epochs) < 1:
        raise ValueError(f"trainer.epochs must be >= 1, got {cfg.epochs}")
    for key in ("batch_size", "eval_batch_size"):
        if int(cfg[key]) < 1:
            raise ValueError(f"trainer.{key} must be >= 1, got {cfg[key]}")
    if not float(cfg.lr) > 0:
        raise ValueError(f"trainer.lr must be > 0, got {cfg.lr}")
    if str(cfg.test_schedule) not in TEST_SCHEDULES:
        raise ValueError(f"trainer.test_schedule must be one of {TEST_SCHEDULES}, got '{cfg.test_schedule}'")
    if str(cfg.dedup_rows).lower() not in DEDUP_CHOICES:
        raise ValueError(f"trainer.dedup_rows must be one of {DEDUP_CHOICES}, got '{cfg.dedup_rows}'")
    checkpoint.resume_path(cfg.resume, None)  # a named checkpoint must exist


def dedup_rows(choice: Any, device: torch.device) -> bool:
    """``trainer.dedup_rows``: auto -> on for a model on the CPU (measured there; on a GPU the
    distinct-row search would add a host synchronisation per batch)."""
    choice = str(choice).lower()
    return device.type == "cpu" if choice == "auto" else choice == "true"


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


def add_rates(total: torch.Tensor | None, layer_rates: list[torch.Tensor], weight: int) -> torch.Tensor | None:
    """Running sum of per-layer, per-step firing rates ([L, T]) weighted by batch size, kept on the device;
    ``total`` unchanged for a model without spikes (empty ``layer_rates``)."""
    if not layer_rates:
        return total
    rates = torch.stack(layer_rates) * weight
    return rates if total is None else total + rates


class Trainer:
    """Trains ``model`` on ``graph`` with the reference protocol (AdamW, CE, best-val model selection)."""

    def __init__(self, model: nn.Module, graph: TemporalGraph, sampler: TemporalSampler, splits: Splits,
                 cfg: Any, device: torch.device, seed: int, logger: Logger | None = None,
                 run_dir: str | Path | None = None, loader: NodeLoader | None = None,
                 dist: Distributed | None = None) -> None:
        check_trainer_config(cfg)
        self.model = model.to(device)
        self.dist = dist or Distributed(device=device)  # data parallelism (a no-op for one process)
        self.net = self.dist.wrap(self.model)  # what training runs through: DDP averages gradients over ranks
        self.graph = graph
        self.sampler = sampler
        self.splits = splits
        self.cfg = cfg
        self.device = device
        self.seed = seed
        self.logger = logger or Logger()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.last_good: tuple[Path | None, int] = (None, 0)  # the newest last.pt and its epoch
        self.labels = graph.labels.to(device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg.lr),
                                           weight_decay=float(cfg.weight_decay))
        self.loss_fn = nn.CrossEntropyLoss()
        self.data_device = graph.features.device  # sampling draws where the graph lives (trainer.data_device)
        self.train_gen = torch.Generator(self.data_device).manual_seed(self.dist.rank_seed(seed))  # one per rank
        # the shuffle: one stream shared by all ranks, so their shards of it are disjoint
        self.order_gen = torch.Generator(self.data_device).manual_seed(seed) if self.dist.active else None
        self.precision = Precision(str(cfg.precision), device)
        self.loader = loader if loader is not None else NodeLoader(
            graph, sampler, model.aggr, device, self.dist.rank, self.dist.world_size,
            unique_rows=dedup_rows(cfg.dedup_rows, device))
        self.timings: dict[str, float] = self.loader.timings  # sample/gather from the loader, the rest from here
        self.eval_cache_bytes = float(cfg.eval_cache_mb) * 2**20
        if self.dist.active:  # only rank 0 has the real logger; all ranks must record rates alike (they gather them)
            self.logger.wants_spike_rates = self.dist.sum(float(self.logger.wants_spike_rates))[0] > 0

    # --- one epoch of training ---------------------------------------------------------------
    def train_epoch(self, max_batches: int | None = None, epoch: int | None = None) -> float:
        """One pass over the shuffled training nodes (or its first ``max_batches``); returns the mean loss.

        Raises ``NonFiniteLossError`` naming ``epoch`` and the first batch whose loss was NaN or infinite
        (found after the epoch, from the per-batch losses kept on the device: no host sync per batch).
        """
        self.model.train()
        losses: list[torch.Tensor] = []
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0  # summed on the device
        for batch in self.loader.train_batches(self.splits.train, self.dist.local_batch(int(self.cfg.batch_size)),
                                               self.train_gen, limit=max_batches, order_generator=self.order_gen):
            t0 = self.loader.clock()
            with self.precision.autocast():
                logits = self.net(*batch.inputs)
                loss = self.loss_fn(logits, self.labels[batch.nodes.to(self.device)])
            t1 = self.loader.clock()
            self.optimizer.zero_grad(set_to_none=True)
            self.precision.backward_step(loss, self.optimizer)
            self.timings["forward"] += t1 - t0
            self.timings["backward"] += self.loader.clock() - t1
            total += loss.detach().double() * batch.size  # no host sync per batch
            count += batch.size
            losses.append(loss.detach())
        total, count = self.dist.sum(total.item(), count)
        if not math.isfinite(total):
            bad = (~torch.isfinite(torch.stack(losses))).nonzero()
            where = f"batch {int(bad[0]) + 1} of {len(losses)}" if bad.numel() else "another rank's batch"
            raise NonFiniteLossError(f"non-finite training loss ({total}) at epoch {epoch}, {where}")
        return total / max(count, 1)

    # --- evaluation --------------------------------------------------------------------------
    def _projection_pays(self, num_targets: int) -> bool:
        """Whether evaluation should gather from layer 0's projected tables (the model decides what pays)."""
        if not self.cfg.eval_project_first or not hasattr(self.model, "projection_pays"):
            return False
        feature_steps = self.graph.num_steps if self.graph.features.dim() == 3 else 1
        return self.model.projection_pays(num_targets, self.graph.num_nodes, feature_steps, self.eval_cache_bytes)

    @torch.no_grad()
    def predict(self, nodes: torch.Tensor, gen: torch.Generator, projected: tuple | None = None,
                record_rates: bool = False) -> np.ndarray:
        """Predicted classes of ``nodes`` (eval mode, sampled neighbourhoods).

        With ``record_rates``, ``self.rates`` gets the mean firing rate per layer per time step (None for a
        model without spikes).
        """
        self.model.eval()
        self.model.record_spikes = record_rates
        preds, rate_sum, counted = [], None, 0
        for batch in self.loader.batches(self.dist.shard(nodes), int(self.cfg.eval_batch_size), gen,
                                         projected):
            with self.precision.autocast():
                logits = self.model(*batch.inputs, projected=batch.projected)
            preds.append(logits.argmax(-1))  # stays on the device: one copy after the loop
            if record_rates:
                rate_sum = add_rates(rate_sum, self.model.spike_rates, batch.size)
                counted += batch.size
        self.model.record_spikes = False
        if record_rates and self.dist.active:  # sums over all ranks' batches
            parts = self.dist.gather_object((None if rate_sum is None else rate_sum.cpu(), counted))
            rate_sum = sum(p[0] for p in parts) if all(p[0] is not None for p in parts) else None
            counted = sum(p[1] for p in parts)
        if record_rates:
            self.rates = None if rate_sum is None else (rate_sum / counted).tolist()
        pred = torch.cat(preds).cpu() if preds else torch.empty(0, dtype=torch.long)
        return self.dist.unshard(pred, nodes.numel()).numpy()  # every rank's predictions, in the order of nodes

    def evaluate(self, epoch: int, splits: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
        """(Macro-F1, Micro-F1) per named split; sampling seeded by (seed, epoch, split)."""
        t0 = time.perf_counter()
        total = sum(n.numel() for n in splits.values())
        projected = None
        if self._projection_pays(total):
            projected = self.model.project_inputs(self.graph.features.to(self.device))
        record_rates = self.logger.wants_spike_rates or bool(self.cfg.record_firing_rates)
        scores = {}
        for name, nodes in splits.items():
            pred = self.predict(nodes, self._eval_generator(epoch, name), projected, record_rates and name == "val")
            scores[name] = f1_scores(self.graph.labels[nodes].cpu().numpy(), pred)
        self.timings["evaluate"] += time.perf_counter() - t0
        return scores

    def _eval_generator(self, epoch: int, split: str) -> torch.Generator:
        return torch.Generator(self.data_device).manual_seed(self.seed * 7919 + epoch * 31
                                                             + EVAL_SPLITS.index(split) + 1)

    # --- the whole run -----------------------------------------------------------------------
    def fit(self) -> dict:
        """Train for ``cfg.epochs``; returns the summary (test scores at the best-val epoch, history, ...).

        With ``cfg.resume`` (``checkpoint.resume_path``) it continues from a ``last.pt`` instead of epoch 1;
        ``run_dir/last.pt`` is rewritten after every epoch. Afterwards the model holds the best epoch's weights.
        """
        epochs = int(self.cfg.epochs)
        schedule = str(self.cfg.test_schedule)
        history: list[EpochRecord] = []
        best = {"val_micro_f1": -1.0, "val_macro_f1": float("nan"), "best_epoch": -1,
                "test_macro_f1": float("nan"), "test_micro_f1": float("nan")}
        best_state = None
        done = 0
        resume = checkpoint.resume_path(self.cfg.resume, self.run_dir)
        if self.cfg.resume is not None and self.dist.active:  # only rank 0 knows the run directory
            raise ValueError("trainer.resume needs a single process for now (last.pt holds rank 0's streams only)")
        if resume is not None:
            ckpt = checkpoint.load(resume)
            checkpoint.restore(ckpt, self.model, self.optimizer, self._generators())
            done, best, best_state = int(ckpt["epoch"]), ckpt["best"], ckpt["best_state"]
            history = [EpochRecord(**r) for r in ckpt["history"]]
            self.last_good = (resume, done)
            log.info("resumed from %s after epoch %d", resume, done)
        show = self.cfg.progress and self.dist.is_main
        bar = tqdm(range(done + 1, epochs + 1), desc="epochs", disable=not show, dynamic_ncols=True, initial=done,
                   total=epochs)
        for epoch in bar:
            self.rates = None
            t0 = time.perf_counter()
            try:
                loss = self.train_epoch(epoch=epoch)
            except NonFiniteLossError as err:
                path, good = self.last_good
                kept = f"last good checkpoint: {path} (epoch {good})" if path is not None else "no checkpoint kept"
                raise NonFiniteLossError(f"{err}; {kept}") from None
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
            self.save_last(epoch, best, best_state, history)
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
            "firing_rates": history[best["best_epoch"] - 1].firing_rates if best_state is not None else None,
            "history": [asdict(r) for r in history],
        }

    def _generators(self) -> dict[str, torch.Generator | None]:
        """The trainer's own random streams (saved in, and restored from, ``last.pt``)."""
        return {"train": self.train_gen, "order": self.order_gen}

    def save_checkpoint(self, epoch: int) -> None:
        """Write the current (best-so-far) weights to ``run_dir/best.pt``, atomically."""
        if self.run_dir is not None and self.cfg.save_checkpoint:
            checkpoint.save_best(self.run_dir, epoch, self.model)

    def save_last(self, epoch: int, best: dict, best_state: dict | None, history: list[EpochRecord]) -> None:
        """Write ``run_dir/last.pt`` (everything a resumed run needs after ``epoch``), atomically."""
        if self.run_dir is None or not self.cfg.save_checkpoint:
            return
        path = checkpoint.save_last(self.run_dir, epoch=epoch, model=self.model, optimizer=self.optimizer,
                                    generators=self._generators(), best=best, best_state=best_state,
                                    history=[asdict(r) for r in history])
        self.last_good = (path, epoch)
