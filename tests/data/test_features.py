"""Features: validation, per-step standardisation, dtype and mmap, FastRP, DeepWalk and its entry point.

SMF features (``dataset.features=smf``, the default without a file) are tested in test_embeddings.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("spikenet") is None:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from conftest import dataset_config

from spikenet.data import load_dataset  # noqa: E402
from spikenet.data.features import arrays as feats  # noqa: E402
from spikenet.data.features.deepwalk import DeepWalkConfig, random_walks, token_table, write_corpus  # noqa: E402
from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError  # noqa: E402
from spikenet.data.load import load_graph  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2]
TINY_DW = {"walks": 2, "length": 10, "dim": 8, "window": 3, "workers": 1, "seed": 0}


def make_graph_files(root: Path, name: str = "g", n: int = 60, steps: int = 4, seed: int = 0) -> Path:
    """A random edge list over ``steps`` stamps; node n-1 stays isolated until the last stamp."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n - 1, 4 * n), rng.integers(0, n - 1, 4 * n)
    t = rng.integers(0, steps, 4 * n)
    rows = [f"{a} {b} {c}" for a, b, c in zip(src, dst, t, strict=True)] + [f"{n - 1} 0 {steps - 1}"]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "edges.txt").write_text("\n".join(rows) + "\n")
    (folder / "labels.txt").write_text("".join(f"{u} {u % 3}\n" for u in range(0, n, 2)))
    return root


def cfg(root: Path, name: str = "g", **kw):
    base = {"name": name, "root": str(root), "feature_dim": 8, "deepwalk": dict(TINY_DW), "min_class_size": 1,
            "auto_bins": False}
    return dataset_config("edgelist", **{**base, **kw})


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("SPIKENET_CACHE", str(folder))
    return folder


# ---------------------------------------------------------------- standardisation and validation


def reference_standardise(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    return ((flat - flat.mean(1, keepdims=True)) / flat.std(1, keepdims=True)).reshape(x.shape)


def test_standardise_per_step_in_blocks(monkeypatch: pytest.MonkeyPatch):
    x = np.random.default_rng(1).normal(3.0, 5.0, size=(3, 50, 4)).astype(np.float32)
    x[1] *= 100
    monkeypatch.setattr(feats, "BLOCK_ROWS", 7)  # force several row blocks per step
    out = feats.standardize_per_step(x)
    np.testing.assert_allclose(out, reference_standardise(x), rtol=1e-4, atol=1e-5)
    half = feats.standardize_per_step(x, dtype="float16")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, out, atol=5e-3)
    assert not np.isnan(feats.standardize_per_step(np.ones((2, 5, 3)))).any()  # constant step -> zeros


def write_features(root: Path, array: np.ndarray, name: str = "g") -> Path:
    path = root / name / f"{name}.npy"
    np.save(path, array)
    return path


def test_feature_file_is_validated_standardised_and_cached(tmp_path: Path):
    root = make_graph_files(tmp_path)
    g0 = load_graph(cfg(root))
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(g0.num_steps, g0.num_nodes, 5))
    path = write_features(root, x)
    g = load_dataset(cfg(root, features="file"))
    np.testing.assert_allclose(g.features.numpy(), reference_standardise(x), rtol=1e-4, atol=1e-5)
    cached = list((root / "g" / ".cache").glob("g-features-*.npy"))
    assert len(cached) == 1
    g16 = load_dataset(cfg(root, features="auto", feature_dtype="float16", mmap="true"))
    assert g16.features.dtype.is_floating_point and g16.features.element_size() == 2
    assert len(list((root / "g" / ".cache").glob("g-features-*.npy"))) == 2
    # a new file (size/mtime) gets a new standardised copy
    np.save(path, x * 2 + 1)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    load_dataset(cfg(root, features="file"))
    assert len(list((root / "g" / ".cache").glob("g-features-*.npy"))) == 3


def test_shared_2d_features_accepted(tmp_path: Path):
    root = make_graph_files(tmp_path)
    n = load_graph(cfg(root)).num_nodes
    write_features(root, np.random.default_rng(0).normal(size=(n, 3)))
    g = load_dataset(cfg(root, features="file", cache=False))
    assert tuple(g.features.shape) == (n, 3)


@pytest.mark.parametrize("case", ["T", "N", "rank", "nan", "inf"])
def test_bad_feature_arrays_name_the_file(tmp_path: Path, case: str):
    root = make_graph_files(tmp_path)
    g = load_graph(cfg(root))
    T, N = g.num_steps, g.num_nodes
    x = {
        "T": np.zeros((T + 1, N, 4)),
        "N": np.zeros((T, N - 1, 4)),
        "rank": np.zeros((T, N, 4, 1)),
        "nan": np.zeros((T, N, 4)),
        "inf": np.zeros((T, N, 4)),
    }[case]
    if case == "nan":
        x[2, 5, 1] = np.nan
    if case == "inf":
        x[0, 0, 0] = np.inf
    path = write_features(root, x)
    with pytest.raises(DataFormatError) as err:
        load_dataset(cfg(root, features="file"))
    msg = str(err.value)
    assert msg.startswith(f"{path}:") and "\n" not in msg
    assert ("finite" in msg) if case in ("nan", "inf") else (f"T={T}, N={N}" in msg)
    assert list((root / "g" / ".cache").glob("*.npy")) == []  # no half-written cache file


def test_missing_feature_file_with_features_file(tmp_path: Path):
    root = make_graph_files(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"g\.npy not found \(dataset.features=file\)"):
        load_dataset(cfg(root, features="file"))


# ---------------------------------------------------------------- FastRP


