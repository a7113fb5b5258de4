"""Size guards: estimate what a build will take and refuse in one line, before writing, when it does not fit.

One place knows what is free (``free_disk``, ``available_ram``) and how to say no (``require``); the
callers sit next to what they guard (snapshot building in the readers, the structure cache, feature
caches, FastRP, DeepWalk) and pass an estimate and a fix that is a working command for the dataset at
hand (``hints.command``). The step limit (``dataset.max_steps``) stops the classic mistake, one snapshot
per distinct continuous stamp, before any of the T·N-sized arrays exist.

The same knowledge decides whether standardised features are memory-mapped (``use_mmap``): only when
they would take more than ``dataset.mmap_share`` of the memory available.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from spikenet.data.storage import hints

SUGGESTED_STEPS = 25  # what a fix proposes: the reference datasets have 13 to 27 snapshots
DEFAULT_MMAP_SHARE = 0.4  # use_mmap's and make_synthetic's share for direct callers (configs: dataset.mmap_share)
# Plan to fill at most this share of what is free: the OS, the page cache and other processes need the rest.
HEADROOM = 0.9


class TooLargeError(ValueError):
    """A build that would not fit (or exceeds ``dataset.max_steps``); one line with estimate, free and fix."""


def available_ram() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``; free pages where that is unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62  # unknown: do not refuse


def total_ram() -> int:
    """Bytes of memory of the machine (``MemTotal``), or what is available where that is unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return available_ram()


def free_disk(path: Path) -> int:
    """Bytes free on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def fmt_bytes(n: float) -> str:
    """``1.7 GB``-style size (decimal units, as ``df -H`` prints them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def require(what: str, nbytes: int, disk: Path | None, fix: str) -> None:
    """Refuse (``TooLargeError``) when ``nbytes`` exceed the usable free disk at ``disk`` (RAM when None)."""
    free = available_ram() if disk is None else free_disk(disk)
    if nbytes > HEADROOM * free:
        place = "memory is available" if disk is None else f"is free on disk at {disk}"
        raise TooLargeError(f"{what} needs about {fmt_bytes(nbytes)} but {fmt_bytes(free)} {place}; fix: {fix}")


def use_mmap(nbytes: int, available: int, share: float = DEFAULT_MMAP_SHARE) -> bool:
    """Whether features of ``nbytes`` are memory-mapped rather than loaded: when they exceed ``share`` of the
    ``available`` memory. Mapping costs every gather page faults and page releases, so it pays only when
    loading would crowd out the rest of the run (DBLP and Tmall load, Patent-sized features stay mapped)."""
    return nbytes > share * available


def mmap_choice(cfg: Any, nbytes: int) -> bool:
    """``dataset.mmap``: true | false | auto (``use_mmap`` with ``dataset.mmap_share``). Loading forced with
    ``false`` must fit in memory."""
    mode = str(cfg.mmap).lower()
    if mode not in ("auto", "true", "false"):
        raise ValueError(f"dataset.mmap must be auto, true or false, got '{mode}'")
    if mode == "true":
        return True
    if mode == "false":
        require(f"{cfg.name}: loading the features (dataset.mmap=false)", nbytes, None,
                f"`{hints.command(cfg, 'run', 'dataset.mmap=auto')}`")
        return False
    share = float(cfg.mmap_share)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"dataset.mmap_share must be in (0, 1], got {share}")
    return use_mmap(nbytes, available_ram(), share)


# ---------------------------------------------------------------- estimates


def snapshot_build_bytes(num_steps: int, num_nodes: int, interactions: int) -> int:
    """Peak memory of ``build_structure``: three [T, N] int64 arrays alive at once (per-step counts,
    ``delta_indptr``, ``cum_degree``) and about a dozen int64 arrays over both directions of every
    interaction (endpoints, steps, sort keys and their sorted copies)."""
    return 8 * (3 * num_steps * num_nodes + 12 * 2 * interactions)


def structure_file_bytes(num_steps: int, num_nodes: int, interactions: int) -> int:
    """Size of the structure cache: ``cum_degree`` and ``delta_indptr`` ([T, N] int64 each), the two
    neighbour arrays (at most both directions of every interaction each), ``cum_indptr`` and the labels."""
    return 8 * (2 * num_steps * num_nodes + 2 * 2 * interactions + 2 * num_nodes)


def feature_bytes(num_steps: int, num_nodes: int, dim: int, itemsize: int) -> int:
    """[T, N, F] features."""
    return num_steps * num_nodes * dim * itemsize


# ---------------------------------------------------------------- fixes


