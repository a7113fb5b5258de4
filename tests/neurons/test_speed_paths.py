"""The speed-oriented building blocks compute exactly what the plain versions compute."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import PROJECT_ROOT, TINY_OVERRIDES

from spikenet.data.readers.synthetic import make_synthetic
from spikenet.gather import (
    UniqueRows,
    gather_neighbour_aggregates,
    gather_self,
    gather_unique_self,
    layer0_inputs,
    layer0_unique_inputs,
    unique_keys,
)
from spikenet.models import ANN, SpikeNet
from spikenet.models.chunked_linear import chunked_linear_sum, spread_linear_sum
from spikenet.models.dropout import FastDropout, scaled_keep_mask
from spikenet.sampling import TemporalSampler


def test_dropout_keep_rate_and_unbiased_scale():
    torch.manual_seed(0)
    mask = scaled_keep_mask(torch.Size([400, 1000]), keep=0.3, device=torch.device("cpu"))
    kept = mask > 0
    assert abs(kept.float().mean().item() - 0.3) < 0.005
    assert torch.allclose(mask[kept], torch.full_like(mask[kept], 65536 / round(0.3 * 65536)))
    assert abs(mask.mean().item() - 1.0) < 0.02  # E[mask] = 1: the layer is unbiased


def test_dropout_backward_uses_the_forward_mask_and_eval_is_identity():
    drop = FastDropout(0.7)
    x = torch.rand(5, 64, 8, requires_grad=True)
    torch.manual_seed(1)
    y = drop(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    scale = (y / x).detach()
    assert torch.allclose(grad, scale)
    assert ((y == 0) | (y > x)).all()
    torch.manual_seed(1)
    assert torch.equal(drop(x), y)  # reproducible from the torch seed
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


@pytest.mark.parametrize("chunk", [1, 7, 16, 10_000])
def test_chunked_linear_matches_linear(chunk):
    torch.manual_seed(0)
    xs, xn = torch.randn(3, 11, 6), torch.randn(3, 11, 6)
    ws, wn, b = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True), torch.randn(4)
    got = chunked_linear_sum([(xs, ws), (xn, wn)], b, chunk)
    want = F.linear(xs, ws, b) + F.linear(xn, wn)
    assert torch.allclose(got, want, atol=1e-5)
    g = torch.randn_like(got)
    got_grads = torch.autograd.grad(got, (ws, wn), g)
    want_grads = torch.autograd.grad(want, (ws, wn), g)
    for a, w in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(a, w, atol=1e-4)


def test_chunked_linear_gradcheck():
    torch.manual_seed(0)
    args = [torch.randn(2, 9, 3, dtype=torch.double, requires_grad=True) for _ in range(2)]
    args += [torch.randn(5, 3, dtype=torch.double, requires_grad=True) for _ in range(2)]
    args.append(torch.randn(5, dtype=torch.double, requires_grad=True))
    assert torch.autograd.gradcheck(lambda a, b, c, d, e: chunked_linear_sum([(a, c), (b, d)], e, 4), args)


@pytest.mark.parametrize("aggr", ["mean", "sum"])
@pytest.mark.parametrize("per_step", [True, False])
def test_layer0_inputs_match_naive_gather(aggr, per_step):
    graph = make_synthetic(num_nodes=200, num_steps=5, num_features=8, seed=3)
    table = graph.features if per_step else graph.features[0].clone()
    sample = TemporalSampler(graph, [3, 2], 0.5).sample(torch.arange(17), torch.Generator().manual_seed(0))
    T = graph.num_steps

    def rows(ids):
        return table[torch.arange(T).view(T, 1), ids] if per_step else table[ids]

    h0, h1, h2 = sample.hops
    want_self = torch.cat([rows(h0), rows(h1)], dim=1)
    red = (lambda x, s: x.view(T, -1, s, x.shape[-1]).mean(2)) if aggr == "mean" else \
        (lambda x, s: x.view(T, -1, s, x.shape[-1]).sum(2))
    want_agg = torch.cat([red(rows(h1), 3), red(rows(h2), 2)], dim=1)
    assert torch.equal(gather_self(table, sample), want_self)
    assert torch.allclose(gather_neighbour_aggregates(table, sample, aggr), want_agg, atol=1e-5)
    x_self, x_agg = layer0_inputs(table.half(), table.half(), sample, aggr)
    assert x_self.dtype == torch.float32 and x_agg.shape == want_agg.shape


@pytest.mark.parametrize("key_space", [50, 100_000])  # dense flags / sorting
def test_unique_keys_is_torch_unique(key_space):
    keys = torch.randint(0, 50, (400,), generator=torch.Generator().manual_seed(1)) * (key_space // 50)
    distinct, index = unique_keys(keys, key_space)
    want_distinct, want_index = torch.unique(keys, return_inverse=True)
    assert torch.equal(distinct, want_distinct) and torch.equal(index, want_index)
    assert torch.equal(distinct[index], keys)


@pytest.mark.parametrize("per_step", [True, False])
def test_unique_self_rows_spread_to_the_self_block(per_step):
    """Distinct rows once each, and their spread is exactly gather_self (per-step tables key by (t, node),
    static ones by node, which also merges a node's rows over the steps)."""
    graph = make_synthetic(num_nodes=60, num_steps=4, num_features=5, seed=4)
    table = graph.features if per_step else graph.features[0].clone()
    sample = TemporalSampler(graph, [4, 2], 0.5).sample(torch.arange(30), torch.Generator().manual_seed(2))
    got = gather_unique_self(table, sample)
    want = gather_self(table, sample)
    assert torch.equal(got.rows[got.index].view_as(want), want)
    assert got.rows.shape[0] == torch.unique(got.index).numel() < got.index.numel()  # repeats were merged
    if not per_step:
        assert got.rows.shape[0] == torch.unique(torch.cat(sample.hops[:-1], 1)).numel()
    x_self, x_agg = layer0_unique_inputs(table.half(), sample, "mean")
    assert x_self.rows.dtype == x_agg.rows.dtype == torch.float32 and x_self.steps == x_agg.steps == graph.num_steps


def test_spread_linear_gradcheck():
    """Every input's gradient, the per-slot index_add in particular, against finite differences, for two
    spread parts and a dense one."""
    gen = torch.Generator().manual_seed(0)
    d = dict(dtype=torch.double, requires_grad=True)
    rows, rows2 = torch.randn(6, 3, generator=gen, **d), torch.randn(4, 2, generator=gen, **d)
    index = torch.tensor([0, 5, 5, 2, 0, 1, 3, 3, 3, 4, 0])
    index2 = torch.tensor([3, 3, 0, 1, 2, 2, 2, 3, 0, 1, 1])
    x = torch.randn(11, 4, generator=gen, **d)
    w_rows, w_rows2 = torch.randn(2, 3, generator=gen, **d), torch.randn(2, 2, generator=gen, **d)
    w_x, bias = torch.randn(2, 4, generator=gen, **d), torch.randn(2, generator=gen, **d)
    want = rows[index] @ w_rows.T + rows2[index2] @ w_rows2.T + x @ w_x.T + bias
    got = spread_linear_sum([(rows, index, w_rows), (rows2, index2, w_rows2)], [(x, w_x)], bias, 4)
    assert torch.allclose(got, want)

    def fn(r, r2, a, b, b2, c, e):
        return spread_linear_sum([(r, index, b), (r2, index2, b2)], [(a, c)], e, 4)

    assert torch.autograd.gradcheck(fn, (rows, rows2, x, w_rows, w_rows2, w_x, bias))


@pytest.mark.parametrize("per_step", [True, False])
@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_unique_neighbour_aggregates_spread_to_the_dense_ones(per_step, aggr):
    """Repeated bags are aggregated once and spread back bit for bit; the repeats are really merged."""
    from spikenet.gather import gather_unique_neighbour_aggregates

    graph = make_synthetic(num_nodes=60, num_steps=4, num_features=5, seed=4)
    table = graph.features if per_step else graph.features[0].clone()
    sample = TemporalSampler(graph, [4, 2], 0.5).sample(torch.arange(30), torch.Generator().manual_seed(2))
    got = gather_unique_neighbour_aggregates(table, sample, aggr)
    want = gather_neighbour_aggregates(table, sample, aggr)
    assert torch.equal(got.rows[got.index].view_as(want), want)
    assert got.rows.shape[0] < got.index.numel() and got.per_step == want.shape[1]


@pytest.mark.parametrize("model_cls,concat,aggr", [(SpikeNet, False, "mean"), (SpikeNet, True, "sum"),
                                                   (ANN, False, "mean")])
def test_models_take_unique_rows_rows(model_cls, concat, aggr):
    """Logits and every parameter gradient are those of the row-by-row path (up to float rounding)."""
    from omegaconf import OmegaConf

    from spikenet.neurons import build_neuron, build_surrogate

    graph = make_synthetic(num_nodes=120, num_steps=5, num_features=8, seed=6)
    sample = TemporalSampler(graph, [3, 2], 0.5).sample(torch.arange(40), torch.Generator().manual_seed(3))
    cfg = OmegaConf.create(dict(name="adaptive_lif", tau=1.0, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7,
                                gamma=0.2))
    extra = {"make_neuron": lambda channels: build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch", channels)} \
        if model_cls is SpikeNet else {}
    torch.manual_seed(0)
    model = model_cls(in_features=8, hids=[16, 4], num_steps=5, sizes=[3, 2], dropout=0.0,
                      aggr=aggr, concat=concat, chunk_rows=64, **extra)
    results = []
    dense = layer0_inputs(graph.features, graph.features, sample, aggr)
    unique = layer0_unique_inputs(graph.features, sample, aggr)
    for inputs in (dense, unique, (unique[0], dense[1])):  # both parts distinct, or the self part only
        model.zero_grad()
        logits = model(*inputs)
        (logits * torch.linspace(-1, 1, logits.numel()).view_as(logits)).sum().backward()
        results.append([logits.detach()] + [p.grad.clone() for p in model.parameters()])
    assert all(isinstance(part, UniqueRows) for part in unique)
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_large_synthetic_features_are_memory_mapped_and_reused(tmp_path):
    kwargs = dict(num_nodes=500, num_steps=3, num_features=16, feature_dtype="float16", cache_dir=str(tmp_path),
                  mmap_threshold_mb=0.01)
    first = make_synthetic(**kwargs)
    files = list((tmp_path / "synthetic").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "synthetic").glob("*.tmp*"))
    assert first.features.dtype == torch.float16 and tuple(first.features.shape) == (3, 500, 16)
    mtime = files[0].stat().st_mtime_ns
    second = make_synthetic(**kwargs)
    assert files[0].stat().st_mtime_ns == mtime  # reused, not rewritten
    assert torch.equal(first.features, second.features)
    assert np.isfinite(second.features.float().numpy()).all()


@pytest.mark.timeout(600)  # benchmarks/speed/epoch_time.py in a subprocess (~10-60 s on 2 cores)
def test_epoch_benchmark_prints_json(tmp_path):
    cmd = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "speed" / "epoch_time.py"), *TINY_OVERRIDES,
           "bench.epochs=1", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("epoch_seconds", "peak_rss_mb", "nodes_per_second", "matmul_floor_seconds"):
        assert result[key] > 0
    assert set(result["split"]) == {"sample", "gather", "forward", "backward", "evaluate"}


