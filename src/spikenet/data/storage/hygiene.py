"""Housekeeping of the data folders: temporaries of killed writes, and caches that only grow.

Temporaries. Every cache, feature and feature-cache file is written to a temporary next to its target
and renamed into place (``cache.atomic_path``); a process killed mid-write (SIGKILL, OOM) leaves the
temporary behind. Their names carry the writer's host and PID (``.<target>.<host>-<pid>.<random>.tmp``),
so the next run removes exactly those whose writer is gone: a PID of this host that no longer runs, or
runs a process started after the temporary was last written (a reused PID). A concurrent run's
temporary is never touched. Older names without a PID (``.<target>.<random>.tmp``) are removed when
they were last written before this process started; another host's, when a day old.

Pruning. Cache entries (``<name>-graph-<key>.npz``, ``<name>-<kind>-<key>.npy``) are touched when
used (access time); per dataset and kind only the ``dataset.cache_keep`` most recently used stay (entries of other
configurations or of source files that have since changed are the ones that go).

Both log one line when they remove something.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from spikenet.data.storage.guards import fmt_bytes

log = logging.getLogger(__name__)

DEFAULT_KEEP = 4  # the synthetic generator's feature files kept per folder (it takes no dataset config)
FOREIGN_AGE = 86400.0  # another host's temporary is removed once it is this old (seconds)
HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
_TMP_PID = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
_TMP_OLD = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # mkstemp's 8 random characters, before PIDs were added
_TMP_SUFFIX_PID = re.compile(r"^.+\.npy\.tmp(?P<pid>\d+)$")  # the synthetic generator's feature files
_ENTRY = re.compile(r"^(?P<name>.+)-(?P<kind>graph|features|fastrp|deepwalk)-(?P<key>[0-9a-f]{10,})\.(?:npz|npy)$")
_SYNTHETIC = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{12})\.npy$")


def tmp_name(target: Path) -> str:
    """Prefix of a temporary for ``target``: ``.<name>.<host>-<pid>.`` (``tempfile`` adds a random part)."""
    return f".{target.name}.{HOST}-{os.getpid()}."


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of process ``pid`` on this host, None when it is not running (or unknown)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    boot = _boot_time()
    if boot is None:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


START = process_start(os.getpid()) or time.time()  # this process's start


def stale_temporary(path: Path, now: float | None = None, synthetic: bool = False) -> bool:
    """Whether ``path`` is a temporary left by a writer that is gone (see the module docstring);
    ``synthetic``: the folder of the synthetic generator's feature files (``<name>.npy.tmp<pid>``)."""
    name = path.name
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return False
    m = _TMP_PID.match(name)
    pid = None
    if m:
        if m.group("host") != HOST:
            return (now or time.time()) - mtime > FOREIGN_AGE
        pid = int(m.group("pid"))
    else:
        m2 = _TMP_SUFFIX_PID.match(name) if synthetic else None
        if m2:
            pid = int(m2.group("pid"))
        elif not _TMP_OLD.match(name):
            return False
    if pid is None:  # an old-style name: only what was last written before this process started
        return mtime < START
    if pid == os.getpid():
        return False
    if not pid_alive(pid):
        return True
    started = process_start(pid)
    return started is not None and started > mtime + 1.0  # the PID now belongs to a later process


def remove_stale_temporaries(folders: list[Path], synthetic: bool = False) -> list[Path]:
    """Delete the stale temporaries directly inside ``folders``; log one line per folder; return them."""
    removed: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        gone = []
        for path in folder.iterdir():
            if path.is_file() and stale_temporary(path, synthetic=synthetic):
                size = path.stat().st_size
                with contextlib.suppress(OSError):
                    path.unlink()
                    gone.append((path, size))
        if gone:
            total = sum(s for _, s in gone)
            log.info("removed %d temporary file(s) of killed writes in %s (%s): %s", len(gone), folder,
                     fmt_bytes(total), ", ".join(p.name for p, _ in gone[:5]) + (" ..." if len(gone) > 5 else ""))
            removed += [p for p, _ in gone]
    return removed


def touch(path: Path) -> None:
    """Mark a cache entry as just used (its access time; pruning keeps the most recently used). The
    modification time stays that of the content."""
    with contextlib.suppress(OSError):
        os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))


def last_used(path: Path) -> float:
    """When an entry was last written or used (``touch``)."""
    st = path.stat()
    return max(st.st_atime, st.st_mtime)


def prune(folder: Path, keep: int, synthetic: bool = False) -> list[Path]:
    """Keep the ``keep`` most recently used entries per (dataset, kind) in ``folder``; log what goes."""
    if keep < 1:
        raise ValueError(f"dataset.cache_keep must be >= 1, got {keep}")
    if not folder.is_dir():
        return []
    groups: dict[tuple[str, str], list[tuple[float, Path]]] = defaultdict(list)
    for path in folder.iterdir():
        m = _SYNTHETIC.match(path.name) if synthetic else _ENTRY.match(path.name)
        if m is None or not path.is_file():
            continue
        kind = "synthetic" if synthetic else m.group("kind")
        with contextlib.suppress(OSError):
            groups[(m.group("name"), kind)].append((last_used(path), path))
    removed = []
    for (name, kind), entries in groups.items():
        entries.sort(reverse=True)
        for _, path in entries[keep:]:
            size = path.stat().st_size
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append((path, size, name, kind))
    if removed:
        total = sum(r[1] for r in removed)
        log.info("pruned %d cache entr%s in %s (%s; dataset.cache_keep=%d per dataset and kind): %s", len(removed),
                 "y" if len(removed) == 1 else "ies", folder, fmt_bytes(total), keep,
                 ", ".join(r[0].name for r in removed[:4]) + (" ..." if len(removed) > 4 else ""))
    return [r[0] for r in removed]


def cache_keep(cfg: Any) -> int:
    """``dataset.cache_keep``, checked to be >= 1."""
    keep = int(cfg.cache_keep)
    if keep < 1:
        raise ValueError(f"dataset.cache_keep must be >= 1, got {cfg.cache_keep}")
    return keep
