"""Run outputs: ``metrics.json`` written atomically, and the one-line summary."""

from __future__ import annotations

import json
import math
import os
import resource
from pathlib import Path
from typing import Any


def process_seconds() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included), from /proc on Linux;
    None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime: field 22, 20th after the name
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(uptime - started, 0.0)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` to ``path`` via a temporary file, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2))
    os.replace(tmp, path)
    return path


def run_label(dataset: str, model: str, neuron: str | None) -> str:
    """``dataset/model`` for a dense encoder, ``dataset/model/neuron`` for a spiking one."""
    return "/".join(str(p) for p in (dataset, model, neuron) if p)


def summary_line(m: dict, scores: str, run_dir: str | Path) -> str:
    """The console's last line: what ran, the task's ``scores`` text, energy (both accounts), cost, where the
    outputs are."""
    return (
        f"[{run_label(m.get('dataset'), m.get('model'), m.get('neuron'))} {m.get('task')}] {scores}; "
        f"{energy_text(m)}{m['epoch_seconds']:.2f} s/epoch, {m['params']} params, peak RSS {m['peak_rss_mb']:.0f} MB "
        f"-> {run_dir}"
    )


def energy_text(m: dict) -> str:
    """``energy 22.6/44.1 µJ (twin 22.9/40.2), `` (compute/compute+memory, per example), or nothing without an
    estimate."""
    if not isinstance(m.get("energy_uj"), float) or not isinstance(m.get("memory_energy_uj"), float):
        return ""
    coding = f" {m['coding']}-coded" if m.get("coding") not in (None, "real") else ""
    twin = (f" (twin {m['ann_energy_uj']:.3g}/{m['ann_memory_energy_uj']:.3g})" if m.get("neuron") is not None
            else "")
    return f"energy{coding} {m['energy_uj']:.3g}/{m['memory_energy_uj']:.3g} µJ{twin}, "
