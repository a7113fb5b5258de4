"""dataset=static: a small generated graph written to disk, read as T identical snapshots, sampled and trained on."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from conftest import dataset_config

from spikenet.data import load_dataset
from spikenet.data.formats.parsing import DataFormatError
from spikenet.experiment import build_experiment
from spikenet.sampling import TemporalSampler

N, K = 60, 3  # nodes, communities (= classes)


def write_graph(folder, csv: bool = False, features: bool = False, unlabelled: tuple[int, ...] = ()) -> set:
    """A seeded community graph: ring inside each community plus random chords; returns its undirected edges."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    community = np.arange(N) % K
    edges = set()
    for c in range(K):
        members = np.flatnonzero(community == c)
        for a, b in zip(members, np.roll(members, 1), strict=True):
            edges.add((int(a), int(b)))
    for _ in range(40):
        a, b = rng.integers(0, N, 2)
        if a != b:
            edges.add((int(a), int(b)))
    sep = "," if csv else " "
    lines = (["source,target,weight"] if csv else []) + [f"{a}{sep}{b}{sep}1" for a, b in sorted(edges)]
    (folder / "edges.txt").write_text("\n".join(lines) + "\n")
    labels = [f"{u} c{community[u]}" for u in range(N) if u not in unlabelled]
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    if features:
        x = rng.normal(size=(N, 6)).astype(np.float32)
        x[np.arange(N), community] += 3.0
        np.save(folder / "x.npy", x)
    return {frozenset(e) for e in edges}


def cfg(root, **kw):
    base = dict(name="toy", root=str(root), num_steps=5, feature_dim=8, min_class_size=1)
    return dataset_config("static", **{**base, **kw})


def test_every_step_is_the_whole_graph(tmp_path):
    edges = write_graph(tmp_path / "toy", unlabelled=(7,))
    graph = load_dataset(cfg(tmp_path))
    assert (graph.num_nodes, graph.num_steps, graph.num_classes) == (N, 5, K)
    assert graph.meta["static"] and graph.labels[7] == -1 and graph.labelled_nodes.numel() == N - 1
    for u in (0, 1, 17, 59):
        expected = {u} | {v for e in edges if u in e for v in e if v != u}
        for t in range(graph.num_steps):
            assert set(graph.neighbours(t, u).tolist()) == expected, (u, t)
        assert set(graph.neighbours(0, u, delta=True).tolist()) == expected
        assert graph.neighbours(3, u, delta=True).tolist() == [u]  # nothing new after step 0
    # no feature file: FastRP of the graph, one [N, F] table shared by all steps, rows of unit L2 norm
    assert graph.features.shape == (N, 8)
    assert torch.allclose(graph.features.norm(dim=1), torch.ones(N), atol=1e-5)


def test_feature_file_csv_and_normalisation(tmp_path):
    write_graph(tmp_path / "toy", csv=True, features=True)
    raw = np.load(tmp_path / "toy" / "x.npy")
    graph = load_dataset(cfg(tmp_path, node_features="x.npy"))
    assert torch.allclose(graph.features, torch.from_numpy(raw / np.linalg.norm(raw, axis=1, keepdims=True)),
                          atol=1e-6)
    plain = load_dataset(cfg(tmp_path, node_features="x.npy", normalize="none"))
    assert torch.equal(plain.features, torch.from_numpy(raw))
    std = load_dataset(cfg(tmp_path, node_features="x.npy", normalize="standardize")).features
    assert abs(float(std.mean())) < 1e-5 and abs(float(std.std(unbiased=False)) - 1) < 1e-4


