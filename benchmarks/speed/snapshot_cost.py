"""Calibration of the snapshot cost model (``spikenet.data.snapshots.cost``): measured epoch time and peak
memory against the model's estimate, over graph shapes (nodes N, interactions E, steps T, feature width F).

    python benchmarks/speed/snapshot_cost.py                        # the default grid (synthetic shapes and DBLP)
    python benchmarks/speed/snapshot_cost.py --shapes 3219:40000:100:128 --dblp
    python benchmarks/speed/snapshot_cost.py --fit results.jsonl    # least-squares constants from earlier rows

Every shape runs in a fresh process (peak RSS is per process): build the experiment (synthetic graph of
that shape, or DBLP with FastRP features), one warm-up batch, then one timed training epoch and one
validation pass, as ``Trainer.fit`` runs them. Each row: wall and CPU seconds of the epoch (CPU time
is what the time model is fitted on: it varies much less than wall time when other processes share
the cores), peak RSS, and the estimate. The last line is one JSON object with every row.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DEFAULT_SHAPES = ("3219:40000:10:128", "3219:40000:25:128", "3219:40000:50:128", "3219:40000:100:128",
                  "3219:40000:200:128", "3219:40000:100:32", "25000:185000:10:128", "25000:185000:25:128",
                  "25000:185000:50:128")
TAG = "SNAPSHOT_COST "


def worker(spec: str) -> None:
    """Measure one shape (``N:E:T:F`` or ``dblp``) in this process; print one tagged JSON line."""
    import torch
    from hydra import compose, initialize_config_dir

    from spikenet.data.snapshots import cost as snapshot_cost
    from spikenet.experiment import build_experiment

    if spec == "dblp":
        overrides = ["dataset=dblp", "dataset.features=fastrp"]
    else:
        n, e, t, f = (int(x) for x in spec.split(":"))
        overrides = ["dataset=synthetic", f"dataset.num_nodes={n}", f"dataset.num_steps={t}",
                     f"dataset.num_features={f}", f"++dataset.num_edges={e}"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "trainer.progress=false", "device=cpu"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    exp = build_experiment(cfg)
    load_s = time.perf_counter() - t0
    tr, g = exp.trainer, exp.graph
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tr.train_epoch(max_batches=1)  # warm-up: kernels, allocator
    w0, c0 = time.perf_counter(), time.process_time()
    tr.train_epoch()
    w1, c1 = time.perf_counter(), time.process_time()
    tr.evaluate(1, {"val": tr.splits.val})
    w2, c2 = time.perf_counter(), time.process_time()
    rss_trained = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tr.evaluate(1, {"test": tr.splits.test})  # once per run (trainer.test_schedule=best): the largest split
    w3 = time.perf_counter()
    shape = snapshot_cost.TrainShape.from_cfg(cfg.dataset, cfg)
    interactions = int(g.meta.get("interactions", g.delta_indices.numel() // 2))
    est = snapshot_cost.estimate(g.num_steps, g.num_nodes, interactions, int(g.labelled_nodes.numel()), shape,
                                 threads=torch.get_num_threads())
    row = {
        "shape": spec, "nodes": g.num_nodes, "interactions": interactions, "steps": g.num_steps,
        "features": g.num_features, "train": int(tr.splits.train.numel()), "val": int(tr.splits.val.numel()),
        "threads": torch.get_num_threads(), "load_s": load_s,
        "train_wall": w1 - w0, "train_cpu": c1 - c0, "eval_wall": w2 - w1, "eval_cpu": c2 - c1, "test_wall": w3 - w2,
        "test": int(tr.splits.test.numel()), "rss_start_mb": rss0, "rss_loaded_mb": rss_loaded,
        "rss_trained_mb": rss_trained,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "estimate": est.as_dict(),
    }
    print(TAG + json.dumps(row), flush=True)


def run_shape(spec: str) -> dict | None:
    out = subprocess.run([sys.executable, __file__, "--worker", spec], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith(TAG):
            return json.loads(line[len(TAG):])
    print(f"{spec}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
    return None


def fit(rows: list[dict]) -> dict:
    """Least-squares constants from measured rows: CPU seconds per batch and per width-scaled sampled row
    (evaluation rows weighted ``EVAL_ROW_SHARE``); the memory model's base and bytes per training row (from
    the peak after training and validation), and bytes per test-evaluation row (rows with a test pass)."""
    import numpy as np

    from spikenet.data.snapshots import cost as sc

    a_t, b_t, a_m, b_m, eval_ratios = [], [], [], [], []
    for r in rows:
        shape = sc.TrainShape.from_cfg(feature_dim=r["features"])
        units = sc.work_units(r["steps"], r["nodes"], r["train"], r["val"], shape)
        a_t.append([units["batches"], units["train_rows"] + sc.EVAL_ROW_SHARE * units["eval_rows"]])
        b_t.append(r["train_cpu"] + r["eval_cpu"])
        mem = sc.memory_parts(r["steps"], r["nodes"], r["interactions"], r["train"], r.get("test", 0), shape)
        a_m.append([1.0, mem["batch_rows"]])
        b_m.append(r.get("rss_trained_mb", r["peak_rss_mb"]) * 2**20 - mem["data"])
        if "test" in r:
            rest = r["peak_rss_mb"] * 2**20 - sc.BASE_BYTES - mem["data"] - mem["tables"]
            eval_ratios.append(rest / mem["eval_rows"])
    t_coef, *_ = np.linalg.lstsq(np.array(a_t), np.array(b_t), rcond=None)
    m_coef, *_ = np.linalg.lstsq(np.array(a_m), np.array(b_m), rcond=None)
    return {"cpu_per_batch": t_coef[0], "cpu_per_row": t_coef[1], "base_mb": m_coef[0] / 2**20,
            "bytes_per_batch_row": m_coef[1],
            "bytes_per_eval_row": float(np.median(eval_ratios)) if eval_ratios else None}


def table(rows: list[dict]) -> None:
    """Measured against estimated: CPU seconds (the estimate's idle wall seconds x ``LOAD``) and peak RSS
    (after the test evaluation where the row has one; else after training, which the estimate exceeds)."""
    from spikenet.data.snapshots import cost as sc

    print(f"{'shape':<22}{'T':>5}{'wall s':>8}{'CPU s':>8}{'est CPU':>9}{'est idle s':>11}{'peak MB':>9}{'est MB':>8}"
          f"{'test':>6}")
    for r in rows:
        labelled = round((r["train"] + r["val"]) / 0.4)  # the default split: train_size 0.4 of the labelled
        shape = sc.TrainShape.from_cfg(feature_dim=r["features"])
        est = sc.estimate(r["steps"], r["nodes"], r["interactions"], labelled, shape, threads=r["threads"])
        cpu = r["train_cpu"] + r["eval_cpu"]
        print(f"{r['shape']:<22}{r['steps']:>5}{r['train_wall'] + r['eval_wall']:>8.2f}{cpu:>8.2f}"
              f"{est.epoch_seconds * sc.LOAD:>9.2f}{est.epoch_seconds:>11.2f}{r['peak_rss_mb']:>9.0f}"
              f"{est.peak_bytes / 2**20:>8.0f}{'yes' if 'test' in r else 'no':>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help="N:E:T:F,... synthetic shapes")
    parser.add_argument("--dblp", action="store_true", help="also DBLP (FastRP features)")
    parser.add_argument("--fit", help="a JSON-lines file of earlier rows: print the fitted constants")
    parser.add_argument("--out", help="append every row to this JSON-lines file")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.fit:
        rows = [json.loads(line) for line in Path(args.fit).read_text().splitlines() if line.strip()]
        table(rows)
        print(json.dumps(fit(rows)))
        return
    specs = [s for s in args.shapes.split(",") if s] + (["dblp"] if args.dblp else [])
    rows = []
    for spec in specs:
        row = run_shape(spec)
        if row is None:
            continue
        rows.append(row)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        print(f"{spec}: train {row['train_wall']:.2f} s wall / {row['train_cpu']:.2f} s CPU, eval "
              f"{row['eval_wall']:.2f} s, peak {row['peak_rss_mb']:.0f} MB", flush=True)
    table(rows)
    print(json.dumps({"rows": rows, "ok": all(math.isfinite(r["train_cpu"]) for r in rows)}))


if __name__ == "__main__":
    main()
