"""Both energy accounts (compute; compute + memory) and the break-even rate, counted by hand on a tiny network for
every model and coding (docs/energy.md).

F = 4 features, hids [3, 2], sizes [2, 1], T = 2, 5 classes. Per target: hops 0, 1 have 1 + 2 = 3 own rows; a
neighbour map reads 1 * 2 + 2 * 1 = 4 neighbour rows in layer 0 and 2 in layer 1; a coder codes the rows of hops
0, 1, 2: 1 + 2 + 2 = 5. Units: layer 0 3 rows x 3 wide, layer 1 1 x 2, per step. Costs: AC 0.9, MAC 4.6, weight
read W = 10, state/activation word S = 5, spike event E = 2, random number R = 0.5 (pJ).
"""

from __future__ import annotations

import pytest
from torch import nn

from spikenet.energy import EnergyCosts, LayerOps, UnitOps, break_even, scale_rates, summarize
from spikenet.models import ANN, GRUNet, SiGNN, SpikeNet

F, HIDS, SIZES, C, T = 4, [3, 2], [2, 1], 5, 2
RATES = [[0.5, 0.25], [0.1, 0.3]]  # per layer, per step
CODED = [0.2, 0.4]  # the coder's rate per step
W, S, E, R = 10.0, 5.0, 2.0, 0.5
COSTS = EnergyCosts(pj_per_ac=0.9, pj_per_mac=4.6, pj_per_weight_read=W, pj_per_state_access=S, pj_per_event=E,
                    pj_per_random=R)
CODINGS = {"rate": dict(name="rate", scale=1.0, max_rate=1.0, gain=4.0),
           "threshold": dict(name="threshold", gain=1.0, bias=0.0),
           "latency": dict(name="latency", scale=1.0, gain=2.0)}  # the gain is folded into the weights: no cost


def relu(channels=None) -> nn.Module:
    return nn.ReLU()  # one state word per unit (a neuron without a definition)


def classified(encoder, rates) -> list[LayerOps | UnitOps]:
    return [*encoder.op_counts(rates), encoder.embedding_ops("readout", C, rates)]


def uj(compute_pj: float, weights: float = 0, states: float = 0, events: float = 0) -> tuple[float, float]:
    """(compute account, memory account) in µJ from the compute pJ and the counts of W, S and E accesses."""
    return compute_pj * 1e-6, (compute_pj + W * weights + S * states + E * events) * 1e-6


def check(s: dict, accounts: tuple[float, float], twin: tuple[float, float]) -> None:
    assert s["energy_uj"] == pytest.approx(accounts[0])
    assert s["memory_energy_uj"] == pytest.approx(accounts[1])
    assert s["ann_energy_uj"] == pytest.approx(twin[0])
    assert s["ann_memory_energy_uj"] == pytest.approx(twin[1])


# The dense twin of the SAGE models: layer 0 maps 2 x (2 steps x 3 rows x 4 x 3) = 144 MACs, weights 144, inputs
# 2 x 3 x 4 = 24 (self) + 2 x 4 x 4 = 32 (the neighbours read to be aggregated); layer 1 maps 2 x 12 MACs, inputs
# 2 x 1 x 3 = 6 (self) + 2 x 2 x 3 = 12; readout 20 MACs, inputs 2 x 2 = 4; ReLU outputs 18 + 4 words.
TWIN = uj(4.6 * 188, weights=188, states=24 + 32 + 6 + 12 + 4 + 22)


def test_spikenet_real():
    """Compute: 144 MACs, 17.5 SOPs (test_energy). Memory: weights 144 + 17.5; inputs of layer 0 24 + 32 words;
    layer 1's events 0.75 x (1 x 3 + 2 x 3) = 6.75, the readout's 0.4 x 2 = 0.8; units: one state word read and
    written per unit and step, 2 x (18 + 4) = 44 words, and their spikes written as events: 0.75 x 9 + 0.4 x 2."""
    s = summarize(classified(SpikeNet(F, HIDS, T, SIZES, relu, chunk_rows=0), RATES), COSTS)
    assert (s["macs"], s["sops"]) == (144, pytest.approx(17.5))
    check(s, uj(4.6 * 144 + 0.9 * 17.5, weights=161.5, states=56 + 44, events=6.75 + 0.8 + 6.75 + 0.8), TWIN)
    assert s["mean_rate"] == pytest.approx((6.75 + 0.8) / 22)


