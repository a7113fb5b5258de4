"""DeepWalk features per cumulative snapshot, the reference recipe (docs/data.md), made fast.

For each G_t: ``walks`` uniform random walks of ``length`` from every node, then skip-gram
Word2Vec (gensim; sg=1, hs=0, ``dim`` dimensions, ``window``, ``negative``, ``epochs``,
min_count 0), optionally L2-normalised rows (Tmall, Patent); stacked to [T, N, dim] float32.
Defaults follow the reference's ``DeepWalk`` class: 10 walks of 80 steps, 128 dimensions,
window 10, 1 negative sample, 1 epoch, learning rate 0.025.

Speed: walks advance one step at a time as numpy arrays over the temporal CSR (G_t is a prefix
of every node's neighbour list, so no per-step CSR is built); the corpus goes to gensim as a
``corpus_file`` of fixed-width zero-padded tokens written straight from a uint8 token table, and
the vocabulary comes from ``np.bincount`` (``build_vocab_from_freq``), so no Python code runs per
token or per walk. Training itself (gensim's Cython, ``workers`` threads) is the remaining cost.

Self-loops: off by default, unlike the sampler's G_t (docs/design.md). The reference walks the plain
adjacency: a walk moves every step, and a node isolated in G_t yields a one-token walk (no
training pair). Self-loops would turn these into lazy walks (different co-occurrence statistics
from the recipe behind the reference's published figures) and, on DBLP, make the corpus 2.5x larger, since 60% of the
node-steps are isolated nodes whose 80-token walks would be a single repeated token.
``self_loops=true`` switches them on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikenet.data.storage.cache import atomic_path
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)


@dataclass
class DeepWalkConfig:
    """DeepWalk and Word2Vec settings (defaults: the reference recipe)."""

    walks: int = 10  # walks per node and snapshot
    length: int = 80  # nodes per walk
    dim: int = 128
    window: int = 10
    negative: int = 1
    epochs: int = 1
    alpha: float = 0.025
    sample: float = 1e-3  # gensim's default frequent-word downsampling, as in the reference
    workers: int = 2
    seed: int = 0
    self_loops: bool = False
    normalize: bool = False  # L2-normalise rows (the reference's --normalize, used for Tmall and Patent)
    chunk_walks: int = 1 << 18  # walks generated and written per chunk: bounds memory on big graphs
    tmp_dir: str | None = None  # where the per-snapshot corpus file goes (default: the system temp folder)

    @classmethod
    def from_cfg(cls, node: Any | None) -> DeepWalkConfig:
        """Build from a config mapping (``dataset.deepwalk``); unknown keys are an error."""
        if node is None:
            return cls()
        items = dict(node.items()) if hasattr(node, "items") else dict(node)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(items) - known)
        if unknown:
            raise ValueError(f"dataset.deepwalk: unknown key(s) {unknown}; known: {sorted(known)}")
        out = cls(**items)
        if min(out.walks, out.length, out.dim, out.window, out.epochs, out.workers) < 1:
            raise ValueError("dataset.deepwalk: walks, length, dim, window, epochs and workers must be >= 1")
        return out

    def key(self) -> dict:
        """The settings that change the embedding (for cache keys)."""
        d = dataclasses.asdict(self)
        for k in ("workers", "chunk_walks", "tmp_dir"):
            d.pop(k)
        return d


def random_walks(
    indptr: np.ndarray,
    indices: np.ndarray,
    degree: np.ndarray,
    starts: np.ndarray,
    length: int,
    rng: np.random.Generator,
    self_loops: bool = False,
) -> np.ndarray:
    """Uniform random walks [len(starts), length] on G_t given as per-node prefixes of a CSR.

    Node u's neighbours in G_t are ``indices[indptr[u] : indptr[u] + degree[u]]`` (plus u itself with
    ``self_loops``). All walks advance together, one vectorised step at a time. Without self-loops a walk
    from a node with no neighbour stays there (the caller keeps only its first token).
    """
    walks = np.empty((starts.size, length), dtype=np.int64 if indptr.size > 2**31 else np.int32)
    cur = starts.astype(np.int64)
    walks[:, 0] = cur
    base, deg = indptr.astype(np.int64), degree.astype(np.int64)
    for k in range(1, length):
        d = deg[cur] + (1 if self_loops else 0)
        pick = (rng.random(cur.size) * d).astype(np.int64)  # uniform in [0, d)
        if self_loops:
            move = pick > 0  # choice 0 is the self-loop
            offset = pick - 1
        else:
            move = d > 0
            offset = pick
        nxt = cur.copy()
        nxt[move] = indices[base[cur[move]] + offset[move]]
        walks[:, k] = nxt
        cur = nxt
    return walks


def token_table(num_nodes: int) -> np.ndarray:
    """uint8 [N, w + 1]: node ids as zero-padded decimal of width w, then a space."""
    width = len(str(max(num_nodes - 1, 0)))
    table = np.empty((num_nodes, width + 1), dtype=np.uint8)
    ids = np.arange(num_nodes, dtype=np.int64)
    for j in range(width):
        table[:, width - 1 - j] = (ids // 10**j) % 10 + ord("0")
    table[:, width] = ord(" ")
    return table


def corpus_bytes(num_nodes: int, cfg: DeepWalkConfig) -> int:
    """Upper bound of one snapshot's corpus file: ``walks`` lines of ``length`` fixed-width tokens per node."""
    width = len(str(max(num_nodes - 1, 0)))
    return cfg.walks * num_nodes * cfg.length * (width + 1)


