"""``dataset=tgbn``: TGB's node-property files -> snapshots and time-keyed label rows.

Checked against hand-built files (steps, deduplication, ids, label rows, features), against TGB's own
loaders on the shipped toy (``tgb.utils.pre_process``: the same node ids, the same label vectors) and
for chunked reading, bad input and the download path (``requests`` answered from a local zip).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA_ROOT, dataset_config, missing
from omegaconf import OmegaConf

from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError
from spikenet.data.properties import NodeProperties
from spikenet.data.readers.tgb import parse, read_tgbn, tgb_folder
from spikenet.data.readers.tgb_synthetic import TRADE_HEADER, write_csv, write_trade_like

TOY = DATA_ROOT / "tgbn-toy"


def cfg_for(root: Path, name: str, **extra) -> OmegaConf:
    return dataset_config("tgbn", **{"name": name, "root": str(root), "cache": False, "features": "fastrp", **extra})


def write_pair(root: Path, name: str, edges: list[list], labels: list[list], header=TRADE_HEADER) -> None:
    write_csv(root / name / f"{name}_edgelist.csv", header, edges)
    write_csv(root / name / f"{name}_node_labels.csv", header[:4] if len(header) > 4 else header, labels)


def neighbours(graph, t: int, u: int, delta: bool = False) -> list[int]:
    return sorted(graph.neighbours(t, u, delta=delta).tolist()[1:])  # self-loop first, then the stored ones


@pytest.fixture
def small(tmp_path: Path):
    """Nations A, B, C (ids 0, 1, 2 by first appearance); label times 2000 and 2001 -> steps (-inf, 2000],
    (2000, 2001] and one last step for the 2002 edge."""
    edges = [[2000, "A", "B", 1.0], [2000, "A", "B", 2.0], [2000, "B", "C", 1.0], [2001, "C", "A", 4.0],
             [2002, "A", "C", 1.0]]
    labels = [[2000, "A", "B", 0.5], [2000, "A", "C", 0.5], [2001, "B", "A", 1.0], [2001, "B", "A", 0.25]]
    write_pair(tmp_path, "tiny", edges, labels)
    return parse(cfg_for(tmp_path, "tiny"), tmp_path / "tiny")


def test_steps_and_deduplication_by_hand(small) -> None:
    g = small
    assert (g.num_nodes, g.num_steps, g.num_classes) == (3, 3, 3)
    assert g.meta["node_names"].tolist() == ["A", "B", "C"]
    assert (g.meta["interactions"], g.meta["unique_edges"]) == (5, 4)  # the repeated A-B of 2000 collapses
    assert neighbours(g, 0, 0, delta=True) == [1]  # step 0: A-B, B-C
    assert neighbours(g, 0, 1, delta=True) == [0, 2]
    assert neighbours(g, 1, 0, delta=True) == [2]  # step 1: C-A
    assert neighbours(g, 1, 0) == [1, 2]  # G_1 of A: B and C
    assert neighbours(g, 2, 0, delta=True) == [2]  # step 2 (after the last label time): A-C again
    props = NodeProperties.from_meta(g.meta)
    assert props.step_events.tolist() == [3, 1, 1]
    assert props.times.tolist() == [2000.0, 2001.0]
    assert list(zip(props.row_step.tolist(), props.row_node.tolist(), strict=True)) == [(0, 0), (1, 1)]
    np.testing.assert_array_equal(props.dense(np.arange(2), np.float64), [[0, 0.5, 0.5], [0.25, 0, 0]])  # last wins


def test_history_and_weight_features_by_hand(small) -> None:
    from spikenet.data.properties import step_weight_features
    from spikenet.data.readers.tgb import unpack

    props = NodeProperties.from_meta(small.meta)
    hist = props.history_features(3, 3)
    np.testing.assert_array_equal(hist[0], np.zeros((3, 3)))  # nothing is known before the first label time
    np.testing.assert_array_equal(hist[1], [[0, 0.5, 0.5], [0, 0, 0], [0, 0, 0]])  # A's label of 2000
    np.testing.assert_array_equal(hist[2], [[0, 0.5, 0.5], [0.25, 0, 0], [0, 0, 0]])  # kept, plus B's of 2001
    step, u, v = unpack(small.meta["edge_keys"])
    w = step_weight_features(u, v, step, small.meta["edge_weights"], 3, 3, 3)
    np.testing.assert_array_equal(w[0], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # A -> B summed (1 + 2) / 3
    np.testing.assert_array_equal(w[1], [[0, 0, 0], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(w[2], [[0, 0, 1], [0, 0, 0], [0, 0, 0]])


def test_history_features_never_see_the_predicted_labels() -> None:
    """Changing every label row of time k or later leaves the features of steps 0..k unchanged."""
    g = parse(cfg_for(DATA_ROOT, "tgbn-toy"), TOY)
    props = NodeProperties.from_meta(g.meta)
    before = props.history_features(g.num_steps, g.num_nodes)
    k = 6
    later = props.indptr[np.searchsorted(props.row_step, k)]
    props.weight = props.weight.copy()
    props.weight[later:] = np.random.default_rng(0).random(props.weight.size - later)
    after = props.history_features(g.num_steps, g.num_nodes)
    np.testing.assert_array_equal(before[: k + 1], after[: k + 1])
    assert not np.array_equal(before[k + 1], after[k + 1])


def test_toy_matches_tgb_loaders() -> None:
    """Node ids and every label vector as TGB's own trade loaders read the shipped files."""
    try:
        from tgb.utils.pre_process import load_edgelist_trade, load_trade_label_dict
    except ImportError:
        missing("py-tgb (pip install -e '.[dev]')")
    g = parse(cfg_for(DATA_ROOT, "tgbn-toy"), TOY)
    df, _, node_ids = load_edgelist_trade(str(TOY / "tgbn-toy_edgelist.csv"))
    label_dict = load_trade_label_dict(str(TOY / "tgbn-toy_node_labels.csv"), node_ids)
    assert list(node_ids) == g.meta["node_names"].tolist()
    assert g.num_classes == len(node_ids)
    props = NodeProperties.from_meta(g.meta)
    assert props.times.tolist() == sorted(label_dict)
    for k, ts in enumerate(props.times):
        rows = props.rows_of_step(k)
        expected = label_dict[int(ts)]
        assert props.row_node[rows].tolist() == sorted(expected)
        for node, vector in zip(props.row_node[rows], props.dense(rows, np.float64), strict=True):
            np.testing.assert_array_equal(vector, expected[int(node)])
    years = np.asarray(df["ts"])  # interactions per step: year <= first label year, then one year each
    steps = np.searchsorted(props.times, years, side="left")
    np.testing.assert_array_equal(np.bincount(steps, minlength=g.num_steps), props.step_events)