@pytest.mark.parametrize("name", sorted(CODINGS))
def test_spikenet_coded(name):
    """Layer 0 reads the coder's spikes (rate sum 0.6): self map 0.6 x 3 x 4 x 3 = 21.6 SOPs and 0.6 x 12 = 7.2
    events, neighbour map driven by the 4 neighbour rows: 28.8 SOPs, 9.6 events. The coder: 5 rows x 4 features x
    2 steps = 40 units, each reading its feature word, its spikes 0.6 x 20 = 12 events; rate: a random number and
    a comparison each; latency: a comparison; threshold: one MAC, two parameter reads, one state word."""
    rates = [CODED, *RATES]
    s = summarize(classified(SpikeNet(F, HIDS, T, SIZES, relu, chunk_rows=0, coding=CODINGS[name]), rates), COSTS)
    sops = 21.6 + 28.8 + 13.5 + 4
    own = {"rate": (0.9 * 40 + R * 40, 0, 0), "latency": (0.9 * 40, 0, 0), "threshold": (4.6 * 40, 80, 80)}[name]
    compute, coder_w, coder_s = own
    assert s["sops"] == pytest.approx(sops)
    assert s["macs"] == (40 if name == "threshold" else 0)
    events = 7.2 + 9.6 + 6.75 + 0.8 + 6.75 + 0.8 + 12
    check(s, uj(0.9 * sops + compute, weights=sops + coder_w, states=44 + 40 + coder_s, events=events), TWIN)


def test_ann_and_its_own_twin():
    s = summarize(classified(ANN(F, HIDS, T, SIZES, chunk_rows=0), None), COSTS)
    check(s, TWIN, TWIN)
    assert s["mean_rate"] is None
    # deployed in int8: 0.3 pJ per MAC, weights and activations a quarter of a 32-bit word's access
    assert s["ann_int8_energy_uj"] == pytest.approx(0.3 * 188 * 1e-6)
    assert s["ann_int8_memory_energy_uj"] == pytest.approx((0.3 * 188 + 0.25 * (W * 188 + S * 100)) * 1e-6)


def test_gru():
    """SAGE maps and ReLUs as the ANN's without its readout (168 MACs, inputs 74 words, 22 ReLU words); GRU input
    map 2 -> 18 (72 MACs, inputs 2 x 2 words), hidden map 6 -> 18 (216 MACs, 2 x 6 words), the cell reading
    h_{t-1} and writing h_t (2 x 12 words); readout 6 -> 5 once (30 MACs, 6 words)."""
    s = summarize(classified(GRUNet(F, HIDS, T, SIZES, hidden=6, chunk_rows=0), None), COSTS)
    macs = 168 + 72 + 216 + 30
    own = uj(4.6 * macs, weights=macs, states=74 + 22 + 4 + 12 + 24 + 6)
    check(s, own, own)


def signn(**kw) -> SiGNN:
    return SiGNN(F, HIDS, T, SIZES, relu, channels=2, chunk_rows=0, **kw)


SIGNN_RATES = [[0.5, 0.25], [0.1, 0.3], [0.0, 0.4], [0.0, 0.6]]  # channel 1 reads steps 0, 1; channel 2 step 1


def test_signn_real():
    """Compute as test_signn (MACs 288 + 144 + 27 + 14.4 + 0.8 + 1.2 + 10). Memory per channel step: layer 0's four
    maps 144 weights, inputs 2 x 12 + 2 x 16 = 56 words; units 2 x 9 + 2 x 2 state words; layer 1's valued events
    (address and value) 2 branches x (3 + 6) = 18 per unit rate, the pooling's 2; spikes 9 and 2 per unit rate.
    Channel 1 (rates 0.75, 0.4): weights 288 + 27 + 0.8, events 13.5 + 0.8 valued, 6.75 + 0.8 spikes; channel 2
    (0.4, 0.6): 144 + 14.4 + 1.2, 7.2 + 1.2 valued, 3.6 + 1.2 spikes. Readout: 10 weights, 2 words."""
    s = summarize(classified(signn(), SIGNN_RATES), COSTS)
    macs = 288 + 144 + 27 + 14.4 + 0.8 + 1.2 + 10
    valued = 13.5 + 0.8 + 7.2 + 1.2
    states = 3 * (56 + 22) + valued + 2
    events = valued + 6.75 + 0.8 + 3.6 + 1.2
    compute, memory = uj(4.6 * macs, weights=macs, states=states, events=events)
    assert s["energy_uj"] == pytest.approx(compute)
    assert s["memory_energy_uj"] == pytest.approx(memory)


