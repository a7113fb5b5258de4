"""A generated stand-in for a user's own temporal network (issue 21): 3,219 nodes, ~900 distinct continuous
time stamps, a CSV edge list with a header and an extra column, and an unsorted label file.

    python benchmarks/data/owndata_standin.py --out /tmp/nets   # /tmp/nets/standin/{interactions,node_labels}.csv
    python src/run.py dataset=edgelist dataset.name=standin dataset.root=/tmp/nets \\
        dataset.edges=interactions.csv dataset.labels=node_labels.csv trainer.epochs=2

The network: nodes in ``classes`` communities of uneven size join over time; every interaction joins an
active node to one of its own community with probability ``homophily`` (else to anyone active), at a
time stamp drawn from ``stamps`` distinct seconds spread over two years (activity grows over time, as in
e-mail and message networks). Ids are 1-based integers, as such files often have; the label file lists
the nodes in a shuffled order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

START = 1_230_768_000  # 2009-01-01, seconds


def write_standin(folder: Path, nodes: int = 3219, stamps: int = 900, interactions: int = 40_000,
                  classes: int = 4, homophily: float = 0.7, seed: int = 0) -> tuple[Path, Path]:
    """Write ``interactions.csv`` (``sender,recipient,timestamp,weight``) and ``node_labels.csv``
    (``node,department``, shuffled) into ``folder``; returns both paths."""
    rng = np.random.default_rng(seed)
    label = rng.choice(classes, size=nodes, p=rng.dirichlet(np.full(classes, 4.0)))
    label[:classes] = np.arange(classes)
    distinct = np.sort(rng.choice(2 * 365 * 86400, size=stamps, replace=False)) + START
    # activity grows over time: stamp k is drawn with weight ~ (k + 50)
    weights = np.arange(stamps) + 50.0
    when = rng.choice(stamps, size=interactions, p=weights / weights.sum())
    joined = np.sort(rng.integers(0, stamps, size=nodes))  # stamp index at which node i becomes active
    order = rng.permutation(nodes)  # node order[i] joins at joined[i]
    active = np.searchsorted(joined, when, side="right")  # how many nodes are active at each interaction
    active = np.maximum(active, 2)
    src = order[(rng.random(interactions) * active).astype(np.int64)]
    dst = order[(rng.random(interactions) * active).astype(np.int64)]
    same = rng.random(interactions) < homophily
    members = [np.flatnonzero(label == c) for c in range(classes)]
    for c in range(classes):
        pick = same & (label[src] == c)
        dst[pick] = rng.choice(members[c], size=int(pick.sum()))
    loops = src == dst
    dst[loops] = (dst[loops] + 1) % nodes
    folder.mkdir(parents=True, exist_ok=True)
    edges = folder / "interactions.csv"
    weight = rng.integers(1, 5, size=interactions)
    table = np.stack([src + 1, dst + 1, distinct[when], weight], axis=1)
    with open(edges, "w") as f:
        f.write("sender,recipient,timestamp,weight\n")
        np.savetxt(f, table, fmt="%d", delimiter=",")
    labels = folder / "node_labels.csv"
    shuffled = rng.permutation(nodes)
    with open(labels, "w") as f:
        f.write("node,department\n")
        f.writelines(f"{u + 1},dept_{label[u]}\n" for u in shuffled)
    return edges, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="data root: the files go to <out>/<name>/")
    parser.add_argument("--name", default="standin")
    parser.add_argument("--nodes", type=int, default=3219)
    parser.add_argument("--stamps", type=int, default=900)
    parser.add_argument("--interactions", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    edges, labels = write_standin(Path(args.out) / args.name, args.nodes, args.stamps, args.interactions,
                                  seed=args.seed)
    print(f"wrote {edges} and {labels}\n"
          f"python src/run.py dataset=edgelist dataset.name={args.name} dataset.root={args.out} "
          f"dataset.edges={edges.name} dataset.labels={labels.name} trainer.epochs=2")


if __name__ == "__main__":
    main()
