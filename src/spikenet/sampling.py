"""Temporal neighbour samplers, vectorised over all T steps and every node of a batch.

For hop k of size s: ``s1 = max(int(s * p), 1)`` neighbours come from the cumulative graph G_t and
``s2 = s - s1`` from the newly added edges ΔG_t, both at the same step t as the parent row, so a
sampler never returns an edge stamped after t. Each parent's s neighbours are contiguous: hop k+1
has ``n_k * s_k`` rows per step.

- ``sage``: the reference pick rule. For degree d (self-loop included): if d <= s, all d neighbours
  plus s - d uniform repeats; else s distinct neighbours, uniformly (Floyd's algorithm, one
  vectorised pass per pick).
- ``rw``: a random walk of s steps from the node on G_t (or ΔG_t), uniform over the current
  node's neighbours (self-loop included); the s visited nodes are the sample.

The only Python loops run over the (small) sample size, never over steps or nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikenet.data.temporal_graph import TemporalGraph

SAMPLERS = ("sage", "rw")


def check_sampler(kind: str, sizes: list[int], p: float) -> None:
    """Raise ``ValueError`` (one line naming the ``sampler`` key) for an unknown kind or out-of-range value."""
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler '{kind}'; choose one of {SAMPLERS}")
    if not sizes or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sampler.sizes must be a non-empty list of positive ints, got {list(sizes)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"sampler.p must be in [0, 1], got {p}")


def split_size(size: int, p: float) -> tuple[int, int]:
    """(from G_t, from ΔG_t) for a hop of ``size``."""
    s1 = max(int(size * p), 1)
    return s1, size - s1


class _Rows:
    """Neighbour rows of (t, u) pairs in G_t or ΔG_t: start offset and degree without self-loop."""

    def __init__(self, graph: TemporalGraph, delta: bool) -> None:
        self.n = graph.num_nodes
        self.delta = delta
        if delta:
            self.indptr, self.indices = graph.delta_indptr, graph.delta_indices
        else:
            self.indptr, self.indices, self.degree = graph.cum_indptr, graph.cum_indices, graph.cum_degree

    def locate(self, t: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.delta:
            row = t * self.n + u
            start = self.indptr[row]
            return start, self.indptr[row + 1] - start
        return self.indptr[u], self.degree[t, u]

    def neighbour(self, u: torch.Tensor, start: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Position 0 is the implicit self-loop, position j >= 1 the (j-1)-th stored neighbour."""
        stored = self.indices[(start + pos - 1).clamp_min(0)] if self.indices.numel() else u
        return torch.where(pos == 0, u, stored)


def _randint(high: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform integers in [0, high) elementwise."""
    r = torch.rand(high.shape, generator=generator, device=high.device)
    return (r * high).long().clamp_max_(high - 1)


def pick_positions(degree: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The reference pick rule for rows of ``degree`` (self-loop included, >= 1): positions [..., size]."""
    d = degree.unsqueeze(-1)
    j = torch.arange(size, device=degree.device)
    fill = _randint(d.expand(*degree.shape, size), generator)
    small = torch.where(j < d, j, fill)  # d <= s: every neighbour, then uniform repeats
    # d > s: Floyd's algorithm draws s distinct positions uniformly from [0, d)
    chosen = torch.empty_like(small)
    for i in range(size):
        top = degree - size + i  # candidate range [0, top]
        r = _randint((top + 1).clamp_min(1), generator)
        seen = (chosen[..., :i] == r.unsqueeze(-1)).any(-1) if i else torch.zeros_like(r, dtype=torch.bool)
        chosen[..., i] = torch.where(seen, top, r)
    return torch.where(d <= size, small, chosen)


@dataclass
class Sample:
    """Node ids per hop, each [W, n_h] (hop 0 is the batch repeated), the hop sizes, and the graph step of
    each of the W rows (None: all steps 0..T-1 in order)."""

    hops: list[torch.Tensor]
    sizes: list[int]
    steps: torch.Tensor | None = None

    @property
    def num_rows(self) -> list[int]:
        return [h.shape[1] for h in self.hops]


class TemporalSampler:
    """Samples multi-hop temporal neighbourhoods of a batch for every step at once."""

    def __init__(self, graph: TemporalGraph, sizes: list[int], p: float, kind: str = "sage") -> None:
        check_sampler(kind, sizes, p)
        self.graph = graph
        self.sizes = [int(s) for s in sizes]
        self.p = float(p)
        self.kind = kind
        self.cum = _Rows(graph, delta=False)
        self.delta = _Rows(graph, delta=True)

    def _draw(self, rows: _Rows, t: torch.Tensor, u: torch.Tensor, size: int, gen) -> torch.Tensor:
        """[..., size] neighbour ids of nodes ``u`` at steps ``t`` (same shape)."""
        if self.kind == "sage":
            start, deg = rows.locate(t, u)
            pos = pick_positions(deg + 1, size, gen)
            return rows.neighbour(u.unsqueeze(-1), start.unsqueeze(-1), pos)
        walk = torch.empty(*u.shape, size, dtype=torch.long, device=u.device)
        cur = u
        for i in range(size):
            start, deg = rows.locate(t, cur)
            cur = rows.neighbour(cur, start, _randint(deg + 1, gen))
            walk[..., i] = cur
        return walk

    def sample(self, nodes: torch.Tensor, generator: torch.Generator | None = None,
               steps: torch.Tensor | None = None) -> Sample:
        """Hops 0..L of the batch ``nodes`` [B] at every step of ``steps`` ([W] step ids, each in [0, T);
        default all T steps in order). Row w of every hop is sampled from G_{steps[w]} and ΔG_{steps[w]}."""
        if steps is None:
            W = self.graph.num_steps
            step_ids = torch.arange(W, device=nodes.device)
        else:
            step_ids = steps.to(nodes.device)
            W = int(step_ids.numel())
        hops = [nodes.view(1, -1).expand(W, -1)]
        for size in self.sizes:
            parents = hops[-1]
            t = step_ids.view(W, 1).expand_as(parents)
            s1, s2 = split_size(size, self.p)
            nbr = self._draw(self.cum, t, parents, s1, generator)
            if s2 > 0:
                nbr = torch.cat([nbr, self._draw(self.delta, t, parents, s2, generator)], dim=-1)
            hops.append(nbr.reshape(W, -1))
        return Sample(hops=hops, sizes=self.sizes, steps=steps)