def test_chunked_reading_equals_one_pass() -> None:
    one = parse(cfg_for(DATA_ROOT, "tgbn-toy", chunk_rows=10**7), TOY)
    many = parse(cfg_for(DATA_ROOT, "tgbn-toy", chunk_rows=7), TOY)
    for key in ("cum_indptr", "cum_indices", "cum_degree", "delta_indptr", "delta_indices"):
        assert getattr(one, key).equal(getattr(many, key)), key
    for key, value in one.meta.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(many.meta[key]), err_msg=key)


def test_bipartite_formats_number_users_after_the_items(tmp_path: Path) -> None:
    header = ["ts", "src", "subreddit", "num_words", "score"]
    edges = [[10, "u1", "r/a", 5, 3], [20, "u2", "r/b", 7, 1], [20, "u1", "r/b", 2, 4], [35, "u2", "r/a", 1, 2]]
    labels = [[15, "u1", "r/b", 1.0], [30, "u2", "r/a", 0.75], [30, "u2", "r/b", 0.25]]
    write_pair(tmp_path, "tgbn-reddit", edges, labels, header=header)
    g = parse(cfg_for(tmp_path, "tgbn-reddit"), tmp_path / "tgbn-reddit")
    assert g.meta["format"] == "reddit"
    assert g.num_classes == 2 and g.num_nodes == 698 + 2  # users from TGB's class count (698) on
    assert g.meta["node_names"][[0, 1, 698, 699]].tolist() == ["r/a", "r/b", "u1", "u2"]
    props = NodeProperties.from_meta(g.meta)
    assert props.row_node.tolist() == [698, 699]
    np.testing.assert_array_equal(props.dense(np.arange(2), np.float64), [[0, 1], [0.75, 0.25]])
    from spikenet.data.readers.tgb import unpack

    step, u, v = unpack(g.meta["edge_keys"])
    assert sorted(zip(step.tolist(), u.tolist(), v.tolist(), g.meta["edge_weights"].tolist(), strict=True)) == [
        (0, 698, 0, 3.0), (1, 698, 1, 4.0), (1, 699, 1, 1.0), (2, 699, 0, 2.0)]  # weights: reddit's score column