def test_fastrp_shape_determinism_and_cache(tmp_path: Path):
    root = make_graph_files(tmp_path)
    g = load_graph(cfg(root, cache=False))
    a = feats.fastrp(g, dim=16, seed=3)
    assert a.shape == (g.num_steps, g.num_nodes, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, feats.fastrp(g, dim=16, seed=3))
    assert not np.allclose(a, feats.fastrp(g, dim=16, seed=4))
    np.testing.assert_allclose(a.reshape(g.num_steps, -1).mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(a.reshape(g.num_steps, -1).std(1), 1, atol=1e-4)
    auto = load_dataset(cfg(root, features="fastrp", feature_dim=16, feature_seed=3))  # cached
    np.testing.assert_allclose(auto.features.numpy(), a, atol=1e-6)
    assert len(list((root / "g" / ".cache").glob("g-fastrp-*.npy"))) == 1


# ---------------------------------------------------------------- DeepWalk


def test_random_walks_follow_edges_of_the_snapshot(tmp_path: Path):
    g = load_graph(cfg(make_graph_files(tmp_path), cache=False))
    indptr, indices = g.cum_indptr.numpy(), g.cum_indices.numpy()
    for t in (0, g.num_steps - 1):
        deg = g.cum_degree[t].numpy()
        allowed = {(u, int(v)) for u in range(g.num_nodes) for v in indices[indptr[u] : indptr[u] + deg[u]]}
        for self_loops in (False, True):
            starts = np.arange(g.num_nodes)
            walks = random_walks(indptr, indices, deg, starts, 12, np.random.default_rng(0), self_loops)
            assert walks.shape == (g.num_nodes, 12) and (walks[:, 0] == starts).all()
            for a, b in zip(walks[:, :-1].ravel().tolist(), walks[:, 1:].ravel().tolist(), strict=True):
                assert (a, b) in allowed or (a == b and (self_loops or deg[a] == 0))
            if not self_loops:
                moved = deg[starts] > 0
                assert (walks[moved, 1:] != walks[moved, :-1]).all()  # no lazy steps without self-loops


def test_corpus_file_tokens_and_counts(tmp_path: Path):
    g = load_graph(cfg(make_graph_files(tmp_path, n=120), cache=False))
    assert bytes(token_table(120)[7]) == b"007 "
    dw = DeepWalkConfig(walks=2, length=5, chunk_walks=50)
    counts, walks = write_corpus(tmp_path / "c.txt", g, 0, dw, np.random.default_rng(0))
    lines = (tmp_path / "c.txt").read_text().splitlines()
    assert walks == len(lines) == 2 * g.num_nodes
    deg0 = g.cum_degree[0].numpy()
    isolated = int((deg0 == 0).sum())
    assert sum(len(line.split()) == 1 for line in lines) == 2 * isolated  # one-token walks
    assert all(len(line.split()) in (1, 5) for line in lines)
    assert counts.sum() == sum(len(line.split()) for line in lines)
    assert counts[119] == 2  # isolated until the last stamp


def test_deepwalk_generates_then_reuses(tmp_path: Path):
    root = make_graph_files(tmp_path)
    config = cfg(root, features="deepwalk", deepwalk={**TINY_DW, "normalize": True})
    g = load_dataset(config)
    path = root / "g" / "g.npy"
    raw = np.load(path)
    assert raw.shape == (g.num_steps, g.num_nodes, 8) and raw.dtype == np.float32
    assert np.isfinite(raw).all()
    np.testing.assert_allclose(np.linalg.norm(raw, axis=2), 1.0, atol=1e-5)
    assert tuple(g.features.shape) == raw.shape  # then standardised per step like any feature file
    mtime = path.stat().st_mtime_ns
    load_dataset(config)
    assert path.stat().st_mtime_ns == mtime  # reused, not regenerated


def test_deepwalk_read_only_folder_goes_to_user_cache(tmp_path: Path, user_cache: Path):
    root = make_graph_files(tmp_path)
    (root / "g").chmod(0o555)
    try:
        g = load_dataset(cfg(root, features="deepwalk"))
        assert load_dataset(cfg(root, features="file")).num_features == 8  # found there by the other modes
    finally:
        (root / "g").chmod(0o755)
    assert not (root / "g" / "g.npy").exists()
    (generated,) = list(user_cache.glob("g-*/g.npy"))
    assert np.load(generated).shape == (g.num_steps, g.num_nodes, 8)


def test_deepwalk_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        DeepWalkConfig.from_cfg({"walk_length": 5})


def _features_main(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """``python src/features.py <args>`` in this process (Hydra reads ``sys.argv``)."""
    import runpy

    script = str(PROJECT / "src" / "features.py")
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(script, run_name="__main__")


def test_features_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    root = make_graph_files(tmp_path)
    args = [
        "dataset=edgelist",
        "dataset.name=g",
        f"dataset.root={root}",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        *[f"dataset.deepwalk.{k}={v}" for k, v in TINY_DW.items()],
    ]
    env = {**os.environ, "SPIKENET_CACHE": str(tmp_path / "user-cache")}
    first = subprocess.run(  # the one real command line
        [sys.executable, str(PROJECT / "src" / "features.py"), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert "features: wrote" in first.stdout and (root / "g" / "g.npy").is_file()
    _features_main(monkeypatch, args)
    out = capsys.readouterr().out
    assert "reusing existing" in out
    regenerate = out.split("`")[1]  # the hint is the same command plus force=true
    assert regenerate.startswith("python src/features.py dataset=edgelist dataset.name=g ")
    assert regenerate.endswith(" force=true")
    with pytest.raises(SystemExit) as stop:
        _features_main(monkeypatch, [*args[:1], f"dataset.root={tmp_path / 'nowhere'}", "dataset.name=g",
                                     f"hydra.run.dir={tmp_path / 'hydra'}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "edges.txt" in err and "../" not in err
