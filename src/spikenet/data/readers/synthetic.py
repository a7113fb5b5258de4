"""A seeded synthetic dynamic graph: class-structured communities that grow and drift over time.

Each node belongs to one of ``num_classes`` communities (imbalanced sizes) and becomes active at
a random step. Every step adds interactions between active nodes (``edges_per_node`` per active
node, or ``num_edges`` in total spread over the steps), a fraction ``homophily`` of them inside the
source's community. Features are the community's centroid, which rotates between two random
directions over the steps, plus Gaussian noise strong enough that a node's own features are a weak
signal and its neighbourhood a strong one.

Everything is vectorised, so the same generator builds the paper-sized presets
(``dataset=synthetic_patent``: 2.7 M nodes, 14 M edges). Feature arrays over ``mmap_threshold_mb``
(the size from which features go to a file) are generated step by step into a float16/32 ``.npy`` in
``cache_dir`` (reused by later runs with the same arguments), never held whole in RAM while generated;
the file is then loaded or memory-mapped as dataset feature files are (``guards.mmap_choice``: mapped
only when it would take more than ``mmap_share`` of the memory available).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from spikenet.data.readers import READERS
from spikenet.data.storage import guards, hints, hygiene
from spikenet.data.temporal_graph import TemporalGraph, build_structure


def _interactions(rng: np.random.Generator, labels: np.ndarray, start: np.ndarray, num_steps: int,
                  num_edges: int | None, edges_per_node: float, homophily: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num_nodes = labels.size
    by_class = np.argsort(labels, kind="stable")
    class_size = np.bincount(labels)
    class_start = np.concatenate([[0], np.cumsum(class_size)[:-1]])
    active_counts = np.array([(start <= t).sum() for t in range(num_steps)])
    if num_edges is None:
        per_step = rng.poisson(edges_per_node * active_counts)
    else:
        per_step = np.floor(num_edges * active_counts / active_counts.sum()).astype(np.int64)
        per_step[-1] += num_edges - per_step.sum()
    order = np.argsort(start, kind="stable")  # nodes active at t are a prefix of this order
    step = np.repeat(np.arange(num_steps), per_step)
    src = order[(rng.random(step.size) * active_counts[step]).astype(np.int64)]
    dst = rng.integers(0, num_nodes, size=step.size)
    same = rng.random(step.size) < homophily
    c = labels[src[same]]
    dst[same] = by_class[class_start[c] + (rng.random(c.size) * class_size[c]).astype(np.int64)]
    return src, dst, step


def _features(rng: np.random.Generator, labels: np.ndarray, num_steps: int, num_features: int,
              feature_noise: float, dtype: str, path: Path | None) -> np.ndarray:
    """[T, N, F] features; with ``path``, streamed to a .npy file chunk by chunk (constant memory)."""
    base = rng.normal(size=(2, labels.max() + 1, num_features))
    angles = np.linspace(0.0, np.pi / 2, num_steps)
    shape = (num_steps, labels.size, num_features)
    out = np.empty(shape, dtype=dtype) if path is None else None
    handle = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        handle = open(tmp, "wb")  # noqa: SIM115 - closed below, also on failure
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        )
    scale = np.float32(1.0 / np.sqrt(1.0 + feature_noise**2))  # centroid entries have variance ~1
    rows = max(1, (1 << 24) // num_features)  # ~16 M values per chunk
    try:
        for t, angle in enumerate(angles):
            centroid = (np.cos(angle) * base[0] + np.sin(angle) * base[1]).astype(np.float32)
            for lo in range(0, labels.size, rows):
                hi = min(lo + rows, labels.size)
                noise = rng.standard_normal((hi - lo, num_features), dtype=np.float32)
                chunk = ((centroid[labels[lo:hi]] + np.float32(feature_noise) * noise) * scale).astype(dtype)
                if handle is None:
                    out[t, lo:hi] = chunk
                else:
                    handle.write(chunk.tobytes())
    except BaseException:
        if handle is not None:
            handle.close()
            tmp.unlink(missing_ok=True)
        raise
    if handle is None:
        return out
    handle.close()
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view; read-only memory maps are fine since features are never written."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def make_synthetic(
    num_nodes: int = 2000,
    num_classes: int = 5,
    num_steps: int = 10,
    num_features: int = 32,
    edges_per_node: float = 2.0,
    num_edges: int | None = None,
    homophily: float = 0.8,
    feature_noise: float = 2.0,
    seed: int = 0,
    name: str = "synthetic",
    feature_dtype: str = "float32",
    cache_dir: str | None = None,
    mmap_threshold_mb: float = 1024,
    mmap: str = "auto",
    mmap_share: float = guards.DEFAULT_MMAP_SHARE,
) -> TemporalGraph:
    """Generate the graph; identical for identical arguments."""
    if num_nodes < num_classes or num_classes < 2 or num_steps < 1:
        raise ValueError("synthetic: need num_nodes >= num_classes >= 2 and num_steps >= 1")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"synthetic: homophily must be in [0, 1], got {homophily}")
    if feature_dtype not in ("float32", "float16"):
        raise ValueError(f"synthetic: feature_dtype must be float32 or float16, got '{feature_dtype}'")
    rng = np.random.default_rng(seed)
    share = rng.dirichlet(np.full(num_classes, 3.0))
    labels = rng.choice(num_classes, size=num_nodes, p=share)
    labels[:num_classes] = np.arange(num_classes)  # every class present
    start = np.minimum(rng.geometric(0.35, size=num_nodes) - 1, num_steps - 1)  # activation step
    src, dst, step = _interactions(rng, labels, start, num_steps, num_edges, edges_per_node, homophily)
    structure = build_structure(src, dst, step, num_nodes, num_steps)

    nbytes = num_steps * num_nodes * num_features * np.dtype(feature_dtype).itemsize
    path = None
    if nbytes > mmap_threshold_mb * 2**20:
        args = dict(num_nodes=num_nodes, num_classes=num_classes, num_steps=num_steps, num_features=num_features,
                    feature_noise=feature_noise, seed=seed, dtype=feature_dtype, v=1)
        key = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
        root = Path(cache_dir or os.environ.get("SPIKENET_CACHE", "~/.cache/spikenet")).expanduser()
        path = root / "synthetic" / f"{name}-{key}.npy"
    feature_rng = np.random.default_rng([seed, 1])
    if path is not None:
        hygiene.remove_stale_temporaries([path.parent], synthetic=True)  # of a generation killed mid-write
        if path.exists():
            hygiene.touch(path)
    if path is None or not path.exists():
        where = None if path is None else path.parent
        free = guards.available_ram() if where is None else guards.free_disk(where)
        fits = max(1, int(num_features * guards.HEADROOM * free / max(nbytes, 1)))
        fix = f"`{hints.command({'name': name}, 'run', f'dataset.num_features={fits}')}`"
        guards.require(f"{name}: synthetic features {[num_steps, num_nodes, num_features]}", nbytes, where, fix)
        feats = _features(feature_rng, labels, num_steps, num_features, feature_noise, feature_dtype, path)
        if path is not None:
            hygiene.prune(path.parent, hygiene.DEFAULT_KEEP, synthetic=True)
    mapped = path is not None and guards.mmap_choice(
        OmegaConf.create({"name": name, "mmap": mmap, "mmap_share": mmap_share}), nbytes)
    if path is not None and not mapped:
        feats = np.load(path)
    return TemporalGraph(
        name=name,
        num_nodes=num_nodes,
        num_steps=num_steps,
        features=_as_tensor(feats),
        feature_array=feats if mapped else None,
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=num_classes,
        meta={"interactions": int(src.size), "majority_rate": float(np.bincount(labels).max() / num_nodes),
              "feature_file": str(path) if path else None},
        **structure,
    )


# dataset keys that are framework options, not arguments of the synthetic generator
_FRAMEWORK_KEYS = frozenset(
    {
        "name",
        "reader",
        "root",
        "folder",
        "features",
        "feature_dim",
        "feature_seed",
        "mmap",
        "mmap_share",
        "max_steps",
        "cache",
        "cache_dir",
        "deepwalk",
        "smf",
        "merge",
        "bench_batches",
        "cache_keep",
    }
)


@READERS.register("synthetic")
def read_synthetic(cfg: Any) -> TemporalGraph:
    """The seeded generator; every key of ``dataset`` but the framework's own is an argument."""
    kwargs = {k: v for k, v in dict(cfg).items() if k not in _FRAMEWORK_KEYS}
    num_steps = int(cfg.num_steps)
    limit = guards.max_steps(cfg)
    if num_steps > limit:
        raise guards.TooLargeError(
            f"{cfg.name}: dataset.num_steps={num_steps} exceeds dataset.max_steps={limit}; fix: "
            f"`{hints.command(cfg, 'run', f'++dataset.max_steps={num_steps}')}` if that many steps are meant"
        )
    return make_synthetic(name=str(cfg.name), cache_dir=cfg.get("cache_dir"), mmap=str(cfg.mmap),
                          mmap_share=float(cfg.mmap_share), **kwargs)
