"""Checks on a composed config: bad values stop the run with a one-line message."""

from __future__ import annotations

from typing import Any

import torch

from spikenet.neurons import BACKENDS, NEURONS, SURROGATES
from spikenet.sampling import SAMPLERS


class ConfigError(ValueError):
    """A config value out of range; the message is one line naming the key."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: Any) -> None:
    """Raise ``ConfigError`` for the first out-of-range value in ``cfg``."""
    n, s, m, tr = cfg.neuron, cfg.sampler, cfg.model, cfg.trainer
    _require(n.name in NEURONS, f"neuron.name must be one of {NEURONS}, got '{n.name}'")
    _require(float(n.tau) >= 1.0, f"neuron.tau must be >= 1.0, got {n.tau}")
    if n.name in ("lif", "plif"):
        _require(float(n.tau) > 1.0, f"neuron.tau must be > 1.0 for SpikingJelly's {n.name} node, got {n.tau}")
    if n.name == "adaptive_lif":
        _require(0.0 <= float(n.thresh_decay) <= 1.0, f"neuron.thresh_decay must be in [0, 1], got {n.thresh_decay}")
        _require(float(n.gamma) >= 0.0, f"neuron.gamma must be >= 0, got {n.gamma}")
    _require(n.get("backend", "auto") in BACKENDS, f"neuron.backend must be one of {BACKENDS}, got '{n.backend}'")
    _require(cfg.surrogate.name in SURROGATES,
             f"surrogate.name must be one of {sorted(SURROGATES)}, got '{cfg.surrogate.name}'")
    _require(float(cfg.surrogate.alpha) > 0, f"surrogate.alpha must be > 0, got {cfg.surrogate.alpha}")
    _require(s.name in SAMPLERS, f"sampler.name must be one of {SAMPLERS}, got '{s.name}'")
    _require(0.0 <= float(s.p) <= 1.0, f"sampler.p must be in [0, 1], got {s.p}")
    _require(len(s.sizes) > 0 and all(int(k) >= 1 for k in s.sizes),
             f"sampler.sizes must be a non-empty list of positive ints, got {list(s.sizes)}")
    _require(len(m.hids) > 0, "model.hids must name at least one layer, got []")
    _require(all(int(h) >= 1 for h in m.hids), f"model.hids must be positive ints, got {list(m.hids)}")
    _require(len(m.hids) == len(s.sizes),
             f"model.hids ({len(m.hids)} layers) and sampler.sizes ({len(s.sizes)} hops) must have equal length")
    _require(0.0 <= float(m.dropout) < 1.0, f"model.dropout must be in [0, 1), got {m.dropout}")
    _require(m.aggr in ("mean", "sum"), f"model.aggr must be mean or sum, got '{m.aggr}'")
    val = float(tr.get("val_size", 0.05))
    _require(val < float(tr.train_size) < 1.0, f"trainer.train_size must be in ({val}, 1), got {tr.train_size}")
    schedules = ("best", "improved", "every")
    _require(tr.get("test_schedule", "best") in schedules,
             f"trainer.test_schedule must be one of {schedules}, got '{tr.get('test_schedule')}'")
    _require(int(tr.epochs) >= 1, f"trainer.epochs must be >= 1, got {tr.epochs}")
    _require(int(tr.batch_size) >= 1, f"trainer.batch_size must be >= 1, got {tr.batch_size}")
    _require(float(tr.lr) > 0, f"trainer.lr must be > 0, got {tr.lr}")
    _require(str(cfg.device) in ("auto", "cpu", "cuda") or str(cfg.device).startswith("cuda:"),
             f"device must be auto, cpu or cuda, got '{cfg.device}'")
    if str(cfg.device).startswith("cuda"):
        _require(torch.cuda.is_available(), "device=cuda but no CUDA device is available (use device=auto or cpu)")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
