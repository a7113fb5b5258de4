"""Weights & Biases logger (``logger=wandb``), plus a reader for the runs it leaves on disk.

Logged per run: the resolved config (``wandb.config``); per epoch (``step`` = epoch) the training
loss, val/test Macro- and Micro-F1, the epoch's seconds and the firing rate of every spiking layer
at every time step of the validation split; at the end the summary of ``metrics.json`` (the test
scores of the best-validation epoch, ``val_micro_f1``, ``epoch_seconds``, ``params``, ...).

Mode: ``logger.mode`` if set, else ``$WANDB_MODE``, else ``online`` when an API key is configured
(``$WANDB_API_KEY`` or a netrc entry from ``wandb login``) and ``offline`` otherwise, so a run never
waits for a network it does not have. Directory: ``logger.dir`` if set, else ``$WANDB_DIR``, else the
Hydra run directory, so an offline run lands beside ``metrics.json`` as ``wandb/offline-run-*``;
``wandb sync <that dir>`` uploads it later.

This module imports ``wandb``; ``spikenet.training.loggers.build_logger`` imports it only when
``logger=wandb`` is chosen.
"""

from __future__ import annotations

import json
import math
import netrc
import os
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import wandb

from spikenet.training.loggers import Logger, register_logger

# Per-epoch record field (trainer's EpochRecord) -> W&B history key.
EPOCH_KEYS = {
    "loss": "train/loss",
    "val_macro_f1": "val/macro_f1",
    "val_micro_f1": "val/micro_f1",
    "test_macro_f1": "test/macro_f1",
    "test_micro_f1": "test/micro_f1",
    "seconds": "time/epoch_seconds",
    "train_seconds": "time/train_seconds",
    "eval_seconds": "time/eval_seconds",
}


def firing_rate_key(layer: int, step: int | None = None) -> str:
    """History key of a layer's firing rate at one time step (``step=None``: mean over steps)."""
    return f"firing_rate/layer{layer}/" + ("mean" if step is None else f"t{step}")


def api_key_configured() -> bool:
    """Whether W&B could authenticate: ``$WANDB_API_KEY`` or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def resolve_mode(requested: str | None) -> str:
    """``logger.mode`` > ``$WANDB_MODE`` > online with an API key > offline."""
    if requested:
        return str(requested)
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if api_key_configured() else "offline"


def resolve_dir(requested: str | None, run_dir: str) -> str:
    """``logger.dir`` > ``$WANDB_DIR`` > the Hydra run directory."""
    return str(requested or os.environ.get("WANDB_DIR") or run_dir)


def _scalar(value: Any) -> Any:
    """A value W&B's summary stores as-is (NaN and inf become None, as in ``metrics.json``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class WandbLogger(Logger):
    """Sends the trainer's hooks to one W&B run (started at the first hook, finished by ``finish``)."""

    def __init__(self, cfg: Any, run_dir: str) -> None:
        self.cfg = cfg
        self.run_dir = str(run_dir)
        self.wants_spike_rates = bool(cfg.get("log_firing_rates", True))
        self.mode = resolve_mode(cfg.get("mode"))
        self.dir = resolve_dir(cfg.get("dir"), self.run_dir)
        self.run = None

    def _start(self, config: dict | None = None) -> Any:
        if self.run is not None:
            return self.run
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        tags = self.cfg.get("tags")
        self.run = wandb.init(
            project=self.cfg.get("project") or "spikenet",
            entity=self.cfg.get("entity") or None,
            group=self.cfg.get("group") or None,
            name=self.cfg.get("run_name") or None,
            notes=self.cfg.get("notes") or None,
            job_type=self.cfg.get("job_type") or None,
            tags=[str(t) for t in tags] if tags else None,
            config=config,
            dir=self.dir,
            mode=self.mode,
            settings=wandb.Settings(console=str(self.cfg.get("console") or "off")),
        )
        # Epoch is the x-axis of every per-epoch chart.
        self.run.define_metric("epoch")
        for key in [*EPOCH_KEYS.values(), "firing_rate/*"]:
            self.run.define_metric(key, step_metric="epoch")
        return self.run

    def log_config(self, config: dict) -> None:
        if self.run is None:
            self._start(config)
        else:
            self.run.config.update(config, allow_val_change=True)
        self.run.summary["run_dir"] = self.run_dir

    def log_epoch(self, epoch: int, record: dict) -> None:
        run = self._start()
        data: dict[str, Any] = {"epoch": epoch}
        for field, key in EPOCH_KEYS.items():
            value = record.get(field)
            if value is not None:
                data[key] = value
        for layer, rates in enumerate(record.get("firing_rates") or []):
            for step, rate in enumerate(rates):
                data[firing_rate_key(layer, step)] = rate
            if rates:
                data[firing_rate_key(layer)] = sum(rates) / len(rates)
        run.log(data, step=epoch)

    def log_summary(self, summary: dict) -> None:
        run = self._start()
        for key, value in summary.items():
            run.summary[key] = _scalar(value)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


