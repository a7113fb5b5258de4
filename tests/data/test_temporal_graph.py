"""TemporalGraph / build_structure on a hand-made edge list and against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikenet.data.readers.synthetic import make_synthetic
from spikenet.data.temporal_graph import TemporalGraph, build_structure, steps_from_stamps

# 5 nodes, 3 steps; node 4 never interacts.
#   t0: 0-1, 1-0 (same undirected edge), 2-2 (self-loop: implicit anyway)
#   t1: 1-2, 0-1 (repeated from t0), 3-1
#   t2: 0-3 twice (duplicate)
EDGES = [(0, 1, 0), (1, 0, 0), (2, 2, 0), (1, 2, 1), (0, 1, 1), (3, 1, 1), (0, 3, 2), (0, 3, 2)]
N, T = 5, 3


def _graph(edges=EDGES, n=N, steps=T) -> TemporalGraph:
    src, dst, step = (np.array(c, dtype=np.int64) for c in zip(*edges, strict=True))
    return TemporalGraph(name="hand", num_nodes=n, num_steps=steps, features=torch.zeros(n, 1),
                         labels=torch.zeros(n, dtype=torch.long), num_classes=1,
                         **build_structure(src, dst, step, n, steps))


def _as_set(t: torch.Tensor) -> set[int]:
    return set(t.tolist())


def test_cumulative_snapshots_are_unions_of_deltas():
    g = _graph()
    # G_t, self-loop first then neighbours in order of first appearance (ties by id)
    expected_cum = {
        0: {0: [0, 1], 1: [1, 0], 2: [2], 3: [3], 4: [4]},
        1: {0: [0, 1], 1: [1, 0, 2, 3], 2: [2, 1], 3: [3, 1], 4: [4]},
        2: {0: [0, 1, 3], 1: [1, 0, 2, 3], 2: [2, 1], 3: [3, 1, 0], 4: [4]},
    }
    for t, per_node in expected_cum.items():
        for u, nbrs in per_node.items():
            assert g.neighbours(t, u).tolist() == nbrs, (t, u)


def test_delta_snapshots_hold_each_steps_edges():
    g = _graph()
    # ΔG_t: edges stamped t (0-1 again at t1), duplicates collapsed, undirected, self-loop first
    expected_delta = {
        0: {0: [0, 1], 1: [1, 0], 2: [2], 3: [3], 4: [4]},
        1: {0: [0, 1], 1: [1, 0, 2, 3], 2: [2, 1], 3: [3, 1], 4: [4]},
        2: {0: [0, 3], 1: [1], 2: [2], 3: [3, 0], 4: [4]},
    }
    for t, per_node in expected_delta.items():
        for u, nbrs in per_node.items():
            got = g.neighbours(t, u, delta=True)
            assert int(got[0]) == u
            assert sorted(got[1:].tolist()) == sorted(nbrs[1:]), (t, u)
            assert len(got) == len(nbrs), (t, u)


def test_cum_degree_and_sizes():
    g = _graph()
    assert g.cum_degree.tolist() == [[1, 1, 0, 0, 0], [1, 3, 1, 1, 0], [2, 3, 1, 2, 0]]
    # 4 undirected pairs -> 8 directed entries, no self-loops stored
    assert g.cum_indices.numel() == 8
    # ΔG: 1 pair at t0, 3 at t1, 1 at t2 -> 10 directed entries
    assert g.delta_indices.numel() == 10
    assert g.delta_indptr.numel() == T * N + 1
    ints = (N + 1) + 8 + T * N + (T * N + 1) + 10
    assert g.structure_nbytes() == ints * 8
    # G_t is a prefix: node 1's list starts with its t0 neighbour
    start = int(g.cum_indptr[1])
    assert g.cum_indices[start : start + 3].tolist() == [0, 2, 3]


def test_structure_is_linear_in_edges_plus_nodes_times_steps():
    g = make_synthetic(num_nodes=400, num_steps=6, seed=1)
    E = g.meta["interactions"]
    ints = g.structure_nbytes() // 8
    assert ints <= 2 * 2 * E + 2 * g.num_steps * g.num_nodes + g.num_nodes + 2
    assert g.structure_nbytes() < g.num_steps * (g.num_nodes + 1 + 2 * E) * 8  # below one CSR per step


def _brute_force(edges, n, steps):
    delta = [[{u} for u in range(n)] for _ in range(steps)]
    for s, d, t in edges:
        delta[t][s].add(d)
        delta[t][d].add(s)
    cum, acc = [], [{u} for u in range(n)]
    for t in range(steps):
        acc = [acc[u] | delta[t][u] for u in range(n)]
        cum.append(acc)
    return cum, delta


def test_random_graph_matches_brute_force():
    rng = np.random.default_rng(5)
    n, steps, m = 30, 5, 150
    edges = list(zip(rng.integers(0, n, m).tolist(), rng.integers(0, n, m).tolist(),
                     rng.integers(0, steps, m).tolist(), strict=True))
    g = _graph(edges, n, steps)
    cum, delta = _brute_force(edges, n, steps)
    for t in range(steps):
        for u in range(n):
            got_cum = g.neighbours(t, u).tolist()
            got_delta = g.neighbours(t, u, delta=True).tolist()
            assert got_cum[0] == u and got_delta[0] == u
            assert len(got_cum) == len(set(got_cum)) and set(got_cum) == cum[t][u], (t, u)
            assert len(got_delta) == len(set(got_delta)) and set(got_delta) == delta[t][u], (t, u)
            assert int(g.cum_degree[t, u]) == len(cum[t][u]) - 1


def test_steps_from_stamps():
    step, T_ = steps_from_stamps(np.array([0.5, 0.1, 0.5, 0.9, 0.3]))
    assert step.tolist() == [2, 0, 2, 3, 1] and T_ == 4
    step, T_ = steps_from_stamps(np.array([0.5, 0.1, 0.5, 0.9, 0.3]), merge=2)
    assert step.tolist() == [1, 0, 1, 1, 0] and T_ == 2
    with pytest.raises(ValueError):
        steps_from_stamps(np.array([1.0]), merge=0)


def test_synthetic_is_seeded():
    a = make_synthetic(num_nodes=200, num_steps=3, seed=4)
    b = make_synthetic(num_nodes=200, num_steps=3, seed=4)
    assert torch.equal(a.cum_indices, b.cum_indices) and torch.equal(a.features, b.features)
    assert a.features.shape == (3, 200, 32) and a.labels.shape == (200,)
    c = make_synthetic(num_nodes=200, num_steps=3, seed=5)
    assert not torch.equal(a.features, c.features)


STRUCTURE = ("cum_indptr", "cum_indices", "cum_degree", "delta_indptr", "delta_indices", "labels")


def test_to_cpu_round_trip_keeps_everything():
    g = _graph()
    g.features = torch.arange(N * 2, dtype=torch.float32).view(N, 2)
    g.meta = {"interactions": 8, "node_ids": np.arange(N)}
    same = g.to("cpu")
    assert same is g  # nothing to move: the graph itself, as torch's .to does
    moved = g.to(torch.device("cpu"))
    for name in (*STRUCTURE, "features"):
        assert torch.equal(getattr(moved, name), getattr(g, name)), name
    assert (moved.name, moved.num_nodes, moved.num_steps, moved.num_classes) == ("hand", N, T, 1)
    assert moved.meta["interactions"] == 8 and moved.meta["node_ids"] is g.meta["node_ids"]


def test_to_copies_memory_mapped_features_into_memory(tmp_path):
    path = tmp_path / "f.npy"
    values = np.random.default_rng(0).normal(size=(T, N, 3)).astype(np.float32)
    np.save(path, values)
    mapped = np.load(path, mmap_mode="c")
    g = _graph()
    g.features, g.feature_array = torch.from_numpy(mapped), mapped
    g.meta = {"cache_file": "x.npz"}
    out = g.to("cpu")
    assert out is not g and out.feature_array is None and g.feature_array is mapped
    assert torch.equal(out.features, g.features) and out.features.dtype == torch.float32
    out.features[0, 0, 0] = 1e6  # an independent copy: neither the map nor the file changes
    assert float(g.features[0, 0, 0]) == float(values[0, 0, 0])
    assert out.meta == g.meta and out.meta is not g.meta
    for name in STRUCTURE:
        assert torch.equal(getattr(out, name), getattr(g, name)), name
    out.release_feature_pages()  # nothing mapped any more: a no-op, not an error


@pytest.mark.gpu
def test_to_cuda_and_back():
    g = _graph()
    on_gpu = g.to("cuda")
    assert all(getattr(on_gpu, n).is_cuda for n in (*STRUCTURE, "features"))
    back = on_gpu.to("cpu")
    for name in (*STRUCTURE, "features"):
        assert torch.equal(getattr(back, name), getattr(g, name)), name
