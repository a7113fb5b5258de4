"""The early check of a composed config: every range check runs once, before any data is read.

Each value has one home. Its default is the YAML group file that sets it (``conf/<group>/*.yaml``);
code reads ``cfg.<key>`` without a fallback of its own. Its range check lives in the constructor
that consumes it (neuron, surrogate, sampler, aggregator, model, dropout, splits, trainer,
precision, task), or in a function beside that constructor which the constructor calls when it
needs data that is not loaded yet (an encoder's ``check_config``, a task's registered ``check``).
``validate`` builds the parts that need no data once (device, neuron backend, surrogate, precision),
runs the checks of the parts that do, and returns the built parts in a ``Checked`` for
``build_experiment`` to use; it imports the ``plugins`` first, so their parts are known.
This module keeps only what no constructor owns: the ``device`` key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from spikenet.models import check_model_config, is_spiking
from spikenet.neurons import SpikeSurrogate, build_surrogate, check_neuron_config, resolve_backend
from spikenet.registry import PluginError, load_plugins
from spikenet.sampling import check_sampler
from spikenet.tasks import check_task_config
from spikenet.training.precision import Precision
from spikenet.training.trainer import check_trainer_config


@dataclass(frozen=True)
class Checked:
    """The parts ``validate`` built from a config that passed every check; ``build_experiment`` uses them."""

    device: torch.device
    backend: str  # the neuron backend (torch | cupy); "none" for an encoder without spiking neurons
    surrogate: SpikeSurrogate | None  # None for an encoder without spiking neurons
    precision: Precision


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


def validate(cfg: Any) -> Checked:
    """Check every value of ``cfg`` once and build what needs no data; ``ConfigError`` (one line naming the
    key) for the first out-of-range value, an unknown part or a plugin that does not import."""
    try:
        load_plugins(list(cfg.plugins))
        device = resolve_device(str(cfg.device))
        sizes = [int(s) for s in cfg.sampler.sizes]
        check_sampler(str(cfg.sampler.name), sizes, float(cfg.sampler.p))
        spiking = is_spiking(str(cfg.model.name))
        check_model_config(cfg.model, sizes)
        backend, surrogate = "none", None
        if spiking:
            backend = resolve_backend(str(cfg.neuron.backend), device)
            surrogate = build_surrogate(str(cfg.surrogate.name), float(cfg.surrogate.alpha))
            check_neuron_config(cfg.neuron, backend)
        check_task_config(cfg.task)
        check_trainer_config(cfg.trainer)
        precision = Precision(str(cfg.trainer.precision), device)
    except ConfigError:
        raise
    except (ValueError, AssertionError, FileNotFoundError, PluginError) as err:
        lines = str(err).strip().splitlines()
        raise ConfigError(lines[0] if lines else f"invalid config ({type(err).__name__})") from None
    return Checked(device=device, backend=backend, surrogate=surrogate, precision=precision)
