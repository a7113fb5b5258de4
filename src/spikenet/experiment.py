"""One experiment from a composed config: data -> task -> sampler -> encoder + the task's head -> trainer.

``build_experiment`` checks the config (``spikenet.config.validate``), loads the data and builds the
parts; ``src/run.py`` calls it, then ``Experiment.trainer.fit`` and writes the results. Benchmarks
and tests call ``build_experiment`` directly.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikenet.config import validate
from spikenet.contracts import Task
from spikenet.data import TemporalGraph, load_dataset
from spikenet.models import build_model
from spikenet.neurons import build_neuron
from spikenet.runtime import keep_freed_memory, settle_vector_math
from spikenet.sampling import TemporalSampler
from spikenet.tasks import TaskModel, build_task
from spikenet.training import Logger, Trainer
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
    task: Task
    trainer: Trainer
    device: torch.device
    backend: str  # the neuron backend (torch | cupy); "none" for an encoder without spiking neurons
    load_seconds: float = 0.0  # reading the graph and its features (from the caches when they hold them)
    build_seconds: float = 0.0  # task, sampler, encoder, head and trainer


def build_experiment(cfg: Any, graph: TemporalGraph | None = None, logger: Logger | None = None,
                     run_dir: str | None = None, dist: Distributed | None = None) -> Experiment:
    """Validate ``cfg``, load the data (unless given) and build sampler, model and trainer.

    ``dist`` (from ``distributed.setup``) makes this one rank of a data-parallel run.
    """
    checked = validate(cfg)  # every check, before any data is read; the parts that need no data, built once
    keep_freed_memory()
    settle_vector_math()  # before the data: loading may already split sqrt/exp over threads
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    device = checked.device
    start = time.perf_counter()
    graph = graph if graph is not None else load_dataset(cfg.dataset)
    loaded = time.perf_counter()
    seed_everything(dist.rank_seed(int(cfg.seed)) if dist is not None else int(cfg.seed))
    task = build_task(cfg.task, graph, int(cfg.seed))
    # trainer.data_device: graph and features on the model's GPU when they fit (sampling there)
    data, _ = place_data(cfg.trainer, device, graph)
    sampler = TemporalSampler(data, list(cfg.sampler.sizes), float(cfg.sampler.p), str(cfg.sampler.name))
    backend = checked.backend

    def make_neuron(channels: int) -> torch.nn.Module:
        return build_neuron(cfg.neuron, checked.surrogate, backend, channels)

    encoder = build_model(cfg.model, graph.num_features, task.encoder_steps(), sampler.sizes, make_neuron)
    model = TaskModel(encoder, task.build_head(encoder))  # the head right after the encoder: same init draws
    trainer = Trainer(model, task, data, sampler, cfg.trainer, device, int(cfg.seed), logger, run_dir, dist=dist,
                      precision=checked.precision)
    return Experiment(graph=graph, task=task, trainer=trainer, device=device, backend=backend,
                      load_seconds=loaded - start, build_seconds=time.perf_counter() - loaded)


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
