"""SpikeNet: shapes, layer maths against a reference written here, state reset, projected inputs."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from spikenet.data.readers.synthetic import make_synthetic
from spikenet.gather import layer0_inputs
from spikenet.models import SAGEAggregator, SpikeNet, build_model
from spikenet.models.aggregators import reduce_neighbours
from spikenet.neurons import build_neuron, build_surrogate
from spikenet.neurons.sj_compat import reset_net
from spikenet.sampling import TemporalSampler

T, F, C = 4, 12, 3
NEURON = OmegaConf.create(dict(name="adaptive_lif", tau=1.0, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7,
                               gamma=0.2, detach_reset=False, fused=True))


def make_neuron(channels=None):
    return build_neuron(NEURON, build_surrogate("sigmoid", 1.0), "torch")


@pytest.fixture(scope="module")
def graph():
    return make_synthetic(num_nodes=150, num_classes=C, num_steps=T, num_features=F, seed=2)


def _model(hids, sizes, **kw) -> SpikeNet:
    torch.manual_seed(0)
    return SpikeNet(F, hids, T, sizes, make_neuron, **kw)


def _sample(graph, sizes, nodes, seed=0):
    return TemporalSampler(graph, sizes, 0.5).sample(nodes, torch.Generator().manual_seed(seed))


def _inputs(model, graph, sample):
    return layer0_inputs(graph.features, graph.features, sample, model.aggr)


def _pool(x, size, aggr):
    T_, rows, F_ = x.shape
    pooled = x.reshape(T_, rows // size, size, F_).sum(2)
    return pooled / size if aggr == "mean" else pooled


def _reference_forward(model, blocks, sizes, aggr, concat):
    """DESIGN.md's layers from per-hop blocks [T, n_h, F], with the model's own weights and neurons."""
    x = blocks
    L = len(sizes)
    for i in range(L):
        agg = model.aggregators[i]
        zs = []
        for h in range(L - i):
            z_self = x[h] @ agg.lin_self.weight.T + agg.lin_self.bias
            z_neigh = _pool(x[h + 1], sizes[h], aggr) @ agg.lin_neigh.weight.T + agg.lin_neigh.bias
            zs.append(torch.cat([z_self, z_neigh], -1) if concat else z_self + z_neigh)
        neuron = model.neurons[i]
        reset_net(neuron)
        spikes = neuron(torch.cat(zs, dim=1))  # one multi-step call over T for all hops
        x = list(torch.split(spikes, [b.shape[1] for b in zs], dim=1))
    out = x[0]  # [T, B, H]
    return out.permute(1, 0, 2).reshape(out.shape[1], -1)  # the embedding: spike trains flattened over time


@pytest.mark.parametrize("aggr", ["mean", "sum"])
@pytest.mark.parametrize("concat", [False, True])
@pytest.mark.parametrize("hids,sizes", [([8, 4], [3, 2]), ([8], [3])])
def test_shapes_and_layer_maths(graph, hids, sizes, concat, aggr):
    model = _model(hids, sizes, concat=concat, aggr=aggr).eval()
    nodes = torch.arange(10)
    sample = _sample(graph, sizes, nodes)
    widths = [h * (2 if concat else 1) for h in hids]
    assert model.embedding_dim == T * widths[-1]
    assert model.aggregators[0].lin_self.in_features == F
    if len(hids) > 1:
        assert model.aggregators[1].lin_self.in_features == widths[0]
    model.record_spikes = True
    with torch.no_grad():
        logits = model(*_inputs(model, graph, sample))
        blocks = [graph.features[torch.arange(T).view(T, 1), h] for h in sample.hops]  # [T, n_h, F]
        expected = _reference_forward(model, blocks, sizes, aggr, concat)
    assert logits.shape == (10, model.embedding_dim)
    assert len(model.spike_rates) == len(hids) and all(r.shape == (T,) for r in model.spike_rates)
    assert any(r.sum() > 0 for r in model.spike_rates), "the test input should make some neurons fire"
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_backward_reaches_every_parameter(graph):
    model = _model([8, 4], [3, 2]).train()
    head = torch.nn.Linear(model.embedding_dim, C)
    logits = head(model(*_inputs(model, graph, _sample(graph, [3, 2], torch.arange(16)))))
    torch.nn.functional.cross_entropy(logits, graph.labels[:16]).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.aggregators[0].lin_self.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("concat", [False, True])
def test_sage_aggregator_formula(concat):
    torch.manual_seed(1)
    agg = SAGEAggregator(3, 2, aggr="mean", concat=concat)
    x_self, x_neigh = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    z_self = x_self @ agg.lin_self.weight.T + agg.lin_self.bias
    z_neigh = x_neigh @ agg.lin_neigh.weight.T + agg.lin_neigh.bias
    expected = torch.cat([z_self, z_neigh], -1) if concat else z_self + z_neigh
    torch.testing.assert_close(agg(x_self, x_neigh), expected)
    assert agg.out_features == (4 if concat else 2)


@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_reduce_neighbours_groups_contiguous_rows(aggr):
    x = torch.arange(6.0).view(1, 6, 1)
    expected = torch.tensor([3.0, 12.0]) / (3 if aggr == "mean" else 1)
    torch.testing.assert_close(reduce_neighbours(x, 3, aggr).flatten(), expected)


def test_neuron_state_resets_between_batches(graph):
    model = _model([8, 4], [3, 2]).eval()
    a = _inputs(model, graph, _sample(graph, [3, 2], torch.arange(20), seed=1))
    b = _inputs(model, graph, _sample(graph, [3, 2], torch.arange(20, 40), seed=2))
    with torch.no_grad():
        first = model(*a)
        assert not isinstance(model.neurons[0].v, float), "the neuron should hold state after a forward"
        model(*b)
        again = model(*a)
    assert torch.equal(first, again)
    # the check has teeth: the same layer-0 input fires differently with and without a reset
    z = model.aggregators[0](*a)
    with torch.no_grad():
        model(*b)
        stale = model.neurons[0](z)
        reset_net(model)
        fresh = model.neurons[0](z)
    assert not torch.equal(stale, fresh)


@pytest.mark.parametrize("concat,aggr,hids,sizes", [(False, "mean", [8, 4], [3, 2]), (True, "sum", [6], [4]),
                                                    (True, "mean", [6, 5], [2, 3])])
def test_projected_inputs_equal_direct_path(graph, concat, aggr, hids, sizes):
    model = _model(hids, sizes, concat=concat, aggr=aggr).eval()
    sample = _sample(graph, sizes, torch.arange(0, 150, 3), seed=4)
    p_self, p_neigh = model.project_inputs(graph.features)
    assert p_self.shape == (T, graph.num_nodes, hids[0]) and p_neigh.shape == (T, graph.num_nodes, hids[0])
    with torch.no_grad():
        direct = model(*_inputs(model, graph, sample))
        via_projection = model(*layer0_inputs(p_self, p_neigh, sample, aggr), projected=True)
    assert direct.abs().sum() > 0
    torch.testing.assert_close(via_projection, direct, atol=1e-5, rtol=1e-5)


def test_dropout_only_in_training(graph):
    model = _model([8, 4], [3, 2], dropout=0.5)
    inputs = _inputs(model, graph, _sample(graph, [3, 2], torch.arange(20)))
    model.train()
    torch.manual_seed(1)
    a = model(*inputs)
    torch.manual_seed(2)
    b = model(*inputs)
    assert not torch.equal(a, b), "dropout after layer 0 should change training outputs"
    model.eval()
    assert torch.equal(model(*inputs), model(*inputs))


def test_invalid_shapes_raise():
    with pytest.raises(ValueError):
        SpikeNet(F, [], T, [], make_neuron)
    with pytest.raises(ValueError):
        SpikeNet(F, [8, 4], T, [3], make_neuron)


def test_build_model_from_config(compose):
    cfg = compose(["model=spikenet", "model.hids=[8,4]", "model.dropout=0.7", "model.aggr=sum",
                   "model.concat=true"]).model
    model = build_model(cfg, F, T, [3, 2], make_neuron)
    assert isinstance(model, SpikeNet) and model.embedding_dim == T * 8
    cfg.name = "nope"
    with pytest.raises(ValueError):
        build_model(cfg, F, T, [3, 2], make_neuron)
