"""Hydra entry point: compose the config, train, write ``metrics.json`` and the checkpoints.

    python src/run.py                                   # synthetic data, adaptive LIF, 100 epochs
    python src/run.py dataset=dblp trainer.epochs=2
    python src/run.py -m neuron.tau=1.0,1.5 surrogate.alpha=0.5,1.0 sampler=sage,rw
    python src/run.py hydra.run.dir=outputs/long trainer.resume=auto   # relaunch: continue from its last.pt

A run that fails says why in one line (``error: ...``). A single run then exits (2 for bad input, 1
otherwise); a job of a multirun or an Optuna study raises instead, so Hydra marks that job failed
and the other jobs go on. The logger is closed either way.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from spikenet.cli import check_command_line, register_resolvers, with_plugins
from spikenet.config import ConfigError
from spikenet.energy import EnergyCosts, break_even, summarize
from spikenet.experiment import Experiment, build_experiment, count_parameters
from spikenet.models import is_spiking
from spikenet.tasks import model_op_counts
from spikenet.training import Logger, build_logger, distributed
from spikenet.training.results import peak_rss_mb, process_seconds, summary_line, write_json
from spikenet.training.trainer import NonFiniteLossError, warnings_for

log = logging.getLogger("spikenet")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
BAD_INPUT = (ConfigError, FileNotFoundError, ValueError)  # exit code 2 in a single run
RUN_ERRORS = (*BAD_INPUT, NonFiniteLossError)  # reported in one line, not a traceback


def cost_metrics(cfg: DictConfig, exp: Experiment, result: dict) -> dict:
    """Peak device memory, and SOPs / MACs / both energy accounts per example and the break-even firing rates
    (``spikenet.energy``: the encoder's work per embedded node plus the task head's)."""
    device = exp.device
    peak_device = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    ops = model_op_counts(exp.task, exp.trainer.model, result.get("firing_rates"))
    costs = EnergyCosts.from_cfg(cfg.energy)
    energy = {} if ops is None else summarize(ops, costs)
    if ops is not None and is_spiking(str(cfg.model.name)):
        energy.update(break_even(ops, costs))
    return {"peak_device_mb": peak_device, "coding": str(cfg.model.coding.name), **energy}


def one_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type when the message is empty)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def remove_if_unused(run_dir: Path) -> bool:
    """Delete a single run's directory when the run failed before it logged or wrote anything (only Hydra's
    ``.hydra/`` and an empty ``run.log`` in it), so a mistyped command leaves no empty run behind. Returns
    whether it did; a run that got as far as logging keeps its ``run.log``."""
    if not run_dir.is_dir() or any(p.name not in (".hydra", "run.log") for p in run_dir.iterdir()):
        return False
    log_file = run_dir / "run.log"
    if log_file.is_file() and log_file.stat().st_size > 0:
        return False
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        if Path(handler.baseFilename).resolve().parent == run_dir.resolve():  # Hydra's run.log: nothing to log now
            root.removeHandler(handler)
            handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def fail(err: BaseException, run_dir: Path) -> NoReturn:
    """Report a failed run in one line: a single run exits, a multirun job raises (Hydra marks it failed)."""
    line = f"error: {one_line(err)}"
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        log.error(line)  # one line in the job's log; the sweep goes on with the other jobs
        raise err
    remove_if_unused(run_dir)
    print(line, file=sys.stderr)
    sys.exit(2 if isinstance(err, BAD_INPUT) else 1)


def resume_command(run_dir: Path) -> str:
    """The command that continues this run from its ``last.pt``: the same overrides, its run directory."""
    keep = [o for o in HydraConfig.get().overrides.task
            if not o.lstrip("+~").startswith(("trainer.resume=", "hydra.run.dir="))]
    return " ".join(["python src/run.py", *keep, f"hydra.run.dir={run_dir}", "trainer.resume=auto"])


def interrupted(run_dir: Path) -> NoReturn:
    """Ctrl-C: one line saying where the run stopped and how to continue it (exit 130, as shells expect)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        raise KeyboardInterrupt
    if (run_dir / "last.pt").is_file():
        print(f"interrupted; continue with: {resume_command(run_dir)}", file=sys.stderr)
    else:
        removed = remove_if_unused(run_dir)
        print("interrupted before the first epoch ended" + ("" if removed else f"; outputs in {run_dir}"),
              file=sys.stderr)
    sys.exit(130)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one configuration; returns its ``cfg.optimized_metric`` (the objective for Hydra sweepers)."""
    start = time.perf_counter()
    startup = process_seconds()  # interpreter, imports and Hydra's composition, before main
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    logger = Logger()
    try:
        dist = distributed.setup(str(cfg.device), cfg.trainer.get("num_threads"))  # one rank of torchrun/srun
        dist.quiet_followers()
        # only rank 0 logs, checkpoints (run_dir) and writes metrics.json
        logger = build_logger(cfg.logger, str(run_dir)) if dist.is_main else Logger()
        return train(cfg, run_dir, dist, logger, start, startup)
    except RUN_ERRORS as err:
        fail(err, run_dir)
    except KeyboardInterrupt:
        interrupted(run_dir)
    finally:
        logger.finish()


def train(cfg: DictConfig, run_dir: Path, dist: distributed.Distributed, logger: Logger, start: float,
          startup: float | None = None) -> float:
    """Build the experiment, fit it, write ``metrics.json``; returns ``metrics[cfg.optimized_metric]``."""
    exp = build_experiment(cfg, logger=logger, run_dir=str(run_dir) if dist.is_main else None, dist=dist)
    model = exp.trainer.model
    logger.log_config(OmegaConf.to_container(cfg, resolve=True))
    log.info("task %s | model %s | device %s, neuron backend %s", exp.task.name, type(model.encoder).__name__,
             exp.device, exp.backend)
    fit_start = time.perf_counter()
    result = exp.trainer.fit()
    fit_seconds = time.perf_counter() - fit_start
    rank_rss = dist.gather_object(peak_rss_mb())  # every rank's peak RSS, in rank order
    dist.close()
    if not dist.is_main:
        return float(result[f"val_{exp.task.select}"])
    spiking = is_spiking(str(cfg.model.name))
    metrics = {
        "dataset": exp.graph.name,
        "task": exp.task.name,
        "model": str(cfg.model.name),
        "neuron": str(cfg.neuron.name) if spiking else None,  # dense encoders have no neuron
        "metrics": list(exp.task.metrics),
        "select_metric": f"val_{exp.task.select}",
        **{k: v for k, v in result.items() if k != "history"},
        "baselines": exp.task.baselines(),
        "params": count_parameters(model),
        "peak_rss_mb": peak_rss_mb(),
        "world_size": dist.world_size,
        **({"rank_peak_rss_mb": rank_rss} if dist.active else {}),  # every rank's, in rank order
        **cost_metrics(cfg, exp, result),
        "wall_seconds": time.perf_counter() - start,
        "timeline": {  # seconds: where the time to result goes (time_to_result: process start to metrics.json)
            "startup": startup,
            "load": exp.load_seconds,
            "build": exp.build_seconds,
            "fit": fit_seconds,
            "time_to_result": process_seconds(),
        },
        "device": str(exp.device),
        "backend": exp.backend,
        "overrides": [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("trainer.resume=")],
        "history": result["history"],
    }
    metrics["data"] = data_decisions(exp.graph)
    write_node_ids(exp.graph, run_dir)
    write_json(run_dir / "metrics.json", metrics)
    logger.log_summary({k: v for k, v in metrics.items() if k != "history"})
    logger.finish()
    for warning in warnings_for(result, exp.task):
        log.warning(warning)
    print(summary_line(metrics, exp.task.summary(metrics), run_dir), flush=True)
    return objective(metrics, metrics["select_metric"] if cfg.optimized_metric is None else str(cfg.optimized_metric))


DATA_DECISIONS = ("raw_steps", "distinct_stamps", "auto_bins", "auto_merge", "empty_dropped", "empty_steps",
                  "estimate", "labels_dropped", "labels_dropped_rare", "classes_dropped")


def data_decisions(graph: Any) -> dict:
    """What the reader decided for this run's data (snapshot binning, dropped labels, its cost estimate), from
    ``graph.meta``: the choices a user did not make on the command line, kept with the results."""
    out = {key: graph.meta[key] for key in DATA_DECISIONS if graph.meta.get(key) is not None}
    return json.loads(json.dumps(out, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def write_node_ids(graph: Any, run_dir: Path) -> Path | None:
    """``node_ids.txt`` beside the outputs when the reader renumbered the nodes: line u holds node u's original
    id (predictions, embeddings and checkpoints index nodes by u)."""
    ids = graph.meta.get("node_ids")
    if ids is None:
        return None
    path = run_dir / "node_ids.txt"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{i}\n" for i in ids))
    tmp.replace(path)
    return path


def objective(metrics: dict, key: str) -> float:
    """``metrics[key]`` as the float a sweeper maximises or minimises."""
    value = metrics.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        numeric = sorted(k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool))
        raise ConfigError(f"optimized_metric '{key}' is not a number in metrics.json; choose one of {numeric}")
    return float(value)


register_resolvers()  # ${run_label:...} in hydra.run.dir

if __name__ == "__main__":
    sys.argv[1:] = with_plugins(sys.argv[1:])  # plugins=[mylab]: import it, its conf/ on Hydra's search path
    check_command_line(sys.argv[1:], CONF_DIR)
    sys.argv = distributed.pin_run_dir(sys.argv, CONF_DIR)  # torchrun/srun: one run dir for all ranks
    main()
