"""Fast DeepWalk-grade node features per cumulative snapshot, in torch (CPU or GPU): ``dataset.features=smf``.

DeepWalk with a window of W implicitly factorises the matrix log(vol(G)/(b·W) · Σ_{r=1..W} P^r D^-1)
(Qiu et al. 2018, "Network embedding as matrix factorization"), P = D^-1 A the random-walk transition
matrix. Computing that dense matrix is O(N²) per snapshot; instead, per G_t (the plain adjacency, no
self-loops, like DeepWalk's walks):

1. sparse matrix factorisation (the first stage of ProNE, Zhang et al. 2019): the r = 1 term in log space,
   kept on the edges only, M_ij = log(P_ij) - log(neg_j) with neg_j ∝ (Σ_i P_ij)^0.75 (word2vec's
   negative-sampling distribution); a randomized SVD (Halko et al. 2011) gives U_k Σ_k, and the embedding
   is the rows of U_k Σ_k^½, L2-normalised;
2. propagation over DeepWalk's window: E ← (1/W) Σ_{r=1..W} P^r E, the same walk-length weighting whose
   log DeepWalk factorises (ProNE uses a Gaussian band-pass filter here instead);
3. alignment: each step is rotated onto the previous one (orthogonal Procrustes on the nodes active in
   both), so the coordinates of step t and t-1 agree; DeepWalk trains every snapshot from scratch.

Nodes without an edge in G_t get zero rows (DeepWalk leaves them at their tiny random initial vectors).
The randomized SVD starts from one Gaussian matrix indexed by node id and shared by all steps, so a step
depends on G_0..G_t only, and a seed fixes the result. Every product is a sparse-dense matmul or a QR of an
[n, k + oversample] block: seconds for DBLP on a CPU, less on a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikenet.data.features.arrays import standardize_per_step
from spikenet.data.temporal_graph import TemporalGraph

log = logging.getLogger(__name__)


@dataclass
class SMFConfig:
    """Settings of ``dataset.features=smf`` (``dataset.smf``)."""

    dim: int = 128
    window: int = 10  # DeepWalk's window: propagation averages P^1 .. P^window
    neg_power: float = 0.75  # exponent of the negative-sampling distribution (word2vec's)
    power_iters: int = 5  # subspace iterations of the randomized SVD
    oversample: int = 16  # extra columns of the randomized SVD's range finder
    align: bool = True  # rotate every step onto the previous one (orthogonal Procrustes)
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu

    @classmethod
    def from_cfg(cls, node: Any | None, dim: int | None = None, seed: int | None = None) -> SMFConfig:
        """Build from ``dataset.smf`` (unknown keys are an error); ``dim``/``seed`` fill unset defaults."""
        items = {} if node is None else (dict(node.items()) if hasattr(node, "items") else dict(node))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(items) - known)
        if unknown:
            raise ValueError(f"dataset.smf: unknown key(s) {unknown}; known: {sorted(known)}")
        if dim is not None:
            items.setdefault("dim", dim)
        if seed is not None:
            items.setdefault("seed", seed)
        out = cls(**items)
        for key in ("dim", "window", "power_iters"):
            if int(getattr(out, key)) < 1:
                raise ValueError(f"dataset.smf.{key} must be >= 1, got {getattr(out, key)}")
        if int(out.oversample) < 0:
            raise ValueError(f"dataset.smf.oversample must be >= 0, got {out.oversample}")
        if not float(out.neg_power) >= 0:
            raise ValueError(f"dataset.smf.neg_power must be >= 0, got {out.neg_power}")
        out.device_()  # validates the name
        return out

    def device_(self) -> torch.device:
        """The torch device of ``device`` (auto: cuda when available)."""
        name = str(self.device)
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if name != "cpu" and not name.startswith("cuda"):
            raise ValueError(f"dataset.smf.device must be auto, cpu or cuda[:N], got '{name}'")
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"dataset.smf.device={name} but no CUDA device is available (use auto or cpu)")
        return torch.device(name)

    def key(self) -> dict:
        """The settings that change the features (for cache keys)."""
        d = dataclasses.asdict(self)
        d.pop("device")
        return d


@dataclass
class Snapshot:
    """G_t restricted to its active nodes (degree > 0): the CSR pattern of its symmetric adjacency."""

    nodes: torch.Tensor  # [n] global ids of the active nodes, ascending
    crow: torch.Tensor  # [n + 1] CSR row pointers
    rows: torch.Tensor  # [nnz] local row of every directed edge, sorted by (row, column)
    cols: torch.Tensor  # [nnz] local column
    reverse: torch.Tensor  # [nnz] position of the edge (col, row): M^T has M's pattern, values[reverse]
    degree: torch.Tensor  # [n] float degrees


def snapshot_edges(graph: TemporalGraph, t: int, device: torch.device) -> Snapshot:
    """The edges of G_t (no self-loops) among its active nodes, from the temporal CSR's prefixes."""
    indptr, indices = graph.cum_indptr, graph.cum_indices
    deg = graph.cum_degree[t]
    lengths = indptr[1:] - indptr[:-1]
    owner = torch.repeat_interleave(torch.arange(graph.num_nodes), lengths)
    pos = torch.arange(indices.numel()) - indptr[owner]
    keep = pos < deg[owner]  # G_t is the prefix of every neighbour list
    nodes = torch.nonzero(deg > 0).flatten()
    local = torch.full((graph.num_nodes,), -1, dtype=torch.int64)
    local[nodes] = torch.arange(nodes.numel())
    rows, cols = local[owner[keep]].to(device), local[indices[keep]].to(device)
    n = nodes.numel()
    order = torch.argsort(rows * n + cols)
    rows, cols = rows[order], cols[order]
    crow = torch.zeros(n + 1, dtype=torch.int64, device=device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    # the adjacency is symmetric, so the edges sorted by (col, row) are the same pairs as by (row, col)
    reverse = torch.argsort(cols * n + rows)
    return Snapshot(nodes=nodes.to(device), crow=crow, rows=rows, cols=cols, reverse=reverse,
                    degree=deg[nodes].to(device=device, dtype=torch.float32))


def _csr(snap: Snapshot, values: torch.Tensor) -> torch.Tensor:
    """The [n, n] sparse CSR matrix with the snapshot's pattern and ``values`` (in edge order)."""
    n = snap.nodes.numel()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(snap.crow, snap.cols, values, size=(n, n), check_invariants=False)


def log_transition_matrix(snap: Snapshot, neg_power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """M and M^T (sparse CSR, float32) with M_ij = log(1/d_i) - log(neg_j) on the edges of G_t,
    neg_j = c_j^neg_power / Σ c^neg_power and c_j = Σ_i A_ij / d_i."""
    inv_deg = 1.0 / snap.degree
    mass = torch.zeros_like(inv_deg).index_add_(0, snap.cols, inv_deg[snap.rows])
    neg = mass.pow(neg_power)
    neg = neg / neg.sum()
    values = torch.log(inv_deg[snap.rows]) - torch.log(neg[snap.cols])
    return _csr(snap, values), _csr(snap, values[snap.reverse])


def transition_matrix(snap: Snapshot) -> torch.Tensor:
    """P = D^-1 A of G_t (sparse CSR, float32)."""
    return _csr(snap, (1.0 / snap.degree)[snap.rows])


# below this many active nodes a snapshot's products and solves run on one CPU thread: measured on 242 nodes and
# 531 steps, a 144 x 242 triangular solve took 14.3 ms on two threads of a loaded 2-core machine and 0.066 ms
# on one, and the whole SMF pass 478 s against seconds
SMALL_SNAPSHOT_NODES = 8192


@contextlib.contextmanager
def small_ops(device: torch.device) -> Iterator[None]:
    """One CPU thread for decompositions of [l, l] matrices: with several, LAPACK's thread start-up costs
    100x the work at l ~ 144 (and far more on a loaded machine)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def orthonormalize(y: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of the columns of ``y`` [n, l] (n >= l): CholeskyQR2 (two passes of a Gram matrix
    GEMM, its Cholesky factor in float64 and a triangular solve: ~3x faster than Householder QR on a CPU),
    Householder QR when ``y`` is numerically rank-deficient."""
    for _ in range(2):
        gram = (y.T @ y).to(torch.float64)
        with small_ops(y.device):
            chol, info = torch.linalg.cholesky_ex(gram)
        if int(info) != 0 or not bool(torch.isfinite(chol).all()):
            return torch.linalg.qr(y).Q
        y = torch.linalg.solve_triangular(chol.to(y.dtype), y.T, upper=False).T
    return y


def randomized_svd(
    m: torch.Tensor, mt: torch.Tensor, omega: torch.Tensor, rank: int, power_iters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``rank`` left singular vectors and values of ``m`` (``mt`` its transpose) by subspace iteration
    from the start block ``omega`` [n, l] (Halko, Martinsson and Tropp 2011, algorithms 4.4 and 5.1)."""
    q = orthonormalize(m @ omega)
    for _ in range(power_iters):
        q = orthonormalize(mt @ q)
        q = orthonormalize(m @ q)
    b_t = (mt @ q).to(torch.float64)  # B^T for B = Q^T M [l, n]
    with small_ops(q.device):
        evals, evecs = torch.linalg.eigh(b_t.T @ b_t)  # B B^T = U_b S^2 U_b^T, ascending
    order = torch.argsort(evals, descending=True)[:rank]
    u = q @ evecs[:, order].to(q.dtype)  # M's left singular vectors Q U_b
    peak = u.abs().argmax(dim=0)  # each vector's sign fixed by its largest entry: the same on any backend
    flip = u[peak, torch.arange(u.shape[1], device=u.device)] < 0
    u = torch.where(flip, -u, u)
    return u, evals[order].clamp_min(0).sqrt().to(q.dtype)


def window_propagate(p: torch.Tensor, x: torch.Tensor, window: int) -> torch.Tensor:
    """(1/window) Σ_{r=1..window} P^r x."""
    acc = torch.zeros_like(x)
    cur = x
    for _ in range(window):
        cur = p @ cur
        acc += cur
    return acc / window


def procrustes(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The orthogonal R minimising ||x R - target||_F (Schönemann 1966): R = U V^T for x^T target = U S V^T."""
    cross = x.T @ target
    with small_ops(cross.device):
        u, _, vh = torch.linalg.svd(cross, full_matrices=False)
    return u @ vh


def start_block(num_nodes: int, width: int, seed: int) -> torch.Tensor:
    """One seeded Gaussian row per node id [N, width], shared by all steps (float32, CPU)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(num_nodes, width, generator=gen, dtype=torch.float32)


def embed_snapshot(snap: Snapshot, omega: torch.Tensor, cfg: SMFConfig) -> torch.Tensor:
    """Stages 1 and 2 (module docstring) for one snapshot: [n, dim] float32 on the snapshot's device; on one
    CPU thread below ``SMALL_SNAPSHOT_NODES`` active nodes, where thread start-up outweighs the work."""
    if snap.nodes.numel() < SMALL_SNAPSHOT_NODES:
        with small_ops(snap.nodes.device):
            return _embed_snapshot(snap, omega, cfg)
    return _embed_snapshot(snap, omega, cfg)


def _embed_snapshot(snap: Snapshot, omega: torch.Tensor, cfg: SMFConfig) -> torch.Tensor:
    n = snap.nodes.numel()
    rank = min(cfg.dim, n)
    width = min(rank + cfg.oversample, n)
    m, mt = log_transition_matrix(snap, cfg.neg_power)
    u, s = randomized_svd(m, mt, omega[:, :width], rank, cfg.power_iters)
    emb = u * s.sqrt()
    emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    emb = window_propagate(transition_matrix(snap), emb, cfg.window)
    if rank < cfg.dim:  # fewer active nodes than dimensions: pad with zero columns
        emb = torch.cat([emb, emb.new_zeros(n, cfg.dim - rank)], dim=1)
    return emb


def smf_steps(graph: TemporalGraph, cfg: SMFConfig) -> Iterator[np.ndarray]:
    """Raw features [N, dim] float32 of G_0, G_1, ... in turn (zeros for nodes without an edge in G_t)."""
    device = cfg.device_()
    omega = start_block(graph.num_nodes, cfg.dim + cfg.oversample, cfg.seed).to(device)
    prev: torch.Tensor | None = None  # previous step's features [N, dim] (zeros where inactive)
    prev_active = torch.zeros(graph.num_nodes, dtype=torch.bool, device=device)
    for t in range(graph.num_steps):
        snap = snapshot_edges(graph, t, device)
        full = torch.zeros(graph.num_nodes, cfg.dim, dtype=torch.float32, device=device)
        if snap.nodes.numel():
            emb = embed_snapshot(snap, omega[snap.nodes], cfg)
            if cfg.align and prev is not None:
                shared = prev_active[snap.nodes]  # active in t-1 (G_{t-1} is a subgraph of G_t)
                if bool(shared.any()):
                    emb = emb @ procrustes(emb[shared], prev[snap.nodes[shared]])
            full[snap.nodes] = emb
        yield full.cpu().numpy()
        prev = full
        prev_active = torch.zeros_like(prev_active)
        prev_active[snap.nodes] = True


def smf_features(
    graph: TemporalGraph,
    cfg: SMFConfig,
    out: np.ndarray | None = None,
    dtype: type[np.floating] = np.float32,
    standardize: bool = True,
) -> np.ndarray:
    """Features [T, N, dim] of every cumulative snapshot, standardised per step (as feature files are) unless
    ``standardize=False``; written one step at a time into ``out`` (e.g. a memory-mapped cache file) if given."""
    out = np.empty((graph.num_steps, graph.num_nodes, cfg.dim), dtype=dtype) if out is None else out
    start = time.perf_counter()
    for t, emb in enumerate(smf_steps(graph, cfg)):
        if standardize:
            standardize_per_step(emb, out=out[t], source="smf features")
        else:
            out[t] = emb
    log.info("%s: smf features for %d steps in %.1f s on %s", graph.name, graph.num_steps,
             time.perf_counter() - start, cfg.device_())
    return out
