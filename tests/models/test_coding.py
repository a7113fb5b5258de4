"""Spike-coded input (``spikenet.models.coding``): rates against their targets, seeds, gradients, the encoders'
use of the coded neighbours, and the dense encoders' refusal."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from spikingjelly.activation_based import functional
from torch import nn

from spikenet.gather import gather_hop_rows, gather_self
from spikenet.models import ANN, GRUNet, SiGNN, SpikeNet, build_model, check_model_config
from spikenet.models.aggregators import hop_inputs
from spikenet.models.coding import LatencyCoder, RateCoder, ThresholdCoder, build_coder, check_coding
from spikenet.neurons import build_neuron, build_surrogate
from spikenet.sampling import Sample

CONF = Path(__file__).resolve().parents[2] / "conf"
IF = OmegaConf.create(dict(name="if", tau=1.0, v_threshold=1.0, v_reset=0.0, detach_reset=False, fused=True))
ALIF = OmegaConf.create(dict(name="adaptive_lif", tau=1.0, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7,
                             gamma=0.2, detach_reset=False, fused=True))


def coding(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "coding" / f"{name}.yaml"))


def if_neuron(channels=None) -> nn.Module:
    return build_neuron(IF, build_surrogate("sigmoid", 4.0), "torch")


def alif_neuron(channels=None) -> nn.Module:
    return build_neuron(ALIF, build_surrogate("sigmoid", 1.0), "torch")


def fixed_input() -> torch.Tensor:
    """[T=64, M=50, F=8]: the same features at every step, from -3 to 3."""
    x = torch.linspace(-3, 3, 50 * 8).view(50, 8)
    return x.expand(64, 50, 8).contiguous()


# --- rate -------------------------------------------------------------------------------------------
def test_rate_matches_its_target_within_sampling_error():
    coder = RateCoder(scale=1.5, max_rate=0.5)
    x = fixed_input()
    p = 0.5 * torch.sigmoid(x / 1.5)
    torch.manual_seed(0)
    s = coder(x)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    n = s.numel()
    sigma = math.sqrt(float((p * (1 - p)).sum())) / n
    assert abs(float(s.mean() - p.mean())) < 4 * sigma
    # per feature and row, over the 64 steps: every one within 5 standard errors
    per = s.mean(0)
    err = (p[0] * (1 - p[0]) / 64).sqrt()
    assert bool(((per - p[0]).abs() <= 5 * err + 1e-6).all())
    # per step (the rate the trainer records): all near the mean probability
    step_sigma = math.sqrt(float((p[0] * (1 - p[0])).sum())) / p[0].numel()
    assert bool(((s.mean(dim=(1, 2)) - p[0].mean()).abs() < 5 * step_sigma).all())


def test_rate_seed_repeats_exactly():
    coder, x = RateCoder(1.0, 1.0), fixed_input()
    torch.manual_seed(7)
    a = coder(x)
    torch.manual_seed(7)
    b = coder(x)
    torch.manual_seed(8)
    c = coder(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rate_gradient_is_the_expectations():
    """Straight through: d s / d x = d p / d x, against float64 finite differences of p(x)."""
    coder = RateCoder(scale=2.0, max_rate=0.8)
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 5, 4, dtype=torch.float64)
    (coder(x) * w).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        fd = (coder.probability(x + eps) - coder.probability(x - eps)) / (2 * eps)
    torch.testing.assert_close(x.grad, w * fd, rtol=1e-6, atol=1e-9)


# --- threshold --------------------------------------------------------------------------------------
def test_threshold_rate_matches_the_if_neurons():
    """IF (v_threshold 1, hard reset to 0) on a constant input u fires every ceil(1 / u) steps: floor(T / k) spikes."""
    T = 12
    us = torch.tensor([0.3, 0.45, 0.7, 1.5, 0.05])
    coder = ThresholdCoder(len(us), if_neuron(), states=1)
    with torch.no_grad():
        s = coder(us.expand(T, 1, len(us)).contiguous())
    want = torch.tensor([math.floor(T / math.ceil(1 / u)) for u in us.tolist()], dtype=torch.float32)
    torch.testing.assert_close(s.sum(dim=(0, 1)), want)


def test_threshold_bias_starts_the_coder_sparser():
    """``model.coding.bias`` is b at start: the IF coder sees u + b, so it fires floor(T / ceil(1 / (u + b))) times
    where u + b > 0 and never elsewhere; the YAML's default 0 is the coder without it."""
    T, b = 12, -0.15
    us = torch.tensor([0.3, 0.45, 0.75, 1.5, 0.1])
    coder = build_coder({**coding("threshold"), "bias": b}, len(us), lambda width: if_neuron())
    assert coder.bias.tolist() == pytest.approx([b] * len(us))
    with torch.no_grad():
        s = coder(us.expand(T, 1, len(us)).contiguous())
    want = [math.floor(T / math.ceil(1 / (u + b))) if u + b > 0 else 0 for u in us.tolist()]
    assert s.sum(dim=(0, 1)).tolist() == want
    assert coding("threshold")["bias"] == 0.0
    with pytest.raises(ValueError, match="model.coding.bias"):
        check_coding({**coding("threshold"), "bias": float("nan")})


