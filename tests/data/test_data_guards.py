"""Size guards and the memory-map decision: refusals come before anything big is written, leave no
temporaries, and name the estimate, what is free and a fix; the mmap choice is a function of sizes."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_config

from spikenet.data import load_dataset, load_graph
from spikenet.data.features import cache as feature_cache
from spikenet.data.features.files import generate_deepwalk
from spikenet.data.readers import reference as readers
from spikenet.data.storage import guards

GiB = 1 << 30
TINY_DW = {"walks": 2, "length": 10, "dim": 8, "window": 3, "workers": 1, "seed": 0}


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("SPIKENET_CACHE", str(folder))
    return folder


def edge_list(root: Path, name: str, stamps: np.ndarray, n: int = 50, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, stamps.size), rng.integers(0, n, stamps.size)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{a} {b} {t!r}\n" for a, b, t in zip(src, dst, stamps.tolist(), strict=True))
    (folder / "edges.txt").write_text(rows)
    (folder / "labels.txt").write_text("".join(f"{u} {u % 3}\n" for u in range(min(n, 50))))
    return root


def cfg(root: Path, name: str = "g", **kw):
    base = {"name": name, "root": str(root), "feature_dim": 8, "deepwalk": dict(TINY_DW), "min_class_size": 1,
            "auto_bins": False}
    return dataset_config("edgelist", **{**base, **kw})


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- the memory-map decision


def test_mmap_decision_is_a_function_of_sizes_and_available_memory():
    fp32, fp16 = 4, 2
    dblp = 25 * 25_387 * 128 * fp32  # 325 MB
    tmall = 19 * 577_314 * 128 * fp32  # 5.6 GB (2.8 GB in float16)
    patent = 13 * 2_738_012 * 128 * fp16  # 9.1 GB (18.2 GB in float32)
    machine = 16 * GiB
    assert not guards.use_mmap(dblp, machine)
    assert not guards.use_mmap(tmall, machine) and not guards.use_mmap(tmall // 2, machine)
    assert guards.use_mmap(patent, machine) and guards.use_mmap(patent * 2, machine)
    assert guards.use_mmap(dblp, 512 << 20)  # a small machine maps even DBLP
    assert not guards.use_mmap(patent, 128 * GiB)  # a big one loads Patent
    share = guards.DEFAULT_MMAP_SHARE  # the boundary itself: loaded up to share x available, mapped above
    assert not guards.use_mmap(int(share * machine), machine) and guards.use_mmap(int(share * machine) + 1, machine)
    assert guards.use_mmap(dblp, 2 * GiB, share=0.1) and not guards.use_mmap(dblp, 2 * GiB, share=0.5)


@pytest.mark.parametrize(("available", "mode", "mapped"), [
    (64 * GiB, "auto", False), (1 << 10, "auto", True), (64 * GiB, "true", True), (64 * GiB, "false", False),
])
def test_loaded_features_follow_the_decision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, available: int,
                                             mode: str, mapped: bool):
    root = edge_list(tmp_path, "g", np.arange(4.0).repeat(50))
    load_graph(cfg(root))  # structure cached with the real memory figure
    opened: list[np.ndarray] = []
    original = feature_cache.open_features
    monkeypatch.setattr(feature_cache, "open_features", lambda *a: opened.append(original(*a)) or opened[-1])
    monkeypatch.setattr(guards, "available_ram", lambda: available)
    g = load_dataset(cfg(root, features="fastrp", mmap=mode))
    assert (g.feature_array is not None) == mapped
    assert isinstance(opened[-1], np.memmap) == mapped


def test_forced_load_that_does_not_fit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = edge_list(tmp_path, "g", np.arange(4.0).repeat(50))
    load_dataset(cfg(root, features="fastrp"))  # build the cache with memory to spare
    monkeypatch.setattr(guards, "available_ram", lambda: 1 << 10)
    with pytest.raises(guards.TooLargeError, match=r"loading the features \(dataset\.mmap=false\) needs about "
                                                   r".* but 1\.0 kB memory is available; fix: .*dataset\.mmap=auto"):
        load_dataset(cfg(root, features="fastrp", mmap="false"))


# ---------------------------------------------------------------- snapshots


def test_continuous_stamps_are_refused_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    stamps = np.random.default_rng(1).random(2000) * 1e6  # ~2000 distinct continuous stamps
    root = edge_list(tmp_path, "btc", stamps, n=60)
    before = files_under(root)

    def no_build(*args, **kwargs):
        raise AssertionError("the snapshots must not be built")

    build = readers.build_structure
    monkeypatch.setattr(readers, "build_structure", no_build)
    with pytest.raises(guards.TooLargeError) as err:
        load_dataset(cfg(root, "btc", features="fastrp"))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"btc: {np.unique(stamps).size} snapshots exceed dataset.max_steps=1000 (")
    assert "available" in msg and "raise dataset.max_steps" in msg
    command = msg.split("`")[1]
    assert command.startswith("python src/run.py dataset=edgelist dataset.name=btc ")
    assert command.endswith(f"dataset.time_bins={guards.SUGGESTED_STEPS}")
    assert files_under(root) == before  # no cache, no features, no temporary
    monkeypatch.setattr(readers, "build_structure", build)
    # the fix works: compose the suggested command and load the dataset
    from conftest import compose_config

    composed = compose_config(shlex.split(command)[2:])
    g = load_dataset(composed.dataset)
    assert g.num_steps == guards.SUGGESTED_STEPS and g.name == "btc"


def test_step_limit_can_be_raised_and_merge_is_suggested_for_string_stamps(tmp_path: Path):
    root = edge_list(tmp_path, "g", np.arange(12.0).repeat(5))
    assert load_graph(cfg(root, max_steps=12, cache=False)).num_steps == 12
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "edges.txt").write_text("".join(f"{i % 7} {(i + 1) % 7} week{i + 1:02d}\n" for i in range(12)))
    with pytest.raises(guards.TooLargeError, match=r"^s: 12 snapshots exceed dataset\.max_steps=5 .*"
                                                   r"dataset\.merge=3`, or raise dataset\.max_steps$"):
        load_graph(cfg(tmp_path, "s", labels=None, max_steps=5, cache=False))
    with pytest.raises(ValueError, match=r"^dataset\.max_steps must be >= 1, got 0$"):
        load_graph(cfg(tmp_path, "s", labels=None, max_steps=0, cache=False))


def test_snapshots_that_do_not_fit_in_memory_are_refused_with_a_fix_that_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    stamps = np.arange(100.0).repeat(2)  # 100 steps, 200 interactions among 2000 node ids
    root = edge_list(tmp_path, "g", stamps, n=2000)
    with open(root / "g" / "edges.txt", "a") as f:
        f.write("1999 0 0.0\n")  # node ids up to 1999: 2000 nodes, 201 interactions
    edges_only, per_step = 8 * 24 * 201, 8 * 3 * 2000  # the estimate's two terms (guards.snapshot_build_bytes)
    ram = (edges_only + 10 * per_step) / guards.HEADROOM + 1  # room for 10 steps
    monkeypatch.setattr(guards, "available_ram", lambda: int(ram))
    with pytest.raises(guards.TooLargeError) as err:
        load_graph(cfg(root, cache=False, compact=False))  # node ids 0..1999 as they are, most unused
    msg = str(err.value)
    assert msg.startswith("g: building 100 snapshots of 2000 nodes needs about 4.8 MB but 576.2 kB memory is ")
    command = msg.split("`")[1]
    assert command.endswith(" dataset.time_bins=10")
    from conftest import compose_config

    g = load_graph(compose_config(shlex.split(command)[2:]).dataset)  # the fix fits the same memory
    assert g.num_steps == 10
    monkeypatch.setattr(guards, "available_ram", lambda: 1000)  # not even the interactions fit: no command
    with pytest.raises(guards.TooLargeError, match=r"the 201 interactions alone need about 38\.6 kB; use a machine"):
        load_graph(cfg(root, cache=False, compact=False))


# ---------------------------------------------------------------- features


def test_feature_build_refused_on_a_full_disk_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = edge_list(tmp_path, "g", np.arange(4.0).repeat(50))
    g = load_graph(cfg(root))  # the structure cache, with room to spare
    before = files_under(root)
    shape = [g.num_steps, g.num_nodes, 8]
    monkeypatch.setattr(guards, "free_disk", lambda path: 4000)  # less than the 6.4 kB of features
    with pytest.raises(guards.TooLargeError) as err:
        load_dataset(cfg(root, features="fastrp"))
    msg = str(err.value)
    assert msg.startswith(f"g: fastrp feature cache {shape} needs about 6.4 kB but 4.0 kB is free on disk at ")
    assert "dataset.feature_dtype=float16" in msg and "dataset.cache=false" in msg
    assert files_under(root) == before  # no feature file, no temporary
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_deepwalk_refused_on_a_full_disk_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = edge_list(tmp_path, "g", np.arange(4.0).repeat(50))
    config = cfg(root, features="deepwalk")
    g = load_graph(config)
    before = files_under(root)
    folder = root / "g"  # room there for one step of [50, 8] float32 (and plenty for caches elsewhere)
    monkeypatch.setattr(guards, "free_disk", lambda path: 2000 if Path(path) == folder else 1 << 40)
    with pytest.raises(guards.TooLargeError) as err:
        generate_deepwalk(g, config, progress=False)
    msg = str(err.value)
    assert msg.startswith("g: DeepWalk feature file [4, 50, 8] needs about 6.4 kB but 2.0 kB is free on disk at ")
    command = msg.split("`")[1]
    assert command.startswith("python src/features.py dataset=edgelist dataset.name=g ")
    assert command.endswith(" dataset.merge=4")
    assert files_under(root) == before
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        fixed = compose(config_name="features", overrides=shlex.split(command)[2:])
    path, generated = generate_deepwalk(load_graph(fixed.dataset), fixed.dataset, progress=False)  # it fits
    assert generated and np.load(path).shape == (1, 50, 8)
    monkeypatch.setattr(guards, "free_disk", lambda path: 100)  # not even one step: no command to offer
    with pytest.raises(guards.TooLargeError, match=r"fix: not even one step fits; free space on the disk at "):
        generate_deepwalk(g, config, force=True, progress=False)


def test_walk_corpus_that_does_not_fit_names_a_working_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = edge_list(tmp_path, "g", np.arange(4.0).repeat(50))
    config = cfg(root, deepwalk={**TINY_DW, "tmp_dir": str(tmp_path / "small")})
    g = load_graph(config)
    small = tmp_path / "small"
    monkeypatch.setattr(guards, "free_disk", lambda path: 10 if Path(path) == small else 1 << 40)
    with pytest.raises(guards.TooLargeError) as err:
        generate_deepwalk(g, config, progress=False)
    msg = str(err.value)
    assert "walk corpus of one snapshot (2 walks of 10 per node)" in msg
    assert msg.endswith(f"dataset.deepwalk.tmp_dir={root / 'g'}`")
    assert not (root / "g" / "g.npy").exists()
