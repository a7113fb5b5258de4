"""SiGNN (``model=signn``): channel steps and pooling kernels, the forward against the equations written out
here (per channel, per step, a plain loop) with the model's own weights, gradients, firing-rate records,
operation counts by hand, the registry and configs, and end-to-end runs."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F_
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from spikenet.config import ConfigError, validate
from spikenet.data.readers.synthetic import make_synthetic
from spikenet.energy import EnergyCosts, LayerOps, summarize
from spikenet.gather import layer0_inputs, layer0_unique_inputs
from spikenet.models import ENCODERS, SiGNN, build_model, is_spiking
from spikenet.models.signn import channel_steps, select_steps
from spikenet.neurons import BLIFNode, build_neuron, build_surrogate, cpu_kernel
from spikenet.sampling import TemporalSampler
from spikenet.tasks import TaskModel
from spikenet.tasks.node_classification import ClassifierHead

T, F, C = 5, 6, 3
HIDS, SIZES = [8, 4], [3, 2]
# a low threshold, so that the small test network fires on both crossings
BLIF = OmegaConf.create(dict(name="blif", tau=1.0, tau_raw=0.5, d_raw=1.0, v_threshold=0.05, v_reset=0.0,
                             detach_reset=False, backend="torch", fused=True))


def make_blif(channels: int) -> BLIFNode:
    return build_neuron(BLIF, build_surrogate("arctan", 1.0), "torch", channels)


def make_model(num_steps: int = T, channels: int = C, dropout: float = 0.6, **kw) -> SiGNN:
    torch.manual_seed(0)
    return SiGNN(F, HIDS, num_steps, SIZES, make_blif, channels=channels, dropout=dropout, **kw)


@pytest.fixture(scope="module")
def graph():
    return make_synthetic(num_nodes=120, num_classes=3, num_steps=T, num_features=F, seed=3)


def sample_of(graph, nodes, seed=0):
    return TemporalSampler(graph, SIZES, 0.5).sample(nodes, torch.Generator().manual_seed(seed))


# --- channel steps and pooling kernels -------------------------------------------------------------------
def official_steps(num_steps: int, k: int) -> list[int]:
    """The official encode loop's steps of channel k (t % k == 0; channel 3 of a 27-step graph: (t + 1) % 3 == 0)."""
    if k == 3 and num_steps == 27:
        return [t for t in range(num_steps) if (t + 1) % 3 == 0]
    return [t for t in range(num_steps) if t % k == 0]


@pytest.mark.parametrize("num_steps", [25, 26, 27])
def test_channel_steps_and_pooling_kernels(num_steps):
    """Every k-th step, the newest included; a channel's pooling kernel is the number of steps it reads."""
    model = SiGNN(F, [4, 2], num_steps, SIZES, make_blif, channels=3)
    for k in (1, 2, 3):
        steps = channel_steps(num_steps, k)
        assert steps[-1] == num_steps - 1
        assert steps == list(range(steps[0], num_steps, k)) and 0 <= steps[0] < k
        assert model.steps[k - 1] == steps
        assert model.pools[k - 1].kernel_size == (len(steps),)
        assert model.pools[k - 1].weight.shape == (2, 1, len(steps))
    assert channel_steps(num_steps, 1) == list(range(num_steps))


@pytest.mark.parametrize("num_steps", [25, 27, 19, 13])  # the official datasets: DBLP 25 / 27, Tmall 19, Patent 13
def test_channel_steps_are_the_official_ones_on_its_datasets(num_steps):
    for k in (1, 2, 3):
        assert channel_steps(num_steps, k) == official_steps(num_steps, k)
        assert len(channel_steps(num_steps, k)) == num_steps // k + num_steps % k  # the official kernel


def test_twenty_six_steps_run():
    """At 26 steps the official kernel T // 3 + T % 3 = 10 exceeds the 9 steps its channel 3 reads (its Conv1d
    fails); ours is the count of the steps read, and the forward runs."""
    model = SiGNN(F, [4, 2], 26, SIZES, make_blif, channels=3).eval()
    assert model.pools[2].kernel_size == (len(range(1, 26, 3)),)
    rows = 2 * (1 + SIZES[0])
    assert model(torch.randn(26, rows, F), torch.randn(26, rows, F)).shape == (2, 2)


def test_more_channels_than_steps_read_the_newest_step():
    assert channel_steps(2, 5) == [1]
    assert channel_steps(1, 3) == [0]