def _fit(overrides):
    from conftest import compose_config

    from spikenet.experiment import build_experiment

    cfg = compose_config([*TINY_OVERRIDES, "trainer.epochs=4", "trainer.save_checkpoint=false", *overrides])
    return build_experiment(cfg).trainer.fit()


def test_exact_eval_projection_gives_the_same_scores():
    direct = _fit(["trainer.eval_project_first=false", "trainer.test_schedule=every"])
    projected = _fit(["trainer.eval_project_first=true", "trainer.eval_cache_mb=100000", "trainer.test_schedule=every"])
    for a, b in zip(direct["history"], projected["history"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4  # training is untouched
        # test (180 targets) is projected, val (15) is not worth it: the same scores up to float rounding
        assert abs(a["test_micro_f1"] - b["test_micro_f1"]) <= 0.02


# ---------------------------------------------------------------------------------------------------
# The compiled CPU neuron kernel (neuron + surrogate + dropout) and the layer-1 input assembly.


def _kernel_or_skip():
    from spikenet.neurons import cpu_kernel

    if not cpu_kernel.available():
        pytest.skip(f"compiled CPU kernel unavailable: {cpu_kernel.status()['reason']}")


@pytest.mark.parametrize("hops", [1, 2])
@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_hop_inputs_match_slicing_and_autograd(hops, aggr):
    from spikenet.models.aggregators import hop_inputs

    gen = torch.Generator().manual_seed(4)
    T, D, sizes = 3, 5, [3, 2]
    rows = [4, 12, 24][: hops + 1]
    x = torch.randn(T, sum(rows), D, generator=gen, requires_grad=True)
    x_self, x_neigh = hop_inputs(x, rows, sizes[:hops], aggr)
    # plain version: slice the self rows, regroup each hop's rows by parent and reduce
    n_self = sum(rows[:hops])
    want_self = x[:, :n_self]
    groups, start = [], rows[0]
    for h in range(hops):
        block = x[:, start : start + rows[h + 1]].reshape(T, rows[h], sizes[h], D)
        groups.append(block.mean(2) if aggr == "mean" else block.sum(2))
        start += rows[h + 1]
    want_neigh = torch.cat(groups, dim=1)
    assert x_self.is_contiguous()
    assert torch.equal(x_self, want_self) and torch.equal(x_neigh, want_neigh)
    g_s, g_n = torch.randn(x_self.shape, generator=gen), torch.randn(x_neigh.shape, generator=gen)
    (got,) = torch.autograd.grad((x_self * g_s).sum() + (x_neigh * g_n).sum(), x)
    (want,) = torch.autograd.grad((want_self * g_s).sum() + (want_neigh * g_n).sum(), x)
    assert torch.equal(got, want)


NEURON_KW = {"adaptive_lif": dict(tau=1.0), "lif": dict(tau=1.5), "if": {}, "plif": dict(init_tau=1.7),
             "blif": dict(v_threshold=0.6)}
"""One configuration per neuron for the kernel tests (blif also gets its channel count)."""


def _kernel_node(name: str, surrogate: str, alpha: float, mode: str, channels: int, **kw):
    """A neuron on the compiled kernel (mode "kernel"), the generated torch path ("torch") or SpikingJelly's
    step loop ("loop"); blif's per-channel parameters set away from their equal initial values."""
    from spikenet.neurons import build_surrogate, node_class

    args = {**NEURON_KW[name], **kw, **({"channels": channels} if name == "blif" else {})}
    node = node_class(name)(surrogate_function=build_surrogate(surrogate, alpha), fused=mode != "loop", **args)
    node.cpu_kernel = mode == "kernel"
    if name == "blif":
        with torch.no_grad():
            node.tau_raw.copy_(torch.linspace(-1.0, 2.0, channels))
            node.d_raw.copy_(torch.linspace(1.5, -0.5, channels))
    return node


def _drop_run(node, x, weights, drop):
    """fire_and_drop with seeded dropout draws: (output, final states, input and parameter gradients)."""
    inp = x.clone().requires_grad_(True)
    torch.manual_seed(3)
    out = node.fire_and_drop(inp, drop)
    states = [getattr(node, s) for s in node.definition.states]
    loss = (out * weights[0]).sum() + sum((st * w).sum() for st, w in zip(states, weights[1:], strict=False))
    grads = torch.autograd.grad(loss, [inp, *node.parameters()])
    return out.detach(), [st.detach() for st in states], grads


@pytest.mark.parametrize("surrogate", ["sigmoid", "triangle", "arctan", "super_spike", "multi_gauss"])
@pytest.mark.parametrize("tau,v_reset,detach_reset", [(1.0, 0.0, False), (1.5, 0.0, False), (2.0, 0.2, True)])
def test_kernel_neuron_and_dropout_match_the_torch_path(surrogate, tau, v_reset, detach_reset):
    """Adaptive LIF: kernel (fire_and_drop) vs the generated torch path + FastDropout, and vs SpikingJelly's
    step loop, for every surrogate (multi_gauss included: it runs on the kernel too)."""
    _kernel_or_skip()
    alpha = {"sigmoid": 1.0, "triangle": 1.0, "arctan": 10.0, "super_spike": 10.0, "multi_gauss": 0.5}[surrogate]
    gen = torch.Generator().manual_seed(11)
    T, N, F = 9, 70, 33  # rows * features not a multiple of the kernel's block
    x = torch.randn(T, N, F, generator=gen) * 0.8 + 0.7
    weights = [torch.randn(T, N, F, generator=gen), torch.randn(N, F, generator=gen), torch.randn(N, F, generator=gen)]
    drop = FastDropout(0.6)

    def run(mode):
        node = _kernel_node("adaptive_lif", surrogate, alpha, mode, F, tau=tau, v_reset=v_reset,
                            detach_reset=detach_reset)
        return _drop_run(node, x, weights, drop)

    kernel, torch_path, loop = run("kernel"), run("torch"), run("loop")
    rate = (kernel[0] > 0).float().mean().item()
    assert 0.05 < rate < 0.6, rate  # fires and drops
    for other in (torch_path, loop):
        assert torch.equal(kernel[0], other[0])  # spikes and dropout mask: the same bits
        for a, b in zip(kernel[1], other[1], strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        assert kernel[2][0].abs().max() > 0
        torch.testing.assert_close(kernel[2][0], other[2][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("name", ["lif", "if", "plif", "blif"])
def test_kernel_dropout_for_every_neuron(monkeypatch, name, detach_reset):
    """Each neuron's fire_and_drop on its compiled kernel: the torch path's and the step loop's outputs (same
    bits), final states, input and parameter gradients (PLIF's w, BLIF's per-channel tau_raw and d_raw)."""
    _kernel_or_skip()
    from spikenet.neurons import cpu_kernel
    from spikenet.neurons.functions import KernelNeuron

    assert cpu_kernel.available(name), cpu_kernel.status(name)
    calls = []
    apply = KernelNeuron.apply
    monkeypatch.setattr(KernelNeuron, "apply", lambda *a: calls.append(a[0].name) or apply(*a))
    gen = torch.Generator().manual_seed(12)
    T, N, F = 8, 40, 24
    x = torch.randn(T, N, F, generator=gen) * 0.9 + 0.5
    weights = [torch.randn(T, N, F, generator=gen)] + [torch.randn(N, F, generator=gen) for _ in range(2)]
    drop = FastDropout(0.5)
    results = {mode: _drop_run(_kernel_node(name, "arctan", 2.0, mode, F, detach_reset=detach_reset), x, weights,
                               drop) for mode in ("kernel", "torch", "loop")}
    assert calls == [name]  # only the kernel run took the kernel
    kernel = results["kernel"]
    assert 0.02 < (kernel[0] > 0).float().mean().item() < 0.6
    for mode in ("torch", "loop"):
        other = results[mode]
        assert torch.equal(kernel[0], other[0]), mode
        for a, b in zip(kernel[1], other[1], strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        for a, b in zip(kernel[2], other[2], strict=True):
            assert a.abs().max() > 0
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_kernel_eval_without_dropout_and_state_gradients():
    """No-grad forward; and gradients w.r.t. carried-over V / theta through the kernel Function."""
    _kernel_or_skip()
    from spikenet.neurons import AdaptiveLIFNode
    from spikenet.neurons.functions import FusedNeuron, KernelNeuron
    from spikenet.neurons.surrogates import Sigmoid

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(7, 40, generator=gen) + 0.6
    for tau in (1.0, 2.0):
        v0 = (torch.rand(40, generator=gen) * 0.5).requires_grad_(True)
        th0 = (torch.rand(40, generator=gen) + 0.5).requires_grad_(True)
        call = AdaptiveLIFNode(tau=tau, surrogate_function=Sigmoid(1.0)).call()
        got = KernelNeuron.apply(call, None, 0, 1.0, x, v0, th0)
        want = FusedNeuron.apply(call, x, v0, th0)
        assert torch.equal(got[0], want[0])
        loss_w = [torch.randn(t.shape, generator=gen) for t in want]
        g_got = torch.autograd.grad(sum((a * w).sum() for a, w in zip(got, loss_w, strict=True)), (v0, th0))
        g_want = torch.autograd.grad(sum((a * w).sum() for a, w in zip(want, loss_w, strict=True)), (v0, th0))
        for a, b in zip(g_got, g_want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        with torch.no_grad():
            assert torch.equal(KernelNeuron.apply(call, None, 0, 1.0, x, v0, th0)[0], want[0])


def test_spikenet_step_is_the_same_with_and_without_the_kernel():
    """A training step of the whole model: same logits bit for bit, same weight gradients to rounding."""
    _kernel_or_skip()
    from conftest import compose_config

    from spikenet.experiment import build_experiment

    cfg = compose_config([*TINY_OVERRIDES, "model.hids=[16,8,4]", "sampler.sizes=[3,2,2]",
                          "trainer.save_checkpoint=false"])
    tr = build_experiment(cfg).trainer
    batch = next(iter(tr.loader.train_batches(tr.task.splits.train, 64, torch.Generator().manual_seed(0))))
    results = []
    for kernel in (True, False):
        for node in tr.encoder.neurons:
            node.cpu_kernel = kernel
        tr.model.train()
        tr.model.zero_grad()
        torch.manual_seed(9)
        logits = tr.model(*batch.inputs)
        logits.square().sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in tr.model.parameters()]))
    (l_k, g_k), (l_t, g_t) = results
    assert torch.equal(l_k, l_t)
    for a, b in zip(g_k, g_t, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_kernel_falls_back_without_a_compiler(monkeypatch, caplog):
    from spikenet.neurons import AdaptiveLIFNode, cpu_kernel
    from spikenet.neurons.surrogates import Sigmoid

    monkeypatch.setattr(cpu_kernel, "_state", {})
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with caplog.at_level("WARNING"):
        assert not cpu_kernel.available("adaptive_lif")
    assert "no-such-compiler-xyz" in cpu_kernel.status("adaptive_lif")["reason"]
    assert "generated torch path" in caplog.text
    node = AdaptiveLIFNode(surrogate_function=Sigmoid(1.0))
    x = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(0)) + 0.8
    out = node.fire_and_drop(x, FastDropout(0.5))  # still works, through the torch path
    assert out.shape == x.shape
    monkeypatch.setenv(cpu_kernel.ENV_SWITCH, "0")
    assert not cpu_kernel.enabled_by_env() and not cpu_kernel.available()


def test_dedup_rows_setting():
    """auto: distinct self rows for a CPU model only; an unknown value names its key."""
    from conftest import compose_config

    from spikenet.experiment import build_experiment
    from spikenet.training.trainer import check_trainer_config, dedup_rows

    assert dedup_rows("auto", torch.device("cpu")) and not dedup_rows("auto", torch.device("cuda"))
    assert dedup_rows(True, torch.device("cuda")) and not dedup_rows("false", torch.device("cpu"))
    for choice, unique in (("auto", True), ("false", False)):
        tr = build_experiment(compose_config([*TINY_OVERRIDES, f"trainer.dedup_rows={choice}"])).trainer
        batch = next(iter(tr.loader.train_batches(tr.task.splits.train, 8, torch.Generator().manual_seed(0))))
        assert isinstance(batch.inputs[0], UniqueRows) is unique
    cfg = compose_config([*TINY_OVERRIDES, "trainer.dedup_rows=maybe"]).trainer
    with pytest.raises(ValueError, match="trainer.dedup_rows"):
        check_trainer_config(cfg)


@pytest.mark.parametrize("name,aggr,tau,detach,hid", [
    ("adaptive_lif", "mean", 1.0, False, 24), ("adaptive_lif", "sum", 1.6, True, 24),
    ("adaptive_lif", "mean", 1.0, False, 400),  # 400: children in two chunks
    ("blif", "mean", None, False, 24), ("plif", "sum", 1.8, True, 24), ("lif", "mean", 2.0, False, 24),
])
def test_fused_fire_and_pool_matches_the_unfused_path(monkeypatch, name, aggr, tau, detach, hid):
    """Layer 0's neuron + dropout + the next layer's pooling in one kernel (``KernelFirePool``) gives the
    logits and every gradient (the neurons' parameters' included) of neuron -> dropout -> ``hop_inputs``
    (same dropout draws)."""
    from omegaconf import OmegaConf

    from spikenet.neurons import build_neuron, build_surrogate, cpu_kernel
    from spikenet.neurons.functions import KernelFirePool

    if not cpu_kernel.available(name):
        pytest.skip(f"compiled CPU kernel unavailable: {cpu_kernel.status(name)['reason']}")
    graph = make_synthetic(num_nodes=120, num_steps=6, num_features=8, seed=7)
    sample = TemporalSampler(graph, [3, 2], 0.5).sample(torch.arange(40), torch.Generator().manual_seed(5))
    cfg = OmegaConf.create(dict(name=name, tau=tau, v_threshold=0.6, v_reset=0.0, thresh_decay=0.7, gamma=0.2,
                                detach_reset=detach, tau_raw=1.0, d_raw=1.0))
    torch.manual_seed(0)
    model = SpikeNet(8, [hid, 4], 6, [3, 2],
                     lambda channels: build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch", channels),
                     dropout=0.5, aggr=aggr, chunk_rows=64)
    if name == "blif":  # per-channel values, not all equal
        with torch.no_grad():
            for p in model.neurons.parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    calls = []
    apply = KernelFirePool.apply
    monkeypatch.setattr(KernelFirePool, "apply", lambda *a: calls.append(1) or apply(*a))
    inputs = layer0_unique_inputs(graph.features, sample, aggr)
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(SpikeNet, "_fire_and_pool", lambda *a: None)
        model.zero_grad()
        torch.manual_seed(1)  # the dropout's draws
        logits = model(*inputs)
        (logits * torch.linspace(-1, 1, logits.numel()).view_as(logits)).sum().backward()
        results.append([logits.detach()] + [p.grad.clone() for p in model.parameters()])
    assert len(calls) == 1  # the fused run took the kernel, the other did not
    assert results[0][0].abs().sum() > 0
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