def write_corpus(
    path: Path, graph: TemporalGraph, t: int, cfg: DeepWalkConfig, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Write the walks of G_t, one per line, to ``path``; returns (token count per node, number of walks)."""
    n = graph.num_nodes
    indptr, indices = graph.cum_indptr.numpy(), graph.cum_indices.numpy()
    degree = graph.cum_degree[t].numpy()
    table = token_table(n)
    counts = np.zeros(n, dtype=np.int64)
    starts_all = np.tile(
        np.arange(n, dtype=np.int64), cfg.walks
    )  # round by round, node by node (reference order)
    with open(path, "wb") as f:
        for lo in range(0, starts_all.size, cfg.chunk_walks):
            starts = starts_all[lo : lo + cfg.chunk_walks]
            walks = random_walks(indptr, indices, degree, starts, cfg.length, rng, cfg.self_loops)
            full = np.ones(starts.size, dtype=bool) if cfg.self_loops else degree[starts] > 0
            lines = table[walks[full]]  # [W, length, w + 1]
            lines[:, -1, -1] = ord("\n")
            lines.tofile(f)
            counts += np.bincount(walks[full].ravel(), minlength=n)
            single = starts[~full]  # isolated nodes: a one-token walk, as in the reference
            if single.size:
                one = table[single]
                one[:, -1] = ord("\n")
                one.tofile(f)
                counts += np.bincount(single, minlength=n)
    return counts, int(starts_all.size)


@contextlib.contextmanager
def _quiet_gensim() -> Iterator[None]:
    logger = logging.getLogger("gensim")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def embed_snapshot(graph: TemporalGraph, t: int, cfg: DeepWalkConfig, workdir: Path) -> np.ndarray:
    """DeepWalk embedding [N, dim] float32 of G_t."""
    from gensim.models import Word2Vec

    rng = np.random.default_rng([cfg.seed, t])
    corpus = workdir / f"walks-{t}.txt"
    counts, num_walks = write_corpus(corpus, graph, t, cfg, rng)
    width = len(str(max(graph.num_nodes - 1, 0)))
    present = np.flatnonzero(counts)
    vocab = {str(int(u)).zfill(width): int(counts[u]) for u in present}
    with _quiet_gensim():
        model = Word2Vec(
            vector_size=cfg.dim,
            window=cfg.window,
            min_count=0,
            sg=1,
            hs=0,
            negative=cfg.negative,
            alpha=cfg.alpha,
            sample=cfg.sample,
            workers=cfg.workers,
            seed=cfg.seed,
            epochs=cfg.epochs,
        )
        model.build_vocab_from_freq(vocab, corpus_count=num_walks)
        model.train(
            corpus_file=str(corpus),
            total_words=int(counts.sum()),
            total_examples=num_walks,
            epochs=cfg.epochs,
        )
    corpus.unlink()
    emb = np.zeros((graph.num_nodes, cfg.dim), dtype=np.float32)
    ids = np.asarray(model.wv.index_to_key).astype(np.int64)
    emb[ids] = model.wv.vectors
    if cfg.normalize:
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return emb


def deepwalk_features(
    graph: TemporalGraph, cfg: DeepWalkConfig, out: np.ndarray | None = None, progress: bool = True
) -> np.ndarray:
    """DeepWalk features [T, N, dim] float32 of every cumulative snapshot, written into ``out`` if given."""
    from tqdm import tqdm

    out = np.empty((graph.num_steps, graph.num_nodes, cfg.dim), dtype=np.float32) if out is None else out
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepwalk-", dir=cfg.tmp_dir) as tmp:
        bar = tqdm(range(graph.num_steps), desc=f"DeepWalk {graph.name}", unit="step", disable=not progress)
        for t in bar:
            out[t] = embed_snapshot(graph, t, cfg, Path(tmp))
    log.info(
        "%s: DeepWalk features for %d steps in %.0f s",
        graph.name,
        graph.num_steps,
        time.perf_counter() - start,
    )
    return out


def write_feature_file(
    graph: TemporalGraph, cfg: DeepWalkConfig, target: Path, progress: bool = True
) -> Path:
    """Generate DeepWalk features straight into ``target`` ([T, N, dim] float32 .npy), atomically."""
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(graph.num_steps, graph.num_nodes, cfg.dim)
        )
        deepwalk_features(graph, cfg, out=out, progress=progress)
        out.flush()
        del out
    return target
