"""SMF features (``spikenet.data.features.smf``, ``dataset.features=smf``): the maths against dense numpy
computations, no future edges, determinism, alignment, the cache round trip and the ``features=`` options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import dataset_config

from spikenet.data import load_dataset
from spikenet.data.features import cache as feature_cache
from spikenet.data.features import smf as emb
from spikenet.data.temporal_graph import TemporalGraph, build_structure

CPU = torch.device("cpu")


def random_edges(n: int, steps: int, per_step: int, seed: int) -> list[tuple[int, int, int]]:
    """``per_step`` random interactions at every stamp; node n-1 never interacts (stays isolated)."""
    rng = np.random.default_rng(seed)
    return [(int(a), int(b), t) for t in range(steps) for a, b in rng.integers(0, n - 1, size=(per_step, 2))]


def graph_of(edges: list[tuple[int, int, int]], n: int, steps: int) -> TemporalGraph:
    src, dst, step = (np.array(c, dtype=np.int64) for c in zip(*edges, strict=True))
    return TemporalGraph(name="toy", num_nodes=n, num_steps=steps, features=torch.zeros(n, 1),
                         labels=torch.zeros(n, dtype=torch.long), num_classes=1,
                         **build_structure(src, dst, step, n, steps))


def dense_adjacency(edges: list[tuple[int, int, int]], n: int, t: int) -> np.ndarray:
    """G_t by hand: every interaction stamped <= t, undirected, binary, no self-loops."""
    a = np.zeros((n, n))
    for u, v, s in edges:
        if s <= t and u != v:
            a[u, v] = a[v, u] = 1.0
    return a


def dense_smf(a: np.ndarray, dim: int, window: int, neg_power: float) -> tuple[np.ndarray, np.ndarray]:
    """The module docstring's stages 1-2 with dense numpy and an exact SVD: (active node ids, [n, dim])."""
    active = np.flatnonzero(a.sum(1) > 0)
    a = a[np.ix_(active, active)]
    p = a / a.sum(1, keepdims=True)
    neg = p.sum(0) ** neg_power
    neg /= neg.sum()
    with np.errstate(divide="ignore"):
        m = np.where(a > 0, np.log(p) - np.log(neg)[None, :], 0.0)
    u, s, _ = np.linalg.svd(m)
    assert np.all(np.diff(s[: dim + 1]) < -1e-6), "toy graph needs distinct top singular values"
    e = u[:, :dim] * np.sqrt(s[:dim])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    out = sum(np.linalg.matrix_power(p, r) @ e for r in range(1, window + 1)) / window
    return active, out


