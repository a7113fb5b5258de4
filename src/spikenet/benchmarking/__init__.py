"""What the scripts under ``benchmarks/`` share with each other and with the tests: running a command and
timing it, per-epoch seconds from cumulative times, ``mean ± std`` cells, the last JSON line of a
benchmark's output, and the tally of repeated results. Standard library only (no torch), so that a script
can import it before it knows whether the rest of its environment is there.

The logic of the comparisons with the official implementations lives beside it:
``spikenet.benchmarking.reference_spikenet`` (``benchmarks/fidelity/compare_reference.py``) and
``spikenet.benchmarking.reference_signn`` (``benchmarks/fidelity/signn_fidelity.py``).
"""

from __future__ import annotations

import collections
import json
import statistics
import subprocess
import time
from pathlib import Path


class SetupError(RuntimeError):
    """A path or file the comparison needs is missing or wrong."""


def run_command(cmd: list[str], cwd: Path, timeout: float, what: str, env: dict[str, str] | None = None
                ) -> tuple[str, float]:
    """Run ``cmd`` in ``cwd`` (echoed first); its stdout and wall seconds, or an error with its stderr's tail."""
    print(f"$ (cd {cwd} && {' '.join(cmd)})", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, wall


def per_epoch_seconds(cumulative: list[float], skip: int = 1) -> list[float]:
    """Seconds of each epoch after the first ``skip`` ones, from cumulative elapsed times."""
    if len(cumulative) <= skip:
        raise ValueError(f"need more than {skip} epochs to skip {skip}, got {len(cumulative)}")
    steps = [b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
    if any(s <= 0 for s in steps):
        raise ValueError(f"cumulative times must increase: {cumulative}")
    return steps[skip:]


def mean_std(values: list[float]) -> str:
    """``mean ± std`` at 4 decimals (std 0 for one value), for the side-by-side tables."""
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def last_json(stdout: str, key: str, what: str) -> dict:
    """The last line of ``stdout`` that is a JSON object holding ``key`` (``what``: whose output, for the error)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            result = json.loads(line)
            if key in result:
                return result
    raise ValueError(f"no JSON line with {key} in the output of {what}")


def tally(results: list[bytes], itemsize: int = 4) -> dict:
    """Processes agreeing with the most common result, the others, and the element indices any outlier changed."""
    counts = collections.Counter(results)
    common, agree = counts.most_common(1)[0]
    changed: set[int] = set()
    for result in counts:
        if result != common:
            changed.update(i // itemsize for i in range(0, len(common), itemsize)
                           if result[i:i + itemsize] != common[i:i + itemsize])
    return {"processes": len(results), "agree": agree, "differ": len(results) - agree, "distinct": len(counts),
            "changed_elements": [min(changed), max(changed), len(changed)] if changed else []}
