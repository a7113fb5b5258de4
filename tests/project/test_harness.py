"""The suite's own safety rules (``guards.py``, ``processes.py``), each shown on a small pytest session of its
own (pytester, in a subprocess) so that the hangs, forks and skips staged here cannot fail this suite itself:

* a child that hangs is killed with everything it started, and reported with its stack, at the time limit;
* a test that hangs in the test process fails alone at its limit, with its stack, and the run goes on;
* a fork after torch is loaded fails the test that made it; a fresh interpreter does not;
* GPU tests are deselected without CUDA (so ``CI=true`` passes), while a real skip still fails in CI.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import processes
import pytest

TESTS = Path(__file__).resolve().parents[1]
LIMIT = 4  # seconds: the staged tests' time limit

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS / "helpers")!r})
from guards import (pytest_collection_modifyitems, pytest_configure, pytest_report_collectionfinish,
                    pytest_runtest_makereport, pytest_sessionfinish, pytest_unconfigure)
"""
INI = """
[pytest]
timeout_method = signal
markers =
    gpu: needs a CUDA device
"""


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """``session(test_source, **env)`` runs the staged tests in a fresh pytest process; (result, seconds)."""
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)

    def run(source: str, **env: str):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        pytester.makepyfile(test_staged=source)
        start = time.monotonic()
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=120)
        return result, time.monotonic() - start

    return run


def test_hanging_child_is_killed_with_its_descendants_and_reported_at_the_limit(session, tmp_path):
    pids = tmp_path / "pids"
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(f"""
import os, subprocess, sys, time

def sleep_forever():
    time.sleep(10**6)

if __name__ == "__main__":
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10**6)"])
    open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{grandchild.pid}}")
    sleep_forever()
""")
    result, seconds = session(f"""
import sys
import processes
import pytest

@pytest.mark.timeout({LIMIT})
def test_waits_for_a_child_that_never_ends():
    processes.wait(processes.start([sys.executable, {str(sleeper)!r}]))  # no timeout of its own
""")
    assert result.parseoutcomes() == {"failed": 1}, result.stdout.str()
    out = result.stdout.str()
    assert f"Timeout (>{LIMIT}.0s) from pytest-timeout" in out
    assert "Fatal Python error: Aborted" in out and "in sleep_forever" in out, "the child's stuck stack"
    child, grandchild = (int(p) for p in pids.read_text().split())
    assert processes.wait_gone([child, grandchild]) == [], "the child's process group outlived the test"
    assert seconds < LIMIT + 60, f"reported after {seconds:.0f} s"


def test_hang_in_the_test_process_fails_alone_with_its_stack(session):
    result, seconds = session(f"""
import time
import pytest

def wait_here():
    time.sleep(10**6)

@pytest.mark.timeout({LIMIT})
def test_stuck():
    wait_here()

def test_next_one_still_runs():
    pass
""")
    assert result.parseoutcomes() == {"failed": 1, "passed": 1}, result.stdout.str()
    out = result.stdout.str()
    assert f"Timeout (>{LIMIT}.0s) from pytest-timeout" in out and "wait_here()" in out
    assert seconds < LIMIT + 60


def test_fork_after_torch_fails_the_test_and_a_fresh_interpreter_does_not(session):
    result, _ = session("""
import multiprocessing
import os
import subprocess
import sys

import torch

def test_os_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def test_multiprocessing_fork():
    child = multiprocessing.get_context("fork").Process(target=os.getpid)
    child.start()
    child.join()

def test_fresh_interpreter():
    assert torch.get_num_threads() >= 1
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    child = multiprocessing.get_context("spawn").Process(target=os.getpid)
    child.start()
    child.join()
""")
    assert result.parseoutcomes() == {"failed": 2, "passed": 1}, result.stdout.str()
    failures = result.stdout.str().split("short test summary info")[0]  # the summary repeats each message
    assert failures.count("the test process forked after torch was loaded") == 2
    for line in ("FAILED test_staged.py::test_os_fork*", "FAILED test_staged.py::test_multiprocessing_fork*",
                 "PASSED test_staged.py::test_fresh_interpreter*", "*line 9, in test_os_fork*"):
        result.stdout.fnmatch_lines([line])


GPU_TESTS = """
import pytest

@pytest.mark.gpu
def test_needs_cuda():
    import torch
    assert torch.zeros(1, device="cuda").is_cuda

def test_on_cpu():
    pass
"""


def test_gpu_tests_are_deselected_without_cuda_even_in_ci(session):
    result, _ = session(GPU_TESTS, CI="true", CUDA_VISIBLE_DEVICES="")
    assert result.parseoutcomes() == {"passed": 1, "deselected": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(["*1 gpu test(s) deselected: CUDA is not available here*"])


@pytest.mark.gpu  # deselected itself where CUDA is unavailable
def test_gpu_tests_run_where_cuda_is(session):
    result, _ = session(GPU_TESTS, CI="true")
    assert result.parseoutcomes() == {"passed": 2}, result.stdout.str()


def test_a_real_skip_fails_in_ci_only(session):
    source = "import pytest\n\ndef test_tool():\n    pytest.skip('the tool is missing')\n"
    result, _ = session(source, CI="true")
    assert result.parseoutcomes() == {"failed": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(["*skipped in CI (CI=true)*the tool is missing*"])
    result, _ = session(source, CI="")
    assert result.parseoutcomes() == {"skipped": 1}, result.stdout.str()


# --- processes.py in this process -------------------------------------------------------------------------
def test_a_finished_child_leaves_nothing_running(tmp_path):
    code = ("import subprocess, sys; g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(10**6)']);"
            " print(g.pid)")
    done = processes.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 0 and not done.stopped, done.explain()
    assert processes.wait_gone([int(done.stdout.split()[0])]) == [], "the grandchild outlived its parent's wait"


def test_a_child_past_its_deadline_is_stopped_with_its_stack(tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text("import time\n\ndef stuck_here():\n    time.sleep(10**6)\n\nstuck_here()\n")
    start = time.monotonic()
    done = processes.run([sys.executable, str(script)], timeout=1)
    assert done.stopped and done.returncode != 0
    assert "in stuck_here" in done.stderr, done.explain()
    assert time.monotonic() - start < 1 + processes.STACK_GRACE + 10
