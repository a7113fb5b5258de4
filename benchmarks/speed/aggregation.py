"""Neighbour aggregation: embedding_bag (our default) vs scatter-style alternatives, same inputs.

    python benchmarks/speed/aggregation.py [--steps 25 --parents 6144 --size 5 --nodes 25387 --dim 128]

Layer 0 needs, per parent row, the mean of its sampled neighbours' features. Because every parent's
neighbours are contiguous and equally many, that is either one ``embedding_bag`` (gather and reduce
in one pass) or a gather followed by a reshape-mean; a scatter (torch's ``index_reduce_`` /
``scatter_reduce``, or torch-scatter's ``scatter_mean`` when installed) gathers first and then
reduces by an index it has to read. Prints a table of milliseconds per call.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--parents", type=int, default=6144)
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=25387)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    table = torch.randn(args.steps * args.nodes, args.dim, generator=gen)
    rows = args.steps * args.parents
    ids = torch.randint(0, table.shape[0], (rows * args.size,), generator=gen)
    offsets = torch.arange(0, rows * args.size, args.size)
    group = torch.arange(rows).repeat_interleave(args.size)
    reference = F.embedding_bag(ids, table, offsets, mode="mean")

    candidates = {
        "embedding_bag (default)": lambda: F.embedding_bag(ids, table, offsets, mode="mean"),
        "index_select + view.mean": lambda: table.index_select(0, ids).view(rows, args.size, -1).mean(1),
        "index_select + index_reduce_": lambda: torch.zeros(rows, args.dim).index_reduce_(
            0, group, table.index_select(0, ids), "mean", include_self=False),
        "index_select + scatter_reduce": lambda: torch.zeros(rows, args.dim).scatter_reduce(
            0, group.view(-1, 1).expand(-1, args.dim), table.index_select(0, ids), "mean", include_self=False),
    }
    try:
        from torch_scatter import scatter_mean

        candidates["torch-scatter scatter_mean"] = lambda: scatter_mean(table.index_select(0, ids), group, dim=0,
                                                                         dim_size=rows)
    except ImportError:
        print("torch-scatter not installed (pip install -e '.[scatter]', ~19 min compile on 2 cores): skipped")

    print(f"{rows} parents x {args.size} neighbours, dim {args.dim}, {torch.get_num_threads()} threads")
    print(f"{'method':<34}{'ms/call':>10}{'max |diff|':>12}")
    for name, fn in candidates.items():
        diff = (fn() - reference).abs().max().item()
        print(f"{name:<34}{timed(fn, args.repeats):>10.1f}{diff:>12.1e}")


if __name__ == "__main__":
    main()
