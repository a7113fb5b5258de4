"""Per-epoch time, memory and throughput of any composed config, with the matmul floor.

    python benchmarks/speed/epoch_time.py dataset=dblp
    python benchmarks/speed/epoch_time.py dataset=synthetic_patent bench.batches=3

Runs a warm-up epoch, then ``bench.epochs`` epochs of training + per-epoch evaluation, and prints
a table and, last, one JSON line (epoch_seconds, peak_rss_mb, nodes_per_second, the split, the
matmul floor). Measure on an idle machine: another busy process on 2 cores halves the figures.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time

import hydra
import torch
from omegaconf import DictConfig

from spikenet.experiment import build_experiment
from spikenet.models import SpikeNet
from spikenet.models.chunked_linear import chunked_linear_sum
from spikenet.training.results import peak_rss_mb

log = logging.getLogger(__name__)


def _sync(device: torch.device | None) -> None:
    """Wait for the GPU's queued work, so that host timers measure it (a no-op on CPU)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, repeats: int = 1, device: torch.device | None = None) -> float:
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def matmul_floor(model, num_steps: int, batch_sizes: list[int], eval_targets: int, eval_projected: bool,
                 num_nodes: int, feature_steps: int, shares: tuple[float, float] = (1.0, 1.0)) -> dict[str, float]:
    """Seconds of the epoch's linear-layer matmuls alone (same shapes, same chunking), train and eval,
    on the model's device. ``shares``: distinct rows per row of layer 0's self block and neighbour
    block when the loader gathers them once each (``trainer.dedup_rows``): the maps run on that many."""
    dev = next(model.parameters()).device
    train = 0.0
    for batch in sorted(set(batch_sizes)):
        rows = model.hop_rows(batch)
        per_batch = 0.0
        for i, agg in enumerate(model.aggregators):
            r = num_steps * sum(rows[: model.num_layers - i])
            per_batch += _time(_layer_step(agg, r, i > 0, shares if i == 0 else (1.0, 1.0), dev), device=dev)
        train += per_batch * batch_sizes.count(batch)
    evaluate = 0.0
    agg = model.aggregators[0]
    if eval_targets:
        if eval_projected:
            x = torch.randn(feature_steps * num_nodes, agg.lin_self.in_features, device=dev)
            evaluate = _time(lambda: (x @ agg.lin_self.weight.t(), x @ agg.lin_neigh.weight.t()), device=dev)
        else:
            r = num_steps * sum(model.hop_rows(eval_targets)[: model.num_layers])
            with torch.no_grad():
                evaluate = _time(_layer_step(agg, r, False, shares, dev, backward=False), device=dev)
    return {"train": train, "evaluate": evaluate}


def _layer_step(agg, r: int, input_grad: bool, shares: tuple[float, float], dev, backward: bool = True):
    """One layer's products for r rows: the self and neighbour maps on r * share rows each (distinct rows,
    or all), forward and (``backward``) the weight (and input) gradients."""
    f_in, w_s, w_n = agg.lin_self.in_features, agg.lin_self.weight, agg.lin_neigh.weight
    u_s, u_n = (max(1, round(r * share)) for share in shares)
    xs = torch.randn(u_s, f_in, requires_grad=input_grad, device=dev)
    xn = torch.randn(u_n, f_in, requires_grad=input_grad, device=dev)
    ws, wn = w_s.detach().clone().requires_grad_(), w_n.detach().clone().requires_grad_()
    grad = torch.randn(max(u_s, u_n), w_s.shape[0], device=dev)
    chunk = agg.chunk_rows or r

    def step() -> None:
        out_self = chunked_linear_sum([(xs, ws)], None, chunk)
        out_neigh = chunked_linear_sum([(xn, wn)], None, chunk)
        if backward:
            torch.autograd.backward([out_self, out_neigh], [grad[:u_s], grad[:u_n]])

    return step


