"""The entry point as a user meets it: Ctrl-C, a failed start, the run log, what a run is called."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import processes
from conftest import PROJECT_ROOT, RUN_SCRIPT, TINY_OVERRIDES

TINY = [o for o in TINY_OVERRIDES if not o.startswith("trainer.epochs=")]
# ``src/run.py`` as a user's terminal starts it: Ctrl-C raises KeyboardInterrupt (a shell's background job, which
# may be running this suite, would hand the child SIGINT ignored; the wrapper takes it back)
AS_TERMINAL = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _start(args: list[str], run_dir: Path) -> subprocess.Popen:
    """``src/run.py`` in its own process group (``tests/helpers/processes.py``), Ctrl-C as from a terminal."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="disabled")
    return processes.start([sys.executable, "-c", AS_TERMINAL, str(RUN_SCRIPT), *args, f"hydra.run.dir={run_dir}"],
                           cwd=PROJECT_ROOT, env=env)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared: {processes.stop(proc).explain()}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.2)


def test_ctrl_c_prints_one_line_with_the_resume_command_which_continues_the_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start([*TINY, "trainer.epochs=400"], run_dir)
    try:
        _wait_for(run_dir / "last.pt", proc)
        proc.send_signal(signal.SIGINT)
    finally:
        done = processes.wait(proc, timeout=120)
    err = done.stderr
    assert done.returncode == 130 and not done.stopped, done.explain()
    lines = [line for line in err.splitlines() if "interrupted" in line or "Traceback" in line]
    assert len(lines) == 1 and lines[0].startswith("interrupted; continue with: python src/run.py"), err[-2000:]
    command = lines[0].split("continue with: ", 1)[1].split()
    assert f"hydra.run.dir={run_dir}" in command and command[-1] == "trainer.resume=auto"
    # the printed command continues the run, shortened to end two epochs after the interrupted one (the signal
    # lands some epochs after last.pt first appears: tiny epochs are fast)
    finished = max(int(m) for m in re.findall(r"epoch (\d+): loss", (run_dir / "run.log").read_text()))
    args = [a if not a.startswith("trainer.epochs=") else f"trainer.epochs={finished + 2}" for a in command[2:]]
    done = processes.run([sys.executable, str(RUN_SCRIPT), *args], cwd=PROJECT_ROOT, timeout=300,
                         env=dict(os.environ, WANDB_MODE="disabled"))
    assert done.returncode == 0, done.explain()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, finished + 3))
    assert "resumed from" in (run_dir / "run.log").read_text()


def test_a_failed_start_leaves_no_run_directory(tmp_path):
    run_dir = tmp_path / "bad"
    done = processes.wait(_start([*TINY, "sampler.p=3"], run_dir), timeout=300)
    assert done.returncode == 2, done.explain()
    assert done.stderr.strip().splitlines() == ["error: sampler.p must be in [0, 1], got 3.0"]
    assert not run_dir.exists()


def test_run_log_has_a_line_per_epoch_and_dense_runs_are_named_by_model(tmp_path):
    out_root = tmp_path / "outputs"
    env = dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="disabled")
    proc = processes.run([sys.executable, str(RUN_SCRIPT), *TINY, "trainer.epochs=2", "model=ann",
                          f"hydra.run.dir={out_root}/${{now:%H-%M-%S}}_${{run_label:}}"], cwd=PROJECT_ROOT, env=env,
                         timeout=300)
    assert proc.returncode == 0, proc.explain()
    (run_dir,) = list(out_root.iterdir())
    assert run_dir.name.endswith("_synthetic_ann"), run_dir.name  # no neuron in a dense model's name
    epochs = [line for line in (run_dir / "run.log").read_text().splitlines() if "] - epoch " in line]
    assert [line.split("] - epoch ")[1].split(":")[0] for line in epochs] == ["1", "2"]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("[synthetic/ann node_classification]") and "adaptive_lif" not in last
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "ann" and metrics["neuron"] is None


def test_renumbered_node_ids_and_the_data_decisions_are_kept_beside_the_results(tmp_path):
    """String node ids are renumbered by the reader; the run writes node_ids.txt (line u: node u's original id)
    and records the reader's snapshot choice in metrics.json."""
    import random

    rng = random.Random(0)
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    users = [f"user_{i}" for i in range(60)]
    lines = [f"{rng.choice(users)},{rng.choice(users)},{rng.random() * 100:.3f}" for _ in range(600)]
    (folder / "edges.csv").write_text("src,dst,time\n" + "\n".join(lines) + "\n")
    (folder / "labels.csv").write_text("".join(f"{u},{i % 3}\n" for i, u in enumerate(users)))
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="disabled")
    proc = processes.run([sys.executable, str(RUN_SCRIPT), "dataset=edgelist", "dataset.name=mine",
                          f"dataset.root={tmp_path / 'data'}", "dataset.edges=edges.csv", "dataset.labels=labels.csv",
                          "dataset.time_bins=4", "model.hids=[8,4]", "trainer.epochs=1", "trainer.progress=false",
                          "device=cpu", f"hydra.run.dir={run_dir}"], cwd=PROJECT_ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.explain()
    ids = (run_dir / "node_ids.txt").read_text().split()
    assert sorted(ids) == sorted({u for line in lines for u in line.split(",")[:2]})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["raw_steps"] == 4 and "distinct_stamps" in metrics["data"]
