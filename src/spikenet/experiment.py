"""One experiment from a composed config: data -> sampler -> model -> trainer.

``build_experiment`` checks the config (``spikenet.config.validate``), loads the data and builds the
parts; ``src/run.py`` calls it, then ``Experiment.trainer.fit`` and writes the results. Benchmarks
and tests call ``build_experiment`` directly.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikenet.config import resolve_device, validate
from spikenet.data import TemporalGraph, load_dataset
from spikenet.models import build_model
from spikenet.neurons import build_neuron, build_surrogate, resolve_backend
from spikenet.runtime import keep_freed_memory
from spikenet.sampling import TemporalSampler
from spikenet.training import Logger, Trainer, stratified_splits
from spikenet.training.distributed import Distributed
from spikenet.training.placement import place_data

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Experiment:
    """Everything a run needs, built from the config."""

    graph: TemporalGraph
    trainer: Trainer
    device: torch.device
    backend: str


def build_experiment(cfg: Any, graph: TemporalGraph | None = None, logger: Logger | None = None,
                     run_dir: str | None = None, dist: Distributed | None = None) -> Experiment:
    """Validate ``cfg``, load the data (unless given) and build sampler, model and trainer.

    ``dist`` (from ``distributed.setup``) makes this one rank of a data-parallel run.
    """
    validate(cfg)
    keep_freed_memory()
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    device = resolve_device(str(cfg.device))
    graph = graph if graph is not None else load_dataset(cfg.dataset)
    seed_everything(dist.rank_seed(int(cfg.seed)) if dist is not None else int(cfg.seed))
    splits = stratified_splits(graph.labelled_nodes, graph.labels, float(cfg.trainer.train_size),
                               float(cfg.trainer.val_size), int(cfg.trainer.split_seed))
    # trainer.data_device: graph, features, labels and splits on the model's GPU when they fit (sampling there)
    data, splits, _ = place_data(cfg.trainer, device, graph, splits)
    sampler = TemporalSampler(data, list(cfg.sampler.sizes), float(cfg.sampler.p), str(cfg.sampler.name))
    backend = resolve_backend(str(cfg.neuron.backend), device)

    def make_neuron(channels: int) -> torch.nn.Module:
        return build_neuron(cfg.neuron, build_surrogate(str(cfg.surrogate.name), float(cfg.surrogate.alpha)),
                            backend, channels)

    model = build_model(cfg.model, graph.num_features, graph.num_classes, graph.num_steps, sampler.sizes,
                        make_neuron)
    trainer = Trainer(model, data, sampler, splits, cfg.trainer, device, int(cfg.seed), logger, run_dir, dist=dist)
    return Experiment(graph=graph, trainer=trainer, device=device, backend=backend)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
