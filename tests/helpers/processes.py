"""Child processes of the test suite, each in a process group of its own that the suite always kills.

Every test that needs another process starts it here, as a fresh interpreter (``subprocess``: fork + exec,
so no thread pool of the test process is copied into it) in a new session, so that ``stop`` can kill the
child together with everything it started (launcher jobs, torch's compiler, ranks). ``stop`` runs when the
child's wait ends, whatever the outcome: normal exit, a timeout, or pytest-timeout's failure raised inside
the wait; ``stop_all`` kills whatever is left when the session ends. A child that is still running when
it is stopped is first sent SIGABRT: children run with ``PYTHONFAULTHANDLER=1``, so a Python child prints
the stacks of all its threads (the stuck stacks) before it dies, and that text comes back with its stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LIVE: dict[int, subprocess.Popen] = {}  # pid (= process group id) -> child, until stopped
_OUTPUT: dict[int, tuple] = {}  # pid -> (stdout file, stderr file)
STACK_GRACE = 5.0  # seconds a SIGABRTed child gets to print its stacks and die


@dataclass
class Finished:
    """What a child left: exit status, its output, and whether it had to be stopped (timeout or failure)."""

    returncode: int
    stdout: str
    stderr: str
    stopped: bool = False

    def explain(self, tail: int = 4000) -> str:
        state = " (stopped: still running when its wait ended)" if self.stopped else ""
        return f"rc={self.returncode}{state}\n--- stdout\n{self.stdout[-tail:]}\n--- stderr\n{self.stderr[-tail:]}"


def start(cmd: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group); stdout and stderr go to anonymous files.

    Files, not pipes: a child is never blocked on a full pipe nobody reads yet (runs started early and
    read late), and a descendant that inherited them cannot keep a wait from ending.
    """
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONFAULTHANDLER", "1")
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_all
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=child_env, stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    _LIVE[proc.pid] = proc
    _OUTPUT[proc.pid] = (out, err)
    return proc


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the whole group is gone already
        os.killpg(pgid, sig)


def _read(file) -> str:
    file.seek(0)
    text = file.read().decode(errors="replace")
    # faulthandler ends its dump with one long line listing every loaded C extension: noise, not stack
    return re.sub(r"\nExtension modules: [^\n]*\(total: \d+\)\n", "\n", text)


def stop(proc: subprocess.Popen) -> Finished:
    """Kill ``proc``'s whole process group and return its output; a live child first dumps its stacks.

    Safe to call again: a stopped child's output stays readable.
    """
    _LIVE.pop(proc.pid, None)
    stopped = proc.poll() is None
    if stopped:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack, then the child dies
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STACK_GRACE)
    _signal_group(proc.pid, signal.SIGKILL)  # the leader and whatever it started and left behind
    returncode = proc.wait()
    files = _OUTPUT.get(proc.pid)  # gone only after stop_all closed them (end of the session)
    if files is None:
        return Finished(returncode, "", "(output closed at the end of the session)", stopped)
    return Finished(returncode, _read(files[0]), _read(files[1]), stopped)


def wait(proc: subprocess.Popen, timeout: float | None = None) -> Finished:
    """Wait up to ``timeout`` seconds for ``proc``, then ``stop`` it (always: leftovers of its group too).

    An exception during the wait (pytest-timeout's failure, Ctrl-C) also stops the child; its stacks and
    output go to this process's stderr, which pytest shows with the failure.
    """
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    except BaseException:
        done = stop(proc)
        print(f"child {proc.args} stopped:\n{done.explain()}", file=sys.stderr)
        raise
    return stop(proc)


def run(cmd: Sequence[str | os.PathLike], *, timeout: float, cwd: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None) -> Finished:
    """``start`` then ``wait``: ``subprocess.run`` whose child and its descendants never outlive the call."""
    return wait(start(cmd, cwd=cwd, env=env), timeout)


def stop_all() -> list[Finished]:
    """Stop every child not stopped yet and close all output files (end of the session)."""
    done = [stop(proc) for proc in list(_LIVE.values())]
    for files in _OUTPUT.values():
        for file in files:
            file.close()
    _OUTPUT.clear()
    return done


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return fields[0] not in ("Z", "X")


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """The ``pids`` still running after up to ``timeout`` seconds (killed processes take a moment to go)."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
