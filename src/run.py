"""Hydra entry point: compose the config, train, write ``metrics.json`` and the best checkpoint.

    python src/run.py                                   # synthetic data, adaptive LIF, 100 epochs
    python src/run.py dataset=dblp dataset.root=../shared/data trainer.epochs=2
    python src/run.py -m neuron.tau=1.0,1.5 surrogate.alpha=0.5,1.0 sampler=sage,rw
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from spikenet.cli import check_group_overrides
from spikenet.config import ConfigError
from spikenet.experiment import build_experiment, count_parameters
from spikenet.training import build_logger
from spikenet.training.results import peak_rss_mb, summary_line, write_json

log = logging.getLogger("spikenet")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one configuration; returns validation Micro-F1 (the objective for Hydra sweepers)."""
    start = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        logger = build_logger(cfg.logger, str(run_dir))
        exp = build_experiment(cfg, logger=logger, run_dir=str(run_dir))
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    model = exp.trainer.model
    logger.log_config(OmegaConf.to_container(cfg, resolve=True))
    log.info("model: %s | device %s, neuron backend %s", model.__class__.__name__, exp.device, exp.backend)
    result = exp.trainer.fit()
    metrics = {
        "dataset": exp.graph.name,
        "neuron": cfg.neuron.name,
        **{k: v for k, v in result.items() if k != "history"},
        "params": count_parameters(model),
        "peak_rss_mb": peak_rss_mb(),
        "wall_seconds": time.perf_counter() - start,
        "device": str(exp.device),
        "backend": exp.backend,
        "overrides": list(HydraConfig.get().overrides.task),
        "history": result["history"],
    }
    write_json(run_dir / "metrics.json", metrics)
    logger.log_summary({k: v for k, v in metrics.items() if k != "history"})
    logger.finish()
    print(summary_line(metrics, run_dir), flush=True)
    return float(metrics["val_micro_f1"])


if __name__ == "__main__":
    check_group_overrides(sys.argv[1:], CONF_DIR)
    main()
