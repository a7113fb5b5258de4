"""Operation counts and energy: a small network counted by hand, and the dense counts against torch's FLOP counter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spikenet.contracts import Encoder
from spikenet.energy import EnergyCosts, LayerOps, summarize
from spikenet.models import ANN, GRUNet, SpikeNet
from spikenet.tasks import TaskModel
from spikenet.tasks.node_classification import ClassifierHead

CONFIG = Path(__file__).resolve().parents[2] / "conf" / "config.yaml"
# F=4 features, hids [3, 2], sizes [2, 1], C=5 classes, T=2 steps
F, HIDS, SIZES, C, T = 4, [3, 2], [2, 1], 5, 2
RATES = [[0.5, 0.25], [0.1, 0.3]]  # per layer, per step


def spikenet() -> SpikeNet:
    return SpikeNet(F, HIDS, T, SIZES, make_neuron=lambda channels: nn.ReLU(), chunk_rows=0)


def classified(encoder: Encoder, rates: list[list[float]] | None) -> list[LayerOps] | None:
    """The encoder's counts plus node classification's readout of C classes (``NodeClassification.head_ops``)."""
    ops = encoder.op_counts(rates)
    return None if ops is None else [*ops, encoder.embedding_ops("readout", C, rates)]


def test_spikenet_counts_by_hand():
    """Layer 0 (real-valued inputs) is dense: rows 1 + 2 (hops 0, 1), self and neighbour maps 4 -> 3 at 2 steps:
    2 * 2 * 3 * 4 * 3 = 144 MACs. Layer 1 gets layer 0's spikes (rate sum 0.75): self map 1 row 3 -> 2
    (6 per step), neighbour map driven by both sampled neighbours' spikes (2 rows, 12 per step): 0.75 * 18 =
    13.5 SOPs. Readout: the last layer's spikes (rate sum 0.4) into 5 classes, 2 * 5 = 10 per step: 4 SOPs."""
    s = summarize(classified(spikenet(), RATES), EnergyCosts(0.9, 4.6))
    assert s["macs"] == 144
    assert s["sops"] == pytest.approx(17.5)
    # the ANN twin aggregates first: layer 1 is 2 maps * 1 row * 3 * 2 * 2 steps = 24, readout 2 * 10 = 20
    assert s["ann_macs"] == 144 + 24 + 20
    assert s["energy_uj"] == pytest.approx((0.9 * 17.5 + 4.6 * 144) * 1e-6)
    assert s["ann_energy_uj"] == pytest.approx(4.6 * 188 * 1e-6)


def test_costs_come_from_config():
    energy = OmegaConf.load(CONFIG).energy
    assert EnergyCosts.from_cfg(energy) == EnergyCosts()  # the dataclass repeats the config's values
    energy.pj_per_ac, energy.pj_per_mac = 2.0, 10.0
    s = summarize(classified(spikenet(), RATES), EnergyCosts.from_cfg(energy))
    assert s["energy_uj"] == pytest.approx((2.0 * 17.5 + 10.0 * 144) * 1e-6)


def test_no_rates_no_estimate_and_bad_rates_raise():
    assert spikenet().op_counts(None) is None
    with pytest.raises(ValueError, match="3 firing rates for 2 steps"):
        LayerOps("x", 1, 2, 3, steps=2, rates=(0.1, 0.2, 0.3))


def test_gru_counts_by_hand():
    """SAGE layers dense: 144 + 24; GRU (input 2, hidden 6, three gates) per step 2*18 + 6*18; readout 6 -> 5 once."""
    s = summarize(classified(GRUNet(F, HIDS, T, SIZES, hidden=6, chunk_rows=0), None), EnergyCosts())
    assert s["macs"] == s["ann_macs"] == 168 + T * (2 * 18 + 6 * 18) + 30
    assert s["sops"] == 0


@pytest.mark.parametrize("make", [
    lambda: ANN(F, HIDS, T, SIZES, chunk_rows=0),
    lambda: GRUNet(F, HIDS, T, SIZES, hidden=6, chunk_rows=0),
    spikenet,  # with ReLU units it runs the same dense maps its ANN twin would
], ids=["ann", "gru", "spikenet-dense"])
def test_ann_macs_match_torch_flop_counter(make):
    """The counted multiply-accumulates of one forward equal the matmul FLOPs torch counts, / 2 / targets."""
    torch.manual_seed(0)
    encoder = make()
    model = TaskModel(encoder, ClassifierHead(encoder.embedding_dim, C)).eval()
    batch = 7
    rows = batch * (1 + SIZES[0])
    x_self, x_agg = torch.randn(T, rows, F), torch.randn(T, rows, F)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x_self, x_agg)
    expected = counter.get_total_flops() / 2 / batch
    assert summarize(classified(encoder, [[0.5] * T] * len(HIDS)), EnergyCosts())["ann_macs"] == expected
