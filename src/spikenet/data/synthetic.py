"""A seeded synthetic dynamic graph: class-structured communities that grow and drift over time.

Each node belongs to one of ``num_classes`` communities (imbalanced sizes) and becomes active at a
random step. At every step each active node adds ``edges_per_node`` new interactions, a fraction
``homophily`` of them inside its community; node features are the community's centroid, which
rotates between two random directions over the steps, plus Gaussian noise strong enough that a
node's own features are a weak signal and its neighbourhood a strong one.
"""

from __future__ import annotations

import numpy as np
import torch

from spikenet.data.temporal_graph import TemporalGraph, build_structure


def make_synthetic(
    num_nodes: int = 2000,
    num_classes: int = 5,
    num_steps: int = 10,
    num_features: int = 32,
    edges_per_node: float = 2.0,
    homophily: float = 0.8,
    feature_noise: float = 2.0,
    seed: int = 0,
    name: str = "synthetic",
    feature_dtype: str = "float32",
) -> TemporalGraph:
    """Generate the graph; identical for identical arguments."""
    if num_nodes < num_classes or num_classes < 2 or num_steps < 1:
        raise ValueError("synthetic: need num_nodes >= num_classes >= 2 and num_steps >= 1")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"synthetic: homophily must be in [0, 1], got {homophily}")
    rng = np.random.default_rng(seed)
    share = rng.dirichlet(np.full(num_classes, 3.0))
    labels = rng.choice(num_classes, size=num_nodes, p=share)
    labels[:num_classes] = np.arange(num_classes)  # every class present
    start = np.minimum(rng.geometric(0.35, size=num_nodes) - 1, num_steps - 1)  # activation step

    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    src, dst, step = [], [], []
    for t in range(num_steps):  # generation only: a handful of steps
        active = np.flatnonzero(start <= t)
        m = rng.poisson(edges_per_node, size=active.size)
        s = np.repeat(active, m)
        same = rng.random(s.size) < homophily
        d = rng.integers(0, num_nodes, size=s.size)
        for c in range(num_classes):
            pick = same & (labels[s] == c)
            d[pick] = members[c][rng.integers(0, members[c].size, size=int(pick.sum()))]
        src.append(s)
        dst.append(d)
        step.append(np.full(s.size, t))
    src, dst, step = (np.concatenate(a) for a in (src, dst, step))

    base = rng.normal(size=(2, num_classes, num_features))
    angle = np.linspace(0.0, np.pi / 2, num_steps)[:, None, None]
    centroids = np.cos(angle) * base[0] + np.sin(angle) * base[1]  # [T, C, F]
    feats = centroids[:, labels, :] + feature_noise * rng.normal(size=(num_steps, num_nodes, num_features))
    feats = (feats - feats.mean(axis=(1, 2), keepdims=True)) / feats.std(axis=(1, 2), keepdims=True)

    structure = build_structure(src, dst, step, num_nodes, num_steps)
    return TemporalGraph(
        name=name,
        num_nodes=num_nodes,
        num_steps=num_steps,
        features=torch.from_numpy(feats.astype(feature_dtype)),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=num_classes,
        meta={"interactions": int(src.size), "majority_rate": float(np.bincount(labels).max() / num_nodes)},
        **structure,
    )
