"""The one prepared GPU run (issue 9): every figure the issue asks for, written under $OUT.

    python benchmarks/gpu/gpu_suite.py --dry-run                 # anywhere: wheels, data and overrides check
    python benchmarks/gpu/gpu_suite.py --out "$OUT"              # on the GPU machine (all stages)
    python benchmarks/gpu/gpu_suite.py --out "$OUT" --stages patent

The GPU machine gets the repository only. This script needs nothing from outside it: the pure-Python
wheels the machine lacks (SpikingJelly 0.0.0.0.14, hydra-core, omegaconf, antlr4-python3-runtime, in
the ignored ``.whl/``, which must travel with the run) are installed with ``pip install --no-deps
--no-index --target``; DBLP is read from ``data/dblp``. The project is not installed there either: every
subprocess gets ``PYTHONPATH=<--deps>:src``. This script's own process needs only the standard library for a
real run: it installs the wheels, then checks the plan with its own ``--dry-run`` in a subprocess with that
``PYTHONPATH``. The dry run composes the runs' configs in its own process, so where neither the project nor
Hydra is installed, give it the same path: ``PYTHONPATH=<deps>:src python benchmarks/gpu/gpu_suite.py
--dry-run``. Stages (each a subprocess, its log and JSON under --out, a failure recorded and the next stage run):

- ``parity``: ``gpu/gpu_check.py`` parity table, every neuron x surrogate row, and the cupy/torch
  forward+backward speed ratios at [25, 65536, 128];
- ``dblp``: DBLP epoch seconds and the GPU-synchronised split per neuron backend (torch, cupy) with
  ``trainer.data_device=cuda`` and ``=cpu`` (``speed/epoch_time.py``);
- ``precision``: DBLP test F1 and epoch seconds per ``trainer.precision`` (``src/run.py``, unchunked
  linear layers so that autocast applies to them);
- ``patent``: ``synthetic_patent`` whole-epoch seconds and peak GPU memory (the ~9 GB feature cache is
  generated first, in --cache-dir);
- ``ttr``: time to result of ``python src/run.py dataset=dblp device=cuda`` (the default 100 epochs): process
  start to metrics.json, twice (cold: first graph/feature caches and kernel compiles; warm: everything cached),
  with metrics.json's ``timeline`` (start-up, data load, build, fit);
- ``ablation``: the neuron ablation (4 neurons x 5 seeds x 100 epochs, ``+ablation=neuron experiment=dblp``) on
  the one GPU with ``+launcher=local_parallel`` (several jobs at once), its wall time and the GPU utilisation
  sampled by nvidia-smi every 0.5 s; the speed-up is over the jobs' own wall times run one after another.

``summary.txt`` (also printed) collects the tables and the device's name.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ("spikingjelly-0.0.0.0.14", "hydra_core-", "omegaconf-", "antlr4_python3_runtime-4.9.3",
          "hydra_joblib_launcher-", "joblib-")  # the joblib launcher: the ablation stage runs jobs side by side
STAGES = ("parity", "dblp", "precision", "patent", "ttr", "ablation")
DBLP_FILES = ("dblp.txt", "node2label.txt")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "outputs/gpu_suite"), help="where everything goes")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {STAGES}")
    p.add_argument("--dry-run", action="store_true", help="check wheels, data and overrides; run nothing")
    p.add_argument("--wheels", default=str(ROOT / ".whl"), help="folder with the wheels")
    p.add_argument("--data-root", default=str(ROOT / "data"), help="folder holding dblp/")
    p.add_argument("--deps", default="/tmp/spikenet_gpu_deps", help="pip --target folder for the wheels")
    p.add_argument("--cache-dir", default="/tmp/spikenet_cache", help="SPIKENET_CACHE (synthetic features)")
    p.add_argument("--dblp-epochs", type=int, default=3, help="timed DBLP epochs per run (after one warm-up)")
    p.add_argument("--precision-epochs", type=int, default=20, help="training epochs per precision run")
    p.add_argument("--timeout", type=float, default=420.0, help="seconds per subprocess")
    p.add_argument("--ablation-jobs", type=int, default=10, help="jobs run at once on the GPU in the ablation")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------- the plan
def plan(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """The runs of the selected stages: name, stage, argv (after the interpreter), config overrides."""
    dblp = ["dataset=dblp", f"dataset.root={args.data_root}", "device=cuda"]
    runs: list[dict[str, Any]] = []
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"gpu_suite: unknown stage(s) {unknown}; choose from {STAGES}")
    if "parity" in stages:
        runs.append({"name": "gpu_check", "stage": "parity", "config": None,
                     "argv": ["benchmarks/gpu/gpu_check.py", "--skip-epoch", "--json", str(out / "gpu_check.json")]})
    if "dblp" in stages:
        for dd in ("cuda", "cpu"):
            for backend in ("torch", "cupy"):
                ov = [*dblp, f"neuron.backend={backend}", f"trainer.data_device={dd}",
                      f"bench.epochs={args.dblp_epochs}", "bench.warmup=1"]
                name = f"dblp_{backend}_{dd}"
                runs.append({"name": name, "stage": "dblp", "config": "benchmark", "overrides": ov,
                             "argv": ["benchmarks/speed/epoch_time.py", *ov, f"hydra.run.dir={out}/hydra/{name}"]})
    if "precision" in stages:
        for prec in ("fp32", "bf16", "fp16"):
            ov = [*dblp, "trainer.data_device=cuda", f"trainer.precision={prec}", "model.chunk_rows=0",
                  f"trainer.epochs={args.precision_epochs}", "trainer.progress=false", "trainer.save_checkpoint=false"]
            runs.append({"name": f"precision_{prec}", "stage": "precision", "config": "config",
                         "argv": ["src/run.py", *ov, f"hydra.run.dir={out}/runs/precision_{prec}"],
                         "overrides": ov, "run_dir": out / "runs" / f"precision_{prec}"})
    if "ttr" in stages:
        for tag in ("cold", "warm"):
            ov = [*dblp, "trainer.progress=false"]
            runs.append({"name": f"ttr_{tag}", "stage": "ttr", "config": "config",
                         "argv": ["src/run.py", *ov, f"hydra.run.dir={out}/runs/ttr_{tag}"],
                         "overrides": ov, "run_dir": out / "runs" / f"ttr_{tag}"})
    if "ablation" in stages:
        ov = ["+ablation=neuron", "experiment=dblp", f"dataset.root={args.data_root}", "device=cuda",
              "+launcher=local_parallel", f"hydra.launcher.n_jobs={args.ablation_jobs}", "trainer.progress=false",
              "trainer.save_checkpoint=false"]
        runs.append({"name": "ablation_neuron", "stage": "ablation", "config": "config", "overrides": ov,
                     "argv": ["src/run.py", "-m", *ov, f"hydra.sweep.dir={out}/runs/ablation"],
                     "sweep_dir": out / "runs" / "ablation", "monitor_gpu": True})
    if "patent" in stages:
        ov = ["dataset=synthetic_patent", "device=cuda", "trainer.data_device=auto", "bench.batches=0",
              "bench.warmup=0", "bench.epochs=1", "bench.floor=false"]
        runs.append({"name": "synthetic_patent", "stage": "patent", "config": "benchmark",
                     "argv": ["benchmarks/speed/epoch_time.py", *ov, f"hydra.run.dir={out}/hydra/synthetic_patent"],
                     "overrides": ov})
    return runs


# ------------------------------------------------------------------------------------------- checks
def find_wheels(folder: Path) -> tuple[list[Path], list[str]]:
    """(wheel files found, prefixes of the missing ones)."""
    found, missing = [], []
    files = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    for prefix in WHEELS:
        match = [f for f in files if f.name.lower().startswith(prefix.lower())]
        if match:
            found.append(match[0])
        else:
            missing.append(prefix)
    return found, missing


def check_overrides(runs: list[dict[str, Any]]) -> list[str]:
    """Compose every run's config with its overrides (Hydra), so that a typo fails here, not on the GPU."""
    from hydra import compose, initialize_config_dir

    problems = []
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for run in runs:
            if run["config"] is None:
                continue
            try:
                cfg = compose(config_name=run["config"], overrides=list(run["overrides"]))
                for ov in run["overrides"]:
                    key, value = ov.split("=", 1)
                    if key.startswith("trainer.") or key.startswith("model.") or key.startswith("neuron."):
                        got = cfg
                        for part in key.split("."):
                            got = got[part]
                        if str(got).lower() != value.lower():
                            problems.append(f"{run['name']}: {key} composed to {got!r}, not {value!r}")
            except Exception as exc:
                problems.append(f"{run['name']}: {type(exc).__name__}: {exc}")
    return problems