def test_select_steps_of_unique_rows_equals_dense_selection(graph):
    sample = sample_of(graph, torch.arange(7))
    dense = layer0_inputs(graph.features, graph.features, sample, "mean")
    unique = layer0_unique_inputs(graph.features, sample, "mean")
    for start, stride in ((0, 1), (0, 2), (1, 2), (2, 3)):
        for d, u in zip(dense, unique, strict=True):
            got = select_steps(u, start, stride)
            want = select_steps(d, start, stride)
            assert got.steps == want.shape[0]
            assert got.rows.shape[0] == got.index.unique().numel()  # compacted: every kept row is used
            torch.testing.assert_close(got.rows[got.index].view_as(want), want, rtol=0, atol=0)


# --- the forward against the equations ---------------------------------------------------------------------
def blif_steps(xs: list[torch.Tensor], neuron: BLIFNode, negatives: list[int] | None = None) -> list[torch.Tensor]:
    """docs/design.md's BLIF, one step at a time: V from 0, theta from v_threshold, k and c per channel
    (``negatives`` gets the count of negative crossings)."""
    k, c = torch.sigmoid(neuron.tau_raw), torch.sigmoid(neuron.d_raw)
    v = torch.zeros_like(xs[0])
    theta = torch.full_like(xs[0], neuron.v_threshold)
    out = []
    for x in xs:
        h = v - (v - neuron.v_reset) * k + (1 - k) * x
        s = (h - theta > 0).to(x.dtype) + (-theta - h > 0).to(x.dtype)
        if negatives is not None:
            negatives.append(int((-theta - h > 0).sum()))
        v = (1 - s) * h + s * neuron.v_reset
        theta = c * theta + (1 - c) * s
        out.append(s)
    return out


def sage(agg, x_self, x_neigh_rows, size):
    """W_self x + b_self + W_neigh mean(neighbours) + b_neigh for one hop's rows."""
    neigh = x_neigh_rows.view(x_self.shape[0], size, -1).mean(1)
    return x_self @ agg.lin_self.weight.T + agg.lin_self.bias + neigh @ agg.lin_neigh.weight.T + agg.lin_neigh.bias


def reference_embedding(model: SiGNN, features: torch.Tensor, hops: list[torch.Tensor],
                        negatives: list[int] | None = None) -> tuple[torch.Tensor, list]:
    """SiGNN in eval mode written out: per channel k, per step it reads (t % k == (T - 1) % k), per layer and hop;
    BLIF states carried over the channel's steps one step at a time; pooled by F.conv1d; channels averaged.
    Also returns every (channel, layer) spike tensor per step read."""
    L = len(SIZES)
    num_steps = features.shape[0]
    pooled, spikes = [], []
    for c, layers in enumerate(model.channels):
        steps = [t for t in range(num_steps) if t % (c + 1) == (num_steps - 1) % (c + 1)]
        per_layer_in = {i: [] for i in range(L)}  # the spiking branch's inputs per layer, per step
        gates = {i: [] for i in range(L)}
        # the spiking branch depends on earlier steps only through the neuron states, so run layer by layer
        xs = [[features[t][hops[h][t]] for h in range(L + 1)] for t in steps]
        for i, layer in enumerate(layers):
            for j, _ in enumerate(steps):
                x = xs[j]
                per_layer_in[i].append(torch.cat([sage(layer.spike, x[h], x[h + 1], SIZES[h]) for h in range(L - i)]))
                gates[i].append(torch.sigmoid(torch.cat([sage(layer.gate, x[h], x[h + 1], SIZES[h])
                                                         for h in range(L - i)])))
            s = blif_steps(per_layer_in[i], layer.neuron, negatives)
            spikes.append(s)
            for j in range(len(steps)):
                out = gates[i][j] * s[j]
                xs[j] = list(torch.split(out, [x.shape[0] for x in xs[j][: L - i]]))
        targets = torch.stack([xs[j][0] for j in range(len(steps))])  # [T_k, B, H]
        pool = model.pools[c]
        pooled.append(F_.conv1d(targets.permute(1, 2, 0), pool.weight, pool.bias, groups=pool.in_channels)[..., 0])
    return sum(pooled) / len(pooled), spikes


