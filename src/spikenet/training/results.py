"""Run outputs: ``metrics.json`` written atomically, and the one-line summary."""

from __future__ import annotations

import json
import math
import os
import resource
from pathlib import Path
from typing import Any


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


def summary_line(m: dict, run_dir: str | Path) -> str:
    """The console's last line."""
    return (
        f"[{m.get('dataset')}/{m.get('neuron')}] test Ma-F1 {m['test_macro_f1']:.4f} Mi-F1 {m['test_micro_f1']:.4f} "
        f"at epoch {m['best_epoch']} (val Mi-F1 {m['val_micro_f1']:.4f}); {m['epoch_seconds']:.2f} s/epoch, "
        f"{m['params']} params, peak RSS {m['peak_rss_mb']:.0f} MB -> {run_dir}"
    )