def preflight(args: argparse.Namespace, runs: list[dict[str, Any]]) -> list[str]:
    """Everything that can be checked without a GPU; a list of problems (empty: ready)."""
    problems = []
    _, missing = find_wheels(Path(args.wheels))
    problems += [f"wheel {m}*.whl missing in {args.wheels}" for m in missing]
    if any(r["stage"] in ("dblp", "precision") for r in runs):
        for name in DBLP_FILES:
            if not (Path(args.data_root) / "dblp" / name).is_file():
                problems.append(f"DBLP file {Path(args.data_root) / 'dblp' / name} missing")
    for run in runs:
        if not (ROOT / run["argv"][0]).is_file():
            problems.append(f"{run['name']}: script {run['argv'][0]} missing")
    return problems + check_overrides(runs)


# ---------------------------------------------------------------------------------------------- runs
def install(args: argparse.Namespace, log: Path) -> str:
    """pip install --no-deps --no-index --target the wheels; returns the PYTHONPATH for the runs."""
    wheels, missing = find_wheels(Path(args.wheels))
    if missing:
        raise SystemExit(f"gpu_suite: wheels missing in {args.wheels}: {missing}")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--upgrade", "--target", args.deps,
           *map(str, wheels)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"gpu_suite: pip install failed, see {log}")
    return os.pathsep.join([args.deps, str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


def environment(env: dict[str, str]) -> dict[str, Any]:
    """Device name and library versions, as the runs see them."""
    code = ("import json, torch, numpy; d = {'torch': torch.__version__, 'numpy': numpy.__version__,"
            " 'cuda': torch.cuda.is_available()}\n"
            "d['device'] = torch.cuda.get_device_name() if d['cuda'] else None\n"
            "try:\n import cupy; d['cupy'] = cupy.__version__\nexcept Exception as e: d['cupy'] = repr(e)\n"
            "import spikingjelly, hydra, omegaconf; d['hydra'] = hydra.__version__\n"
            "d['omegaconf'] = omegaconf.__version__\nprint(json.dumps(d))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": (proc.stderr or proc.stdout)[-2000:]}


def execute(run: dict[str, Any], env: dict[str, str], out: Path, timeout: float) -> dict[str, Any]:
    """Run one subprocess, log to out/<name>.log; parse its result (last JSON line or metrics.json)."""
    log = out / f"{run['name']}.log"
    monitor = GpuMonitor(out / f"{run['name']}_gpu.csv") if run.get("monitor_gpu") else None
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *run["argv"]], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        rc, text = proc.returncode, proc.stdout + "\n--- stderr\n" + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = "timeout", f"{exc.stdout or ''}\n--- stderr\n{exc.stderr or ''}"
    wall = time.perf_counter() - start
    log.write_text(text if isinstance(text, str) else str(text))
    result: dict[str, Any] = {"name": run["name"], "stage": run["stage"], "rc": rc,
                              "wall_seconds": wall, "log": str(log)}
    if monitor is not None:
        result["gpu"] = monitor.stop()
    if run["stage"] == "ttr":
        metrics = run["run_dir"] / "metrics.json"
        result["result"] = json.loads(metrics.read_text()) if metrics.is_file() else None
    if run["stage"] == "ablation":
        result["result"] = sweep_summary(run["sweep_dir"], wall)
    if run["stage"] in ("dblp", "patent") and rc == 0:
        lines = [ln for ln in text.split("\n--- stderr\n")[0].splitlines() if ln.startswith("{")]
        result["result"] = json.loads(lines[-1]) if lines else None
    if run["stage"] == "precision":
        metrics = run["run_dir"] / "metrics.json"
        result["result"] = json.loads(metrics.read_text()) if metrics.is_file() else None
    if run["stage"] == "parity":
        result["stdout"] = text.split("\n--- stderr\n")[0]
    return result


class GpuMonitor:
    """``nvidia-smi`` sampling GPU utilisation and memory every 0.5 s into a CSV while a run goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
               "-lms", "500"]
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(cmd, stdout=path.open("w"),
                                                                  stderr=subprocess.DEVNULL)
        except OSError:
            self.proc = None

    def stop(self) -> dict[str, Any] | None:
        """Mean and median utilisation (%), peak memory (MiB) over the samples; None without nvidia-smi."""
        if self.proc is None:
            return None
        self.proc.terminate()
        self.proc.wait(timeout=10)
        samples = []
        for line in self.path.read_text().splitlines():
            try:
                util, mem = (float(x) for x in line.split(","))
            except ValueError:
                continue
            samples.append((util, mem))
        if not samples:
            return None
        utils = sorted(u for u, _ in samples)
        return {"samples": len(samples), "mean_util": sum(utils) / len(utils), "median_util": utils[len(utils) // 2],
                "busy_share": sum(u > 0 for u in utils) / len(utils), "peak_mem_mib": max(m for _, m in samples)}


def sweep_summary(sweep_dir: Path, wall: float) -> dict[str, Any] | None:
    """Jobs finished, their own wall times summed (what one after another would take) and the speed-up."""
    jobs = sorted(sweep_dir.glob("*/metrics.json")) if sweep_dir.is_dir() else []
    if not jobs:
        return None
    metrics = [json.loads(p.read_text()) for p in jobs]
    serial = sum((m.get("timeline") or {}).get("time_to_result") or m.get("wall_seconds", 0.0) for m in metrics)
    return {"jobs": len(metrics), "wall_seconds": wall, "serial_seconds": serial, "speedup": serial / wall,
            "mean_epoch_seconds": sum(m["epoch_seconds"] for m in metrics) / len(metrics)}


# ------------------------------------------------------------------------------------------- summary
def _f(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary(env_info: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """The printout: device, parity/speed output, then one table per stage."""
    lines = [f"device: {env_info.get('device')}  (torch {env_info.get('torch')}, cupy {env_info.get('cupy')}, "
             f"numpy {env_info.get('numpy')})"]
    for r in results:
        if r["stage"] == "parity":
            lines += ["", f"== gpu_check.py (exit {r['rc']}) ==", r.get("stdout", "").strip()]
    rows = [r for r in results if r["stage"] == "dblp"]
    if rows:
        phases = ("sample", "gather", "forward", "backward", "evaluate")
        lines += ["", "== DBLP epoch (epoch_time.py; split from one GPU-synchronised epoch) ==",
                  f"{'run':<22}{'epoch s':>9}" + "".join(f"{p:>10}" for p in phases) + f"{'peak GPU MiB':>14}"]
        for r in rows:
            res = r.get("result")
            if not res:
                lines.append(f"{r['name']:<22}{'failed (' + str(r['rc']) + ')':>9}")
                continue
            split = res.get("split", {})
            lines.append(f"{r['name']:<22}{res['epoch_seconds']:>9.3f}"
                         + "".join(f"{_f(split.get(p)):>10}" for p in phases)
                         + f"{_f(res.get('peak_gpu_mb'), '.0f'):>14}")
    rows = [r for r in results if r["stage"] == "precision"]
    if rows:
        lines += ["", "== DBLP per precision (src/run.py, model.chunk_rows=0, data_device=cuda) ==",
                  f"{'run':<18}{'test macro':>11}{'test micro':>11}{'epoch s':>9}{'best epoch':>11}"]
        for r in rows:
            m = r.get("result") or {}
            lines.append(f"{r['name']:<18}{_f(m.get('test_macro_f1'), '.4f'):>11}"
                         f"{_f(m.get('test_micro_f1'), '.4f'):>11}"
                         f"{_f(m.get('epoch_seconds')):>9}{str(m.get('best_epoch', '-')):>11}"
                         + ("" if m else f"  failed ({r['rc']})"))
    rows = [r for r in results if r["stage"] == "ttr"]
    if rows:
        lines += ["", "== time to result: python src/run.py dataset=dblp device=cuda (100 epochs) ==",
                  f"{'run':<12}{'process s':>10}{'start-up':>10}{'load':>8}{'build':>8}{'fit':>8}{'epoch s':>9}"
                  f"{'test Mi-F1':>11}"]
        for r in rows:
            m = r.get("result") or {}
            t = m.get("timeline") or {}
            lines.append(f"{r['name']:<12}{_f(t.get('time_to_result'), '.1f'):>10}{_f(t.get('startup'), '.1f'):>10}"
                         f"{_f(t.get('load'), '.1f'):>8}{_f(t.get('build'), '.1f'):>8}{_f(t.get('fit'), '.1f'):>8}"
                         f"{_f(m.get('epoch_seconds')):>9}{_f(m.get('test_micro_f1'), '.4f'):>11}"
                         + ("" if m else f"  failed ({r['rc']})"))
    for r in results:
        if r["stage"] == "ablation":
            res, gpu = r.get("result") or {}, r.get("gpu") or {}
            lines += ["", "== neuron ablation on one GPU (+ablation=neuron, +launcher=local_parallel) ==",
                      f"jobs {res.get('jobs')}, wall {_f(res.get('wall_seconds'), '.1f')} s, one after another "
                      f"{_f(res.get('serial_seconds'), '.1f')} s, speed-up {_f(res.get('speedup'), '.2f')}x, "
                      f"mean epoch {_f(res.get('mean_epoch_seconds'))} s; GPU utilisation mean "
                      f"{_f(gpu.get('mean_util'), '.0f')} %, median {_f(gpu.get('median_util'), '.0f')} %, peak "
                      f"memory {_f(gpu.get('peak_mem_mib'), '.0f')} MiB" + ("" if res else f"  failed ({r['rc']})")]
    for r in results:
        if r["stage"] == "patent":
            res = r.get("result") or {}
            lines += ["", "== synthetic_patent whole epoch (epoch_time.py bench.batches=0) ==",
                      f"epoch s {_f(res.get('epoch_seconds'))}, peak GPU MiB {_f(res.get('peak_gpu_mb'), '.0f')}, "
                      f"data_device {res.get('data_device')}, split {res.get('split')}, "
                      f"build s {_f(res.get('build_seconds'), '.1f')}" + ("" if res else f"  failed ({r['rc']})")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dry run (0 when ready) or the selected stages (0 when every run exited 0)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    out = Path(args.out).resolve()
    runs = plan(args, out)
    if args.dry_run:
        problems = preflight(args, runs)
        for p in problems:
            print(f"gpu_suite: {p}", file=sys.stderr)
        for run in runs:
            print("python " + " ".join(run["argv"]))
        print(f"gpu_suite: dry run, {len(runs)} runs, {'ready' if not problems else f'{len(problems)} problem(s)'}")
        return 0 if not problems else 1
    out.mkdir(parents=True, exist_ok=True)
    pythonpath = install(args, out / "pip.log")
    env = dict(os.environ, PYTHONPATH=pythonpath, SPIKENET_CACHE=args.cache_dir,
               PYTHONWARNINGS="ignore", WANDB_MODE="disabled", HYDRA_FULL_ERROR="1")
    # the checks compose configs with Hydra, which the GPU machine gets from the wheels: this script's dry run,
    # in a subprocess that sees them (and this checkout's src/) as every stage will
    if subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv, "--dry-run"], env=env).returncode:
        return 1
    env_info = environment(env)
    print(json.dumps(env_info), flush=True)
    results = []
    for run in runs:
        print(f"gpu_suite: {run['name']} ...", flush=True)
        results.append(execute(run, env, out, args.timeout))
        (out / "results.json").write_text(json.dumps({"env": env_info, "runs": results}, indent=1, default=str))
    text = summary(env_info, results)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
