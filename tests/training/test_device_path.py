"""The device-agnostic training path, checked on CPU (``trainer.data_device``, ``trainer.precision``).

A GPU is not needed to catch the usual ways a GPU-resident path breaks:
- a tensor created without ``device=`` lands on the default device: running sampling and gathering
  with the default device set to ``meta`` makes every such tensor a meta tensor, which cannot mix
  with the real (CPU) data, so the outputs must still equal the plain run;
- a per-batch host synchronisation (``.item()``, ``int(t)``, ``.tolist()``): counted as
  ``aten._local_scalar_dense`` calls under a dispatch mode;
- the CPU path must keep its results: ``Trainer.train_epoch`` / ``predict`` against a plain loop
  written as the trainer was before the device path (CPU generators, ``loss.item()`` per batch).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from spikenet.data.readers.synthetic import make_synthetic
from spikenet.experiment import build_experiment
from spikenet.gather import layer0_inputs, layer0_unique_inputs
from spikenet.sampling import TemporalSampler
from spikenet.training import placement
from spikenet.training.loader import NodeLoader
from spikenet.training.precision import Precision

TINY = ["dataset.num_nodes=300", "dataset.num_steps=4", "model.hids=[16,4]", "trainer.progress=false",
        "device=cpu", "trainer.epochs=1", "trainer.save_checkpoint=false", "trainer.record_firing_rates=false"]


class ScalarSyncs(TorchDispatchMode):
    """Counts device -> host scalar reads (what ``.item()``, ``int(t)``, ``bool(t)`` do) while not paused."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and not self.paused:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def graph():
    return make_synthetic(num_nodes=240, num_steps=5, num_features=6, seed=4)


def _sample_and_gather(graph, kind: str, aggr: str, seed: int = 5):
    sampler = TemporalSampler(graph, [3, 2], 0.6, kind)
    nodes = torch.arange(0, 240, 7, device=graph.features.device)  # the batch comes from the data's device
    sample = sampler.sample(nodes, torch.Generator().manual_seed(seed))
    return sample, layer0_inputs(graph.features, graph.features, sample, aggr)


# ------------------------------------------------------------------------- device-agnostic sampling/gather
@pytest.mark.parametrize("kind", ["sage", "rw"])
@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_sampling_and_gathering_create_tensors_on_the_data_device(graph, kind, aggr):
    ref_sample, ref_inputs = _sample_and_gather(graph, kind, aggr)
    with torch.device("meta"):  # any tensor made without an explicit device= becomes meta
        sample, inputs = _sample_and_gather(graph, kind, aggr)
    for got, ref in zip([*sample.hops, *inputs], [*ref_sample.hops, *ref_inputs], strict=True):
        assert got.device.type == "cpu"
        assert torch.equal(got, ref)


def test_meta_default_device_catches_a_missing_device_argument(graph):
    """The check above can fail: device-less tensors under the meta default break the patterns they enter."""
    sample, _ = _sample_and_gather(graph, "sage", "mean")
    hop = sample.hops[0]
    with torch.device("meta"):
        with pytest.raises(NotImplementedError):  # the gather's former offsets: built on the host, then moved
            torch.full((hop.shape[1],), 3, dtype=torch.long).repeat(hop.shape[0]).to(hop.device)
        with pytest.raises(RuntimeError):  # step offsets without device= added to real ids
            torch.arange(hop.shape[0]).view(-1, 1) + hop