@pytest.mark.parametrize("unique", [False, True], ids=["tensors", "unique-rows"])
def test_forward_matches_the_equations(graph, unique):
    """float64 (the generated torch path of BLIF), dense and distinct-row inputs, against the loop above."""
    model = make_model().double().eval()
    nodes = torch.arange(9)
    sample = sample_of(graph, nodes)
    feats = graph.features.double()
    if unique:
        inputs = layer0_unique_inputs(feats, sample, "mean", dtype=torch.float64)
    else:
        inputs = layer0_inputs(feats, feats, sample, "mean", dtype=torch.float64)
    negatives: list[int] = []
    want, spikes = reference_embedding(model, feats, sample.hops, negatives)
    fired = torch.cat([torch.stack(s).flatten() for s in spikes])
    assert 0.02 < fired.mean() < 0.9  # the comparison covers firing and silent units
    assert sum(negatives) > 0  # ... and the negative crossing
    got = model(*inputs)
    assert got.shape == (nodes.numel(), HIDS[-1]) == (nodes.numel(), model.embedding_dim)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_float32_kernel_path_matches_float64(graph):
    """The default path (float32, compiled BLIF kernel where it builds, chunked maps, distinct rows) gives the
    float64 equations' embedding to float32 rounding."""
    model = make_model().eval()
    sample = sample_of(graph, torch.arange(9), seed=1)
    got = model(*layer0_unique_inputs(graph.features, sample, "mean"))
    want, _ = reference_embedding(model.double(), graph.features.double(), sample.hops)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_kernel_is_used_without_fallback():
    assert cpu_kernel.available("blif"), cpu_kernel.status("blif")
    neuron = make_blif(4)
    assert neuron._kernel_applies(torch.zeros(2, 3, 4))


