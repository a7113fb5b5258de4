"""Temporal samplers: no future edges, G_t part then ΔG_t part, the pick rule, uniformity, random walks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from spikenet.data.readers.synthetic import make_synthetic
from spikenet.data.temporal_graph import TemporalGraph, build_structure
from spikenet.sampling import TemporalSampler, pick_positions, split_size


def _graph(edges, n, steps) -> TemporalGraph:
    src, dst, step = (np.array(c, dtype=np.int64) for c in zip(*edges, strict=True))
    return TemporalGraph(name="hand", num_nodes=n, num_steps=steps, features=torch.zeros(n, 1),
                         labels=torch.zeros(n, dtype=torch.long), num_classes=1,
                         **build_structure(src, dst, step, n, steps))


def _dense_from_edges(edges, n, steps) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force [T, N, N] adjacency of G_t and ΔG_t, self-loops included, from the raw edge list."""
    delta = torch.zeros(steps, n, n, dtype=torch.bool)
    delta[:, torch.arange(n), torch.arange(n)] = True
    for s, d, t in edges:
        delta[t, s, d] = delta[t, d, s] = True
    cum = delta.cumsum(0) > 0
    return cum, delta


def _random_edges(n=40, steps=5, m=160, seed=11):
    rng = np.random.default_rng(seed)
    return list(zip(rng.integers(0, n, m).tolist(), rng.integers(0, n, m).tolist(),
                    rng.integers(0, steps, m).tolist(), strict=True))


@pytest.fixture(scope="module")
def random_graph():
    edges = _random_edges()
    return _graph(edges, 40, 5), _dense_from_edges(edges, 40, 5)


@pytest.fixture(scope="module")
def synthetic_graph():
    """The synthetic graph and the brute-force adjacency of its raw interaction list (src, dst, step), captured
    on its way into ``build_structure``: the expectation never reads the CSR the sampler reads."""
    from spikenet.data.readers import synthetic

    captured = []

    def recording_build_structure(src, dst, step, num_nodes, num_steps):
        captured.append((np.array(src), np.array(dst), np.array(step)))
        return build_structure(src, dst, step, num_nodes, num_steps)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synthetic, "build_structure", recording_build_structure)
        g = make_synthetic(num_nodes=200, num_steps=5, seed=3)
    (raw,) = captured
    edges = list(zip(*(a.tolist() for a in raw), strict=True))
    assert len(edges) == g.meta["interactions"] > 100
    return g, _dense_from_edges(edges, g.num_nodes, g.num_steps)


def _check_sage_sample(sample, sizes, p, cum, delta, T):
    """Every neighbour row of every parent is in G_t (first s1) or ΔG_t (next s2) of that parent at t."""
    t_idx = torch.arange(T).view(T, 1, 1)
    for k, size in enumerate(sizes):
        parents, children = sample.hops[k], sample.hops[k + 1]
        assert children.shape == (T, parents.shape[1] * size)
        grouped = children.view(T, parents.shape[1], size)
        s1, s2 = split_size(size, p)
        par = parents.unsqueeze(-1)
        assert cum[t_idx, par, grouped[..., :s1]].all(), f"hop {k + 1}: G_t part has a non-neighbour"
        if s2:
            assert delta[t_idx, par, grouped[..., s1:]].all(), f"hop {k + 1}: ΔG_t part has a non-neighbour"


def _check_rw_sample(sample, sizes, p, cum, delta, T):
    """Each walk step is an edge (or self-loop) of G_t (first s1 steps) or ΔG_t (next s2 steps)."""
    t_idx = torch.arange(T).view(T, 1)
    for k, size in enumerate(sizes):
        parents, children = sample.hops[k], sample.hops[k + 1]
        assert children.shape == (T, parents.shape[1] * size)
        grouped = children.view(T, parents.shape[1], size)
        s1, s2 = split_size(size, p)
        for lo, hi, adj in ((0, s1, cum), (s1, s1 + s2, delta)):
            prev = parents
            for i in range(lo, hi):
                cur = grouped[..., i]
                assert adj[t_idx, prev, cur].all(), f"hop {k + 1}, walk step {i}: not an edge at t"
                prev = cur


@pytest.mark.parametrize("kind", ["sage", "rw"])
@pytest.mark.parametrize("sizes,p", [([5, 2], 0.5), ([3, 4], 0.0), ([4], 1.0), ([6, 3], 0.3)])
@pytest.mark.parametrize("which", ["random_graph", "synthetic_graph"])
def test_samples_never_use_future_edges(which, kind, sizes, p, request):
    g, (cum, delta) = request.getfixturevalue(which)
    sampler = TemporalSampler(g, sizes, p, kind)
    gen = torch.Generator().manual_seed(0)
    check = _check_sage_sample if kind == "sage" else _check_rw_sample
    for _ in range(15):
        batch = torch.randperm(g.num_nodes, generator=gen)[:17]
        sample = sampler.sample(batch, gen)
        assert len(sample.hops) == len(sizes) + 1
        assert torch.equal(sample.hops[0], batch.view(1, -1).expand(g.num_steps, -1))
        rows = 17
        for k, s in enumerate(sizes):
            rows *= s
            assert sample.hops[k + 1].shape == (g.num_steps, rows)
            assert sample.hops[k + 1].dtype == torch.long
        check(sample, sizes, p, cum, delta, g.num_steps)