@register_logger("wandb")
def make_wandb_logger(cfg: Any, run_dir: str) -> WandbLogger:
    return WandbLogger(cfg, run_dir)


# --- reading a run back from disk ---------------------------------------------------------------
# A ``run-<id>.wandb`` file is a 7-byte header (":W&B", 0xBEE1 little-endian, version 0) followed by
# 32 KiB blocks of chunks in LevelDB's log format: crc32(type + data) u32, length u16, type u8
# (1 full, 2 first, 3 middle, 4 last), data; a block's tail shorter than a chunk header is zero
# padding. Each reassembled record is a serialized ``wandb_internal_pb2.Record``.
_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32 * 1024
_CHUNK_HEADER = 7


def _records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if not data.startswith(_HEADER):
        raise ValueError(f"{path}: not a W&B run file")
    out, pending, pos = [], b"", len(_HEADER)
    while pos + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK_HEADER:
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:  # zero padding at the end of the file
            break
        chunk = data[pos + _CHUNK_HEADER : pos + _CHUNK_HEADER + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc:
            break  # a truncated or torn tail (run still being written): stop at the last good record
        pos += _CHUNK_HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return out


def _set(target: dict, item: Any) -> None:
    """Apply one W&B ``*Item`` (``key`` or ``nested_key``, ``value_json``) to ``target``."""
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def read_run(path: str | Path) -> dict:
    """Config, per-step history and summary of a W&B run directory (``.../offline-run-*``) or file.

    Returns ``{"id", "project", "entity", "tags", "config", "history", "summary"}``: ``config`` maps
    each key to its value, ``history`` is a list of dicts (one per ``run.log`` step, ``_step``
    included), ``summary`` the final summary (W&B's automatic last-value summary updated with the
    explicit summary writes). W&B 0.31 writes no ``wandb-summary.json`` for offline runs, hence this.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"no run-*.wandb file in {path}")
        path = files[0]
    run_id, info, config, history, summary = None, {}, {}, [], {}
    for raw in _records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_id = rec.run.run_id or run_id
            info = {"project": rec.run.project, "entity": rec.run.entity, "tags": list(rec.run.tags)}
            for item in rec.run.config.update:
                _set(config, item)
            for item in rec.run.summary.update:
                _set(summary, item)
        elif kind == "config":
            for item in rec.config.update:
                _set(config, item)
            for item in rec.config.remove:
                config.pop(item.key, None)
        elif kind == "history":
            row: dict = {}
            for item in rec.history.item:
                _set(row, item)
            if rec.history.HasField("step"):
                row.setdefault("_step", rec.history.step.num)
            history.append(row)
            summary.update({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "summary":
            for item in rec.summary.update:
                _set(summary, item)
            for item in rec.summary.remove:
                summary.pop(item.key, None)
    config = {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in config.items()}
    return {"id": run_id, **info, "config": config, "history": history, "summary": summary}


def find_runs(root: str | Path) -> list[Path]:
    """Every W&B run directory (``run-*`` or ``offline-run-*`` holding a ``.wandb`` file) under ``root``."""
    return sorted(p.parent for p in Path(root).rglob("run-*.wandb") if p.parent.name.count("run-"))