def match_signs(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``x`` with each column's sign flipped to agree with ``ref`` (singular vectors are defined up to sign)."""
    return x * np.sign((x * ref).sum(0, keepdims=True))


# ---------------------------------------------------------------- the maths


def test_log_transition_matrix_and_propagation_match_dense_numpy():
    n, edges = 12, random_edges(12, 2, 14, seed=1)
    g = graph_of(edges, n, 2)
    snap = emb.snapshot_edges(g, 1, CPU)
    a = dense_adjacency(edges, n, 1)
    active = np.flatnonzero(a.sum(1) > 0)
    np.testing.assert_array_equal(snap.nodes.numpy(), active)
    a = a[np.ix_(active, active)]
    p = a / a.sum(1, keepdims=True)
    neg = p.sum(0) ** 0.6 / (p.sum(0) ** 0.6).sum()
    m, mt = emb.log_transition_matrix(snap, 0.6)
    expected = np.where(a > 0, np.log(np.where(a > 0, p, 1.0)) - np.log(neg)[None, :], 0.0)
    np.testing.assert_allclose(m.to_dense().numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mt.to_dense().numpy(), expected.T, rtol=1e-5, atol=1e-5)
    x = np.random.default_rng(0).normal(size=(active.size, 3))
    prop = emb.window_propagate(emb.transition_matrix(snap), torch.tensor(x, dtype=torch.float32), 4)
    want = sum(np.linalg.matrix_power(p, r) @ x for r in range(1, 5)) / 4
    np.testing.assert_allclose(prop.numpy(), want, rtol=1e-4, atol=1e-5)


def test_embed_snapshot_matches_dense_pipeline():
    n, edges = 16, random_edges(16, 3, 20, seed=0)
    g = graph_of(edges, n, 3)
    cfg = emb.SMFConfig(dim=3, window=5, oversample=64, power_iters=2)  # range finder spans all columns: exact
    for t in range(3):
        snap = emb.snapshot_edges(g, t, CPU)
        omega = emb.start_block(n, cfg.dim + cfg.oversample, 0)[snap.nodes]
        got = emb.embed_snapshot(snap, omega, cfg).numpy()
        active, want = dense_smf(dense_adjacency(edges, n, t), cfg.dim, cfg.window, cfg.neg_power)
        np.testing.assert_array_equal(snap.nodes.numpy(), active)
        np.testing.assert_allclose(match_signs(got, want), want, rtol=1e-3, atol=1e-4)


def test_randomized_svd_finds_the_top_singular_pairs():
    rng = np.random.default_rng(2)
    n, k = 300, 6
    left, _ = np.linalg.qr(rng.normal(size=(n, n)))
    right, _ = np.linalg.qr(rng.normal(size=(n, n)))
    spectrum = 0.7 ** np.arange(n)  # fast decay: subspace iteration converges
    m = (left * spectrum) @ right.T
    mt = torch.tensor(m.T.copy(), dtype=torch.float32)
    omega = torch.tensor(rng.normal(size=(n, k + 8)), dtype=torch.float32)
    u, s = emb.randomized_svd(torch.tensor(m, dtype=torch.float32), mt, omega, k, power_iters=3)
    np.testing.assert_allclose(s.numpy(), spectrum[:k], rtol=1e-3)
    overlap = np.abs(u.numpy().T @ left[:, :k])
    np.testing.assert_allclose(overlap, np.eye(k), atol=2e-3)


def test_orthonormalize_falls_back_on_rank_deficient_blocks():
    rng = np.random.default_rng(0)
    y = torch.tensor(rng.normal(size=(50, 4)), dtype=torch.float32)
    q = emb.orthonormalize(y)
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(4), atol=1e-5)
    np.testing.assert_allclose((q @ (q.T @ y)).numpy(), y.numpy(), atol=1e-4)  # same column space
    deficient = torch.cat([y, y[:, :1]], dim=1)  # a repeated column: Gram matrix singular
    q = emb.orthonormalize(deficient)
    assert q.shape == (50, 5) and torch.isfinite(q).all()
    np.testing.assert_allclose((q @ (q.T @ y)).numpy(), y.numpy(), atol=1e-4)


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5))
    rot, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    r = emb.procrustes(torch.tensor(x @ rot), torch.tensor(x)).numpy()
    np.testing.assert_allclose(r, rot.T, atol=1e-8)


# ---------------------------------------------------------------- time, seeds, alignment


def small_cfg(**kw) -> emb.SMFConfig:
    return emb.SMFConfig(**{"dim": 4, "window": 3, "oversample": 2, "power_iters": 1, "device": "cpu", **kw})


def test_step_t_uses_only_edges_up_to_t():
    n, steps = 40, 5
    edges = random_edges(n, steps, 30, seed=5)
    full = emb.smf_features(graph_of(edges, n, steps), small_cfg(), standardize=False)
    cut = 2
    past = graph_of([e for e in edges if e[2] <= cut], n, cut + 1)
    np.testing.assert_allclose(emb.smf_features(past, small_cfg(), standardize=False), full[: cut + 1], atol=1e-6)
    assert not np.allclose(full[cut + 1], full[cut])  # later edges do change later steps
    isolated = np.asarray(graph_of(edges, n, steps).cum_degree[0] == 0)
    assert (full[0][isolated] == 0).all() and (full[-1][n - 1] == 0).all()  # no edge yet: zero row


def test_same_seed_same_features_other_seed_other_features():
    n, edges = 40, random_edges(40, 3, 30, seed=6)
    g = graph_of(edges, n, 3)
    a = emb.smf_features(g, small_cfg(seed=1))
    np.testing.assert_array_equal(a, emb.smf_features(g, small_cfg(seed=1)))
    assert not np.allclose(a, emb.smf_features(g, small_cfg(seed=2)))
    assert a.shape == (3, n, 4) and a.dtype == np.float32
    np.testing.assert_allclose(a.reshape(3, -1).mean(1), 0, atol=1e-5)  # standardised per step
    np.testing.assert_allclose(a.reshape(3, -1).std(1), 1, atol=1e-4)


def test_alignment_rotates_each_step_onto_the_previous_one():
    n, steps = 50, 4
    g = graph_of(random_edges(n, steps, 40, seed=7), n, steps)
    raw = emb.smf_features(g, small_cfg(align=False), standardize=False)
    aligned = emb.smf_features(g, small_cfg(align=True), standardize=False)
    np.testing.assert_array_equal(aligned[0], raw[0])
    for t in range(1, steps):
        gram = raw[t] @ raw[t].T  # a rotation keeps every dot product within the step
        np.testing.assert_allclose(aligned[t] @ aligned[t].T, gram, atol=1e-4)
        shared = np.asarray(g.cum_degree[t - 1] > 0)
        before = aligned[t - 1][shared]
        close = np.linalg.norm(aligned[t][shared] - before)
        # at least as close to the previous aligned step as the best column sign flip of the raw step
        assert close <= np.linalg.norm(match_signs(raw[t][shared], before) - before) + 1e-5


