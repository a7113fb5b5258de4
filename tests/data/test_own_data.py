"""A user's own edge list (``dataset=edgelist``): ids of any kind, quoted CSV, header decisions, labels of
nodes without edges, and errors that name the file, the line and the key that fixes them."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import dataset_config

from spikenet.data import load_graph
from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cfg(root: Path, name: str = "g", **kw):
    base = {"name": name, "root": str(root), "cache": False, "features": "fastrp", "feature_dim": 8,
            "min_class_size": 1, "auto_bins": False}
    return dataset_config("edgelist", **{**base, **kw})


def edges_of(g) -> set[tuple[int, int, int]]:
    """(step, u, v) of every stored ΔG_t edge, u < v."""
    out = set()
    indptr, indices = g.delta_indptr.numpy(), g.delta_indices.numpy()
    for t in range(g.num_steps):
        for u in range(g.num_nodes):
            row = t * g.num_nodes + u
            for v in indices[indptr[row]:indptr[row + 1]]:
                out.add((t, min(u, int(v)), max(u, int(v))))
    return out


def named_edges(g) -> set[tuple[int, str, str]]:
    """ΔG_t edges written with the original ids (graph.meta['node_ids'])."""
    ids = g.meta["node_ids"]
    return {(t, *sorted((str(ids[u]), str(ids[v])))) for t, u, v in edges_of(g)}


@pytest.fixture
def info_logged():
    """INFO and WARNING lines of the data loggers."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep(logging.INFO)
    loggers = [logging.getLogger(n) for n in ("spikenet.data.formats.table", "spikenet.data.readers.edgelist",
                                               "spikenet.data.snapshots.plan", "spikenet.data.storage.hygiene",
                                               "spikenet.data.load")]
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


def raises_at(config, path: Path, line: int | None, *fragments: str) -> str:
    with pytest.raises(DataFormatError) as err:
        load_graph(config)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}:" if line is not None else f"{path}:"), msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# ---------------------------------------------------------------- node ids


def test_string_ids_round_trip(tmp_path: Path):
    rows = [("user_42", "user_7", 3), ("user_7", "bob", 1), ("bob", "user_42", 3), ("zed", "bob", 2)]
    write(tmp_path / "g" / "edges.txt", "".join(f"{a} {b} {t}\n" for a, b, t in rows))
    write(tmp_path / "g" / "labels.txt", "zed x\nuser_42 y\nbob x\n")
    g = load_graph(cfg(tmp_path))
    assert g.meta["node_ids"].tolist() == ["bob", "user_42", "user_7", "zed"]  # sorted, compact id = position
    assert g.num_nodes == 4 and g.num_steps == 3
    stamps = {1: 0, 2: 1, 3: 2}
    assert named_edges(g) == {(stamps[t], *sorted((a, b))) for a, b, t in rows}
    by_name = dict(zip(g.meta["node_ids"].tolist(), g.labels.tolist(), strict=True))
    assert by_name == {"bob": 0, "user_42": 1, "user_7": -1, "zed": 0}


def test_string_ids_survive_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SPIKENET_CACHE", str(tmp_path / "user-cache"))
    write(tmp_path / "g" / "edges.csv", "a,b,1\nb,c,2\nc,é,2\n")
    first = load_graph(cfg(tmp_path, edges="edges.csv", labels=None, cache=True))
    again = load_graph(cfg(tmp_path, edges="edges.csv", labels=None, cache=True))
    assert "cache_file" in again.meta and again.meta["cache_file"] == first.meta["cache_file"]
    assert again.meta["node_ids"].tolist() == ["a", "b", "c", "é"]
    assert edges_of(again) == edges_of(first)


def test_negative_ids_are_renumbered_in_numeric_order(tmp_path: Path):
    write(tmp_path / "g" / "edges.txt", "-5 3 0\n3 -1 1\n-1 -5 1\n")
    write(tmp_path / "g" / "labels.txt", "-1 a\n3 b\n")
    g = load_graph(cfg(tmp_path))
    assert g.meta["node_ids"].tolist() == [-5, -1, 3]
    assert g.meta["node_ids"].dtype == np.int64
    assert edges_of(g) == {(0, 0, 2), (1, 1, 2), (1, 0, 1)}
    assert g.labels.tolist() == [-1, 0, 1]


