"""ANN and GRU baselines: maths against references written here, the encoder contract, end-to-end training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spikenet.data.readers.synthetic import make_synthetic
from spikenet.energy import EnergyCosts, summarize
from spikenet.experiment import build_experiment
from spikenet.gather import layer0_inputs
from spikenet.models import ANN, ENCODERS, GRUNet, SpikeNet, build_model
from spikenet.sampling import TemporalSampler
from spikenet.tasks import model_op_counts

T, F, C = 4, 12, 3
SIZES = [3, 2]


@pytest.fixture(scope="module")
def inputs():
    graph = make_synthetic(num_nodes=120, num_classes=C, num_steps=T, num_features=F, seed=3)
    sample = TemporalSampler(graph, SIZES, 0.5).sample(torch.arange(10), torch.Generator().manual_seed(0))
    return graph, layer0_inputs(graph.features, graph.features, sample, "mean")


def test_ann_is_spikenet_with_relu_units(inputs):
    """Same weights in SpikeNet with ReLU in place of its neurons must give the same embeddings (eval)."""
    _, (x_self, x_agg) = inputs
    torch.manual_seed(0)
    ann = ANN(F, [8, 5], T, SIZES).eval()
    twin = SpikeNet(F, [8, 5], T, SIZES, make_neuron=lambda channels: nn.ReLU()).eval()
    state = {k.removeprefix("stack."): v for k, v in ann.state_dict().items()}
    twin.load_state_dict(state)
    assert torch.allclose(ann(x_self.clone(), x_agg.clone()), twin(x_self.clone(), x_agg.clone()), atol=1e-5)


def _gru_reference(model: GRUNet, x: torch.Tensor) -> torch.Tensor:
    """GRU equations step by step (PyTorch's gate order r, z, n) on the stack's target rows: the last hidden state."""
    g = model.gru
    w_ir, w_iz, w_in = g.weight_ih_l0.chunk(3)
    w_hr, w_hz, w_hn = g.weight_hh_l0.chunk(3)
    b_ir, b_iz, b_in = g.bias_ih_l0.chunk(3)
    b_hr, b_hz, b_hn = g.bias_hh_l0.chunk(3)
    h = torch.zeros(x.shape[1], g.hidden_size)
    for x_t in x:
        r = torch.sigmoid(x_t @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
        z = torch.sigmoid(x_t @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
        n = torch.tanh(x_t @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
        h = (1 - z) * n + z * h
    return h


def test_gru_carries_per_step_embeddings(inputs):
    _, (x_self, x_agg) = inputs
    torch.manual_seed(0)
    model = GRUNet(F, [8, 5], T, SIZES, hidden=6).eval()
    with torch.no_grad():
        per_step = model.stack(x_self.clone(), x_agg.clone())
        assert per_step.shape == (T, 10, 5) and (per_step >= 0).all()
        expected = _gru_reference(model, per_step)
        got = model(x_self.clone(), x_agg.clone())
    assert got.shape == (10, 6) and model.embedding_dim == 6
    assert torch.allclose(got, expected, atol=1e-5)
    # the order of the steps matters to a recurrent model
    with torch.no_grad():
        flipped = model(x_self.flip(0).contiguous(), x_agg.flip(0).contiguous())
    assert not torch.allclose(got, flipped)


@pytest.mark.parametrize("cls", [ANN, GRUNet])
def test_projected_inputs_give_the_same_logits(cls):
    """Evaluation may gather layer 0's projected tables instead of raw features: same embeddings."""
    graph = make_synthetic(num_nodes=120, num_classes=C, num_steps=T, num_features=F, seed=3)
    torch.manual_seed(1)
    model = cls(F, [8, 5], T, SIZES).eval()
    sample = TemporalSampler(graph, SIZES, 0.5).sample(torch.arange(12), torch.Generator().manual_seed(4))
    raw = model(*layer0_inputs(graph.features, graph.features, sample, "mean"))
    tables = model.project_inputs(graph.features)
    projected = model(*layer0_inputs(*tables, sample, "mean"), projected=True)
    assert torch.allclose(raw, projected, atol=1e-4)
    assert model.spike_rates == [] and not model.record_spikes


def test_registry(compose):
    assert {"spikenet", "ann", "gru"} <= set(ENCODERS)
    cfg = compose(["model=gru", "model.hids=[8,4]", "model.hidden=7", "model.dropout=0.5", "model.aggr=sum",
                   "model.concat=false"]).model
    model = build_model(cfg, F, T, [3, 2], lambda channels: nn.ReLU())
    assert isinstance(model, GRUNet) and model.gru.hidden_size == 7 and model.aggr == "sum"
    cfg.name = "transformer"
    with pytest.raises(ValueError, match="unknown model 'transformer'"):
        build_model(cfg, F, T, [3, 2], lambda channels: nn.ReLU())


@pytest.mark.parametrize("name", ["ann", "gru"])
def test_trains_end_to_end(compose, tiny_overrides, name):
    """model=<name> through the same experiment builder and trainer: loss falls, scores and costs are filled."""
    threads = torch.get_num_threads()
    cfg = compose([*tiny_overrides, f"model={name}", "trainer.epochs=4", "trainer.save_checkpoint=false",
                   "trainer.num_threads=1", "trainer.batch_size=32", *(["model.hidden=16"] if name == "gru" else [])])
    try:
        exp = build_experiment(cfg)
        result = exp.trainer.fit()
    finally:
        torch.set_num_threads(threads)
    assert type(exp.trainer.model.encoder) is {"ann": ANN, "gru": GRUNet}[name]
    losses = [r["loss"] for r in result["history"]]
    assert losses[-1] < losses[0], losses
    assert 0.0 <= result["test_micro_f1"] <= 1.0 and not math.isnan(result["test_macro_f1"])
    assert result["firing_rates"] is None  # no spikes to count
    costs = summarize(model_op_counts(exp.task, exp.trainer.model, result["firing_rates"]), EnergyCosts())
    assert costs["sops"] == 0 and costs["macs"] == costs["ann_macs"] > 0