def test_split_size():
    assert split_size(5, 0.5) == (2, 3)
    assert split_size(2, 0.5) == (1, 1)
    assert split_size(4, 0.0) == (1, 3)  # at least one from G_t
    assert split_size(4, 1.0) == (4, 0)
    assert split_size(1, 0.5) == (1, 0)


# Node 0 has old neighbours 1..6 (t0) and one new neighbour 7 at t1; ΔG_1(0) = {0, 7}, G_1(0) = {0..7}.
STAR = [(0, v, 0) for v in range(1, 7)] + [(0, 7, 1), (8, 9, 1)]


@pytest.mark.parametrize("kind", ["sage", "rw"])
def test_first_s1_from_cumulative_then_s2_from_delta(kind):
    g = _graph(STAR, 10, 2)
    sampler = TemporalSampler(g, [4], 0.5, kind)  # s1 = 2 from G_t, s2 = 2 from ΔG_t
    gen = torch.Generator().manual_seed(1)
    seen_old = set()
    for _ in range(200):
        hop = sampler.sample(torch.tensor([0]), gen).hops[1]  # [T=2, 4]
        t0, t1 = hop[0].tolist(), hop[1].tolist()
        assert set(t0) <= {0, *range(1, 7)}  # at t0 node 7 is not yet a neighbour
        assert set(t1[2:]) <= {0, 7}, "ΔG_1 part must only hold the new edge (or the node itself)"
        seen_old |= set(t1[:2]) & set(range(1, 7))
        if kind == "sage":
            assert len(set(t1[:2])) == 2  # degree 8 > 2: distinct
            assert t1[2:] == [0, 7]  # degree 2 <= 2: all neighbours, self-loop first
            assert len(set(t0[2:])) == 2  # ΔG_0(0) = {0, 1..6}: degree 7 > 2, distinct
    assert seen_old == set(range(1, 7)), "old neighbours must be drawn from G_t in the first s1 slots"


def test_delta_part_at_t0_and_isolated_nodes():
    g = _graph(STAR, 11, 2)  # node 10 never interacts
    sampler = TemporalSampler(g, [5], 0.4, "sage")  # s1 = 2, s2 = 3
    hop = sampler.sample(torch.tensor([10, 8]), torch.Generator().manual_seed(0)).hops[1].view(2, 2, 5)
    assert hop[:, 0].eq(10).all(), "an isolated node samples only itself"
    assert hop[0, 1].eq(8).all(), "node 8 has no edge before t1"
    assert hop[1, 1, :2].tolist() == [8, 9] and hop[1, 1, 2:4].tolist() == [8, 9]
    assert set(hop[1, 1, 4:].tolist()) <= {8, 9}


def test_pick_rule_small_and_large_degrees():
    gen = torch.Generator().manual_seed(0)
    degree = torch.tensor([1, 2, 3, 4, 5, 9, 40]).repeat(500)
    size = 4
    pos = pick_positions(degree, size, gen)
    assert pos.shape == (degree.numel(), size)
    assert (pos >= 0).all() and (pos < degree.unsqueeze(-1)).all()
    for d in (1, 2, 3, 4):
        rows = pos[degree == d]
        first = torch.arange(d).expand(rows.shape[0], d)
        assert torch.equal(rows[:, :d], first), f"d={d}: all neighbours first"
    for d in (5, 9, 40):
        rows = pos[degree == d]
        assert all(len(set(r)) == size for r in rows.tolist()), f"d={d}: distinct picks"
    # repeats for d < s cover every neighbour, not just the first
    assert set(pos[degree == 2][:, 2:].flatten().tolist()) == {0, 1}


def _chi2(counts: np.ndarray) -> float:
    exp = counts.sum() / counts.size
    return float(((counts - exp) ** 2 / exp).sum())


def test_pick_rule_is_uniform():
    gen = torch.Generator().manual_seed(123)
    # d > s: every unordered pair of 6 positions equally likely (15 pairs)
    pos = pick_positions(torch.full((30000,), 6), 2, gen)
    pairs = {pr: i for i, pr in enumerate(itertools.combinations(range(6), 2))}
    counts = np.bincount([pairs[tuple(sorted(r))] for r in pos.tolist()], minlength=15)
    assert _chi2(counts) < 36.1  # chi2(14) 0.999 quantile; a biased sampler lands far beyond
    # every position equally often overall (order within a pick is irrelevant: neighbours are pooled)
    assert _chi2(np.bincount(pos.flatten().numpy(), minlength=6)) < 20.5  # chi2(5) 0.999
    # d < s: the s - d repeats uniform over the d neighbours
    rep = pick_positions(torch.full((20000,), 3), 7, gen)[:, 3:]
    assert _chi2(np.bincount(rep.flatten().numpy(), minlength=3)) < 13.8  # chi2(2) 0.999