def test_dense_integer_ids_are_kept_and_the_isolated_ones_counted(tmp_path: Path, info_logged: list[str]):
    write(tmp_path / "g" / "edges.txt", "1 2 0\n2 3 1\n")
    g = load_graph(cfg(tmp_path, labels=None))
    assert g.num_nodes == 4 and "node_ids" not in g.meta  # node u is id u (0 is isolated)
    assert any("1 of ids 0..3 in no edge, isolated nodes (dataset.compact=true drops them)" in m
               for m in info_logged)


def test_compact_false_refuses_string_ids_naming_line_and_key(tmp_path: Path):
    path = write(tmp_path / "g" / "edges.txt", "1 2 0\n# note\n2 x9 1\n")
    raises_at(cfg(tmp_path, labels=None, compact=False), path, 3, "'x9'", "dataset.compact=auto")


# ---------------------------------------------------------------- quoting, delimiters, extra columns


def test_quoted_csv_fields(tmp_path: Path):
    text = ('src,dst,time,comment\n'
            '"Smith, J.","Doe, A.",2001,"wrote ""X"", a book"\n'
            '"Doe, A.",Lee,2002,plain\n'
            'Lee,"Smith, J.",2002,"a, b"\n')
    write(tmp_path / "g" / "edges.csv", text)
    write(tmp_path / "g" / "labels.csv", 'node,label\n"Smith, J.",db\nLee,ml\n')
    g = load_graph(cfg(tmp_path, edges="edges.csv", labels="labels.csv"))
    assert g.meta["node_ids"].tolist() == ["Doe, A.", "Lee", "Smith, J."]
    assert named_edges(g) == {(0, "Doe, A.", "Smith, J."), (1, "Doe, A.", "Lee"), (1, "Lee", "Smith, J.")}
    assert g.labels.tolist() == [-1, 1, 0]


@pytest.mark.parametrize("sep", ["\t", ";", "|"])
def test_other_delimiters_are_detected(tmp_path: Path, sep: str):
    write(tmp_path / "g" / "edges.txt", "".join(sep.join(r) + "\n" for r in [("a b", "c", "1"), ("c", "d", "2")]))
    g = load_graph(cfg(tmp_path, labels=None))
    assert g.meta["node_ids"].tolist() == ["a b", "c", "d"]  # a space inside a field is not a separator


def test_byte_order_mark_and_windows_line_ends(tmp_path: Path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "edges.csv").write_bytes("\ufeff1,2,5\r\n2,3,6\r\n3,1,x\r\n".encode())  # an Excel export
    with pytest.raises(DataFormatError, match=r"edges\.csv:3: expected a numeric time stamp"):
        load_graph(cfg(tmp_path, edges="edges.csv", labels=None))
    (tmp_path / "g" / "edges.csv").write_bytes("\ufeff1,2,5\r\n2,3,6\r\n".encode())
    g = load_graph(cfg(tmp_path, edges="edges.csv", labels=None))
    assert g.num_nodes == 4 and "node_ids" not in g.meta and edges_of(g) == {(0, 1, 2), (1, 2, 3)}


def test_iso_dates_are_stamps_that_can_be_binned(tmp_path: Path):
    write(tmp_path / "g" / "edges.csv", "0,1,2021-01-01\n1,2,2021-01-02 12:00:00\n2,3,2021-01-11\n")
    g = load_graph(cfg(tmp_path, edges="edges.csv", labels=None, time_bins=2))
    assert g.meta["time"] == "datetime" and g.num_steps == 2
    assert edges_of(g) == {(0, 0, 1), (0, 1, 2), (1, 2, 3)}  # 1.5 days of 10 fall in the first half