def test_dropout_after_every_layer_only_in_training(graph):
    model = make_model(dropout=0.5)
    inputs = layer0_inputs(graph.features, graph.features, sample_of(graph, torch.arange(6)), "mean")
    model.eval()
    a, b = model(*inputs), model(*inputs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.train()
    torch.manual_seed(1)
    c = model(*inputs)
    torch.manual_seed(2)
    d = model(*inputs)
    assert not torch.equal(c, d)
    # no dropout at p = 0: training equals evaluation
    model0 = make_model(dropout=0.0).train()
    torch.testing.assert_close(model0(*inputs), model0.eval()(*inputs), rtol=0, atol=0)


def test_dropout_applies_to_the_last_layer_too(graph):
    """With one layer the only dropout is the one after the last (pooled) layer."""
    torch.manual_seed(0)
    model = SiGNN(F, [4], T, [3], make_blif, channels=1, dropout=0.5)
    sample = TemporalSampler(graph, [3], 0.5).sample(torch.arange(6), torch.Generator().manual_seed(0))
    inputs = layer0_inputs(graph.features, graph.features, sample, "mean")
    torch.manual_seed(1)
    trained = model.train()(*inputs)
    assert not torch.allclose(trained, model.eval()(*inputs))


def test_state_resets_between_forwards(graph):
    model = make_model().eval()
    inputs = layer0_inputs(graph.features, graph.features, sample_of(graph, torch.arange(5)), "mean")
    first = model(*inputs)
    torch.testing.assert_close(model(*inputs), first, rtol=0, atol=0)


def test_gradients_reach_every_parameter(graph):
    model = make_model(dropout=0.3).train()
    head = ClassifierHead(model.embedding_dim, 3)
    task_model = TaskModel(model, head)
    nodes = torch.arange(12)
    inputs = layer0_unique_inputs(graph.features, sample_of(graph, nodes), "mean")
    loss = F_.cross_entropy(task_model(*inputs), graph.labels[nodes])
    loss.backward()
    for name, p in task_model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_pooling_weight_gradient_by_hand(graph):
    """e = mean_c(sum_t w_c[h, t] out_c[t, b, h] + bias_c[h]): d(sum e)/d bias_c = B / C for every h."""
    model = make_model().eval()
    nodes = torch.arange(7)
    inputs = layer0_inputs(graph.features, graph.features, sample_of(graph, nodes), "mean")
    model(*inputs).sum().backward()
    for pool in model.pools:
        torch.testing.assert_close(pool.bias.grad, torch.full_like(pool.bias, nodes.numel() / C))


# --- firing rates and operation counts --------------------------------------------------------------------
def test_recorded_rates_per_channel_and_layer(graph):
    """One [T] row per (channel, layer), channel-major: the mean spike at the steps the channel reads, 0 elsewhere."""
    model = make_model().double().eval()
    sample = sample_of(graph, torch.arange(9))
    feats = graph.features.double()
    _, spikes = reference_embedding(model, feats, sample.hops)
    model.record_spikes = True
    model(*layer0_inputs(feats, feats, sample, "mean", dtype=torch.float64))
    assert len(model.spike_rates) == C * len(HIDS)
    for row, (rates, ref) in enumerate(zip(model.spike_rates, spikes, strict=True)):
        steps = model.steps[row // len(HIDS)]
        want = torch.zeros(T, dtype=torch.float32)
        want[steps] = torch.stack([s.float().mean() for s in ref])
        torch.testing.assert_close(rates, want)


def test_op_counts_by_hand():
    """F = 4, hids [3, 2], sizes [2, 1], T = 2, 2 channels: channel 1 reads steps 0, 1; channel 2 step 1.

    Layer 0: 4 dense maps (gate and spike, self and neighbour aggregate), rows 1 + 2 (hops 0, 1), 4 -> 3:
    12 * 3 = 36 per map and step -> channel 1 2 * 4 * 36 = 288, channel 2 4 * 36 = 144 MACs.
    Layer 1 reads g * s of layer 0 (valued events): self maps 1 row 3 -> 2 (6), neighbour maps fed by both
    sampled neighbours (2 rows, 12), two branches: 2 * 18 = 36 per unit rate. Channel 1's layer-0 rates
    (0.5, 0.25) -> 0.75 * 36 = 27; channel 2's at step 1 (0.4) -> 14.4. Pooling: 2 inputs per step at the
    last layer's rate: channel 1 (0.1 + 0.3) * 2 = 0.8, channel 2 0.6 * 2 = 1.2. Readout 2 -> 5, dense: 10.
    No SOPs: nothing SiGNN's maps read is a plain spike.
    """
    model = SiGNN(4, [3, 2], 2, [2, 1], lambda n: torch.nn.ReLU(), channels=2, chunk_rows=0)
    rates = [[0.5, 0.25], [0.1, 0.3],  # channel 1: layer 0, layer 1
             [0.0, 0.4], [0.0, 0.6]]  # channel 2 reads step 1 only
    ops = [*model.op_counts(rates), model.embedding_ops("readout", 5, rates)]
    s = summarize(ops, EnergyCosts(0.9, 4.6))
    assert s["sops"] == 0
    assert s["macs"] == pytest.approx(288 + 144 + 27 + 14.4 + 0.8 + 1.2 + 10)
    # the ANN of the same shape: every map dense, neighbours aggregated first (layer 1: 2 branches x 2 maps x
    # 1 row x 3 x 2 = 24 per step), pooling 2 per step
    assert s["ann_macs"] == 288 + 144 + 24 * 3 + 2 * 3 + 10
    assert s["energy_uj"] == pytest.approx(4.6 * s["macs"] * 1e-6)
    assert model.op_counts(None) is None
    assert model.op_counts(rates[:2]) is None


def test_ann_macs_match_torch_flop_counter():
    """The dense count of one forward equals torch's matmul FLOPs / 2 / targets, plus the pooling's
    sum_k H T_k multiply-adds (an elementwise product and a sum, which the FLOP counter does not count)."""
    torch.manual_seed(0)
    model = SiGNN(F, HIDS, T, SIZES, make_blif, channels=C, chunk_rows=0)
    task_model = TaskModel(model, ClassifierHead(model.embedding_dim, 5)).eval()
    batch = 7
    rows = batch * (1 + SIZES[0])
    x_self, x_agg = torch.randn(T, rows, F), torch.randn(T, rows, F)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        task_model(x_self, x_agg)
    pooling = sum(HIDS[-1] * len(steps) for steps in model.steps)
    ops = [*model.op_counts([[0.5] * T] * (C * len(HIDS))), model.embedding_ops("readout", 5, None)]
    assert summarize(ops, EnergyCosts())["ann_macs"] == counter.get_total_flops() / 2 / batch + pooling


def test_valued_events_cost_macs():
    op = LayerOps("x", rows=2, fan_in=3, fan_out=4, steps=2, rates=(0.5, 0.25), valued=True)
    assert op.sops == 0 and op.macs == pytest.approx(0.75 * 24) and op.ann_macs == 2 * 24
    assert LayerOps("y", 2, 3, 4, 2, rates=(0.5, 0.25)).macs == 0  # plain spikes: accumulates
    with pytest.raises(ValueError, match="valued inputs need their event rates"):
        LayerOps("z", 2, 3, 4, 2, valued=True)


# --- registry and configs -----------------------------------------------------------------------------------
def test_registry_and_default_config(compose):
    assert "signn" in ENCODERS and is_spiking("signn")
    cfg = compose(["model=signn"])
    validate(cfg)
    assert list(cfg.model.hids) == [128, 64] and cfg.model.channels == 3 and cfg.model.dropout == 0.6
    model = build_model(cfg.model, F, T, list(cfg.sampler.sizes), make_blif)
    assert isinstance(model, SiGNN) and model.embedding_dim == 64 and len(model.channels) == 3
    assert model.dropout.p == 0.6 and model.aggr == "mean"


def test_paper_preset(compose):
    cfg = compose(["experiment=signn_dblp"])
    validate(cfg)
    assert (cfg.model.name, cfg.neuron.name, cfg.surrogate.name, cfg.dataset.name) == ("signn", "blif", "arctan",
                                                                                       "dblp")
    assert cfg.surrogate.alpha == 1.0 and cfg.neuron.v_threshold == 1.0
    assert cfg.neuron.tau_raw == 1.0 and cfg.neuron.d_raw == 1.0
    assert list(cfg.model.hids) == [128, 64] and cfg.model.channels == 3 and cfg.model.dropout == 0.6
    assert list(cfg.sampler.sizes) == [5, 2] and cfg.sampler.p == 0.5 and cfg.sampler.name == "sage"
    assert (cfg.trainer.lr, cfg.trainer.weight_decay, cfg.trainer.batch_size, cfg.trainer.epochs) == (
        0.005, 0.01, 1024, 100)
    assert (cfg.task.train_size, cfg.task.val_size, cfg.task.split_seed, cfg.seed) == (0.4, 0.05, 42, 2024)


@pytest.mark.parametrize("override,key", [
    ("model.channels=0", "model.channels"),
    ("model.channels=1.5", "model.channels"),
    ("model.hids=[8]", "model.hids"),
    ("model.dropout=1.0", "model.dropout"),
    ("model.aggr=max", "model.aggr"),
])
def test_bad_config_names_the_key(compose, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose(["model=signn", override]))


def test_wrong_step_count_is_refused(graph):
    model = make_model(num_steps=T + 1)
    inputs = layer0_inputs(graph.features, graph.features, sample_of(graph, torch.arange(3)), "mean")
    with pytest.raises(ValueError, match=f"built for {T + 1} steps but its inputs have {T}"):
        model(*inputs)


# --- end to end -------------------------------------------------------------------------------------------
SIGNN_TINY = ["model=signn", "neuron=blif", "surrogate=arctan", "surrogate.alpha=1.0", "model.hids=[16,4]",
              "trainer.epochs=2", "dataset.num_nodes=300", "dataset.num_steps=5", "trainer.progress=false",
              "device=cpu", "trainer.num_threads=1"]


def test_node_classification_end_to_end(cli, tmp_path):
    result = cli(SIGNN_TINY, tmp_path / "run")
    assert result.returncode == 0, result.explain()
    assert "unavailable" not in result.stderr + result.stdout  # no fallback from the compiled kernel
    m = result.metrics
    assert m["model"] == "signn" and m["task"] == "node_classification"
    assert 0.0 <= m["test_micro_f1"] <= 1.0 and m["best_epoch"] >= 1
    rates = m["firing_rates"]
    assert len(rates) == 3 * 2 and all(len(r) == 5 for r in rates)
    assert rates[2][1] == rates[2][3] == 0.0  # channel 2 reads steps 0, 2, 4 of 5
    assert m["sops"] == 0 and m["macs"] > 0 and m["energy_uj"] > 0 and m["ann_macs"] >= m["macs"]
    run_log = (tmp_path / "run" / "run.log").read_text()
    assert "model SiGNN" in run_log and "unavailable" not in run_log
    json.dumps(m)  # finite, plain JSON


@pytest.mark.timeout(300)
def test_node_property_end_to_end(cli, tmp_path):
    """Windowed task: SiGNN over the window's W steps (its channels' steps relative to the window)."""
    args = ["task=node_property", "dataset=tgbn", "dataset.name=tgbn-toy", "task.evaluator=sklearn", "task.window=4",
            *[a for a in SIGNN_TINY if not a.startswith("dataset.")]]
    result = cli(args, tmp_path / "run")
    assert result.returncode == 0, result.explain()
    m = result.metrics
    assert m["task"] == "node_property" and m["model"] == "signn"
    assert len(m["firing_rates"]) == 6 and all(len(r) == 4 for r in m["firing_rates"])