def test_sage_neighbours_uniform_over_graph():
    g = _graph(STAR, 10, 2)
    sampler = TemporalSampler(g, [3], 1.0, "sage")  # node 0 at t0: 7 candidates (self + 1..6), 3 picked
    gen = torch.Generator().manual_seed(9)
    hop = sampler.sample(torch.zeros(6000, dtype=torch.long), gen).hops[1][0]
    counts = np.bincount(hop.numpy(), minlength=7)[:7]
    assert counts.sum() == hop.numel()
    assert _chi2(counts) < 22.5  # chi2(6) 0.999


def test_random_walk_moves_uniformly():
    g = _graph(STAR, 10, 2)
    sampler = TemporalSampler(g, [1], 1.0, "rw")  # one step from node 0 on G_t
    hop = sampler.sample(torch.zeros(7000, dtype=torch.long), torch.Generator().manual_seed(2)).hops[1]
    assert _chi2(np.bincount(hop[0].numpy(), minlength=7)[:7]) < 22.5  # 7 choices at t0
    assert set(hop[1].tolist()) == set(range(8))  # 8 choices at t1


@pytest.mark.parametrize("kind", ["sage", "rw"])
def test_same_seed_same_sample(kind, synthetic_graph):
    g, _ = synthetic_graph
    sampler = TemporalSampler(g, [5, 2], 0.5, kind)
    nodes = torch.arange(0, 200, 7)

    def draw(seed):
        return sampler.sample(nodes, torch.Generator().manual_seed(seed)).hops

    a, b, c = draw(5), draw(5), draw(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_bad_arguments_raise():
    g = _graph(STAR, 10, 2)
    for kwargs in (dict(sizes=[5], p=1.5), dict(sizes=[], p=0.5), dict(sizes=[0], p=0.5)):
        with pytest.raises(ValueError):
            TemporalSampler(g, **kwargs)
    with pytest.raises(ValueError, match="sampler"):
        TemporalSampler(g, [2], 0.5, "nope")


def test_hop_sizes_multiply():
    g = make_synthetic(num_nodes=100, num_steps=3, seed=0)
    sample = TemporalSampler(g, [5, 2, 3], 0.5).sample(torch.arange(10))
    assert sample.num_rows == [10, 50, 100, 300]
    assert math.prod([10, 5, 2, 3]) == sample.hops[-1].shape[1]


def _brute_force_inclusion(cum, delta, t, u, size, p):
    """Reference sampler (sage) written from the adjacency alone: the probability that each node appears among
    the G_t part and the ΔG_t part of u's sample at t. Uniform without replacement when d > s picks each of the
    d candidates with probability s / d; with d <= s every candidate appears."""
    s1, s2 = split_size(size, p)
    out = []
    for adj, k in ((cum, s1), (delta, s2)):
        cands = torch.nonzero(adj[t, u]).flatten()
        prob = torch.zeros(adj.shape[-1], dtype=torch.float64)
        prob[cands] = 1.0 if len(cands) <= k else k / len(cands)
        out.append(prob)
    return out


def test_sage_sampler_matches_brute_force_inclusion_on_synthetic_graph(synthetic_graph):
    g, (cum, delta) = synthetic_graph
    size, p, draws = 8, 0.5, 3000
    s1, _ = split_size(size, p)
    deg = cum.sum(-1)  # self-loop included
    last = g.num_steps - 1
    u_big = int(torch.argmax(deg[last]))  # a hub: many candidates, picks without replacement
    u_small = int(torch.nonzero((deg[last] > 1) & (deg[last] <= s1))[0])  # all neighbours, then repeats
    sampler = TemporalSampler(g, [size], p, "sage")
    gen = torch.Generator().manual_seed(17)
    for u in (u_big, u_small):
        hop = sampler.sample(torch.full((draws,), u), gen).hops[1].view(g.num_steps, draws, size)
        for t in (1, last):
            want = _brute_force_inclusion(cum, delta, t, u, size, p)
            for part, (lo, hi) in enumerate(((0, s1), (s1, size))):
                picks = hop[t, :, lo:hi]
                got = torch.zeros(g.num_nodes, dtype=torch.float64)
                for row_nodes in picks.unique():
                    got[row_nodes] = (picks == row_nodes).any(-1).double().mean()
                # 3000 draws: a binomial frequency is within 5 standard errors (<= 0.046) of its probability
                assert torch.allclose(got, want[part], atol=0.046), (u, t, part)