def test_columns_by_number_and_by_header_name(tmp_path: Path, info_logged: list[str]):
    # SocioPatterns' layout: `t i j Ci Cj`, tab-separated, stamps first, sorted by time
    text = "t\ti\tj\tCi\tCj\n20\t7\t9\t1A\t1B\n40\t9\t3\t1B\t2A\n40\t3\t7\t2A\t1A\n60\t1\t3\t1B\t2A\n"
    write(tmp_path / "g" / "contacts.tsv", text)
    write(tmp_path / "g" / "meta.tsv", "gender\tid\tclass\nF\t7\t1A\nM\t3\t2A\n")
    g = load_graph(cfg(tmp_path, edges="contacts.tsv", labels=None))  # read as src=t: the file is sorted by it
    assert any("src field (field 0) is sorted like time stamps" in m and "dataset.columns=[1,2,0]" in m
               for m in info_logged)
    assert any("line 2 read as src=20 dst=7 time=9 (dataset.columns=[0,1,2], 0-based" in m for m in info_logged)
    for columns in ([1, 2, 0], ["i", "j", "t"]):
        g = load_graph(cfg(tmp_path, edges="contacts.tsv", labels="meta.tsv", columns=columns,
                           label_columns=[1, 2] if columns[0] == 1 else ["id", "class"], min_class_size=1))
        assert g.num_steps == 3 and g.meta["interactions"] == 4
        assert g.meta["node_ids"].tolist() == [1, 3, 7, 9]  # 4 of 0..9 used: renumbered
        assert named_edges(g) == {(0, "7", "9"), (1, "3", "9"), (1, "3", "7"), (2, "1", "3")}
        assert g.labels.tolist() == [-1, 1, 0, -1]
    msg = raises_at(cfg(tmp_path, edges="contacts.tsv", labels=None, columns=["i", "j", "time"]),
                    tmp_path / "g" / "contacts.tsv", 1, "expected a header naming 'time' (dataset.columns)")
    assert "'t'" in msg
    with pytest.raises(ValueError, match=r"^dataset\.columns must list 3 fields"):
        load_graph(cfg(tmp_path, edges="contacts.tsv", labels=None, columns=[0, 1]))
    path = write(tmp_path / "h" / "edges.txt", "1 2 3\n4 5\n")
    raises_at(cfg(tmp_path, "h", labels=None, columns=[2, 0, 1]), path, 2, "expected 3 fields 'src dst time' in "
              "fields 3, 1, 2", "dataset.columns")


# ---------------------------------------------------------------- header


def test_header_auto_skips_a_header_and_says_so(tmp_path: Path, info_logged: list[str]):
    write(tmp_path / "g" / "edges.csv", "source,target,timestamp\n0,1,5\n1,2,6\n")
    g = load_graph(cfg(tmp_path, edges="edges.csv", labels=None))
    assert g.meta["interactions"] == 2
    (line,) = [m for m in info_logged if "read as a header" in m]
    assert "line 1" in line and "'source'" in line and "dataset.header=false" in line


def test_header_auto_keeps_a_non_numeric_first_data_line(tmp_path: Path, info_logged: list[str]):
    # string ids everywhere: line 1 parses like the others, so it is data (the old sniffing ate it)
    write(tmp_path / "g" / "edges.txt", "user_1 user_2 10\nuser_2 user_3 11\nuser_3 user_1 12\n")
    g = load_graph(cfg(tmp_path, labels=None))
    assert g.meta["interactions"] == 3 and g.num_steps == 3
    assert any("no header line" in m and "dataset.header=true" in m for m in info_logged)


def test_header_auto_errors_name_the_right_line(tmp_path: Path):
    # a non-numeric first line where later stamps are numbers is a header; the bad line 4 is named as line 4
    path = write(tmp_path / "g" / "edges.txt", "a b t\n0 1 5\n1 2 6\n2\n")
    raises_at(cfg(tmp_path, labels=None), path, 4, "expected 3 fields", "got 1", "dataset.delimiter")


def test_header_true_and_false(tmp_path: Path):
    write(tmp_path / "g" / "edges.txt", "1 2 5\n2 3 6\n3 4 7\n")
    assert load_graph(cfg(tmp_path, labels=None, header=False)).meta["interactions"] == 3
    assert load_graph(cfg(tmp_path, labels=None, header=True)).meta["interactions"] == 2
    path = write(tmp_path / "h" / "edges.txt", "src dst time\n1 2 5\n")
    msg = raises_at(cfg(tmp_path, "h", labels=None, header=False), path, 1, "dataset.header")
    assert "'time'" in msg  # the header's stamp is the first thing that does not parse


def test_header_values_are_checked(tmp_path: Path):
    write(tmp_path / "g" / "edges.txt", "1 2 5\n")
    with pytest.raises(ValueError, match=r"^dataset\.header must be auto, true or false, got 'maybe'$"):
        load_graph(cfg(tmp_path, labels=None, header="maybe"))


