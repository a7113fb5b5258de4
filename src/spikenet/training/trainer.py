"""Fit/evaluate loop of any task over any encoder: the task's batches -> encoder + head -> the task's loss.

After every epoch the validation split is scored with the task's metrics. The result is the test
score of the epoch with the best validation value of the task's selection metric (``Task.select``;
higher is better). Evaluation draws its neighbour samples from generators seeded by (seed, epoch,
split), so that score does not depend on when test is evaluated, and ``trainer.test_schedule`` picks
when: ``best`` (default) once after training, with the best epoch's weights and that epoch's
sampling seed; ``improved`` whenever validation improves; ``every`` each epoch (full test curves).
The first is the cheapest: the test split is usually the largest, and scoring it each epoch cost the
reference half its epoch time. ``trainer.patience`` stops after that many epochs without a
validation improvement (off by default: the reference protocol trains all epochs).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from spikenet.contracts import BatchLoader, Task
from spikenet.data.temporal_graph import TemporalGraph
from spikenet.sampling import TemporalSampler
from spikenet.training import checkpoint
from spikenet.training.distributed import Distributed
from spikenet.training.loader import NodeLoader
from spikenet.training.loggers import Logger
from spikenet.training.precision import Precision

if TYPE_CHECKING:
    from spikenet.tasks import TaskModel

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
    patience = cfg.get("patience")
    if patience is not None and int(patience) < 1:
        raise ValueError(f"trainer.patience must be null (off) or >= 1, got {patience}")
    checkpoint.resume_path(cfg.resume, None)  # a named checkpoint must exist


def dedup_rows(choice: Any, device: torch.device) -> bool:
    """``trainer.dedup_rows``: auto -> on for a model on the CPU (measured there; on a GPU the
    distinct-row search would add a host synchronisation per batch)."""
    choice = str(choice).lower()
    return device.type == "cpu" if choice == "auto" else choice == "true"


def add_rates(total: torch.Tensor | None, layer_rates: list[torch.Tensor], weight: int) -> torch.Tensor | None:
    """Running sum of per-layer, per-step firing rates ([L, T]) weighted by batch size, kept on the device;
    ``total`` unchanged for a model without spikes (empty ``layer_rates``)."""
    if not layer_rates:
        return total
    rates = torch.stack(layer_rates) * weight
    return rates if total is None else total + rates


def epoch_record(epoch: int, loss: float, val: dict[str, float], test: dict[str, float] | None,
                 metrics: tuple[str, ...], seconds: float, train_seconds: float, eval_seconds: float,
                 firing_rates: list[list[float]] | None) -> dict[str, Any]:
    """One row of the history: loss, ``val_<metric>`` and ``test_<metric>`` (None when test was not scored),
    timings and firing rates."""
    return {
        "epoch": epoch,
        "loss": loss,
        **{f"val_{m}": val[m] for m in metrics},
        **{f"test_{m}": (test[m] if test is not None else None) for m in metrics},
        "seconds": seconds,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "firing_rates": firing_rates,
    }


class Trainer:
    """Trains ``model`` (an encoder and ``task``'s head) with AdamW and the task's loss; selects the best
    epoch by the task's validation metric."""

    def __init__(self, model: TaskModel, task: Task, graph: TemporalGraph, sampler: TemporalSampler, cfg: Any,
                 device: torch.device, seed: int, logger: Logger | None = None, run_dir: str | Path | None = None,
                 loader: BatchLoader | None = None, dist: Distributed | None = None,
                 precision: Precision | None = None) -> None:
        if precision is None:  # built and checked by config.validate when the trainer comes from build_experiment
            check_trainer_config(cfg)
        self.model = model.to(device)
        self.encoder = self.model.encoder
        self.task = task.place(device, graph.features.device)
        self.dist = dist or Distributed(device=device)  # data parallelism (a no-op for one process)
        self.net = self.dist.wrap(self.model)  # what training runs through: DDP averages gradients over ranks
        self.graph = graph
        self.sampler = sampler
        self.cfg = cfg
        self.device = device
        self.seed = seed
        self.logger = logger or Logger()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.last_good: tuple[Path | None, int] = (None, 0)  # the newest last.pt and its epoch
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg.lr),
                                           weight_decay=float(cfg.weight_decay))
        self.data_device = graph.features.device  # sampling draws where the graph lives (trainer.data_device)
        self.train_gen = torch.Generator(self.data_device).manual_seed(self.dist.rank_seed(seed))  # one per rank
        # the shuffle: one stream shared by all ranks, so their shards of it are disjoint
        self.order_gen = torch.Generator(self.data_device).manual_seed(seed) if self.dist.active else None
        self.precision = precision if precision is not None else Precision(str(cfg.precision), device)
        self.loader = loader if loader is not None else NodeLoader(
            graph, sampler, self.encoder.aggr, device, self.dist.rank, self.dist.world_size,
            unique_rows=dedup_rows(cfg.dedup_rows, device), hop_rows=self.encoder.reads_hop_rows)
        self.timings: dict[str, float] = self.loader.timings  # sample/gather from the loader, the rest from here
        self.eval_cache_bytes = float(cfg.eval_cache_mb) * 2**20
        self.rates: list[list[float]] | None = None
        if self.dist.active:  # only rank 0 has the real logger; all ranks must record rates alike (they gather them)
            self.logger.wants_spike_rates = self.dist.sum(float(self.logger.wants_spike_rates))[0] > 0

    # --- one epoch of training ---------------------------------------------------------------
    def train_epoch(self, max_batches: int | None = None, epoch: int | None = None) -> float:
        """One pass over the shuffled training examples (or its first ``max_batches``); returns the mean loss.

        Raises ``NonFiniteLossError`` naming ``epoch`` and the first batch whose loss was NaN or infinite
        (found after the epoch, from the per-batch losses kept on the device: no host sync per batch).
        """
        self.model.train()
        losses: list[torch.Tensor] = []
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0  # summed on the device
        order = self.loader.train_order(self.task.examples("train"),
                                        self.order_gen if self.order_gen is not None else self.train_gen)
        batch_size = self.dist.local_batch(int(self.cfg.batch_size))
        for batch in self.task.batches(self.loader, order, batch_size, self.train_gen, limit=max_batches,
                                       shuffle=True):
            t0 = self.loader.clock()
            with self.precision.autocast():
                output = self.net(*batch.inputs, extra=batch.extra)
                loss = self.task.loss(output, batch)
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
        """Whether evaluation should gather from layer 0's projected tables (the encoder decides what pays)."""
        if not self.cfg.eval_project_first:
            return False
        feature_steps = self.graph.num_steps if self.graph.features.dim() == 3 else 1
        return self.encoder.projection_pays(num_targets, self.graph.num_nodes, feature_steps, self.eval_cache_bytes)

    @torch.no_grad()
    def predict(self, examples: torch.Tensor, gen: torch.Generator, projected: tuple | None = None,
                record_rates: bool = False) -> torch.Tensor:
        """What the task keeps of each of ``examples`` (eval mode, sampled neighbourhoods), in their order.

        With ``record_rates``, ``self.rates`` gets the mean firing rate per layer per time step (None for an
        encoder without spikes).
        """
        self.model.eval()
        self.encoder.record_spikes = record_rates
        kept, rate_sum, counted = [], None, 0
        for batch in self.task.batches(self.loader, self.dist.shard(examples), int(self.cfg.eval_batch_size), gen,
                                       projected):
            with self.precision.autocast():
                output = self.model(*batch.inputs, projected=batch.projected, extra=batch.extra)
            kept.append(self.task.keep(output, batch))  # stays on the device: one copy after the loop
            if record_rates:
                rate_sum = add_rates(rate_sum, self.encoder.spike_rates, len(batch.nodes))
                counted += len(batch.nodes)
        self.encoder.record_spikes = False
        if record_rates and self.dist.active:  # sums over all ranks' batches
            parts = self.dist.gather_object((None if rate_sum is None else rate_sum.cpu(), counted))
            rate_sum = sum(p[0] for p in parts) if all(p[0] is not None for p in parts) else None
            counted = sum(p[1] for p in parts)
        if record_rates:
            self.rates = None if rate_sum is None else (rate_sum / counted).tolist()
        local = torch.cat(kept).cpu() if kept else torch.empty(0, dtype=torch.long)
        return self.dist.unshard(local, examples.numel())  # every rank's rows, in the order of examples

    def evaluate(self, epoch: int, splits: tuple[str, ...]) -> dict[str, dict[str, float]]:
        """The task's metrics per named split; sampling seeded by (seed, epoch, split)."""
        t0 = time.perf_counter()
        examples = {name: self.task.examples(name) for name in splits}
        projected = None
        if self._projection_pays(sum(e.numel() for e in examples.values())):
            projected = self.encoder.project_inputs(self.graph.features.to(self.device))
        record_rates = self.logger.wants_spike_rates or bool(self.cfg.record_firing_rates)
        scores = {}
        for name, ex in examples.items():
            kept = self.predict(ex, self._eval_generator(epoch, name), projected, record_rates and name == "val")
            scores[name] = self.task.score(name, ex, kept)
        self.timings["evaluate"] += time.perf_counter() - t0
        return scores

    def _eval_generator(self, epoch: int, split: str) -> torch.Generator:
        return torch.Generator(self.data_device).manual_seed(self.seed * 7919 + epoch * 31
                                                             + EVAL_SPLITS.index(split) + 1)

    # --- the whole run -----------------------------------------------------------------------
    def fit(self) -> dict:
        """Train for ``cfg.epochs`` (fewer with ``cfg.patience``); returns the summary (test scores at the
        best-val epoch, history, ...).

        With ``cfg.resume`` (``checkpoint.resume_path``) it continues from a ``last.pt`` instead of epoch 1;
        ``run_dir/last.pt`` is rewritten after every epoch. Afterwards the model holds the best epoch's weights.
        """
        epochs = int(self.cfg.epochs)
        patience = self.cfg.get("patience")
        schedule = str(self.cfg.test_schedule)
        metrics, select = self.task.metrics, f"val_{self.task.select}"
        history: list[dict] = []
        best = {**{f"val_{m}": float("nan") for m in metrics}, select: -math.inf, "best_epoch": -1,
                **{f"test_{m}": float("nan") for m in metrics}}
        best_state = None
        done = 0
        resume = checkpoint.resume_path(self.cfg.resume, self.run_dir)
        if self.cfg.resume is not None and self.dist.active:  # only rank 0 knows the run directory
            raise ValueError("trainer.resume needs a single process for now (last.pt holds rank 0's streams only)")
        if resume is not None:
            ckpt = checkpoint.load(resume)
            checkpoint.restore(ckpt, self.model, self.optimizer, self._generators())
            done, best, best_state = int(ckpt["epoch"]), ckpt["best"], ckpt["best_state"]
            history = list(ckpt["history"])
            self.last_good = (resume, done)
            log.info("resumed from %s after epoch %d", resume, done)
        show = self.cfg.progress and self.dist.is_main
        bar = tqdm(range(done + 1, epochs + 1), desc="epochs", disable=not show, dynamic_ncols=True, initial=done,
                   total=epochs)
        stopped = None
        for epoch in bar:
            if patience is not None and best["best_epoch"] > 0 and epoch - best["best_epoch"] > int(patience):
                stopped = epoch - 1
                log.info("early stop after epoch %d: no validation improvement in %d epochs (trainer.patience)",
                         stopped, int(patience))
                break
            self.rates = None
            t0 = time.perf_counter()
            try:
                loss = self.train_epoch(epoch=epoch)
            except NonFiniteLossError as err:
                path, good = self.last_good
                kept = f"last good checkpoint: {path} (epoch {good})" if path is not None else "no checkpoint kept"
                raise NonFiniteLossError(f"{err}; {kept}") from None
            t1 = time.perf_counter()
            val = self.evaluate(epoch, ("val",))["val"]
            improved = val[self.task.select] > best[select]
            test = None
            if schedule == "every" or (improved and schedule == "improved"):
                test = self.evaluate(epoch, ("test",))["test"]
            t2 = time.perf_counter()
            rec = epoch_record(epoch, loss, val, test, metrics, t2 - t0, t1 - t0, t2 - t1, self.rates)
            history.append(rec)
            if improved:
                best.update({f"val_{m}": val[m] for m in metrics}, best_epoch=epoch)
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.save_checkpoint(epoch)
            self.save_last(epoch, best, best_state, history)
            self.logger.log_epoch(epoch, rec)
            log.info("epoch %d: loss %.4f, val %s %.4f (best %.4f at epoch %d), %.2f s", epoch, loss,
                     self.task.select, val[self.task.select], best[select], best["best_epoch"], t2 - t0)
            bar.set_postfix(loss=f"{loss:.3f}", val=f"{val[self.task.select]:.3f}", best_val=f"{best[select]:.3f}")
        bar.close()
        test_seconds = 0.0
        if best_state is not None:
            self.model.load_state_dict(best_state)
            best_rec = history[best["best_epoch"] - 1]
            test = {m: best_rec[f"test_{m}"] for m in metrics}
            if any(v is None for v in test.values()):  # test_schedule=best: score it now, with that epoch's
                t0 = time.perf_counter()               # weights and sampling seed
                test = self.evaluate(best["best_epoch"], ("test",))["test"]
                test_seconds = time.perf_counter() - t0
            best.update({f"test_{m}": test[m] for m in metrics})
        seconds = [r["seconds"] for r in history]
        return {
            **best,
            "epoch_seconds": statistics.median(seconds) if seconds else float("nan"),
            "train_seconds": statistics.median(r["train_seconds"] for r in history) if history else float("nan"),
            "final_test_seconds": test_seconds,
            "test_schedule": schedule,
            "epochs_run": len(history),
            "early_stopped_at": stopped,
            "firing_rates": history[best["best_epoch"] - 1]["firing_rates"] if best_state is not None else None,
            "history": history,
        }

    def _generators(self) -> dict[str, torch.Generator | None]:
        """The trainer's own random streams (saved in, and restored from, ``last.pt``)."""
        return {"train": self.train_gen, "order": self.order_gen}

    def save_checkpoint(self, epoch: int) -> None:
        """Write the current (best-so-far) weights to ``run_dir/best.pt``, atomically."""
        if self.run_dir is not None and self.cfg.save_checkpoint:
            checkpoint.save_best(self.run_dir, epoch, self.model)

    def save_last(self, epoch: int, best: dict, best_state: dict | None, history: list[dict]) -> None:
        """Write ``run_dir/last.pt`` (everything a resumed run needs after ``epoch``), atomically."""
        if self.run_dir is None or not self.cfg.save_checkpoint:
            return
        path = checkpoint.save_last(self.run_dir, epoch=epoch, model=self.model, optimizer=self.optimizer,
                                    generators=self._generators(), best=best, best_state=best_state,
                                    history=history)
        self.last_good = (path, epoch)


def warnings_for(result: dict, task: Task) -> list[str]:
    """One-line warnings about a finished fit: the best epoch was the first, or the task's own (e.g. validation
    never beat the majority class)."""
    out = []
    if result.get("best_epoch") == 1 and len(result.get("history") or []) > 1:
        out.append("the best validation epoch was the first: later epochs only got worse on validation (the model "
                   "overfits or diverges); try a smaller trainer.lr or more model.dropout")
    return out + task.warnings(result)