def test_threshold_gradient_is_the_surrogates():
    """One step: s = H(a x + b - 1); d s / d a = sg'(a x + b - 1) x and d s / d b = sg'(a x + b - 1), with the
    sigmoid surrogate sg'(v) = alpha sigma(alpha v)(1 - sigma(alpha v)), alpha 4."""
    torch.manual_seed(0)
    F = 6
    coder = ThresholdCoder(F, if_neuron(), states=1)
    with torch.no_grad():
        coder.weight.copy_(torch.linspace(0.5, 1.5, F))
        coder.bias.copy_(torch.linspace(-0.2, 0.3, F))
    x = torch.randn(1, 3, F)
    s = coder(x)
    s.sum().backward()
    v = (coder.weight * x + coder.bias - 1.0).detach()
    sg = 4.0 * torch.sigmoid(4.0 * v) * (1 - torch.sigmoid(4.0 * v))
    torch.testing.assert_close(coder.bias.grad, sg.sum(dim=(0, 1)))
    torch.testing.assert_close(coder.weight.grad, (sg * x).sum(dim=(0, 1)))
    torch.testing.assert_close(s, (v >= 0).float())  # SpikingJelly's Heaviside fires at the threshold


# --- latency ------------------------------------------------------------------------------------------
def test_latency_fires_once_at_its_step():
    coder, x = LatencyCoder(scale=1.0), fixed_input()[:10]
    s = coder(x)
    assert bool((s.sum(0) == 1).all())  # one spike per feature over the T steps
    want = ((1 - torch.sigmoid(x[0])) * 10).floor().clamp(0, 9)
    torch.testing.assert_close(s.argmax(0).float(), want)
    assert float(s.mean()) == pytest.approx(1 / 10)  # the rate over all steps: 1 / T
    assert not s.requires_grad  # no parameters; the features are data


def test_coding_checks():
    for name in ("real", "rate", "threshold", "latency"):
        check_coding(coding(name))
    with pytest.raises(ValueError, match="model.coding.name"):
        check_coding({"name": "poisson"})
    with pytest.raises(ValueError, match="max_rate"):
        check_coding({"name": "rate", "scale": 1.0, "max_rate": 1.5, "gain": 1.0})
    with pytest.raises(ValueError, match="scale"):
        check_coding({"name": "latency", "scale": 0.0, "gain": 1.0})
    with pytest.raises(ValueError, match="gain"):
        check_coding({"name": "threshold", "gain": 0.0})
    assert build_coder(coding("real"), 4, if_neuron) is None


# --- in the encoders ----------------------------------------------------------------------------------
F, HIDS, SIZES, T = 4, [3, 2], [2, 1], 3
ROWS = [1, 2, 2]  # rows per target in hops 0, 1, 2


def hop_rows(batch: int) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(T, batch * sum(ROWS), F)