@pytest.mark.parametrize("name", sorted(CODINGS))
def test_signn_coded(name):
    """Layer 0's four maps read the coder's plain spikes (channel 1 rates 0.2 + 0.4, channel 2 0.4): 2 branches x
    (36 + 48) = 168 SOPs per unit rate -> 168 SOPs and weights, and 2 x (12 + 16) = 56 events per unit rate -> 56;
    its 3 x 56 input words of the real-valued case are gone. The coder as in SpikeNet's (40 units, 12 events)."""
    s = summarize(classified(signn(coding=CODINGS[name]), [CODED, *SIGNN_RATES]), COSTS)
    own = {"rate": (0.9 * 40 + R * 40, 0, 0), "latency": (0.9 * 40, 0, 0), "threshold": (4.6 * 40, 80, 80)}[name]
    coder, coder_w, coder_s = own
    macs = 27 + 14.4 + 0.8 + 1.2 + 10
    assert s["sops"] == pytest.approx(168)
    assert s["macs"] == pytest.approx(macs + (40 if name == "threshold" else 0))
    compute = 0.9 * 168 + 4.6 * macs + coder
    valued = 13.5 + 0.8 + 7.2 + 1.2
    weights = 168 + 27 + 14.4 + 0.8 + 1.2 + 10 + coder_w
    states = 3 * 22 + valued + 2 + 40 + coder_s
    events = valued + 6.75 + 0.8 + 3.6 + 1.2 + 56 + 12
    want = uj(compute, weights=weights, states=states, events=events)
    assert s["energy_uj"] == pytest.approx(want[0])
    assert s["memory_energy_uj"] == pytest.approx(want[1])


def test_break_even_closed_form():
    """SpikeNet, real inputs: compute E(λ) = 4.6 x 144 + λ 0.9 x 17.5 against 4.6 x 188; memory adds λ (17.5 W +
    15.1 E) to the fixed 144 W + 100 S... and break even where E(λ*) equals the twin; λ* scales every rate."""
    ops = classified(SpikeNet(F, HIDS, T, SIZES, relu, chunk_rows=0), RATES)
    b = break_even(ops, COSTS)
    lam = 4.6 * 44 / (0.9 * 17.5)
    assert b["break_even_scale_compute"] == pytest.approx(lam)
    assert b["break_even_rate_compute"] == pytest.approx(lam * 7.55 / 22)
    fixed = 4.6 * 144 + W * 144 + S * (56 + 44)
    slope = 0.9 * 17.5 + W * 17.5 + E * 15.1
    twin = TWIN[1] * 1e6
    assert b["break_even_scale_memory"] == pytest.approx((twin - fixed) / slope)
    at = summarize(scale_rates(ops, b["break_even_scale_memory"]), COSTS)  # the definition, checked directly
    assert at["memory_energy_uj"] == pytest.approx(at["ann_memory_energy_uj"])
    # against the int8 twin the compute account never breaks even: 4.6 x 144 for layer 0 alone exceeds 0.3 x 188
    assert b["break_even_scale_compute_int8"] == pytest.approx((0.3 * 188 - 4.6 * 144) / (0.9 * 17.5))
    assert b["break_even_scale_compute_int8"] < 0
    dense = break_even(classified(ANN(F, HIDS, T, SIZES, chunk_rows=0), None), COSTS)
    assert dense["break_even_scale_compute"] is None and dense["break_even_rate_memory"] is None


def test_report_shows_both_accounts_and_a_coder_panel(tmp_path):
    """Two runs, real and rate-coded: the table has both accounts, the twins' and the break-even rates; the
    coded run's first rate row is the coder's panel."""
    import json

    from report_runs import write_run

    from spikenet.reporting import make_report

    for coding, rates in (("real", [[0.2, 0.3], [0.1, 0.2]]), ("rate", [[0.5, 0.5], [0.2, 0.3], [0.1, 0.2]])):
        extra = {"coding": coding, "neuron": "lif", "energy_uj": 1.0, "ann_energy_uj": 2.0, "memory_energy_uj": 3.0,
                 "ann_memory_energy_uj": 4.0, "mean_rate": 0.2, "break_even_rate_compute": 0.9,
                 "break_even_rate_memory": 0.25}
        run = write_run(tmp_path / coding, task="node_classification", metrics=["macro_f1", "micro_f1"],
                        select="val_micro_f1", scores={"val_micro_f1": 0.5, "test_micro_f1": 0.5,
                                                       "test_macro_f1": 0.4},
                        overrides=[f"coding={coding}"], config={"seed": 1}, extra=extra)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["history"][0]["firing_rates"] = rates
        (run / "metrics.json").write_text(json.dumps(metrics))
    report = make_report(tmp_path, figures=True)
    (section,) = report.sections
    names = {v.labels["coding"]: v.rate_names() for v in section.variants}
    assert names == {"real": ["layer 1", "layer 2"], "rate": ["coder", "layer 1", "layer 2"]}
    md = (tmp_path / "summary.md").read_text()
    for header in ("twin / node (µJ)", "energy + memory / node (µJ)", "twin + memory / node (µJ)", "unit rate",
                   "break-even rate", "break-even rate + memory"):
        assert f"| {header} |" in md or f" {header} |" in md
    assert (tmp_path / "firing_rates.png").is_file()
