"""Dataset readers: every format on small fixture files, step mapping, renumbering, and bad input."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

if importlib.util.find_spec("spikenet") is None:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from conftest import CONF_DIR, dataset_config

from spikenet.data import load_dataset  # noqa: E402
from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError, read_edge_file  # noqa: E402
from spikenet.data.load import load_graph  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "data"  # the datasets shipped with the project (data/dblp)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cfg(root: Path, name: str, **kw):
    """A dataset config as conf/dataset/<name>.yaml would give it, caching off unless asked."""
    option = next((o for o in (name, kw.get("reader")) if o and (CONF_DIR / "dataset" / f"{o}.yaml").is_file()),
                  "dblp")
    base = {"name": name, "root": str(root), "cache": False, "features": "fastrp", "feature_dim": 8}
    if option == "edgelist":
        base.update(min_class_size=1, auto_bins=False)
    return dataset_config(option, **{**base, **kw})


def nbrs(graph, t: int, u: int, delta: bool = False) -> list[int]:
    """Neighbours of u in G_t / ΔG_t, self-loop first, the rest sorted."""
    out = graph.neighbours(t, u, delta=delta).tolist()
    return [out[0], *sorted(out[1:])]


# ---------------------------------------------------------------- DBLP


DBLP_EDGES = """0 1 0.0
0 1 0.0
1 2 0.5
2 3 0.5
3 0 0.25
4 1 0.75
"""
DBLP_LABELS = "0 3\n1 1\n2 1\n3 3\n4 0\n"


@pytest.fixture
def dblp_root(tmp_path: Path) -> Path:
    write(tmp_path / "dblp" / "dblp.txt", DBLP_EDGES)
    write(tmp_path / "dblp" / "node2label.txt", DBLP_LABELS)
    return tmp_path


def test_dblp_counts_steps_and_snapshots(dblp_root: Path):
    g = load_graph(cfg(dblp_root, "dblp"))
    assert (g.num_nodes, g.num_steps, g.num_classes) == (5, 4, 3)  # stamps 0, .25, .5, .75
    assert g.labels.tolist() == [2, 1, 1, 2, 0]  # classes 0, 1, 3 -> 0, 1, 2
    assert nbrs(g, 0, 0) == [0, 1]
    assert nbrs(g, 1, 0) == [0, 1, 3]  # G_1 = ΔG_0 ∪ ΔG_1
    assert nbrs(g, 1, 0, delta=True) == [0, 3]
    assert nbrs(g, 2, 2) == [2, 1, 3]
    assert nbrs(g, 2, 0, delta=True) == [0]  # nothing new for node 0 at step 2
    assert nbrs(g, 3, 1) == [1, 0, 2, 4]
    assert g.meta["interactions"] == 6


def test_dblp_merge(dblp_root: Path):
    g = load_graph(cfg(dblp_root, "dblp", merge=2))
    assert g.num_steps == 2
    assert nbrs(g, 0, 0, delta=True) == [0, 1, 3]
    assert nbrs(g, 1, 1, delta=True) == [1, 2, 4]


def test_dblp_through_load_dataset_has_features(dblp_root: Path):
    g = load_dataset(cfg(dblp_root, "dblp"))
    assert tuple(g.features.shape) == (4, 5, 8)
    assert g.labelled_nodes.tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- Tmall


@pytest.fixture
def tmall_root(tmp_path: Path) -> Path:
    # 25 raw stamps (1..25) -> 3 steps after merging by 10; node ids 0..6, labelled subset {5, 2, 6}
    lines = [
        f"{u} {v} {t}" for u, v, t in [(0, 1, 1), (1, 2, 5), (5, 0, 10), (2, 3, 11), (3, 4, 20), (6, 5, 21)]
    ]
    lines += [f"4 4 {t}" for t in range(1, 26)]  # a self-interaction at every stamp (ignored as an edge)
    write(tmp_path / "tmall" / "tmall.txt", "\n".join(lines) + "\n")
    write(tmp_path / "tmall" / "node2label.txt", "5 b\n2 a\n6 b\n")
    return tmp_path


def test_tmall_renumbers_labelled_first_and_merges(tmall_root: Path):
    g = load_graph(cfg(tmall_root, "tmall"))
    assert (g.num_nodes, g.num_steps, g.num_classes) == (7, 3, 2)
    # new ids: 5->0, 2->1, 6->2, then 0->3, 1->4, 3->5, 4->6
    assert g.meta["node_ids"].tolist() == [5, 2, 6, 0, 1, 3, 4]
    assert g.labels.tolist() == [1, 0, 1, -1, -1, -1, -1]
    assert g.labelled_nodes.tolist() == [0, 1, 2]
    assert nbrs(g, 0, 3) == [3, 0, 4]  # old 0: old 1 (step 0) and old 5 (stamp 10, still step 0)
    assert nbrs(g, 1, 1, delta=True) == [1, 5]  # old 2 -- old 3 at stamp 11 -> step 1
    assert nbrs(g, 1, 1) == [1, 4, 5]
    assert nbrs(g, 2, 0, delta=True) == [0, 2]  # old 5 -- old 6 at stamp 21 -> step 2
    assert nbrs(g, 0, 6) == [6]  # old 4 only has self-interactions so far


# ---------------------------------------------------------------- Patent


def patent_files(root: Path, edges: list, nodes: list) -> Path:
    write(root / "patent" / "patent_edges.json", "".join(json.dumps(e) + "\n" for e in edges))
    write(root / "patent" / "patent_nodes.json", "".join(json.dumps(n) + "\n" for n in nodes))
    return root


PATENT_EDGES = [
    [0, 1, 19750312, 3858241, 3858242],
    [1, 2, 19761201, 3858242, 3858243],
    [2, 3, 19770101, 3858243, 3858244],
    [3, 0, 19781231, 3858244, 3858241],
    [1, 3, 19790505, 3858242, 3858244],
]
PATENT_NODES = [
    [0, 3858241, 19750101, 1],
    [1, 3858242, 19750101, 6],
    [2, 3858243, 19760101, 2],
    [3, 3858244, 19770101, 1],
]


def test_patent_years_merge_and_labels(tmp_path: Path):
    g = load_graph(cfg(patent_files(tmp_path, PATENT_EDGES, PATENT_NODES), "patent"))
    assert (g.num_nodes, g.num_steps) == (4, 3)  # years 1975..1979 -> 5 steps -> 3 after merging by 2
    assert g.labels.tolist() == [0, 5, 1, 0]  # 1-based -> 0-based
    assert g.num_classes == 6
    assert nbrs(g, 0, 1, delta=True) == [1, 0, 2]  # 1975 and 1976
    assert nbrs(g, 1, 3, delta=True) == [3, 0, 2]  # 1977 and 1978
    assert nbrs(g, 2, 3) == [3, 0, 1, 2]


def test_patent_quoted_ids_take_the_json_path(tmp_path: Path):
    edges = [[u, v, d, f"US,{a}", f"US,{b}"] for u, v, d, a, b in PATENT_EDGES]  # commas inside strings
    g = load_graph(cfg(patent_files(tmp_path, edges, PATENT_NODES), "patent", merge=1))
    assert g.num_steps == 5
    assert nbrs(g, 4, 1, delta=True) == [1, 3]


# ---------------------------------------------------------------- generic edge list


def test_edgelist_csv_header_string_times_partial_labels(tmp_path: Path):
    write(
        tmp_path / "g" / "edges.csv",
        "source,target,date,weight\n10,11,2021-03-01,1\n11,12,2021-01-15,2\n12,10,2021-03-01,1\n13,10,2022-07-30,5\n",
    )
    write(tmp_path / "g" / "labels.csv", "node,label\n10,x\n12,y\n")
    g = load_graph(
        cfg(tmp_path, "g", reader="edgelist", edges="edges.csv", labels="labels.csv", compact=True)
    )
    assert (g.num_nodes, g.num_steps, g.num_classes) == (4, 3, 2)  # ISO dates sorted as strings
    assert g.labels.tolist() == [0, -1, 1, -1]
    assert g.meta["node_ids"].tolist() == [10, 11, 12, 13]
    assert nbrs(g, 0, 1, delta=True) == [1, 2]  # 2021-01-15: 11 -- 12
    assert nbrs(g, 1, 0, delta=True) == [0, 1, 2]
    assert nbrs(g, 2, 0) == [0, 1, 2, 3]


def test_edgelist_whitespace_time_bins_and_merge(tmp_path: Path):
    write(tmp_path / "w" / "edges.txt", "0 1 0.0\n1 2 0.1\n2 3 0.55\n3 4 1.0\n0 4 0.99\n")
    write(tmp_path / "w" / "labels.txt", "0 1\n4 2\n")
    g = load_graph(cfg(tmp_path, "w", reader="edgelist", time_bins=4))
    assert (g.num_nodes, g.num_steps) == (5, 4)  # bins [0, .25) [.25, .5) [.5, .75) [.75, 1]
    assert nbrs(g, 0, 1, delta=True) == [1, 0, 2]
    assert nbrs(g, 1, 1, delta=True) == [1]  # empty bin
    assert nbrs(g, 3, 4, delta=True) == [4, 0, 3]
    g2 = load_graph(cfg(tmp_path, "w", reader="edgelist", time_bins=4, merge=2))
    assert g2.num_steps == 2
    assert nbrs(g2, 1, 4, delta=True) == [4, 0, 3]
    assert g2.labels.tolist() == [0, -1, -1, -1, 1]


def test_edgelist_without_labels_and_distinct_stamps(tmp_path: Path):
    write(tmp_path / "u" / "edges.txt", "0 1 5\n1 2 7\n2 0 5\n")
    g = load_graph(cfg(tmp_path, "u", reader="edgelist", labels=None))
    assert (g.num_nodes, g.num_steps, g.num_classes) == (3, 2, 0)
    assert g.labelled_nodes.numel() == 0


# ---------------------------------------------------------------- missing data


def test_missing_folder_names_files_and_place(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_graph(cfg(tmp_path, "dblp"))
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "dblp") in msg and "dblp.txt" in msg and "node2label.txt" in msg
    assert "SpikeNet reference repository's README" in msg and "data/dblp" in msg
    assert "../" not in msg and "shared" not in msg  # never a path outside the repository


def test_missing_file(tmp_path: Path):
    write(tmp_path / "tmall" / "tmall.txt", "0 1 1\n")
    with pytest.raises(FileNotFoundError, match=r"missing node2label.txt in .*tmall"):
        load_graph(cfg(tmp_path, "tmall"))


# ---------------------------------------------------------------- bad input: file and line in the message


def dblp_with(tmp_path: Path, edges: str = DBLP_EDGES, labels: str = DBLP_LABELS) -> Path:
    write(tmp_path / "dblp" / "dblp.txt", edges)
    write(tmp_path / "dblp" / "node2label.txt", labels)
    return tmp_path


def raises_at(config, path: Path, line: int | None, match: str) -> str:
    with pytest.raises(DataFormatError, match=match) as err:
        load_graph(config)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}:" if line is not None else f"{path}:"), msg
    return msg


def test_wrong_field_count(tmp_path: Path):
    root = dblp_with(tmp_path, "0 1 0.0\n\n1 2 0.5 7\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "dblp.txt", 3, "expected 3 fields")


def test_non_integer_node_id(tmp_path: Path):
    root = dblp_with(tmp_path, "0 1 0.0\n# comment\n1.5 2 0.5\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "dblp.txt", 3, "non-negative integer node id")


def test_negative_node_id(tmp_path: Path):
    root = dblp_with(tmp_path, "0 1 0.0\n1 2 0.5\n2 -3 0.5\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "dblp.txt", 3, "non-negative")


def test_non_numeric_time(tmp_path: Path):
    root = dblp_with(tmp_path, "0 1 0.0\n1 2 soon\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "dblp.txt", 2, "numeric time stamp")


def test_non_numeric_time_with_time_bins(tmp_path: Path):
    write(tmp_path / "e" / "edges.txt", "0 1 1.5\n1 2 2.5\n2 0 2021-01-01\n")
    config = cfg(tmp_path, "e", reader="edgelist", labels=None, time_bins=3)
    raises_at(config, tmp_path / "e" / "edges.txt", 3, "numeric time stamp")


def test_label_file_unknown_node(tmp_path: Path):
    write(tmp_path / "e" / "edges.txt", "0 1 1\n1 2 2\n")
    write(tmp_path / "e" / "labels.txt", "0 a\n\n7 b\n")
    raises_at(cfg(tmp_path, "e", reader="edgelist"), tmp_path / "e" / "labels.txt", 3,
              "unknown node '7'.*misread.*dataset.columns.*drop_unknown_labels=true")


def test_label_file_duplicated_node(tmp_path: Path):
    root = dblp_with(tmp_path, labels=DBLP_LABELS + "2 0\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "node2label.txt", 6, "node 2 again")


def test_dblp_node_without_label(tmp_path: Path):
    root = dblp_with(tmp_path, labels="0 3\n1 1\n3 3\n4 0\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "node2label.txt", None, "first node 2")


def test_patent_node_without_label(tmp_path: Path):
    root = patent_files(tmp_path, PATENT_EDGES, PATENT_NODES[:3])
    raises_at(cfg(root, "patent"), root / "patent" / "patent_nodes.json", None, "first node 3")


def test_empty_edge_file(tmp_path: Path):
    root = dblp_with(tmp_path, "")
    raises_at(cfg(root, "dblp"), root / "dblp" / "dblp.txt", None, "empty edge file")
    write(tmp_path / "e" / "edges.txt", "\n# nothing\n")
    raises_at(
        cfg(tmp_path, "e", reader="edgelist", labels=None),
        tmp_path / "e" / "edges.txt",
        None,
        "empty edge file",
    )


def test_unreadable_json_line(tmp_path: Path):
    root = patent_files(tmp_path, PATENT_EDGES, PATENT_NODES)
    path = root / "patent" / "patent_edges.json"
    lines = path.read_text().splitlines()
    lines[2] = "[2, 3, 19770101, 3858243"
    path.write_text("\n".join(lines) + "\n")
    raises_at(cfg(root, "patent"), path, 3, "unreadable JSON line")


def test_json_wrong_field_count_and_bad_label(tmp_path: Path):
    edges = [*PATENT_EDGES[:3], [3, 0, 19781231], *PATENT_EDGES[4:]]
    root = patent_files(tmp_path, edges, PATENT_NODES)
    raises_at(cfg(root, "patent"), root / "patent" / "patent_edges.json", 4, "array of 5 fields")
    root = patent_files(
        tmp_path, PATENT_EDGES, [*PATENT_NODES[:2], [2, 3858243, 19760101, 0], PATENT_NODES[3]]
    )
    raises_at(cfg(root, "patent"), root / "patent" / "patent_nodes.json", 3, "1-based")


# ---------------------------------------------------------------- the shipped DBLP


def test_real_dblp_smoke():
    start = time.perf_counter()
    edges = read_edge_file(DATA / "dblp" / "dblp.txt")
    parse_s = time.perf_counter() - start
    assert edges.src.size == 185_480
    assert parse_s < 1.0, f"parsing dblp.txt took {parse_s:.2f} s"
    g = load_graph(cfg(DATA, "dblp"))
    assert (g.num_nodes, g.num_steps, g.num_classes) == (25_387, 25, 10)
    counts = sorted(np.bincount(g.labels.numpy()).tolist(), reverse=True)
    assert counts == [7069, 4345, 3522, 3260, 2200, 1761, 1231, 963, 718, 318]
    assert int(g.cum_degree[-1].min()) >= 1  # every node appears in some interaction


def test_default_root_is_the_repository_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from spikenet.data.storage.paths import dataset_dir

    monkeypatch.chdir(tmp_path)  # from any working directory
    assert dataset_dir(OmegaConf.create({"name": "dblp", "root": None})) == DATA / "dblp"
    assert dataset_dir(OmegaConf.create({"name": "dblp", "root": "elsewhere"})) == Path("elsewhere") / "dblp"
    assert (DATA / "dblp" / "node2label.txt").is_file() and (DATA / "dblp" / "README.md").is_file()


# ---------------------------------------------------------------- more bad input (each names file/line/field)


def test_empty_label_file(tmp_path: Path):
    root = dblp_with(tmp_path, labels="# no labels yet\n\n")
    raises_at(cfg(root, "dblp"), root / "dblp" / "node2label.txt", None, "empty label file")


def test_label_file_wrong_field_count(tmp_path: Path):
    root = dblp_with(tmp_path, labels="0 3\n1 1\n2 1 extra\n3 3\n4 0\n")
    msg = raises_at(cfg(root, "dblp"), root / "dblp" / "node2label.txt", 3, "expected 2 fields")
    assert "got 3" in msg


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf"])
def test_non_finite_stamp(tmp_path: Path, stamp: str):
    root = dblp_with(tmp_path, f"0 1 0.0\n# a comment\n1 2 {stamp}\n")
    msg = raises_at(cfg(root, "dblp"), root / "dblp" / "dblp.txt", 3, "finite time stamp")
    assert stamp in msg


def test_non_finite_stamp_in_edge_list(tmp_path: Path):
    write(tmp_path / "e" / "edges.txt", "0 1 1.5\n1 2 nan\n")
    raises_at(cfg(tmp_path, "e", reader="edgelist", labels=None), tmp_path / "e" / "edges.txt", 2, "finite")


def test_json_non_numeric_field(tmp_path: Path):
    edges = [*PATENT_EDGES[:1], [1, "two", 19761201, 3858242, 3858243], *PATENT_EDGES[2:]]
    root = patent_files(tmp_path, edges, PATENT_NODES)
    msg = raises_at(cfg(root, "patent"), root / "patent" / "patent_edges.json", 2, "a number in field 2")
    assert "'two'" in msg


def test_json_negative_field(tmp_path: Path):
    nodes = [*PATENT_NODES[:3], [-3, 3858244, 19770101, 1]]
    root = patent_files(tmp_path, PATENT_EDGES, nodes)
    msg = raises_at(cfg(root, "patent"), root / "patent" / "patent_nodes.json", 4, "non-negative integer in field 1")
    assert "-3" in msg


def test_json_negative_date_field(tmp_path: Path):
    edges = [*PATENT_EDGES[:4], [1, 3, -19790505, 3858242, 3858244]]
    root = patent_files(tmp_path, edges, PATENT_NODES)
    raises_at(cfg(root, "patent"), root / "patent" / "patent_edges.json", 5, "non-negative integer in field 3")


@pytest.mark.parametrize("merge", [0, -2])
def test_merge_below_one(dblp_root: Path, merge: int):
    with pytest.raises(ValueError, match=rf"^dataset\.merge must be an integer >= 1, got {merge}$"):
        load_graph(cfg(dblp_root, "dblp", merge=merge))


@pytest.mark.parametrize("bins", [0, -1])
def test_time_bins_below_one(tmp_path: Path, bins: int):
    write(tmp_path / "e" / "edges.txt", "0 1 1.5\n1 2 2.5\n")
    with pytest.raises(ValueError, match=rf"^dataset\.time_bins must be an integer >= 1, got {bins}$"):
        load_graph(cfg(tmp_path, "e", reader="edgelist", labels=None, time_bins=bins))


def test_unknown_reader(tmp_path: Path):
    with pytest.raises(ValueError, match=r"^dataset\.reader: unknown dataset reader 'csv'; choose one of .*edgelist"):
        load_graph(cfg(tmp_path, "mine", reader="csv"))
    with pytest.raises(ValueError, match=r"^dataset\.name: unknown dataset reader 'mine'; choose one of .*dblp"):
        load_graph(cfg(tmp_path, "mine"))