@pytest.mark.parametrize("name", ["rate", "threshold", "latency"])
def test_spikenet_codes_every_neighbour_then_aggregates(name):
    torch.manual_seed(0)
    model = SpikeNet(F, HIDS, T, SIZES, alif_neuron, chunk_rows=0, coding=coding(name))
    assert model.reads_hop_rows and not model.projection_pays(10, 10, 1, 1e12)
    x = hop_rows(batch=3)
    model.record_spikes = True
    torch.manual_seed(5)
    out = model(x, None)
    assert out.shape == (3, T * HIDS[-1])
    assert len(model.spike_rates) == len(HIDS) + 1  # the coder's rate first
    functional.reset_net(model)  # the threshold coder's neuron starts from rest, as at every forward
    torch.manual_seed(5)
    spikes = model.coder(x)
    torch.testing.assert_close(model.spike_rates[0], spikes.mean(dim=(1, 2)))
    # layer 0's inputs: each hop's own spikes, and the mean of its sampled neighbours' spikes
    x_self, x_neigh = hop_inputs(spikes, [3 * r for r in ROWS], SIZES, "mean")
    torch.testing.assert_close(x_neigh[:, :3], spikes[:, 3:9].view(T, 3, 2, F).mean(2))
    torch.testing.assert_close(x_self, spikes[:, :9])
    # layer 0 reads them times the coding's gain
    assert model.coder.gain == 4.0
    functional.reset_net(model)
    torch.manual_seed(5)
    seen = model._code(x)
    torch.testing.assert_close(seen[0], 4.0 * x_self)
    torch.testing.assert_close(seen[1], 4.0 * x_neigh)


def test_threshold_coding_trains_its_parameters_through_spikenet():
    torch.manual_seed(0)
    model = SpikeNet(F, HIDS, T, SIZES, alif_neuron, chunk_rows=0, dropout=0.0, coding=coding("threshold"))
    with torch.no_grad():
        model.coder.bias.fill_(0.5)  # near the threshold, so the surrogate is not flat
    model(hop_rows(batch=4) * 0.5, None).sum().backward()
    assert float(model.coder.weight.grad.abs().sum()) > 0
    assert float(model.coder.bias.grad.abs().sum()) > 0


def test_real_coding_draws_the_same_weights():
    torch.manual_seed(0)
    real = SpikeNet(F, HIDS, T, SIZES, alif_neuron, coding=coding("real"))
    torch.manual_seed(0)
    rate = SpikeNet(F, HIDS, T, SIZES, alif_neuron, coding=coding("rate"))
    torch.manual_seed(0)
    plain = SpikeNet(F, HIDS, T, SIZES, alif_neuron)
    for a, b, c in zip(real.parameters(), rate.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert real.coder is None and not real.reads_hop_rows


def test_signn_codes_once_for_all_channels():
    torch.manual_seed(0)
    model = SiGNN(F, HIDS, T, SIZES, alif_neuron, channels=2, chunk_rows=0, coding=coding("latency"))
    model.record_spikes = True
    out = model(hop_rows(batch=3), None)
    assert out.shape == (3, HIDS[-1])
    assert len(model.spike_rates) == 1 + 2 * len(HIDS)
    assert model.op_counts([r.tolist() for r in model.spike_rates]) is not None


def test_dense_encoders_refuse_spike_coding():
    for name in ("ann", "gru"):
        cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")
        cfg.coding = coding("real")
        encoder = build_model(cfg, F, T, SIZES, if_neuron)
        assert isinstance(encoder, ANN | GRUNet) and not encoder.reads_hop_rows
        cfg.coding = coding("rate")
        with pytest.raises(ValueError, match=f"model={name} reads real-valued features; coding=rate"):
            build_model(cfg, F, T, SIZES, if_neuron)
        with pytest.raises(ValueError, match="coding=rate"):
            check_model_config(cfg, SIZES)


def test_gather_hop_rows_adds_the_deepest_hop():
    table = torch.randn(20, F)
    g = torch.Generator().manual_seed(0)
    hops = [torch.randint(0, 20, (T, 3 * r), generator=g) for r in ROWS]
    sample = Sample(hops, SIZES)
    rows = gather_hop_rows(table, sample)
    assert rows.shape == (T, 3 * sum(ROWS), F)
    torch.testing.assert_close(rows[:, : 3 * (ROWS[0] + ROWS[1])], gather_self(table, sample))
    torch.testing.assert_close(rows[:, 9:], table[hops[2]])