# ---------------------------------------------------------------- labels


def test_unsorted_label_file_with_header(tmp_path: Path):
    write(tmp_path / "g" / "edges.txt", "0 1 0\n1 2 0\n2 3 1\n3 0 1\n")
    write(tmp_path / "g" / "labels.csv", "id,class\n3,b\n0,a\n2,b\n1,c\n")
    g = load_graph(cfg(tmp_path, labels="labels.csv"))
    assert g.labels.tolist() == [0, 2, 1, 1]


def test_drop_unknown_labels(tmp_path: Path, info_logged: list[str]):
    write(tmp_path / "g" / "edges.txt", "a b 0\nb c 1\n")
    path = write(tmp_path / "g" / "labels.txt", "a 1\n\nghost 2\nc 1\nspook 3\n")
    raises_at(cfg(tmp_path), path, 3, "unknown node 'ghost'", "2 such label line(s)",
              "dataset.drop_unknown_labels=true")
    g = load_graph(cfg(tmp_path, drop_unknown_labels=True))
    assert g.labels.tolist() == [0, -1, 0] and g.num_classes == 1
    assert g.meta["labels_dropped"] == 2
    assert any("dropped 2 label line(s)" in m and "line 3" in m for m in info_logged)


def test_duplicate_label_names_the_second_line(tmp_path: Path):
    write(tmp_path / "g" / "edges.txt", "a b 0\n")
    path = write(tmp_path / "g" / "labels.txt", "a 1\nb 2\na 3\n")
    raises_at(cfg(tmp_path), path, 3, "node 'a' again")


# ---------------------------------------------------------------- errors: file, line, key


def test_empty_field_names_line(tmp_path: Path):
    path = write(tmp_path / "g" / "edges.csv", "a,b,1\n,c,2\n")
    raises_at(cfg(tmp_path, edges="edges.csv", labels=None), path, 2, "empty src field")


def test_comment_character_inside_an_id(tmp_path: Path):
    path = write(tmp_path / "g" / "edges.txt", "a #tag2 1\n#tag2 b 2\n")
    raises_at(cfg(tmp_path, labels=None), path, 1, "got 1", "dataset.comments=null")
    g = load_graph(cfg(tmp_path, labels=None, comments=None))
    assert g.meta["node_ids"].tolist() == ["#tag2", "a", "b"]


def test_string_stamps_with_time_bins_name_line_and_key(tmp_path: Path):
    path = write(tmp_path / "g" / "edges.txt", "0 1 early\n1 2 late\n2 0 later\n")
    raises_at(cfg(tmp_path, labels=None, time_bins=3), path, 1, "'early'", "without dataset.time_bins")
    assert load_graph(cfg(tmp_path, labels=None)).num_steps == 3  # the fix named: one step per distinct stamp


def test_stamps_mixing_numbers_and_text_name_the_odd_line(tmp_path: Path):
    path = write(tmp_path / "g" / "edges.txt", "0 1 1.5\n1 2 2.5\n2 0 soon\n")
    raises_at(cfg(tmp_path, labels=None), path, 3, "expected a numeric time stamp", "'soon'")


def test_missing_files_name_the_keys_and_the_folder(tmp_path: Path):
    write(tmp_path / "mine" / "interactions.csv", "0,1,1\n")
    write(tmp_path / "mine" / "classes.csv", "0,a\n")
    with pytest.raises(DatasetNotFoundError) as err:
        load_graph(cfg(tmp_path, "mine"))
    msg = str(err.value)
    assert "\n" not in msg
    assert "dataset.edges=edges.txt not found" in msg and "dataset.labels=labels.txt not found" in msg
    assert str(tmp_path / "mine") in msg and "classes.csv, interactions.csv" in msg
    assert "SpikeNet reference" not in msg  # not the downloads of the paper's datasets
    with pytest.raises(DatasetNotFoundError, match=r"dataset folder .*nothere not found \(dataset\.root="):
        load_graph(cfg(tmp_path, "nothere"))
    g = load_graph(cfg(tmp_path, "mine", edges="interactions.csv", labels="classes.csv"))  # the fix named
    assert g.labels.tolist() == [0, -1]


