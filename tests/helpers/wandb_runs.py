"""Reading W&B runs back from disk, for tests: config, history and summary of a ``.wandb`` file.

wandb 0.31 ships no Python reader of its run files (its ``datastore`` module left with the Go core,
and ``wandb sync`` only uploads), and it writes no ``wandb-summary.json`` for offline runs, so the
tests read the file themselves. The format: a 7-byte header (":W&B", 0xBEE1 little-endian, version
0) followed by 32 KiB blocks of chunks in LevelDB's log format: crc32(type + data) u32, length u16,
type u8 (1 full, 2 first, 3 middle, 4 last), data; a block's tail shorter than a chunk header is
zero padding. Each reassembled record is a serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

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
    explicit summary writes).
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


def wandb_run_dirs(root: str | Path) -> list[Path]:
    """Every W&B run directory (``run-*`` or ``offline-run-*`` holding a ``.wandb`` file) under ``root``."""
    return sorted(p.parent for p in Path(root).rglob("run-*.wandb") if p.parent.name.count("run-"))
