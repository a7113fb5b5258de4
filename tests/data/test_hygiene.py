"""Temporaries of killed writes are removed by the next run (never a live writer's), caches are pruned to
the most recently used entries, and both say so in one log line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_config

from spikenet.data import load_dataset, load_graph
from spikenet.data.storage import hygiene
from spikenet.data.storage.cache import atomic_path

SRC = Path(__file__).resolve().parents[2] / "src"
WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from spikenet.data.storage.cache import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"x" * 4096)
    print(tmp, flush=True)
    time.sleep(120)
"""


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPIKENET_CACHE", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


@pytest.fixture
def logged():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep(logging.INFO)
    logger = logging.getLogger("spikenet.data.storage.hygiene")
    saved = (logger.level, logger.disabled)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    yield records
    logger.removeHandler(handler)
    logger.setLevel(saved[0])
    logger.disabled = saved[1]


def start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process in the middle of an atomic write of ``target``; returns it and its temporary."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(SRC)], stdout=subprocess.PIPE, text=True)
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_file() and tmp.parent == target.parent
    return proc, tmp


def graph_files(root: Path, name: str = "g") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "edges.txt").write_text("".join(f"{i % 9} {(i * 4 + 1) % 9} {i % 4}\n" for i in range(40)))
    (folder / "labels.txt").write_text("".join(f"{u} {u % 2}\n" for u in range(9)))
    return root


def cfg(root: Path, **kw):
    base = {"name": "g", "root": str(root), "features": "fastrp", "feature_dim": 8, "min_class_size": 1,
            "auto_bins": False}
    return dataset_config("edgelist", **{**base, **kw})


# ---------------------------------------------------------------- temporaries


def test_killed_writers_temporary_is_removed_and_a_live_ones_spared(tmp_path: Path, logged: list[str]):
    root = graph_files(tmp_path)
    cache_dir = root / "g" / ".cache"
    cache_dir.mkdir()
    live, live_tmp = start_writer(cache_dir / "g-fastrp-0123456789abcdef.npy")  # another run, still writing
    doomed, doomed_tmp = start_writer(cache_dir / "g-graph-fedcba9876543210.npz")
    try:
        assert f"-{doomed.pid}." in doomed_tmp.name and hygiene.HOST in doomed_tmp.name
        doomed.send_signal(signal.SIGKILL)  # as the OOM killer would
        doomed.wait()
        assert doomed_tmp.is_file()  # a killed write leaves its temporary behind
        load_graph(cfg(root))  # the next run tidies up before reading
        assert not doomed_tmp.exists()
        assert live_tmp.is_file()  # never a live writer's
        (line,) = [m for m in logged if "temporary file" in m]
        assert line.startswith(f"removed 1 temporary file(s) of killed writes in {cache_dir} (4.1 kB): ")
        assert doomed_tmp.name in line
    finally:
        live.kill()
        live.wait()
    assert live_tmp.is_file()  # killed now: the next run removes it
    load_dataset(cfg(root))
    assert not live_tmp.exists()


def test_temporaries_by_name_and_age(tmp_path: Path):
    now = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        def make(name: str, age: float) -> Path:
            path = tmp_path / name
            path.write_bytes(b"x")
            os.utime(path, (now - age, now - age))
            return path

        ours = make(f".a.npz.{hygiene.HOST}-{os.getpid()}.abc.tmp", 3600)  # this process: in progress
        reused = make(f".b.npz.{hygiene.HOST}-{child.pid}.abc.tmp", 3600)  # the PID now runs a newer process
        alive = make(f".c.npz.{hygiene.HOST}-{child.pid}.abc.tmp", 0)  # written after that process started
        foreign_new = make(".d.npz.otherhost-1.abc.tmp", 60)  # another machine's, recent
        foreign_old = make(".e.npz.otherhost-1.abc.tmp", 2 * hygiene.FOREIGN_AGE)
        legacy_old = make(".f.npz.k2j3h4ab.tmp", now - hygiene.START + 60)  # before this process started
        legacy_new = make(".g.npz.k2j3h4ab.tmp", 0)
        users = make(".notes.tmp", 3600), make("draft.npy.tmp999999999", 3600)  # not our names here
        data = make("edges.txt", 3600)
        gone = hygiene.remove_stale_temporaries([tmp_path])
        assert sorted(p.name for p in gone) == sorted(p.name for p in (reused, foreign_old, legacy_old))
        for kept in (ours, alive, foreign_new, legacy_new, data, *users):
            assert kept.is_file(), kept.name
        synthetic_dead = make("s-0123456789ab.npy.tmp999999999", 0)  # the generator's own naming, PID gone
        gone = hygiene.remove_stale_temporaries([tmp_path], synthetic=True)  # in the generator's folder only
        assert sorted(p.name for p in gone) == sorted([synthetic_dead.name, users[1].name])
    finally:
        child.kill()
        child.wait()


def test_atomic_path_names_carry_host_and_pid(tmp_path: Path):
    with atomic_path(tmp_path / "x.npy") as tmp:
        assert tmp.name.startswith(f".x.npy.{hygiene.HOST}-{os.getpid()}.") and tmp.name.endswith(".tmp")
        assert not hygiene.stale_temporary(tmp)
        tmp.write_bytes(b"1")
    assert (tmp_path / "x.npy").read_bytes() == b"1" and not tmp.exists()


# ---------------------------------------------------------------- pruning


def test_prune_keeps_the_most_recently_used_per_dataset_and_kind(tmp_path: Path, logged: list[str]):
    now = time.time()
    names = []
    for i in range(6):
        name = f"g-graph-{i:016x}.npz"
        (tmp_path / name).write_bytes(b"x" * 1000)
        os.utime(tmp_path / name, (now - 100 * i, now - 100 * i))  # entry 0 newest
        names.append(name)
    (tmp_path / "g-fastrp-00000000000000ff.npy").write_bytes(b"y")  # another kind
    (tmp_path / "h-graph-00000000000000ff.npz").write_bytes(b"z")  # another dataset
    (tmp_path / "notes.txt").write_text("mine")
    hygiene.touch(tmp_path / names[5])  # the oldest was just used
    removed = hygiene.prune(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == sorted(names[2:5])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([names[0], names[1], names[5], "g-fastrp-00000000000000ff.npy",
                           "h-graph-00000000000000ff.npz", "notes.txt"])
    (line,) = logged
    assert line.startswith(f"pruned 3 cache entries in {tmp_path} (3.0 kB; dataset.cache_keep=3 per dataset and kind)")
    with pytest.raises(ValueError, match=r"dataset\.cache_keep must be >= 1"):
        hygiene.prune(tmp_path, keep=0)


def test_caches_of_many_configurations_stay_bounded(tmp_path: Path):
    root = graph_files(tmp_path)
    for bins in range(1, 7):  # six configurations, six structure caches and six feature caches
        load_dataset(cfg(root, time_bins=bins, cache_keep=2))
    cache_dir = root / "g" / ".cache"
    kinds = [p.name.split("-")[1] for p in cache_dir.iterdir() if not p.name.startswith(".")]
    assert sorted(kinds) == ["fastrp", "fastrp", "graph", "graph"]
    g = load_graph(cfg(root, time_bins=6, cache_keep=2))  # the newest entry is still a hit
    assert g.num_steps == 6 and Path(g.meta["cache_file"]).is_file()
    assert np.isfinite(load_dataset(cfg(root, time_bins=6, cache_keep=2)).features.numpy()).all()