def test_documented_command_composes_and_loads(tmp_path: Path):
    from conftest import compose_config

    write(tmp_path / "net" / "e.csv", "u,v,t\nx,y,1\ny,z,2\n")
    write(tmp_path / "net" / "l.csv", "node,label\nz,1\nx,0\n")
    command = (f"dataset=edgelist dataset.name=net dataset.root={tmp_path} dataset.edges=e.csv dataset.labels=l.csv "
               "dataset.min_class_size=1")  # one node per class: too few for splits, enough to read
    composed = compose_config(shlex.split(command))
    g = load_graph(composed.dataset)
    assert g.meta["node_ids"].tolist() == ["x", "y", "z"] and g.labels.tolist() == [0, -1, 1]


# ---------------------------------------------------------------- speed


def test_million_line_file_parses_vectorised(tmp_path: Path):
    import time

    from spikenet.data.readers.edgelist import index_edges, read_edges

    rng = np.random.default_rng(0)
    n = 1_000_000
    src, dst = rng.integers(-50_000, 50_000, n), rng.integers(-50_000, 50_000, n)
    stamps = rng.integers(0, 10**9, n)
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("src,dst,time\n")
        np.savetxt(f, np.stack([src, dst, stamps], 1), fmt="%d", delimiter=",")
    start = time.process_time()
    config = cfg(tmp_path)
    edges = read_edges(path, config)
    index = index_edges(edges, config)
    seconds = time.process_time() - start
    assert index.src.size == n and index.num_nodes == np.unique(np.concatenate([src, dst])).size
    assert (index.node_ids[index.src] == src).all() and (index.node_ids[index.dst] == dst).all()
    assert seconds < 10, f"1 M lines took {seconds:.1f} CPU s"  # ~1.5 s here; a per-line Python loop takes ~10x


# ---------------------------------------------------------------- public graphs' presets (conf/dataset/*.yaml)


def _school_contacts(sep: str, classes: list[str], line_end: str = "\n") -> str:
    """Two school days of face-to-face contacts at 20 s resolution in SocioPatterns' `t i j Ci Cj` layout: five
    people per class, each meeting a classmate every 10 minutes, and nothing at night."""
    header = sep.join(["Time", "id1", "id2", classes[0], classes[0]]) if sep == ";" else "Time\tid1\tid2\tc1\tc2"
    lines = [header]
    for day in (0, 1):
        for k, t in enumerate(range(31220 + day * 86400, 60000 + day * 86400, 600)):
            for c, name in enumerate(classes):
                a, b = 100 + 10 * c + k % 5, 100 + 10 * c + (k + 1) % 5
                lines.append(sep.join([str(t), str(a), str(b), name, name]))
    return line_end.join(lines) + line_end


def _label_recipe(option: str) -> str:
    """The shell line that a preset's header comment gives for writing its label file."""
    text = (Path(__file__).parents[2] / "conf" / "dataset" / f"{option}.yaml").read_text().splitlines()
    at = next(i for i, line in enumerate(text) if "write the label file with" in line)
    return text[at + 1].lstrip("#").strip()


@pytest.mark.parametrize(("option", "table", "sep", "line_end", "classes"), [
    ("primaryschool", "primaryschool.csv", "\t", "\n", ["1A", "1B", "Teachers"]),
    ("thiers2011", "thiers_2011.csv", ";", "\r\n", ["PC", "PC*", "PSI*"]),
])
def test_public_graph_presets_read_their_layout_with_the_documented_label_recipe(
        tmp_path: Path, option: str, table: str, sep: str, line_end: str, classes: list[str]):
    import subprocess

    from conftest import compose_config

    folder = tmp_path / option
    folder.mkdir()
    (folder / table).write_bytes(_school_contacts(sep, classes, line_end).encode())
    subprocess.run(["bash", "-c", _label_recipe(option)], cwd=folder, check=True)
    composed = compose_config([f"dataset={option}", f"dataset.root={tmp_path}", "dataset.cache=false",
                               "dataset.features=fastrp", "dataset.feature_dim=8"])
    g = load_graph(composed.dataset)
    assert g.num_nodes == 15 and g.labels.tolist() == [c for c in range(3) for _ in range(5)]
    assert 2 <= g.num_steps < 25  # 25 bins over the two days, the night's empty ones dropped
    assert {(u // 5, v // 5) for _, u, v in edges_of(g)} == {(c, c) for c in range(3)}  # classmates only