def max_steps(cfg: Any) -> int:
    """``dataset.max_steps``, checked to be >= 1."""
    limit = int(cfg.max_steps)
    if limit < 1:
        raise ValueError(f"dataset.max_steps must be >= 1, got {limit}")
    return limit


def fewer_steps_override(cfg: Any, raw_steps: int, target: int, can_bin: bool) -> str:
    """An override giving at most ``target`` snapshots: ``dataset.time_bins`` where the reader bins numeric
    stamps, else ``dataset.merge`` of enough consecutive steps."""
    target = max(1, target)
    if can_bin:
        return f"dataset.time_bins={target}"
    return f"dataset.merge={max(1, math.ceil(raw_steps / target))}"


def check_snapshots(cfg: Any, num_steps: int, num_nodes: int, interactions: int, raw_steps: int,
                    can_bin: bool) -> None:
    """Before building T snapshots: at most ``dataset.max_steps`` of them, and their structure fits in memory.

    ``raw_steps``: steps before ``dataset.merge``; ``can_bin``: the reader takes ``dataset.time_bins``.
    """
    limit = max_steps(cfg)
    build = snapshot_build_bytes(num_steps, num_nodes, interactions)
    dim = int(cfg.feature_dim)
    ram = available_ram()
    if num_steps > limit:
        fix = fewer_steps_override(cfg, raw_steps, min(SUGGESTED_STEPS, limit), can_bin)
        raise TooLargeError(
            f"{cfg.name}: {num_steps} snapshots exceed dataset.max_steps={limit} (building them needs about "
            f"{fmt_bytes(build)} of memory, {dim}-d float32 features about "
            f"{fmt_bytes(feature_bytes(num_steps, num_nodes, dim, 4))}, {fmt_bytes(ram)} available); "
            f"fix: `{hints.command(cfg, 'run', fix)}`, or raise dataset.max_steps"
        )
    edges_only = snapshot_build_bytes(0, num_nodes, interactions)
    fits = int((HEADROOM * ram - edges_only) // max(snapshot_build_bytes(1, num_nodes, 0), 1))
    if 1 <= fits < num_steps:
        fewer = fewer_steps_override(cfg, raw_steps, min(fits, SUGGESTED_STEPS), can_bin)
        fix = f"`{hints.command(cfg, 'run', fewer)}`"
    else:  # no step count fits: the interactions alone are too many for this machine
        fix = (f"the {interactions} interactions alone need about {fmt_bytes(edges_only)}; "
               "use a machine with more memory")
    require(f"{cfg.name}: building {num_steps} snapshots of {num_nodes} nodes", build, None, fix)


def shrink_fix(cfg: Any, shape: tuple[int, int, int], itemsize: int, budget: float, script: str = "run",
               dtype_fix: bool = True) -> str | None:
    """A command that makes [T, N, F] features fit ``budget`` bytes: float16 features if that is enough, else
    merging enough consecutive steps; None when not even one step fits."""
    steps, nodes, dim = shape
    nbytes = feature_bytes(steps, nodes, dim, itemsize)
    if dtype_fix and itemsize == 4 and str(cfg.feature_dtype) == "float32" and nbytes / 2 <= budget:
        return f"`{hints.command(cfg, script, 'dataset.feature_dtype=float16')}`"
    fits = int(budget // max(feature_bytes(1, nodes, dim, itemsize), 1))  # steps that fit
    if fits < 1:
        return None
    merge = int(cfg.get("merge") or 1) * math.ceil(steps / fits)
    return f"`{hints.command(cfg, script, f'dataset.merge={merge}')}`"


def check_features(cfg: Any, what: str, shape: tuple[int, int, int], itemsize: int, disk: Path | None,
                   script: str = "run", dtype_fix: bool = True) -> None:
    """Before writing [T, N, F] features to a file in ``disk`` (or building them in memory when None)."""
    nbytes = feature_bytes(*shape, itemsize)
    free = available_ram() if disk is None else free_disk(disk)
    fixes = [shrink_fix(cfg, shape, itemsize, HEADROOM * free, script, dtype_fix)]
    in_memory = disk is not None and cfg.cache and script == "run"
    if in_memory and nbytes <= HEADROOM * available_ram():
        fixes.append(f"build them in memory: `{hints.command(cfg, script, 'dataset.cache=false')}`")
    found = [f for f in fixes if f]
    fix = ", or ".join(found) if found else (
        "not even one step fits; free space " + ("in memory" if disk is None else f"on the disk at {disk}"))
    require(f"{cfg.name}: {what} {list(shape)}", nbytes, disk, fix)
