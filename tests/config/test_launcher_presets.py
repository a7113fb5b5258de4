"""``+launcher=local_parallel``: several jobs of a multirun at once on one machine (Hydra's joblib launcher)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import PROJECT_ROOT, RUN_SCRIPT, TINY_OVERRIDES, missing


def test_local_parallel_runs_the_jobs_side_by_side(tmp_path):
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401
    except ImportError:
        missing("hydra-joblib-launcher (the sweep extra) is not installed")
    sweep = tmp_path / "sweep"
    env = dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="disabled")
    proc = subprocess.run([sys.executable, str(RUN_SCRIPT), "-m", "+launcher=local_parallel", "hydra.launcher.n_jobs=2",
                           "trainer.num_threads=1", *TINY_OVERRIDES, "seed=1,2", f"hydra.sweep.dir={sweep}"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr  # the launcher ran them two at a time
    metrics = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1)]
    assert sorted(o for m in metrics for o in m["overrides"] if o.startswith("seed=")) == ["seed=1", "seed=2"]
    assert all(m["timeline"]["time_to_result"] is None or m["timeline"]["time_to_result"] > 0 for m in metrics)
