"""The snapshot cost model and the automatic time bins of ``dataset=edgelist``: the estimate's terms, the
choice (largest ladder count within the budgets), its one info line, the refusal with a working command,
the empty-snapshot warning, and the cached graph re-checked against the budget."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_config

from spikenet.data import load_graph
from spikenet.data.snapshots import cost as snapshot_cost
from spikenet.data.snapshots.cost import Budget, TrainShape, choose_steps, estimate
from spikenet.data.storage import guards

GB = 10**9


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPIKENET_CACHE", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


@pytest.fixture
def logged():
    records: list[tuple[int, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((record.levelno, record.getMessage()))

    handler = Keep(logging.INFO)
    loggers = [logging.getLogger(n) for n in ("spikenet.data.readers.edgelist", "spikenet.data.snapshots.plan")]
    saved = [(lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.disabled = False
    yield records
    for lg, (level, disabled) in zip(loggers, saved, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.disabled = disabled


def stamped_graph(root: Path, stamps: np.ndarray, nodes: int = 60, name: str = "g", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, nodes, stamps.size), rng.integers(0, nodes, stamps.size)
    src[0], dst[0] = nodes - 1, 0  # every id of the label file is a node
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "edges.csv").write_text("a,b,t\n" + "".join(
        f"{u},{v},{t!r}\n" for u, v, t in zip(src, dst, stamps.tolist(), strict=True)))
    (folder / "labels.csv").write_text("".join(f"{u},{u % 3}\n" for u in range(nodes)))
    return root


def cfg(root: Path, **kw):
    base = {"name": "g", "root": str(root), "edges": "edges.csv", "labels": "labels.csv",
            "cache": False, "features": "fastrp", "feature_dim": 8, "auto_bins": True, "epoch_seconds": 1e9,
            "memory_share": 1.0, "max_steps": 1000, "empty_bins": "keep", "compact": False, "min_class_size": 1}
    return dataset_config("edgelist", **{**base, **kw})


def set_ram(monkeypatch: pytest.MonkeyPatch, total: float, available: float | None = None) -> None:
    monkeypatch.setattr(guards, "total_ram", lambda: int(total))
    monkeypatch.setattr(guards, "available_ram", lambda: int(total if available is None else available))


# ---------------------------------------------------------------- the estimate


def test_estimate_terms_follow_the_shapes():
    shape = TrainShape.from_cfg()
    assert shape.rows_per_target == 1 + 5 + 5 * 2
    e = estimate(100, 3219, 40_000, 3219, shape, threads=2)
    n_val = round(0.05 * 3219)
    n_train = round(0.4 * 3219) - n_val
    n_test = 3219 - n_train - n_val
    assert e.parts["structure"] == 8 * (2 * 100 * 3219 + 4 * 40_000 + 2 * 3219)
    assert e.parts["features"] == 100 * 3219 * 128 * 4
    assert e.parts["train_rows"] == 100 * n_train * 16 and e.parts["eval_rows"] == 100 * n_val * 16
    assert e.parts["batches"] == -(-n_train // 1024)
    assert e.parts["train_batch"] == int(snapshot_cost.BYTES_PER_BATCH_ROW * 100 * 1024 * 16)
    assert e.parts["eval_batch"] == int(snapshot_cost.BYTES_PER_EVAL_ROW * 100 * n_test * 16)
    assert e.parts["tables"] == 2 * 100 * 3219 * 128 * 4  # the test split projects layer 0 first
    evaluate = e.parts["tables"] + e.parts["eval_batch"]
    assert e.peak_bytes == snapshot_cost.BASE_BYTES + e.parts["structure"] + e.parts["features"] + max(
        e.parts["train_batch"], evaluate)
    seconds = (snapshot_cost.SECONDS_PER_BATCH * e.parts["batches"] + snapshot_cost.SECONDS_PER_ROW
               * (e.parts["train_rows"] + snapshot_cost.EVAL_ROW_SHARE * e.parts["eval_rows"]))
    assert e.epoch_seconds == pytest.approx(seconds)
    # more steps, nodes or threads move it the right way
    assert estimate(200, 3219, 40_000, 3219, shape, 2).peak_bytes > e.peak_bytes
    assert estimate(200, 3219, 40_000, 3219, shape, 2).epoch_seconds > e.epoch_seconds
    assert estimate(100, 30_000, 40_000, 30_000, shape, 2).epoch_seconds > e.epoch_seconds
    assert estimate(100, 3219, 40_000, 3219, shape, 8).epoch_seconds < e.epoch_seconds
    small_batch = TrainShape.from_cfg(batch_size=256)
    assert estimate(100, 3219, 40_000, 3219, small_batch, 2).parts["train_batch"] == e.parts["train_batch"] // 4


def test_dblp_and_tmall_anchor_the_time_model():
    """The two idle-machine figures of the README the constants are scaled to and checked against."""
    dblp = estimate(25, 25_387, 185_480, 25_387, TrainShape.from_cfg(), threads=2)
    assert dblp.epoch_seconds == pytest.approx(2.89, rel=0.05)
    tmall = estimate(19, 577_314, 4_807_545, 577_314, TrainShape.from_cfg(), threads=2)
    assert 45 < tmall.epoch_seconds < 65  # README: 55-60 s (0.28-0.30 s per batch, 198 batches)


def test_the_shape_comes_from_the_run_config():
    from conftest import compose_config

    c = compose_config(["dataset=edgelist", "trainer.batch_size=256", "sampler.sizes=[3,3]", "model.hids=[64,8]"])
    shape = TrainShape.from_cfg(c.dataset)
    assert (shape.batch_size, shape.sizes, shape.hids, shape.feature_dim) == (256, (3, 3), (64, 8), 128)
    assert shape.rows_per_target == 1 + 3 + 9
    # src/features.py composes no trainer/sampler/model: the groups' own defaults (read from their YAML files)
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        features = compose("features", overrides=["dataset=edgelist"])
    assert features.dataset.cost.batch_size is None
    assert TrainShape.from_cfg(features.dataset) == TrainShape.from_cfg(compose_config(["dataset=edgelist"]).dataset)


# ---------------------------------------------------------------- the choice


def test_choice_keeps_the_stamps_when_they_fit_and_bins_to_the_largest_ladder_count_that_does():
    shape = TrainShape.from_cfg()
    args = (3219, 40_000, 3219, shape)
    raw = choose_steps(900, *args, Budget(1e15, 1e9), 1000, threads=2)
    assert (raw.steps, raw.changed, raw.fits) == (900, False, True)
    # a memory budget between the estimates at 100 and 128 steps -> 100
    lo, hi = (estimate(t, *args, threads=2).peak_bytes for t in (100, 128))
    plan = choose_steps(900, *args, Budget((lo + hi) / 2, 1e9), 1000, threads=2)
    assert (plan.steps, plan.binding, plan.changed) == (100, "memory", True)
    assert plan.estimate.peak_bytes <= (lo + hi) / 2 < plan.raw_estimate.peak_bytes
    # a time budget between 64 and 80 steps -> 64
    lo, hi = (estimate(t, *args, threads=2).epoch_seconds for t in (64, 80))
    plan = choose_steps(900, *args, Budget(1e15, (lo + hi) / 2), 1000, threads=2)
    assert (plan.steps, plan.binding) == (64, "time")
    # the time target alone never goes below MIN_AUTO_STEPS
    plan = choose_steps(900, *args, Budget(1e15, 1e-9), 1000, threads=2)
    assert plan.steps == snapshot_cost.MIN_AUTO_STEPS and plan.fits
    # max_steps caps it; nothing fits -> fits is false
    assert choose_steps(900, *args, Budget(1e15, 1e9), 500, threads=2).steps == 500
    assert not choose_steps(900, *args, Budget(1.0, 1e9), 1000, threads=2).fits


def test_reader_bins_automatically_with_one_info_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged):
    stamps = np.random.default_rng(1).random(900) * 1e6  # 900 distinct continuous stamps
    root = stamped_graph(tmp_path, stamps)
    set_ram(monkeypatch, 100 * GB)
    every = load_graph(cfg(root, auto_bins=False))
    assert every.num_steps == 900
    shape_args = (every.num_nodes, every.meta["structure_interactions"], 60, TrainShape.from_cfg(cfg(root)))
    lo, hi = (estimate(t, *shape_args).peak_bytes for t in (100, 128))
    share = (lo + hi) / 2 / (100 * GB)  # a memory budget between the estimates at 100 and 128 steps
    config = cfg(root, memory_share=share)
    expected = choose_steps(900, *shape_args, Budget(share * 100 * GB, 1e9), 1000)
    assert expected.steps == 100
    logged.clear()
    g = load_graph(config)
    assert g.num_steps == expected.steps < 900 and g.meta["auto_bins"] == expected.steps
    lines = [m for level, m in logged if level == logging.INFO and "distinct time stamps" in m]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("g: 900 distinct time stamps would make 900 snapshots, about ")
    assert f"using dataset.time_bins={expected.steps} (equal-width bins" in line
    assert "dataset.time_bins=K" in line and "dataset.auto_bins=false" in line and "memory budget" in line
    # a hint printed for this dataset afterwards (e.g. the DeepWalk command) builds the same snapshots
    from spikenet.data.storage import hints

    assert f"dataset.time_bins={expected.steps}" in hints.command(config, "features").split()
    cached = load_graph(cfg(root, memory_share=share, cache=True))
    assert load_graph(cfg(root, memory_share=share, cache=True)).meta.get("cache_file") == cached.meta["cache_file"]
    assert f"dataset.time_bins={expected.steps}" in hints.command(config, "features").split()  # cache hit too
    assert load_graph(cfg(root, memory_share=share, time_bins=7)).num_steps == 7  # the override it names


def test_string_stamps_are_merged_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "edges.csv").write_text("".join(f"{i % 50},{(i * 7) % 50},w{i:04d}\n" for i in range(400)))
    (folder / "labels.csv").write_text("".join(f"{u},{u % 2}\n" for u in range(50)))
    set_ram(monkeypatch, 100 * GB)
    g = load_graph(cfg(tmp_path, max_steps=100))  # 400 distinct stamps, at most 100 steps
    assert g.meta["auto_merge"] == 4 and g.num_steps == 100
    assert any("using dataset.merge=4" in m for _, m in logged)


def test_refusal_carries_a_command_that_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from conftest import compose_config

    root = stamped_graph(tmp_path, np.arange(50.0), nodes=2000)
    composed = compose_config(["dataset=edgelist", "dataset.name=g", f"dataset.root={root}", "dataset.edges=edges.csv",
                               "dataset.labels=labels.csv", "dataset.cache=false", "dataset.feature_dim=8",
                               "dataset.compact=false"])
    every = load_graph(cfg(root, auto_bins=False))
    args = (2000, every.meta["structure_interactions"], 2000)
    full, half = (estimate(1, *args, TrainShape.from_cfg(composed.dataset, batch_size=b, eval_batch_size=b)).peak_bytes
                  for b in (1024, 512))
    share = composed.dataset.memory_share
    set_ram(monkeypatch, (full + half) / 2 / share)  # one snapshot fits at batch 512, not at 1024
    with pytest.raises(guards.TooLargeError) as err:
        load_graph(composed.dataset)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("g: even 1 snapshot needs about ")
    command = msg.split("`")[1]
    assert "trainer.batch_size=" in command
    fixed = compose_config(shlex.split(command)[2:])
    g = load_graph(fixed.dataset)  # the command fits the same machine
    assert g.num_steps == 1 and fixed.trainer.batch_size == 512 == fixed.trainer.eval_batch_size
    assert "dataset.time_bins=1" in command


# ---------------------------------------------------------------- empty snapshots


def test_identical_stamps_with_time_bins_warn_about_empty_snapshots(tmp_path: Path, logged):
    root = stamped_graph(tmp_path, np.full(40, 5.0))
    g = load_graph(cfg(root, time_bins=10))
    assert g.num_steps == 10 and g.meta["empty_steps"] == 9
    (warning,) = [m for level, m in logged if level == logging.WARNING]
    assert warning.startswith("g: 9 of 10 snapshots have no interactions") and "dataset.time_bins=1" in warning
    logged.clear()
    load_graph(cfg(root))  # one distinct stamp, one step: nothing to warn about
    assert not [m for level, m in logged if level == logging.WARNING]


# ---------------------------------------------------------------- the cache and the choice


def test_cached_choice_is_rechecked_against_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from spikenet.data.readers import edgelist

    root = stamped_graph(tmp_path, np.random.default_rng(2).random(600) * 1e3)
    set_ram(monkeypatch, 100 * GB)
    every = load_graph(cfg(root, auto_bins=False))
    shape_args = (every.num_nodes, every.meta["structure_interactions"], 60, TrainShape.from_cfg(cfg(root)))
    small, large = ((estimate(t, *shape_args).peak_bytes + estimate(u, *shape_args).peak_bytes) / 2 / (100 * GB)
                    for t, u in ((64, 80), (256, 320)))  # budgets between two ladder counts
    reads: list[int] = []
    original = edgelist.read_edges
    monkeypatch.setattr(edgelist, "read_edges", lambda *a: reads.append(1) or original(*a))
    first = load_graph(cfg(root, cache=True, memory_share=small))
    again = load_graph(cfg(root, cache=True, memory_share=small))
    assert len(reads) == 1 and again.num_steps == first.num_steps == 64  # the same choice: a cache hit
    more = load_graph(cfg(root, cache=True, memory_share=large))  # more memory: another choice, rebuilt
    assert len(reads) == 2 and more.num_steps == 256
    assert load_graph(cfg(root, cache=True, auto_bins=False)).num_steps == 600 and len(reads) == 3


def test_automatic_bins_drop_empty_ones_and_use_the_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged):
    # two busy days with a long quiet gap (a school's contacts: day 1, night, day 2)
    rng = np.random.default_rng(3)
    stamps = np.concatenate([rng.random(400), 9 + rng.random(400)]) * 1000
    root = stamped_graph(tmp_path, stamps)
    set_ram(monkeypatch, 100 * GB)
    every = load_graph(cfg(root, auto_bins=False))
    shape_args = (every.num_nodes, every.meta["structure_interactions"], 60, TrainShape.from_cfg(cfg(root)))
    share = estimate(100, *shape_args).peak_bytes / (100 * GB)  # room for about 100 snapshots
    logged.clear()
    g = load_graph(cfg(root, memory_share=share, empty_bins="auto"))
    bins = g.meta["auto_bins"]
    assert bins > 100 >= g.num_steps > 50  # ~80 % of the bins are empty: more bins, all of them busy
    steps_with_edges = {t for t in range(g.num_steps) if g.delta_indices[
        g.delta_indptr[t * g.num_nodes]:g.delta_indptr[(t + 1) * g.num_nodes]].numel()}
    assert steps_with_edges == set(range(g.num_steps))
    (line,) = [m for _, m in logged if "distinct time stamps" in m]
    assert f"dataset.time_bins={bins} (equal-width bins over " in line
    assert f"empty ones dropped: {g.num_steps} snapshots)" in line
    assert not [m for level, m in logged if level == logging.WARNING]
    from spikenet.data.storage import hints

    command = hints.command(cfg(root, memory_share=share, empty_bins="auto"), "features").split()
    assert f"dataset.time_bins={bins}" in command and "dataset.empty_bins=drop" in command  # DeepWalk's: the same
    pinned = load_graph(cfg(root, time_bins=bins, empty_bins="drop", auto_bins=False))
    assert pinned.num_steps == g.num_steps and torch_equal(pinned.delta_indptr, g.delta_indptr)
    kept = load_graph(cfg(root, time_bins=10, empty_bins="keep"))  # a given count keeps them, with a warning
    assert kept.num_steps == 10 and kept.meta["empty_steps"] == 8


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
