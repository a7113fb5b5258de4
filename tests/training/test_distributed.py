"""Data-parallel training on CPU (gloo) and fan-out through submitit.

``src/run.py`` runs as two ranks, each a fresh interpreter with torchrun's environment variables
(``tests/helpers/dist_rank.py``; ``benchmarks/speed/scaling.py`` runs the real ``torchrun``); a 2-job ``submitit_local``
multirun, started first so the two overlap, is summarised by ``src/report.py``; the launcher environments
and the SLURM presets are checked without processes.

No process is forked from the test process (a fork after torch has started its thread pools can deadlock),
and every child runs in its own process group (``tests/helpers/processes.py``), stopped when the test ends whatever
the outcome. Issue 25's hang (one rank blocked on a futex, the other in the next rendezvous, pytest never
exiting) came back with fresh interpreters: the rank was stuck in ProcessGroupGloo's destructor as run.py's
main returned, fixed in ``distributed._hold_group``; a stuck rank now fails this test with its stacks.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
from pathlib import Path

import numpy as np
import processes
import pytest
import torch
from conftest import PROJECT_ROOT, RUN_SCRIPT, TINY_OVERRIDES
from sklearn.metrics import f1_score

from spikenet.training import distributed
from spikenet.training.distributed import Distributed, LaunchEnv, first_host, launch_env, threads_per_rank

MEASURED = {"seconds", "peak_rss_mb", "rank_peak_rss_mb", "timeline"}  # plus every *_seconds: timings, not results
RANK_SCRIPT = Path(__file__).resolve().parents[1] / "helpers" / "dist_rank.py"


def has(module: str) -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


HAVE_SUBMITIT = has("hydra_plugins.hydra_submitit_launcher") and has("submitit")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env.update(PYTHONWARNINGS="ignore", WANDB_MODE="disabled", HYDRA_FULL_ERROR="1", **extra)
    return env


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict:
    """A 2-job submitit_local multirun, started before the in-process test so that they overlap.

    submitit's local executor starts each job with ``subprocess.Popen`` (fork + exec: a fresh interpreter,
    no copied threads) in the multirun's process group, so stopping that group stops the jobs too.
    """
    started = {}
    if HAVE_SUBMITIT:
        sweep = tmp_path_factory.mktemp("submitit") / "sweep"
        cmd = [sys.executable, str(RUN_SCRIPT), "-m", "hydra/launcher=submitit_local", "neuron.tau=1.0,2.0",
               *TINY_OVERRIDES, "trainer.num_threads=1", f"hydra.sweep.dir={sweep}"]
        started["submitit"] = (processes.start(cmd, cwd=PROJECT_ROOT, env=_env()), sweep)
    yield started
    for proc, _ in started.values():
        processes.stop(proc)


# --- the entry point as two ranks (fresh interpreters, torchrun's variables) -------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(args: list[str], cwd: Path, runs: int, timeout: float = 300) -> dict[int, list[dict]]:
    """Both ranks' records of ``runs`` runs (``tests/helpers/dist_rank.py``); fails with both ranks' output if one
    fails.

    When a rank fails, or the deadline passes, both process groups are stopped at once (a rank left waiting
    in the rendezvous or a collective for its dead peer is killed, with its stacks in the report); they are
    stopped whatever happens, an exception in this test included.
    """
    ports = ",".join(str(_free_port()) for _ in range(runs))
    outs = [cwd / f"rank{r}.pkl" for r in range(2)]
    env = _env(OMP_NUM_THREADS="1")  # as torchrun sets it
    procs = [processes.start([sys.executable, str(RANK_SCRIPT), str(r), ports, str(cwd), str(outs[r]), "--", *args],
                             cwd=cwd, env=env) for r in range(2)]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or any(c for c in codes):  # both done, or one failed
                break
            time.sleep(0.1)
    finally:
        done = [processes.stop(p) for p in procs]
    report = "\n".join(f"=== rank {r}: {d.explain()}" for r, d in enumerate(done))
    assert all(d.returncode == 0 and not d.stopped for d in done), report
    got = dict(pickle.loads(out.read_bytes()) for out in outs)
    assert all(isinstance(got[r], list) for r in range(2)), f"{got}\n{report}"
    return got


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in MEASURED and not k.endswith("_seconds")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@pytest.mark.timeout(420)  # two ranks x two runs in fresh interpreters; the ranks' own deadline is 300 s
def test_two_ranks_entry_point(launched, tmp_path):
    """Two gloo ranks through ``src/run.py``: one run dir and one metrics.json (rank 0), disjoint equal shards
    of every epoch's targets, identical replicas (gradients all-reduced), gathered evaluation whose F1 is
    sklearn's over both shards, and a second identical run with identical results."""
    args = [*TINY_OVERRIDES, "trainer.epochs=2", "trainer.batch_size=64", "trainer.test_schedule=every",
            "trainer.num_threads=1"]
    got = _two_ranks(args, tmp_path, runs=2)

    # rank 0 alone wrote results, into the one run dir both ranks agreed on
    first = [p.parent for p in (tmp_path / "outputs").rglob("metrics.json")]
    assert len(first) == 1 and len(list((tmp_path / "outputs").iterdir())) == 1, first
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (first[0], tmp_path / "again")]
    for run_dir, m in zip((first[0], tmp_path / "again"), metrics, strict=True):
        assert m["world_size"] == 2
        assert len(m["rank_peak_rss_mb"]) == 2 and all(r > 0 for r in m["rank_peak_rss_mb"])
        assert (run_dir / "best.pt").stat().st_size > 0 and (run_dir / ".hydra" / "config.yaml").exists()
        log = (run_dir / "run.log").read_text()
        assert log.count("2 ranks via torchrun, gloo") == 1 and log.count("model SpikeNet") == 1  # rank 0 only
    assert _strip(metrics[0]) == _strip(metrics[1])  # two identical runs, identical results

    r0, r1 = got[0][0], got[1][0]
    train = set(r0["splits"]["train"])
    assert len(r0["orders"]) == 2  # one shuffled order per epoch
    for a, b in zip(r0["orders"], r1["orders"], strict=True):
        assert len(a) == len(b) == len(train) // 2  # equal shards: equal batch counts
        assert not set(a) & set(b), "ranks trained on overlapping targets"
        assert set(a) | set(b) <= train and len(set(a) | set(b)) == len(train) - len(train) % 2
    assert r0["orders"][0] != r0["orders"][1], "a fresh shuffle every epoch"

    # gradients averaged over ranks: the replicas end identical although they trained on different targets
    for key, w in r0["weights"].items():
        assert np.array_equal(w, r1["weights"][key]), key
    assert _strip(r0["result"]) == _strip(r1["result"])
    assert metrics[0]["test_micro_f1"] == pytest.approx(r0["result"]["test_micro_f1"])

    # evaluation: both ranks' shards put back in order; the F1 is sklearn's over all of them
    labels = np.array(r0["labels"])
    for (loc0, total, full0), (loc1, _, full1) in zip(r0["gathers"], r1["gathers"], strict=True):
        expected = [None] * total
        expected[0::2], expected[1::2] = loc0, loc1
        assert full0 == full1 == expected
    test_nodes = r0["splits"]["test"]
    epoch_tests = [g[2] for g in r0["gathers"] if g[1] == len(test_nodes)]  # test_schedule=every
    assert len(epoch_tests) == 2
    for rec, pred in zip(metrics[0]["history"], epoch_tests, strict=True):
        assert rec["test_micro_f1"] == pytest.approx(f1_score(labels[test_nodes], pred, average="micro"))
        assert rec["test_macro_f1"] == pytest.approx(f1_score(labels[test_nodes], pred, average="macro"))

    # the second run drew the same shards and reached the same weights, on both ranks
    for rank in range(2):
        a, b = got[rank]
        assert a["orders"] == b["orders"]
        assert all(np.array_equal(w, b["weights"][k]) for k, w in a["weights"].items())


