"""Memory of the TGB node-property path on a synthetic stand-in of tgbn-genre's size (or tgbn-trade's).

    python benchmarks/speed/tgbn_memory.py --out /tmp/tgbn                       # genre-sized: 17.9 M events
    python benchmarks/speed/tgbn_memory.py --out /tmp/tgbn --kind trade --generate-only   # tgbn-trade-sized files
    python benchmarks/speed/tgbn_memory.py --out /tmp/tgbn --events 2000000 --days 200    # a smaller trial

Writes the stand-in's two CSV files in TGB's format (``spikenet.data.readers.tgb_synthetic``; kept and reused when
present), then, in this process, reads them with ``dataset=tgbn`` (chunked, deduplicated, no cache), builds
``task=node_property`` and the model, trains ``--batches`` batches and predicts ``--eval-batches`` validation
batches, and prints the peak resident memory after each stage and the sizes that drive it: events, distinct
(step, node, item) triples, snapshots, label entries, structure and feature bytes. The last line is JSON.
tgbn-genre: 992 users, 513 genres, 17,858,395 edges, about 4 years and 4 months of daily label times
(TGB's weekly genre shares keyed by day); ``--days 1580`` by default.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from spikenet.training.results import peak_rss_mb

ROOT = Path(__file__).resolve().parents[2]

NAME = {"genre": "tgbn-genre-standin", "trade": "tgbn-trade-standin"}


def generate(kind: str, out: Path, args: argparse.Namespace) -> Path:
    """The stand-in's folder, written unless both files exist."""
    from spikenet.data.readers.tgb_synthetic import write_genre_like, write_trade_like

    name = NAME[kind]
    folder = out / name
    if all((folder / f"{name}_{k}.csv").is_file() for k in ("edgelist", "node_labels")):
        print(f"reusing {folder}")
        return folder
    t0 = time.perf_counter()
    if kind == "genre":
        events, labels = write_genre_like(folder, name, num_events=args.events, num_days=args.days, seed=args.seed)
    else:  # tgbn-trade: 255 nations, 32 years, 468,245 edges
        events, labels = write_trade_like(folder, name, num_nations=255, num_years=32, density=0.17, seed=args.seed)
    print(f"wrote {folder}: {events:,} events, {labels:,} label rows in {time.perf_counter() - t0:.0f} s")
    return folder


def measure(out: Path, args: argparse.Namespace) -> dict:
    """Read, build and train a few batches; peak RSS after each stage."""
    import torch
    from hydra import compose, initialize_config_dir

    from spikenet.experiment import build_experiment

    overrides = ["task=node_property", "dataset=tgbn", f"dataset.name={NAME['genre']}", f"dataset.root={out}",
                 "dataset.format=genre", "dataset.cache=false", f"dataset.features={args.features}",
                 f"dataset.feature_dtype={args.feature_dtype}", "device=cpu", "trainer.progress=false",
                 f"trainer.batch_size={args.batch_size}", *args.overrides]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    stages = {"start": peak_rss_mb()}
    t0 = time.perf_counter()
    exp = build_experiment(cfg)
    stages["read + features + task + model"] = peak_rss_mb()
    load_seconds = time.perf_counter() - t0
    graph, task, trainer = exp.graph, exp.task, exp.trainer
    t1 = time.perf_counter()
    loss = trainer.train_epoch(max_batches=args.batches, epoch=1)
    stages[f"train {args.batches} batches"] = peak_rss_mb()
    train_seconds = time.perf_counter() - t1
    gen = torch.Generator().manual_seed(0)
    val = task.examples("val")
    with torch.no_grad():
        trainer.model.eval()
        kept = [task.keep(trainer.model(*b.inputs, extra=b.extra), b)
                for b in task.batches(trainer.loader, val, int(cfg.trainer.eval_batch_size), gen,
                                      limit=args.eval_batches)]
    stages[f"predict {args.eval_batches} val batches"] = peak_rss_mb()
    props = task.props
    feature_bytes = graph.features.numel() * graph.features.element_size()
    return {
        "events": int(graph.meta["interactions"]),
        "unique_triples": int(graph.meta["unique_edges"]),
        "nodes": graph.num_nodes,
        "snapshots": graph.num_steps,
        "items": props.dim,
        "label_rows": props.num_rows,
        "label_entries": int(props.index.size),
        "examples": {s: int(task.examples(s).numel()) for s in ("train", "val", "test")},
        "structure_mb": graph.structure_nbytes() / 2**20,
        "feature_mb": feature_bytes / 2**20,
        "label_mb": sum(getattr(props, k).nbytes for k in ("row_step", "row_node", "indptr", "index", "weight"))
        / 2**20,
        "val_kept_mb_full_split": val.numel() * props.dim * 4 / 2**20,
        "load_seconds": load_seconds,
        "train_seconds": train_seconds,
        "train_loss": loss,
        "kept_rows": int(sum(k.shape[0] for k in kept)),
        "peak_rss_mb": stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the stand-in's files")
    parser.add_argument("--kind", choices=("genre", "trade"), default="genre")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--events", type=int, default=17_858_395)
    parser.add_argument("--days", type=int, default=1580)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", default="labels")
    parser.add_argument("--feature-dtype", default="float16")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--eval-batches", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides (model=ann, task.window=4, ...)")
    args = parser.parse_args()
    generate(args.kind, args.out, args)
    if args.generate_only or args.kind != "genre":
        return
    result = measure(args.out, args)
    for stage, mb in result["peak_rss_mb"].items():
        print(f"peak RSS after {stage:<40} {mb / 1024:6.2f} GB")
    print(f"{result['events']:,} events -> {result['unique_triples']:,} distinct (step, user, genre) triples in "
          f"{result['snapshots']} snapshots; {result['label_rows']:,} label rows ({result['label_entries']:,} "
          f"entries); structure {result['structure_mb']:.0f} MB, features {result['feature_mb']:.0f} MB, labels "
          f"{result['label_mb']:.0f} MB; read + build {result['load_seconds']:.0f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
