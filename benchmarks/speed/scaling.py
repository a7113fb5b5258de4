"""Data-parallel scaling: training time per epoch and parallel efficiency against the number of processes.

    python benchmarks/speed/scaling.py dataset=synthetic_tmall                      # CPU: 1, 2 processes
    python benchmarks/speed/scaling.py --procs 1,2,4,8 --device cuda dataset=synthetic_patent   # GPUs
    python benchmarks/speed/scaling.py --procs 1,2 dataset=synthetic_tmall bench.batches=3 bench.epochs=2

For each process count P it starts ``torchrun --standalone --nproc_per_node=P`` on this script, whose
ranks (``spikenet.training.distributed``, gloo on CPUs, NCCL on GPUs) train ``bench.batches`` batches
per epoch (default: the dataset's ``bench_batches``; ``trainer.batch_size`` targets per optimiser step
over all ranks, so every P does the same work) for ``bench.warmup`` + ``bench.epochs`` epochs. On CPUs
the cores are shared out: P processes x (cores // P) torch threads (``--cores``), so 1 x 2 threads
is compared with 2 x 1 thread on two cores. Each row: median seconds per batch step, the projected
epoch time (steps per epoch x that), targets per second, speedup over the first row and parallel
efficiency (speedup / P x first row's P), peak RSS per rank. A table, then one JSON line.
Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULT_TAG = "SCALING_RESULT "


# --- one rank (under torchrun) ---------------------------------------------------------------------------
def worker(overrides: list[str], device: str, threads: int) -> None:
    """Train a few batches per epoch as one rank; rank 0 prints the timings as one tagged JSON line."""
    import torch
    from hydra import compose, initialize_config_dir

    from spikenet.experiment import build_experiment
    from spikenet.training import distributed
    from spikenet.training.results import peak_rss_mb

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("benchmark", overrides=[*overrides, f"device={device}", f"trainer.num_threads={threads}"])
    dist = distributed.setup(str(cfg.device), threads)
    t0 = time.perf_counter()
    exp = build_experiment(cfg, dist=dist)
    load_seconds = time.perf_counter() - t0
    trainer, bench = exp.trainer, cfg.bench
    batches = bench.batches if bench.batches is not None else cfg.dataset.get("bench_batches")
    batches = int(batches) if batches is not None else None
    sync = torch.cuda.synchronize if exp.device.type == "cuda" else (lambda: None)
    times = []
    for epoch in range(int(bench.warmup) + int(bench.epochs)):
        dist.barrier()
        start = time.perf_counter()
        trainer.train_epoch(max_batches=batches)
        sync()
        dist.barrier()
        if epoch >= int(bench.warmup):
            times.append(time.perf_counter() - start)
    rss = dist.gather_object(peak_rss_mb())
    loads = dist.gather_object(load_seconds)
    local = dist.local_batch(int(cfg.trainer.batch_size))
    shard = trainer.task.splits.train.numel() // dist.world_size
    steps = math.ceil(shard / local) if batches is None else min(batches, math.ceil(shard / local))
    full_steps = math.ceil(shard / local)
    if dist.is_main:
        step = statistics.median(times) / steps
        print(RESULT_TAG + json.dumps({
            "procs": dist.world_size,
            "threads_per_proc": torch.get_num_threads(),
            "device": str(exp.device.type),
            "dataset": exp.graph.name,
            "batch_size": int(cfg.trainer.batch_size),
            "steps_timed": steps,
            "step_seconds": step,
            "epoch_seconds": step * full_steps,
            "projected": steps < full_steps,
            "targets_per_second": local * dist.world_size / step,
            "rank_peak_rss_mb": rss,
            "load_seconds": max(loads),
        }), flush=True)
    dist.close()


# --- the driver ---------------------------------------------------------------------------------------------
def run_world(procs: int, threads: int, device: str, overrides: list[str], timeout: float) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           str(Path(__file__).resolve()), "--worker", "--device", device, "--threads", str(threads), *overrides]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(PYTHONWARNINGS="ignore", OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{procs} process(es) failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def table(rows: list[dict]) -> str:
    head = ("procs", "threads", "device", "step s", "epoch s", "targets/s", "speedup", "efficiency", "RSS/rank MB")
    out = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        out.append(" | ".join([
            str(r["procs"]), str(r["threads_per_proc"]), r["device"], f"{r['step_seconds']:.3f}",
            f"{r['epoch_seconds']:.1f}" + ("*" if r["projected"] else ""), f"{r['targets_per_second']:.0f}",
            f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}",
            "/".join(f"{m:.0f}" for m in r["rank_peak_rss_mb"]),
        ]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", default=None, help="process counts, e.g. 1,2,4 (default: 1,2 on CPU; "
                        "powers of two up to the GPU count on CUDA)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--cores", type=int, default=None, help="CPU cores shared out over the processes "
                        "(default: all usable)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per process count")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)
    if args.worker:
        worker(overrides, args.device, args.threads)
        return 0

    from spikenet.training.distributed import usable_cores

    cores = args.cores or usable_cores()
    if args.procs:
        procs = [int(p) for p in args.procs.split(",")]
    elif args.device == "cuda":
        import torch

        gpus = torch.cuda.device_count()
        procs = [2**i for i in range(int(math.log2(gpus)) + 1)] if gpus else []
    else:
        procs = [1, 2]
    if not procs:
        print("error: --device cuda but no GPU is visible", file=sys.stderr)
        return 1
    rows = []
    for p in procs:
        row = run_world(p, max(1, cores // p), args.device, overrides, args.timeout)
        base = rows[0] if rows else row
        row["speedup"] = base["step_seconds"] / row["step_seconds"]
        row["efficiency"] = row["speedup"] * base["procs"] / row["procs"]
        rows.append(row)
        print(f"{p} process(es): {row['step_seconds']:.3f} s per step", file=sys.stderr, flush=True)
    print(table(rows))
    if any(r["projected"] for r in rows):
        print("* projected from the timed steps (bench.batches per epoch)")
    print(json.dumps({"cores": cores, "overrides": overrides, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