def test_bad_rows_name_their_line(tmp_path: Path) -> None:
    write_pair(tmp_path, "bad", [[2000, "A", "B", 1.0], ["twenty", "B", "A", 1.0]], [[2000, "A", "B", 1.0]])
    with pytest.raises(DataFormatError, match=r"bad_edgelist\.csv:3: expected a finite number in column 1"):
        parse(cfg_for(tmp_path, "bad"), tmp_path / "bad")
    write_pair(tmp_path, "unknown", [[2000, "A", "B", 1.0]], [[2000, "A", "B", 1.0], [2000, "Z", "B", 1.0]])
    with pytest.raises(DataFormatError, match=r"unknown_node_labels\.csv:3: node 'Z' does not occur"):
        parse(cfg_for(tmp_path, "unknown"), tmp_path / "unknown")
    write_pair(tmp_path, "neg", [[2000, "A", "B", 1.0]], [[2000, "A", "B", -1.0]])
    with pytest.raises(DataFormatError, match=r"neg_node_labels\.csv:2: expected a weight >= 0"):
        parse(cfg_for(tmp_path, "neg"), tmp_path / "neg")


def test_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"tgbn-trade: missing tgbn-trade_edgelist\.csv.*download=true"):
        read_tgbn(cfg_for(tmp_path, "tgbn-trade", download=False))


def test_tgb_folder_name_is_accepted(tmp_path: Path) -> None:
    shutil.copytree(TOY, tmp_path / "tgbn_toy")
    assert tgb_folder(cfg_for(tmp_path, "tgbn-toy")) == tmp_path / "tgbn_toy"


def test_download_fetches_tgb_zip(tmp_path: Path, monkeypatch) -> None:
    """dataset.download=true asks py-tgb's URL table and unpacks the zip into the dataset folder."""
    try:
        import requests
        from tgb.utils.info import DATA_URL_DICT
    except ImportError:
        missing("py-tgb (pip install -e '.[dev]')")
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as z:
        for kind in ("edgelist", "node_labels"):
            z.write(TOY / f"tgbn-toy_{kind}.csv", f"tgbn-trade_{kind}.csv")
    asked = []

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self) -> None:
            pass

        def iter_content(self, chunk_size: int):
            data = blob.getvalue()
            return (data[i : i + chunk_size] for i in range(0, len(data), chunk_size))

    monkeypatch.setattr(requests, "get", lambda url, **kw: asked.append(url) or Response())
    graph = read_tgbn(cfg_for(tmp_path, "tgbn-trade", download=True))
    assert asked == [DATA_URL_DICT["tgbn-trade"]]
    assert graph.meta["format"] == "trade" and graph.num_nodes == 24
    assert sorted(p.name for p in (tmp_path / "tgbn-trade").iterdir()) == [
        "tgbn-trade_edgelist.csv", "tgbn-trade_node_labels.csv"]


def test_cached_graph_keeps_the_label_rows(tmp_path: Path) -> None:
    write_trade_like(tmp_path / "tgbn-x", "tgbn-x", num_nations=6, num_years=5, seed=1)
    cfg = cfg_for(tmp_path, "tgbn-x", cache=True, features="labels")
    first = read_tgbn(cfg)
    second = read_tgbn(cfg)
    assert "cache_file" in second.meta and first.features.equal(second.features)
    a, b = NodeProperties.from_meta(first.meta), NodeProperties.from_meta(second.meta)
    for key in ("times", "row_step", "row_node", "indptr", "index", "weight", "step_events"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


def test_genre_like_standin_reads_back(tmp_path: Path) -> None:
    """The benchmark's genre-sized generator at a small size: TGB's genre layout, weekly shares keyed by day."""
    import pandas as pd

    from spikenet.data.readers.tgb_synthetic import DAY, write_genre_like

    events, label_rows = write_genre_like(tmp_path / "g", "g", num_users=20, num_genres=30, num_events=3000,
                                          num_days=15, tastes=4, block_days=4, start=0)
    g = parse(cfg_for(tmp_path, "g", format="genre"), tmp_path / "g")
    props = NodeProperties.from_meta(g.meta)
    assert g.meta["interactions"] == events == 3000 and props.index.size == label_rows
    assert np.array_equal(props.times, np.arange(15) * DAY)  # one label time per day
    assert g.num_nodes == 513 + len(set(g.meta["node_names"][513:])) and props.dim <= 30
    sums = np.add.reduceat(props.weight, props.indptr[:-1])
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    edges = pd.read_csv(tmp_path / "g" / "g_edgelist.csv")
    week = edges[(edges.ts >= 3 * DAY) & (edges.ts < 10 * DAY)]
    user = week.user_id.iloc[0]
    shares = week[week.user_id == user].groupby("genre").weight.sum()
    node = 513 + g.meta["node_names"][513:].tolist().index(user)
    row = np.flatnonzero((props.row_step == 3) & (props.row_node == node))[0]
    item_names = g.meta["node_names"][: props.dim]
    got = dict(zip(item_names[props.index[props.indptr[row]:props.indptr[row + 1]]],
                   props.weight[props.indptr[row]:props.indptr[row + 1]], strict=True))
    assert set(got) == set(shares.index)
    np.testing.assert_allclose([got[k] for k in shares.index], shares.to_numpy() / shares.sum(), atol=1e-6)