TEARDOWN_CHILD = """
import sys
import torch
from torch import nn
from spikenet.training import distributed as d
rank, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2].split(",")]
if sys.argv[3:] == ["unfixed"]:
    d._hold_group = lambda: None
torch.set_num_threads(1)
for i, port in enumerate(ports):
    env = d.LaunchEnv(rank=rank, world_size=2, local_rank=rank, local_world_size=2, master_port=port, source="srun")
    group = d.setup("cpu", 1, env)
    model = group.wrap(nn.Linear(4, 2))
    model(torch.randn(3, 4)).sum().backward()
    group.gather_object(rank)
    group.close()
    del model  # the DDP wrapper and its Reducer go right after the last collective, as on a rank > 0 in run.py
    print(i, flush=True)
"""


@pytest.mark.timeout(300)
def test_ranks_survive_many_process_group_teardowns(tmp_path):
    """setup / DDP / gather / close / drop the wrapper, 20 times on two ranks: none may hang.

    Without ``distributed._hold_group`` the Reducer freed the gloo group with the GIL held while a gloo worker
    still needed the GIL: on 2 loaded cores one rank deadlocked at ``del model`` (its peer waiting in the next
    rendezvous) within the first 2-6 rounds, in 4 trials out of 4 (this child with "unfixed", and a bare
    DDP + all_gather_object + barrier loop).
    """
    ports = ",".join(str(_free_port()) for _ in range(20))
    procs = [processes.start([sys.executable, "-c", TEARDOWN_CHILD, str(r), ports], cwd=tmp_path,
                             env=_env(OMP_NUM_THREADS="1")) for r in range(2)]
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            if any(p.poll() for p in procs):  # one failed: stop the other at once
                break
            time.sleep(0.1)
    finally:
        done = [processes.stop(p) for p in procs]
    report = "\n".join(f"=== rank {r}: {d.explain()}" for r, d in enumerate(done))
    assert all(d.returncode == 0 and not d.stopped for d in done), report
    assert all(d.stdout.split() == [str(i) for i in range(20)] for d in done), report