@hydra.main(version_base="1.3", config_path="../../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    """Build the experiment, time epochs, print the table and the JSON line."""
    t0 = time.perf_counter()
    exp = build_experiment(cfg)
    build_seconds = time.perf_counter() - t0
    tr, graph, bench = exp.trainer, exp.graph, cfg.bench
    batches = bench.batches if bench.batches is not None else cfg.dataset.get("bench_batches")
    max_batches = int(batches) if batches else None
    n_train = tr.task.splits.train.numel()
    batch_size = int(cfg.trainer.batch_size)
    batches_per_epoch = math.ceil(n_train / batch_size)
    run_batches = min(batches_per_epoch, max_batches or batches_per_epoch)
    trained_nodes = min(n_train, run_batches * batch_size)
    evaluate = (max_batches is None) if bench.evaluate == "auto" else bool(bench.evaluate)
    schedule = str(cfg.trainer.get("test_schedule", "best"))
    best = -1.0
    epochs = []
    dev = exp.device
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    timed = int(bench.warmup) + int(bench.epochs)
    gpu_split = None
    # on a GPU the phases' host timers only see launches: one more epoch, synchronised at every phase,
    # gives the split (the timed epochs synchronise at their ends only, keeping host and GPU overlapped)
    for epoch in range(timed + int(cuda)):
        tr.loader.sync_timings = epoch == timed
        tr.timings.clear()
        _sync(dev)
        start = time.perf_counter()
        tr.train_epoch(max_batches)
        _sync(dev)
        train_s = time.perf_counter() - start
        tested = False
        if evaluate:  # as Trainer.fit: val every epoch, test per trainer.test_schedule
            val = tr.evaluate(epoch, ("val",))["val"][exp.task.select]
            tested = schedule == "every" or (schedule == "improved" and val > best)
            best = max(best, val)
            if tested:
                tr.evaluate(epoch, ("test",))
        _sync(dev)
        total = time.perf_counter() - start
        if epoch == timed:
            gpu_split = {"seconds": total, "train": train_s, **dict(tr.timings)}
        elif epoch >= int(bench.warmup):
            epochs.append({"seconds": total, "train": train_s, "tested": tested, **dict(tr.timings)})
    tr.loader.sync_timings = False
    test_seconds = None
    if evaluate:  # one test evaluation: paid once per run with test_schedule=best
        start = time.perf_counter()
        tr.evaluate(0, ("test",))
        test_seconds = time.perf_counter() - start
    med = {k: statistics.median(e.get(k, 0.0) for e in epochs)
           for k in ("seconds", "train", "sample", "gather", "forward", "backward", "evaluate")}
    scale = batches_per_epoch / run_batches
    epoch_seconds = med["train"] * scale + (med["seconds"] - med["train"])
    result = {
        "dataset": graph.name,
        "nodes": graph.num_nodes,
        "steps": graph.num_steps,
        "epoch_seconds": epoch_seconds,
        "seconds_per_batch": med["train"] / run_batches,
        "batches_per_epoch": batches_per_epoch,
        "projected": max_batches is not None and run_batches < batches_per_epoch,
        "nodes_per_second": trained_nodes / med["train"],
        "peak_rss_mb": peak_rss_mb(),
        "build_seconds": build_seconds,
        "graph_structure_mb": graph.structure_nbytes() / 2**20,
        "split": {k: (gpu_split or med).get(k, 0.0) for k in ("sample", "gather", "forward", "backward", "evaluate")},
        "split_epoch_seconds": gpu_split["seconds"] if gpu_split else None,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if cuda else None,
        "data_device": str(tr.data_device),
        "precision": str(cfg.trainer.get("precision", "fp32")),
        "peak_gpu_mb": torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None,
        "epochs_timed": len(epochs),
        "test_evaluations": sum(e["tested"] for e in epochs),
        "test_schedule": schedule,
        "test_eval_seconds": test_seconds,
        "threads": torch.get_num_threads(),
    }
    if bench.floor and not isinstance(tr.encoder, SpikeNet):
        log.warning("bench.floor: the matmul floor is modelled on SpikeNet's layers; skipped for %s",
                    type(tr.encoder).__name__)
    elif bench.floor:
        sizes = [batch_size] * (n_train // batch_size) + ([n_train % batch_size] if n_train % batch_size else [])
        proj = tr._projection_pays(tr.task.splits.val.numel())
        shares = (1.0, 1.0)
        if tr.loader.unique_rows:  # layer 0's maps run on the distinct rows: their share in one batch
            gen = torch.Generator(tr.data_device).manual_seed(0)
            first = next(iter(tr.loader.train_batches(tr.task.splits.train, batch_size, gen)))
            shares = tuple(part.rows.shape[0] / part.index.numel() for part in first.inputs)
            result["distinct_row_shares"] = {"self": shares[0], "neighbour": shares[1]}
        floor = matmul_floor(tr.encoder, graph.num_steps, sizes[:run_batches], tr.task.splits.val.numel() if evaluate
                             else 0, proj, graph.num_nodes, graph.num_steps if graph.features.dim() == 3 else 1,
                             shares)
        floor_epoch = floor["train"] * scale + floor["evaluate"]
        result["matmul_floor_seconds"] = floor_epoch
        result["above_floor"] = 1.0 - floor_epoch / epoch_seconds
    print(f"\n{'metric':<28}{'value':>14}")
    for key in ("epoch_seconds", "seconds_per_batch", "nodes_per_second", "peak_rss_mb", "peak_gpu_mb",
                "build_seconds",
                "graph_structure_mb", "matmul_floor_seconds", "above_floor", "test_eval_seconds"):
        if result.get(key) is not None:
            print(f"{key:<28}{result[key]:>14.3f}")
    for key, value in result["split"].items():
        print(f"{'  ' + key + ' (median/epoch)':<28}{value:>14.3f}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
