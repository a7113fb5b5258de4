"""The early check of a composed config: every range check runs before any data is read.

Each value has one home. Its default is the YAML group file that sets it (``conf/<group>/*.yaml``);
code reads ``cfg.<key>`` without a fallback of its own. Its range check lives in the constructor
that consumes it (neuron, surrogate, sampler, aggregator, model, dropout, splits, trainer,
precision, task), or in a function beside that constructor which the constructor calls when it
needs data that is not loaded yet. ``validate`` runs them all up front: it builds the parts that need no
data (surrogate, neuron, a stand-in of the model) and calls the checks of the parts that do.
This module keeps only what no constructor owns: the ``device`` key.
"""

from __future__ import annotations

from typing import Any

import torch

from spikenet.models import build_model
from spikenet.neurons import build_neuron, build_surrogate, resolve_backend
from spikenet.sampling import check_sampler
from spikenet.tasks import check_task_config
from spikenet.training.precision import Precision
from spikenet.training.trainer import check_trainer_config

# A stand-in for the data's sizes: building the model on it runs the model's constructor checks.
_STANDIN = {"in_features": 1, "num_steps": 1}


class ConfigError(ValueError):
    """A config value out of range; the message is one line naming the key."""


def resolve_device(name: str) -> torch.device:
    """``device``: ``auto`` -> cuda when available, else cpu; ``cpu``, ``cuda`` or ``cuda:N`` as given."""
    if not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise ValueError(f"device must be auto, cpu or cuda, got '{name}'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name} but no CUDA device is available (use device=auto or cpu)")
    return torch.device(name)


def validate(cfg: Any) -> None:
    """Raise ``ConfigError`` (one line naming the key) for the first out-of-range value in ``cfg``."""
    try:
        device = resolve_device(str(cfg.device))
        resolve_backend(str(cfg.neuron.backend), device)
        surrogate = build_surrogate(str(cfg.surrogate.name), float(cfg.surrogate.alpha))
        check_sampler(str(cfg.sampler.name), list(cfg.sampler.sizes), float(cfg.sampler.p))
        build_model(cfg.model, sizes=[int(s) for s in cfg.sampler.sizes],
                    make_neuron=lambda channels: build_neuron(cfg.neuron, surrogate, "torch", channels), **_STANDIN)
        check_task_config(cfg.task)
        check_trainer_config(cfg.trainer)
        Precision(str(cfg.trainer.precision), device)
    except ConfigError:
        raise
    except (ValueError, AssertionError, FileNotFoundError) as err:
        lines = str(err).strip().splitlines()
        raise ConfigError(lines[0] if lines else f"invalid config ({type(err).__name__})") from None