# --- fan-out with submitit_local, then report.py ----------------------------------------------------------
@pytest.mark.skipif(not HAVE_SUBMITIT, reason="hydra-submitit-launcher not installed")
@pytest.mark.timeout(420)  # waits for the multirun (its own deadline 300 s), then report.py
def test_submitit_local_multirun_and_report(launched, capsys):
    proc, sweep = launched["submitit"]
    done = processes.wait(proc, 300)
    assert done.returncode == 0, done.explain()
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    taus = set()
    for job in jobs:
        m = json.loads((job / "metrics.json").read_text())
        assert m["world_size"] == 1
        taus.add(next(o for o in m["overrides"] if o.startswith("neuron.tau=")))
    assert taus == {"neuron.tau=1.0", "neuron.tau=2.0"}
    assert list((sweep / ".submitit").rglob("*_result.pkl")), "the jobs ran through submitit"
    import report  # src/report.py, in this process

    assert report.main([str(sweep), "--no-figures"]) == 0
    assert "2 run(s), 2 variant(s), varying neuron.tau" in capsys.readouterr().out
    assert (sweep / "summary.csv").read_text().count("\n") == 3  # header + one row per variant


# --- launcher environments (no processes) ----------------------------------------------------------------
def test_launch_env_torchrun_srun_submitit(monkeypatch):
    assert not launch_env({}).active
    tr = launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                     "MASTER_ADDR": "h0", "MASTER_PORT": "1234"})
    assert (tr.rank, tr.world_size, tr.local_rank, tr.local_world_size, tr.master_addr, tr.master_port,
            tr.source) == (3, 4, 1, 2, "h0", 1234, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_TASKS_PER_NODE": "4(x2)",
             "SLURM_JOB_NODELIST": "gpu[007-008]", "SLURM_JOB_ID": "991", "SLURM_JOB_NUM_NODES": "2"}
    assert not launch_env(slurm).active  # the batch script itself (no step): not a rank of anything
    sr = launch_env({**slurm, "SLURM_STEP_ID": "0"})
    assert (sr.rank, sr.world_size, sr.local_rank, sr.local_world_size, sr.master_addr, sr.source) == (
        5, 8, 1, 4, "gpu007", "srun")
    assert sr.master_port == launch_env({**slurm, "SLURM_STEP_ID": "0"}).master_port  # same on every rank
    assert launch_env({**slurm, "SLURM_STEP_ID": "0", "MASTER_ADDR": "x"}).master_addr == "x"
    assert threads_per_rank(sr, {"SLURM_CPUS_PER_TASK": "6"}) == 6
    assert threads_per_rank(LaunchEnv(world_size=2, local_world_size=2), {}) == max(
        1, distributed.usable_cores() // 2)
    assert (first_host("node7"), first_host("a[09-12,20]-ib,b1")) == ("node7", "a09-ib")
    if has("submitit"):
        for k, v in {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_NTASKS": "2", "SUBMITIT_LOCAL_GLOBALID": "1",
                     "SUBMITIT_LOCAL_LOCALID": "1", "SUBMITIT_LOCAL_JOB_ID": "4242"}.items():
            monkeypatch.setenv(k, v)
        for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(k, raising=False)
        sub = launch_env()
        assert (sub.rank, sub.world_size, sub.local_rank, sub.master_addr, sub.source) == (
            1, 2, 1, "127.0.0.1", "submitit")


def test_single_process_is_a_no_op_and_seeds_differ_per_rank():
    single = Distributed()
    x = torch.arange(5)
    assert single.shard(x) is x and single.unshard(x, 5) is x and single.sum(2.0, 3) == [2.0, 3.0]
    assert single.local_batch(1024) == 1024 and single.rank_seed(2022) == 2022
    two = [Distributed(LaunchEnv(rank=r, world_size=2)) for r in range(2)]
    assert two[0].local_batch(1024) == two[1].local_batch(1024) == 512
    assert two[0].rank_seed(2022) == 2022 != two[1].rank_seed(2022) == two[1].rank_seed(2022)
    assert two[1].rank_seed(2022) != two[1].rank_seed(2023)
    assert two[1].shard(torch.arange(7)).tolist() == [1, 3, 5]


def test_pin_run_dir_without_rendezvous(conf_dir):
    argv = ["run.py", "trainer.epochs=1"]
    assert distributed.pin_run_dir(argv, conf_dir) == argv
    two = LaunchEnv(rank=1, world_size=2)
    assert distributed.pin_run_dir(["run.py", "-m", "seed=1,2"], conf_dir) == ["run.py", "-m", "seed=1,2"]
    with pytest.raises(SystemExit, match="not supported"):  # every rank would run the whole sweep
        distributed.pin_run_dir(["run.py", "-m", "seed=1,2"], conf_dir, two)
    fixed = distributed.pin_run_dir(["run.py", "hydra.run.dir=/tmp/x"], conf_dir, two)  # no ${now:}: no rendezvous
    assert fixed == ["run.py", "hydra.run.dir=/tmp/x", "hydra.output_subdir=null"]
    assert "${now:" in distributed.default_run_dir(conf_dir)


@pytest.mark.skipif(not HAVE_SUBMITIT, reason="hydra-submitit-launcher not installed")
def test_slurm_ddp_preset_makes_a_valid_sbatch_script(conf_dir, tmp_path, monkeypatch):
    """The presets through submitit's own parameter checks, as the launcher passes them (a stand-in ``srun``)."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.utils import setup_globals
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    setup_globals()
    scripts = {}
    for preset in ("slurm", "slurm_ddp"):
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose("config", overrides=[f"+launcher={preset}", "hydra.launcher.partition=gpu",
                                               f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)
        params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        assert params.pop("_target_").endswith("SlurmLauncher")
        executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        scripts[preset] = executor._executor._make_submission_file_text("python -u -m submitit.core._submit x", "u")
    ddp = scripts["slurm_ddp"]
    for line in ("#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --partition=gpu", "export OMP_NUM_THREADS=4", "export SUBMITIT_EXECUTOR=slurm"):
        assert line in ddp, line
    assert "#SBATCH --ntasks-per-node=1" in scripts["slurm"] and "export OMP_NUM_THREADS=8" in scripts["slurm"]
    assert "srun" in ddp.split("# command")[1]