def test_sampling_and_gathering_never_read_scalars(graph):
    loader = NodeLoader(graph, TemporalSampler(graph, [3, 2], 0.5, "sage"), "mean", torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    with ScalarSyncs() as mode:
        batches = list(loader.train_batches(torch.arange(240), 64, gen))
    assert len(batches) == 4
    assert mode.count == 0


def test_float16_features_gather_in_their_dtype(graph):
    half = dataclasses.replace(graph, features=graph.features.half())
    sample, (x_self, x_agg) = _sample_and_gather(half, "sage", "mean")
    raw = layer0_inputs(half.features, half.features, sample, "mean", dtype=None)
    assert raw[0].dtype == torch.float16 and x_self.dtype == torch.float32
    assert torch.equal(raw[0].float(), x_self)
    torch.testing.assert_close(raw[1].float(), x_agg, atol=2e-3, rtol=2e-3)


# ---------------------------------------------------------------------------------------- placement
def test_resolve_data_device(graph, monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert placement.resolve_data_device("auto", cpu, graph) == cpu
    assert placement.resolve_data_device("cpu", gpu, graph) == cpu
    with pytest.raises(ValueError, match="CUDA"):
        placement.resolve_data_device("cuda", cpu, graph)
    with pytest.raises(ValueError, match="data_device"):
        placement.resolve_data_device("gpu", cpu, graph)
    with pytest.raises(ValueError, match="share"):
        placement.resolve_data_device("auto", gpu, graph, share=0.0)
    need = placement.data_nbytes(graph)
    expected = graph.structure_nbytes() + graph.features.numel() * 4 + graph.labels.numel() * 8
    assert need == expected
    monkeypatch.setattr(placement, "free_device_bytes", lambda device: 4 * need)
    assert placement.resolve_data_device("auto", gpu, graph, share=0.25) == gpu  # exactly fits
    assert placement.resolve_data_device("auto", gpu, graph, share=0.2) == cpu
    assert placement.resolve_data_device("cuda", gpu, graph, share=0.2) == gpu  # forced


def test_graph_to_moves_every_tensor(graph):
    assert placement.graph_to(graph, torch.device("cpu")) is graph
    moved = placement.graph_to(graph, torch.device("meta"))
    for f in dataclasses.fields(moved):
        value = getattr(moved, f.name)
        if isinstance(value, torch.Tensor):
            assert value.device.type == "meta", f.name
    assert moved.feature_array is None and moved.num_nodes == graph.num_nodes
    assert graph.features.device.type == "cpu"  # the original is untouched


# --------------------------------------------------------------------------- the CPU path's results
def _reference_epoch(tr, seed: int) -> tuple[float, dict]:
    """One training epoch as the trainer ran it before the device path (layer 0's self rows in the form
    ``trainer.dedup_rows`` asks for)."""
    gen = torch.Generator().manual_seed(seed)
    order = tr.task.splits.train[torch.randperm(tr.task.splits.train.numel(), generator=gen)]
    total, count = 0.0, 0
    for chunk in torch.split(order, int(tr.cfg.batch_size)):
        sample = tr.sampler.sample(chunk, gen)
        if tr.loader.unique_rows:
            x = layer0_unique_inputs(tr.graph.features, sample, tr.encoder.aggr)
        else:
            x = layer0_inputs(tr.graph.features, tr.graph.features, sample, tr.encoder.aggr)
        loss = torch.nn.functional.cross_entropy(tr.model(*x), tr.graph.labels[chunk])
        tr.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tr.optimizer.step()
        total += loss.item() * chunk.numel()
        count += chunk.numel()
    return total / count, {k: v.clone() for k, v in tr.model.state_dict().items()}


@pytest.mark.parametrize("data_device,dedup", [("cpu", "auto"), ("auto", "auto"), ("cpu", "false")])
def test_cpu_training_matches_the_plain_loop(compose, data_device, dedup):
    cfg = compose([*TINY, f"trainer.data_device={data_device}", "trainer.batch_size=64",
                   f"trainer.dedup_rows={dedup}"])
    ref = build_experiment(cfg).trainer
    loss_ref, state_ref = _reference_epoch(ref, int(cfg.seed))
    pred_ref = ref.predict(ref.task.splits.val, torch.Generator().manual_seed(11))

    tr = build_experiment(cfg).trainer
    assert tr.data_device.type == "cpu" and tr.loader.stager is None
    with ScalarSyncs() as mode:
        tr.optimizer.step = _paused(mode, tr.optimizer.step)  # AdamW reads its CPU step counters
        loss = tr.train_epoch()
    assert mode.count == 1  # the epoch's loss, read once
    assert loss == loss_ref  # same float64 sum of the same float32 losses
    for k, v in tr.model.state_dict().items():
        assert torch.equal(v, state_ref[k]), k
    pred = tr.predict(tr.task.splits.val, torch.Generator().manual_seed(11))
    assert (pred == pred_ref).all()


def _paused(mode: ScalarSyncs, fn):
    def run(*args, **kwargs):
        mode.paused = True
        try:
            return fn(*args, **kwargs)
        finally:
            mode.paused = False

    return run


# --------------------------------------------------------------------------------------- precision
def test_precision_names():
    with pytest.raises(ValueError, match="precision"):
        Precision("fp8", torch.device("cpu"))
    fp32 = Precision("fp32", torch.device("cpu"))
    with fp32.autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_cpu_run_trains_end_to_end(compose):
    cfg = compose([*TINY, "trainer.precision=bf16", "model.chunk_rows=0", "trainer.epochs=2"])
    exp = build_experiment(cfg)
    model = exp.trainer.model
    seen: dict[str, torch.dtype] = {}
    model.encoder.aggregators[0].register_forward_hook(lambda m, a, out: seen.setdefault("linear", out.dtype) and None)
    model.encoder.neurons[0].register_forward_hook(lambda m, a, out: seen.setdefault("neuron_in", a[0].dtype) and None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary = exp.trainer.fit()
    assert seen == {"linear": torch.bfloat16, "neuron_in": torch.float32}  # autocast on; neurons in float32
    assert all(math.isfinite(r["loss"]) for r in summary["history"])
    assert 0.0 <= summary["test_micro_f1"] <= 1.0
    assert all(v.dtype == before[k].dtype for k, v in model.state_dict().items())  # weights stay float32
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_fp32_default_has_no_autocast(compose):
    tr = build_experiment(compose([*TINY, "model.chunk_rows=0"])).trainer
    seen = []
    tr.encoder.aggregators[0].register_forward_hook(lambda m, a, out: seen.append(out.dtype))  # returns None
    tr.train_epoch(max_batches=1)
    assert tr.precision.name == "fp32" and seen == [torch.float32]


# ------------------------------------------------------------------------------ the prepared GPU run
def _gpu_suite():
    """The script's own helpers (it must run where the package is not importable yet, so they stay there)."""
    from conftest import load_benchmark

    return load_benchmark("gpu/gpu_suite")


def _gpu_suite_dry_run(*args):
    """``benchmarks/gpu/gpu_suite.py --dry-run`` as the GPU session runs it: a process of its own."""
    import processes
    from conftest import PROJECT_ROOT

    return processes.run([sys.executable, PROJECT_ROOT / "benchmarks" / "gpu" / "gpu_suite.py", "--dry-run", *args],
                         cwd=PROJECT_ROOT, timeout=300)


def test_gpu_suite_dry_run_checks_wheels_data_and_overrides(tmp_path):
    wheels, data = tmp_path / "whl", tmp_path / "data"
    wheels.mkdir()
    (data / "dblp").mkdir(parents=True)
    names = ["spikingjelly-0.0.0.0.14-py3-none-any.whl", "hydra_core-1.3.2-py3-none-any.whl",
             "omegaconf-2.3.0-py3-none-any.whl", "antlr4_python3_runtime-4.9.3-py3-none-any.whl",
             "hydra_joblib_launcher-1.2.0-py3-none-any.whl", "joblib-1.4.2-py3-none-any.whl"]
    for name in names:
        (wheels / name).write_bytes(b"")
    for name in ("dblp.txt", "node2label.txt"):
        (data / "dblp" / name).write_text("")
    common = ["--wheels", str(wheels), "--data-root", str(data), "--out", str(tmp_path / "out")]
    done = _gpu_suite_dry_run(*common)
    assert done.returncode == 0, done.explain()
    planned = done.stdout
    assert planned.count("benchmarks/speed/epoch_time.py dataset=dblp") == 4 and planned.count("src/run.py") == 6
    assert "trainer.data_device=cpu" in planned and "trainer.precision=bf16" in planned
    assert "runs/ttr_cold" in planned and "runs/ttr_warm" in planned  # time to result, cold and warm
    assert "src/run.py -m +ablation=neuron experiment=dblp" in planned and "+launcher=local_parallel" in planned
    assert "dataset=synthetic_patent" in planned and "benchmarks/gpu/gpu_check.py" in planned
    assert not (tmp_path / "out").exists()  # a dry run writes nothing

    (wheels / names[0]).unlink()
    (data / "dblp" / "node2label.txt").unlink()
    done = _gpu_suite_dry_run(*common, "--stages", "dblp")
    assert done.returncode == 1, done.explain()
    assert "spikingjelly-0.0.0.0.14" in done.stderr and "node2label.txt" in done.stderr
    done = _gpu_suite_dry_run(*common, "--stages", "patent")  # the wheel is still missing; DBLP not needed
    assert done.returncode == 1 and "node2label" not in done.stderr, done.explain()
    done = _gpu_suite_dry_run(*common, "--stages", "parity,gpu")
    assert done.returncode == 1 and "unknown stage" in done.stderr, done.explain()


def test_gpu_suite_ablation_summary_and_gpu_monitor(tmp_path, monkeypatch):
    """The ablation stage's figures: jobs, their own times summed against the wall time, and nvidia-smi's
    utilisation samples (a stand-in nvidia-smi prints them here)."""
    suite = _gpu_suite()
    for job, (ttr, epoch) in enumerate([(20.0, 0.1), (30.0, 0.2)]):
        (tmp_path / "sweep" / str(job)).mkdir(parents=True)
        (tmp_path / "sweep" / str(job) / "metrics.json").write_text(
            json.dumps({"timeline": {"time_to_result": ttr}, "epoch_seconds": epoch}))
    got = suite.sweep_summary(tmp_path / "sweep", wall=25.0)
    assert got["jobs"] == 2 and got["serial_seconds"] == 50.0 and got["speedup"] == 2.0
    assert abs(got["mean_epoch_seconds"] - 0.15) < 1e-12
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '80, 1000\\n40, 3000\\n0, 500\\n'\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monitor = suite.GpuMonitor(tmp_path / "gpu.csv")
    time.sleep(1.0)
    stats = monitor.stop()
    assert stats == {"samples": 3, "mean_util": 40.0, "median_util": 40.0, "busy_share": 2 / 3,
                     "peak_mem_mib": 3000.0}


def test_gpu_suite_flags_a_bad_override():
    suite = _gpu_suite()
    runs = [{"name": "ok", "stage": "dblp", "config": "benchmark", "overrides": ["trainer.data_device=cpu"]},
            {"name": "bad", "stage": "dblp", "config": "benchmark", "overrides": ["trainer.no_such_key=1"]}]
    problems = suite.check_overrides(runs)
    assert len(problems) == 1 and problems[0].startswith("bad:")  # struct mode rejects unknown keys