def test_each_step_draws_a_fresh_sample_of_the_graph(tmp_path):
    edges = write_graph(tmp_path / "toy")
    graph = load_dataset(cfg(tmp_path, num_steps=6))
    nodes = torch.arange(N)
    sample = TemporalSampler(graph, [4, 2], 1.0).sample(nodes, torch.Generator().manual_seed(0))
    hop1 = sample.hops[1]  # [T, N * 4]
    assert hop1.shape == (6, N * 4)
    for t in range(6):
        for u in range(N):
            picked = set(hop1[t, 4 * u : 4 * u + 4].tolist())
            allowed = {u} | {v for e in edges if u in e for v in e}
            assert picked <= allowed
    assert any(not torch.equal(hop1[0], hop1[t]) for t in range(1, 6)), "steps resample"


def test_bad_inputs_name_the_problem(tmp_path):
    write_graph(tmp_path / "toy")
    (tmp_path / "toy" / "edges.txt").write_text("0 1\n1 -2\n")
    with pytest.raises(DataFormatError, match=r"edges\.txt:2: expected a non-negative node id as dst, got -2 "
                                              r"\(dataset\.compact=auto renumbers them\)"):
        load_dataset(cfg(tmp_path, compact=False))
    (tmp_path / "toy" / "labels.txt").write_text("0 a\n1 b\n-2 a\n1 b\n")  # negative ids: renumbered
    with pytest.raises(DataFormatError, match=r"labels\.txt:4: expected each node once, got node '1' again"):
        load_dataset(cfg(tmp_path))
    (tmp_path / "toy" / "labels.txt").write_text("0 a\n1 b\n-2 a\n")
    graph = load_dataset(cfg(tmp_path))
    assert graph.meta["node_ids"].tolist() == [-2, 0, 1] and graph.labels.tolist() == [0, 0, 1]
    with pytest.raises(FileNotFoundError):
        load_dataset(cfg(tmp_path, labels="missing.txt"))
    with pytest.raises(ValueError, match="dataset.source"):
        load_dataset(cfg(tmp_path, source="http"))
    with pytest.raises(ValueError, match="pyg_name"):
        load_dataset(cfg(tmp_path, source="pyg", pyg_name="Imagenet"))


@pytest.mark.skipif(importlib.util.find_spec("torch_geometric") is not None, reason="PyG installed")
def test_pyg_without_pyg_says_how_to_install(tmp_path):
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[pyg\]\""):
        load_dataset(cfg(tmp_path, source="pyg", pyg_name="Cora"))


def test_trains_on_a_static_graph(compose, tmp_path):
    write_graph(tmp_path / "toy", features=True)
    threads = torch.get_num_threads()
    config = compose(["dataset=static", f"dataset.root={tmp_path}", "dataset.name=toy", "dataset.node_features=x.npy",
                      "model.hids=[16,4]", "trainer.epochs=2", "trainer.progress=false",
                      "trainer.save_checkpoint=false", "trainer.num_threads=1", "task.train_size=0.6", "device=cpu"])
    assert config.sampler.p == 1.0 and config.dataset.num_steps == 15
    try:
        exp = build_experiment(config)
        result = exp.trainer.fit()
    finally:
        torch.set_num_threads(threads)
    assert exp.graph.num_steps == 15 and exp.trainer.model.encoder.embedding_dim == 15 * 4
    assert 0.0 <= result["test_micro_f1"] <= 1.0
    assert len(result["firing_rates"]) == 2 and len(result["firing_rates"][0]) == 15


def test_string_ids_and_quoted_csv(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "edges.csv").write_text('from,to\n"Doe, A.",bob\nbob,carol\ncarol,"Doe, A."\n')
    (folder / "labels.csv").write_text("name,group\ncarol,x\nbob,y\n")
    # text ids under a text header: line 1 parses like the others, so the header is named (dataset.header=true)
    graph = load_dataset(cfg(tmp_path, edges="edges.csv", labels="labels.csv", min_class_size=1, header=True))
    assert graph.meta["node_ids"].tolist() == ["Doe, A.", "bob", "carol"]
    assert graph.labels.tolist() == [-1, 1, 0]
    assert sorted(graph.neighbours(0, 0).tolist()) == [0, 1, 2]
