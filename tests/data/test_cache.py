"""Preprocessing cache: hits, invalidation by source change or config, atomic writes, read-only fallback."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if importlib.util.find_spec("spikenet") is None:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from conftest import dataset_config  # noqa: E402

from spikenet.data import READERS, load_dataset, load_graph  # noqa: E402
from spikenet.data.readers import reference as readers  # noqa: E402
from spikenet.data.storage import cache, guards  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "data"  # the datasets shipped with the project


def make_dblp(root: Path, edges: str = "0 1 0.0\n1 2 0.5\n2 3 0.5\n3 0 0.25\n") -> Path:
    folder = root / "dblp"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dblp.txt").write_text(edges)
    (folder / "node2label.txt").write_text("0 0\n1 1\n2 0\n3 1\n")
    return root


def cfg(root: Path, **kw):
    return dataset_config("dblp", **{"root": str(root), "features": "fastrp", "feature_dim": 4, **kw})


@pytest.fixture
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the user-cache fallback inside the test's folder."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("SPIKENET_CACHE", str(folder))
    return folder


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls of the DBLP reader (the registry looks readers up by name at call time)."""
    calls: list[int] = []
    original = readers.read_dblp

    def counting(c):
        calls.append(1)
        return original(c)

    # the same entry (metadata, place among the choices) with the counting function; restored afterwards
    monkeypatch.setitem(READERS._entries, "dblp", dataclasses.replace(READERS.entry("dblp"), obj=counting))
    return calls


def graph_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("dblp-graph-*.npz")) if directory.exists() else []


def test_cache_hit_skips_parsing(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    first = load_graph(cfg(root))
    assert len(count_reads) == 1
    assert len(graph_files(root / "dblp" / ".cache")) == 1
    second = load_graph(cfg(root))
    assert len(count_reads) == 1, "second load should come from the cache"
    assert second.meta["cache_file"] == first.meta["cache_file"]
    for name in ("cum_indptr", "cum_indices", "cum_degree", "delta_indptr", "delta_indices", "labels"):
        assert getattr(second, name).equal(getattr(first, name)), name
    assert (second.num_nodes, second.num_steps, second.num_classes) == (4, 3, 2)
    assert second.meta["interactions"] == 4


def test_source_change_invalidates(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    assert load_graph(cfg(root)).num_steps == 3
    make_dblp(root, "0 1 0.0\n1 2 0.5\n2 3 0.75\n3 0 0.25\n")  # same size, new content and mtime
    path = root / "dblp" / "dblp.txt"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    g = load_graph(cfg(root))
    assert len(count_reads) == 2 and g.num_steps == 4
    assert len(graph_files(root / "dblp" / ".cache")) == 1  # the stale entry was overwritten, not added to


def test_label_file_change_invalidates(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    assert load_graph(cfg(root)).labels.tolist() == [0, 1, 0, 1]
    path = root / "dblp" / "node2label.txt"
    path.write_text("0 1\n1 0\n2 1\n3 0\n")  # same size: only the content and the mtime change
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    g = load_graph(cfg(root))
    assert len(count_reads) == 2, "a changed label file must be parsed again"
    assert g.labels.tolist() == [1, 0, 1, 0]
    assert len(graph_files(root / "dblp" / ".cache")) == 1


def test_limits_and_mmap_settings_share_the_entry(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    load_graph(cfg(root))
    load_graph(cfg(root, max_steps=5, mmap="true", mmap_share=0.9))
    assert len(count_reads) == 1


def test_structure_cache_refused_when_the_disk_is_full(
    tmp_path: Path, user_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    root = make_dblp(tmp_path)
    monkeypatch.setattr(guards, "free_disk", lambda path: 100)
    with pytest.raises(guards.TooLargeError) as err:
        load_graph(cfg(root))
    msg = str(err.value)
    assert msg.startswith("dblp: the structure cache needs about ") and "100 B is free on disk at " in msg
    assert "dataset.cache=false" in msg and "\n" not in msg
    assert list((root / "dblp" / ".cache").glob("*")) == []  # nothing written, no temporary left


def test_config_is_part_of_the_key(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    assert load_graph(cfg(root)).num_steps == 3
    assert load_graph(cfg(root, merge=2)).num_steps == 2
    assert load_graph(cfg(root, features="auto", feature_dim=16)).num_steps == 3  # feature keys: same entry
    assert len(count_reads) == 2
    assert len(graph_files(root / "dblp" / ".cache")) == 2


def test_cache_disabled(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    load_dataset(cfg(root, cache=False))
    load_dataset(cfg(root, cache=False))
    assert len(count_reads) == 2
    assert not (root / "dblp" / ".cache").exists() and not user_cache.exists()


def test_explicit_cache_dir(tmp_path: Path, user_cache: Path):
    root = make_dblp(tmp_path)
    load_dataset(cfg(root, cache_dir=str(tmp_path / "elsewhere")))
    assert len(graph_files(tmp_path / "elsewhere")) == 1
    assert len(list((tmp_path / "elsewhere").glob("dblp-fastrp-*.npy"))) == 1
    assert not (root / "dblp" / ".cache").exists()


def test_read_only_dataset_folder_falls_back_to_user_cache(
    tmp_path: Path, user_cache: Path, count_reads: list[int]
):
    root = make_dblp(tmp_path)
    folder = root / "dblp"
    folder.chmod(0o555)  # like CI's ../shared (honoured even when the tests run as root)
    try:
        load_dataset(cfg(root))
        load_dataset(cfg(root))
    finally:
        folder.chmod(0o755)
    assert len(count_reads) == 1
    assert not (folder / ".cache").exists()
    (sub,) = list(user_cache.iterdir())
    assert sub.name.startswith("dblp-") and len(graph_files(sub)) == 1
    assert len(list(sub.glob("dblp-fastrp-*.npy"))) == 1


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, user_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    root = make_dblp(tmp_path)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    g = load_graph(cfg(root))  # the load still succeeds; only the cache is skipped
    assert g.num_nodes == 4 and "cache_file" not in g.meta
    assert list((root / "dblp" / ".cache").iterdir()) == []


def test_atomic_path_replaces_only_on_success(tmp_path: Path):
    target = tmp_path / "x.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), cache.atomic_path(target) as tmp:
        tmp.write_bytes(b"new, but incomplete")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    with cache.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temporary file left behind


def test_corrupt_cache_file_is_ignored(tmp_path: Path, user_cache: Path, count_reads: list[int]):
    root = make_dblp(tmp_path)
    load_graph(cfg(root))
    (path,) = graph_files(root / "dblp" / ".cache")
    path.write_bytes(b"garbage")
    assert load_graph(cfg(root)).num_nodes == 4
    assert len(count_reads) == 2


def test_real_dblp_second_load_reads_only_the_cache(tmp_path: Path, monkeypatch):
    """The second load of the real DBLP neither parses the text files nor recomputes FastRP: it is the cache."""
    config = cfg(DATA, cache_dir=str(tmp_path), feature_dim=128)
    first = load_dataset(config)

    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit must not rebuild this")

    import spikenet.data.features.cache as feature_cache
    import spikenet.data.readers.reference as readers

    monkeypatch.setattr(readers, "build_structure", refuse)
    monkeypatch.setattr(feature_cache, "fastrp", refuse)
    g = load_dataset(config)
    assert tuple(g.features.shape) == (25, 25_387, 128)
    assert torch.equal(g.cum_indices, first.cum_indices) and torch.equal(g.delta_indptr, first.delta_indptr)
    assert torch.equal(g.features, first.features)
