"""Session-wide rules of the test suite, as pytest hooks (``conftest.py`` imports them; so can a pytester run).

* No test may pass by not running in CI: with ``CI=true`` a skipped test is reported as failed.
* GPU tests (``@pytest.mark.gpu``) are deselected where CUDA is unavailable, so plain ``pytest`` passes on a
  CPU machine; a deselection is not a skip, and where CUDA is present they run.
* Every test has a time limit (pytest-timeout, ``timeout`` in pyproject.toml; required): a hang becomes one
  failure with the stuck stacks printed (the test process's by pytest-timeout, a child's by ``processes``).
* The test process never forks after torch is loaded: a fork copies torch's OpenMP/gloo threads' locks in
  whatever state they are, and the copy can deadlock. (Issue 25's hung ranks were forked, but the hang they
  showed came back with fresh interpreters: a gloo teardown deadlock, fixed in training/distributed.py.) Tests
  start fresh interpreters instead (``processes.start``: fork + exec, which runs no Python in between, so
  os.register_at_fork hooks do not fire for it). A fork (os.fork, multiprocessing's "fork" start method,
  ``subprocess`` with ``preexec_fn``) fails the test that made it, with the stack that forked.
* Child processes die with the session: ``processes.stop_all`` and multiprocessing's leftovers are killed
  before pytest exits, so a stuck child can never keep the run from ending.

The other places where a process starts another, and why each is safe (the fork check above covers the test
process itself; these happen inside children or through exec):

* DataLoader workers: none. ``NodeLoader`` batches in-process; no code path sets ``num_workers``.
* The CPU kernel build (``torch.utils.cpp_extension.load``) runs the compiler through ``subprocess``
  (fork + exec, nothing of Python runs in between); parallel processes building the same kernel wait on
  torch's lock file in ``$TORCH_EXTENSIONS_DIR`` instead of racing.
* Hydra's joblib launcher: loky starts its workers as fresh interpreters (loky's ``fork_exec``); the suite
  only composes that launcher's config (``test_multirun.py``), it runs no job with it.
* Hydra's submitit launcher (``submitit_local``): each job is ``python -m submitit.core._submit`` through
  ``subprocess.Popen``, inside the multirun child's process group (``test_distributed.py``), stopped with it.
* Report plotting (matplotlib, Agg backend) draws in-process; its font scan runs ``fc-list`` through
  ``subprocess``.
* W&B (``logger=wandb``, offline in tests) starts ``wandb-core`` through ``subprocess.Popen`` in a session of
  its own, so a group kill misses it; it serves only its parent and exits when that parent is gone (checked:
  gone within 3 s of its parent's SIGKILL).
"""

from __future__ import annotations

import os
import resource
import sys
import traceback

import pytest
from processes import stop_all

_FORKS: list[str] = []  # stacks of forks of this process since the last report
_STATE: dict[str, object] = {"fork_hook": False, "core_limit": None, "gpu_deselected": 0}


def in_ci() -> bool:
    """True where ``CI`` is set (CI services set CI=true; ``.ci/run`` does too)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _note_fork() -> None:
    if "torch" in sys.modules:
        frames = [f for f in traceback.extract_stack()[:-1] if not any(
            part in f.filename for part in ("/_pytest/", "/pytest/", "/pluggy/", "runpy"))]  # the test and below
        _FORKS.append("".join(traceback.format_list(frames)))


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("pytest-timeout is not installed (every test needs its time limit): "
                                "pip install -e '.[dev]'")
    if not _STATE["fork_hook"]:  # once per process: hooks cannot be unregistered
        os.register_at_fork(before=_note_fork)
        _STATE["fork_hook"] = True
    # children stopped with SIGABRT (processes.stop) print their stacks; they must not leave core files
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    _STATE["core_limit"] = (soft, hard)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE["core_limit"] is not None:
        resource.setrlimit(resource.RLIMIT_CORE, _STATE["core_limit"])
        _STATE["core_limit"] = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect GPU tests without CUDA (not skip them: with CI=true a skip fails)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu or cuda_available():
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]
    _STATE["gpu_deselected"] = len(gpu)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    count = _STATE["gpu_deselected"]
    return f"{count} gpu test(s) deselected: CUDA is not available here" if count else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A fork during the test fails it; in CI a skipped test is a failed test."""
    outcome = yield
    report = outcome.get_result()
    if _FORKS:
        text = ("the test process forked after torch was loaded (can deadlock on torch's threads): start a "
                "fresh interpreter instead (tests/helpers/processes.py, or the 'spawn' start method). Forked at:\n"
                + "\n".join(_FORKS))
        _FORKS.clear()
        if report.passed:
            report.longrepr = text
        else:
            report.sections.append(("fork after torch", text))
        report.outcome = "failed"
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true): {reason}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Kill every child still running, so that pytest exits (multiprocessing joins its children at exit)."""
    stop_all()
    if "multiprocessing" in sys.modules:
        import multiprocessing

        for child in multiprocessing.active_children():
            child.kill()
            child.join(5)
