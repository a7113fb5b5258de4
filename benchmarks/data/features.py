"""Node-feature methods side by side: generation seconds, then test F1 of SpikeNet trained on each.

    python benchmarks/data/features.py --dataset dblp --root DIR --methods smf,fastrp --train
    python benchmarks/data/features.py --root DIR --methods smf,deepwalk,file:/work/dblp_root/dblp/dblp.npy --train
    python benchmarks/data/features.py --dataset edgelist --set name=g --root DIR --train --epochs 2 \\
        --run model.hids=[16,4]

Each method's raw features [T, N, F] go to ``<workdir>/<method>/<name>/<name>.npy`` beside links to the
dataset's source files; with ``--train``, ``src/run.py dataset=<dataset> dataset.root=<workdir>/<method>
trainer.epochs=E seed=S`` runs for every seed (``--jobs`` at a time) and the table gives test Macro/Micro-F1
(the best-validation epoch's) as mean ± std over the seeds, then one JSON line per method. ``file:PATH``
takes an existing feature file (no generation time).

Methods: ``smf`` (``dataset.features=smf`` / ``auto`` without a file: ``spikenet.data.features.smf``),
``deepwalk`` (the reference recipe, gensim), ``fastrp``.

Measured on DBLP (25,387 nodes, 25 steps), reference hyperparameters, 30 epochs, train 0.4, idle 2-core CPU
(2026-12-02; the DeepWalk row from the README's fidelity runs, FastRP from an earlier measurement):

| method | generation s | seeds | test Ma-F1 | test Mi-F1 |
|---|---|---|---|---|
| deepwalk (gensim, reference file) | 648 | 0-4 | 0.6377 ± 0.0078 | 0.6546 ± 0.0049 |
| smf | 5.0 | 0-2 | 0.6446 ± 0.0194 | 0.6674 ± 0.0078 |
| fastrp | seconds | 3 | - | about 0.44 |
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from spikenet.benchmarking import mean_std

PROJECT = Path(__file__).resolve().parents[2]

from spikenet.data.features.arrays import fastrp  # noqa: E402
from spikenet.data.features.deepwalk import DeepWalkConfig, deepwalk_features  # noqa: E402
from spikenet.data.features.smf import SMFConfig, smf_features  # noqa: E402
from spikenet.data.load import load_graph  # noqa: E402
from spikenet.data.storage.hints import group_file  # noqa: E402
from spikenet.data.storage.paths import dataset_dir  # noqa: E402


def dataset_cfg(dataset: str, root: str, overrides: list[str]):
    """``conf/dataset/<dataset>.yaml`` (with its ``_base``) and ``root`` and ``overrides`` (``key=value`` of
    ``dataset``) set."""
    cfg = group_file(PROJECT / "conf" / "dataset" / f"{dataset}.yaml")
    cfg.root = root
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))


def generate(method: str, graph, cfg) -> tuple[np.ndarray | Path, float | None, float | None]:
    """Raw features of ``method``, the wall and CPU seconds they took (None for ``file:PATH``)."""
    if method.startswith("file:"):
        return Path(method[5:]), None, None
    start, cpu = time.perf_counter(), time.process_time()
    if method == "smf":
        x = smf_features(graph, SMFConfig.from_cfg(cfg.get("smf"), dim=int(cfg.get("feature_dim", 128))),
                         standardize=False)
    elif method == "fastrp":
        x = fastrp(graph, dim=int(cfg.get("feature_dim", 128)))
    elif method == "deepwalk":
        x = deepwalk_features(graph, DeepWalkConfig.from_cfg(cfg.get("deepwalk")), progress=False)
    else:
        raise SystemExit(f"error: unknown method '{method}' (smf, deepwalk, fastrp or file:PATH)")
    return x, time.perf_counter() - start, time.process_time() - cpu


def method_root(workdir: Path, method: str, cfg, features: np.ndarray | Path) -> Path:
    """``<workdir>/<method>``: links to the dataset's files and the method's ``<name>.npy``."""
    label = "file" if method.startswith("file:") else method
    folder = workdir / label / str(cfg.name)
    folder.mkdir(parents=True, exist_ok=True)
    for src in dataset_dir(cfg).iterdir():
        if src.is_file() and not src.name.startswith(".") and src.suffix != ".npy":
            link = folder / src.name
            if not link.exists():
                link.symlink_to(src.resolve())
    target = folder / f"{cfg.name}.npy"
    target.unlink(missing_ok=True)
    if isinstance(features, Path):
        target.symlink_to(features.resolve())
    else:
        np.save(target, features)
    return workdir / label


def train(root: Path, dataset: str, seed: int, epochs: int, out: Path, extra: list[str]) -> dict:
    """One ``src/run.py`` run (``extra``: more overrides); its ``metrics.json``."""
    cmd = [sys.executable, str(PROJECT / "src" / "run.py"), f"dataset={dataset}", f"dataset.root={root}",
           f"trainer.epochs={epochs}", f"seed={seed}", "trainer.progress=false", f"hydra.run.dir={out}", *extra]
    done = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, env=dict(os.environ))
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dblp")
    parser.add_argument("--root", required=True, help="dataset.root holding <name>/ with the source files")
    parser.add_argument("--methods", default="smf,fastrp", help="comma-separated: smf, deepwalk, fastrp, file:PATH")
    parser.add_argument("--workdir", default=str(PROJECT / "outputs" / "benchmarks" / "features"))
    parser.add_argument("--train", action="store_true", help="train SpikeNet on every method's features")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="dataset keys (e.g. name=g)")
    parser.add_argument("--run", nargs="*", default=[], metavar="OVERRIDE", help="more src/run.py overrides")
    args = parser.parse_args()

    cfg = dataset_cfg(args.dataset, args.root, args.set)
    extra = [f"dataset.{kv}" for kv in args.set] + args.run
    graph = load_graph(cfg)
    workdir = Path(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for method in args.methods.split(","):
        features, seconds, cpu = generate(method, graph, cfg)
        root = method_root(workdir, method, cfg, features)
        row = {"method": method, "generation_seconds": seconds, "generation_cpu_seconds": cpu}
        took = "-" if seconds is None else f"{seconds:.1f} s ({cpu:.1f} s CPU)"
        print(f"{method}: features in {took} -> {root}", flush=True)
        if args.train:
            with ThreadPoolExecutor(args.jobs) as pool:
                runs = list(pool.map(lambda s, r=root: train(r, args.dataset, s, args.epochs,
                                                             r / "runs" / f"seed{s}", extra), seeds))
            row["test_macro_f1"] = [r["test_macro_f1"] for r in runs]
            row["test_micro_f1"] = [r["test_micro_f1"] for r in runs]
        rows.append(row)
    print("\n| method | generation s (CPU s) | test Ma-F1 | test Mi-F1 |\n|---|---|---|---|")
    for row in rows:
        gen = "-" if row["generation_seconds"] is None else (
            f"{row['generation_seconds']:.1f} ({row['generation_cpu_seconds']:.1f})")
        ma = mean_std(row["test_macro_f1"]) if "test_macro_f1" in row else "-"
        mi = mean_std(row["test_micro_f1"]) if "test_micro_f1" in row else "-"
        print(f"| {row['method']} | {gen} | {ma} | {mi} |")
    for row in rows:
        print(json.dumps({**row, "dataset": args.dataset, "epochs": args.epochs, "seeds": seeds}))


if __name__ == "__main__":
    main()
