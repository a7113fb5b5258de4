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

from spikenet.data.synthetic import make_synthetic
from spikenet.gather import gather_neighbour_aggregates, gather_self, layer0_inputs
from spikenet.models.chunked_linear import chunked_linear_sum
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


def test_epoch_benchmark_prints_json(tmp_path):
    cmd = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "epoch_time.py"), *TINY_OVERRIDES,
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


def test_test_schedule_does_not_change_the_reported_result():
    results = {s: _fit([f"trainer.test_schedule={s}"]) for s in ("best", "improved", "every")}
    reported = {s: (r["best_epoch"], r["test_macro_f1"], r["test_micro_f1"]) for s, r in results.items()}
    assert reported["best"] == reported["improved"] == reported["every"], reported
    assert all(h["test_micro_f1"] is not None for h in results["every"]["history"])
    assert all(h["test_micro_f1"] is None for h in results["best"]["history"])


def test_exact_eval_projection_gives_the_same_scores():
    direct = _fit(["trainer.eval_project_first=false", "trainer.test_schedule=every"])
    projected = _fit(["trainer.eval_project_first=true", "trainer.eval_cache_mb=100000", "trainer.test_schedule=every"])
    for a, b in zip(direct["history"], projected["history"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4  # training is untouched
        # test (180 targets) is projected, val (15) is not worth it: the same scores up to float rounding
        assert abs(a["test_micro_f1"] - b["test_micro_f1"]) <= 0.02