# ---------------------------------------------------------------- config, cache and dataset.features


def write_dataset(root: Path, n: int = 60, steps: int = 4) -> Path:
    folder = root / "g"
    folder.mkdir(parents=True)
    rows = [f"{a} {b} {t}" for a, b, t in random_edges(n, steps, 2 * n, seed=0)]
    (folder / "edges.txt").write_text("\n".join(rows) + f"\n{n - 1} 0 {steps - 1}\n")
    (folder / "labels.txt").write_text("".join(f"{u} {u % 3}\n" for u in range(0, n, 2)))
    return root


def dataset_cfg(root: Path, **kw):
    base = {"name": "g", "root": str(root), "feature_dim": 8, "smf": {"window": 3, "device": "cpu"},
            "min_class_size": 1, "auto_bins": False}
    return dataset_config("edgelist", **{**base, **kw})


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("SPIKENET_CACHE", str(folder))
    return folder


@pytest.mark.parametrize("choice", ["auto", "smf"])
def test_smf_is_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, choice: str):
    root = write_dataset(tmp_path)
    g = load_dataset(dataset_cfg(root, features=choice))
    assert tuple(g.features.shape) == (g.num_steps, g.num_nodes, 8)
    direct = emb.smf_features(g, emb.SMFConfig(dim=8, window=3, device="cpu"))
    np.testing.assert_allclose(g.features.numpy(), direct, atol=1e-6)
    (cached,) = list((root / "g" / ".cache").glob("g-smf-*.npy"))
    np.testing.assert_allclose(np.load(cached), direct, atol=1e-6)

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(feature_cache, "smf_features", refuse)
    again = load_dataset(dataset_cfg(root, features=choice))  # read back from the cache
    np.testing.assert_array_equal(again.features.numpy(), g.features.numpy())
    monkeypatch.undo()
    load_dataset(dataset_cfg(root, features=choice, smf={"window": 2, "device": "cpu"}))
    assert len(list((root / "g" / ".cache").glob("g-smf-*.npy"))) == 2  # another setting, another file
    assert len(list((root / "g" / ".cache").glob("g-graph-*.npz"))) == 1  # the parsed graph is shared


def test_smf_without_cache_and_file_wins_under_auto(tmp_path: Path):
    root = write_dataset(tmp_path)
    g = load_dataset(dataset_cfg(root, features="smf", cache=False, feature_dtype="float16"))
    assert g.features.element_size() == 2
    assert not (root / "g" / ".cache").exists() or not list((root / "g" / ".cache").glob("g-smf-*"))
    own = np.random.default_rng(0).normal(size=(g.num_steps, g.num_nodes, 3))
    np.save(root / "g" / "g.npy", own)
    assert load_dataset(dataset_cfg(root, features="auto")).num_features == 3  # the dataset's file first
    assert load_dataset(dataset_cfg(root, features="smf")).num_features == 8  # smf: always generated


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"features": "dw"}, "dataset.features must be one of auto, file, smf, deepwalk, fastrp, got 'dw'"),
        ({"smf": {"windows": 3}}, r"dataset.smf: unknown key\(s\) \['windows'\]"),
        ({"smf": {"window": 0}}, "dataset.smf.window must be >= 1, got 0"),
        ({"smf": {"device": "tpu"}}, "dataset.smf.device must be auto, cpu or cuda"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path: Path, override: dict, message: str):
    root = write_dataset(tmp_path)
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(dataset_cfg(root, **override))
    assert "\n" not in str(err.value)


def test_cuda_without_cuda_is_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="dataset.smf.device=cuda but no CUDA device"):
        emb.SMFConfig.from_cfg({"device": "cuda"})
    assert emb.SMFConfig.from_cfg({"device": "auto"}).device_() == CPU


@pytest.mark.gpu
def test_gpu_matches_cpu():
    n = 200
    g = graph_of(random_edges(n, 4, 300, seed=8), n, 4)
    cpu = emb.smf_features(g, small_cfg(dim=16, oversample=8, power_iters=3))
    gpu = emb.smf_features(g, small_cfg(dim=16, oversample=8, power_iters=3, device="cuda"))
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)
