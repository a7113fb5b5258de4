"""Build and load the fused CPU kernel of the adaptive LIF (``csrc/adaptive_lif_cpu.cpp``) on first use.

The kernel is compiled with the local C++ compiler through ``torch.utils.cpp_extension`` the first
time a process asks for it (tens of seconds, once; later processes reuse the cached build in
``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``). Vector flags follow the CPU
capability torch itself dispatches to (AVX2 / AVX-512 -> ``-mavx2 -mfma``), and the capability is
part of the build's name, so a cache shared between different machines never runs the wrong code.
Where there is no compiler, the build fails, or ``SPIKENET_CPU_KERNEL=0`` is set, ``available()``
is False and the neuron falls back to the torch-op fused path (same results, slower), with one
warning saying why.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "adaptive_lif_cpu.cpp"
SURROGATE_KINDS = {"sigmoid": 0, "triangle": 1, "arctan": 2, "super_spike": 3}
ENV_SWITCH = "SPIKENET_CPU_KERNEL"

_state: dict[str, object] = {"tried": False, "ok": False, "reason": "", "build_seconds": None}


def _vector_flags() -> tuple[str, list[str]]:
    """(tag, compiler flags) for the CPU torch dispatches to; baseline code elsewhere."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "generic", []
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        return "avx2", ["-mavx2", "-mfma"]
    return "sse", []


def enabled_by_env() -> bool:
    """False when ``SPIKENET_CPU_KERNEL`` is set to 0/false/no/off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def available() -> bool:
    """Whether the compiled kernel is loaded (builds it on the first call; never raises)."""
    if not enabled_by_env():
        return False
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _build()
            _state["ok"] = True
        except Exception as err:  # no compiler, failed build, missing headers: use the torch path
            _state["reason"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"
            log.warning("fused CPU neuron kernel unavailable (%s); using the torch-op fused path",
                        _state["reason"])
    return bool(_state["ok"])


def status() -> dict[str, object]:
    """What happened on the first ``available()`` call: ok, reason of a failure, seconds to build or load."""
    return {"enabled": enabled_by_env(), **_state}


def _build() -> None:
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)  # its import warns "No CUDA runtime is found" on CPU-only machines
    try:
        from torch.utils import cpp_extension
    finally:
        cpp_log.setLevel(level)

    if not SOURCE.is_file():
        raise FileNotFoundError(f"kernel source missing: {SOURCE}")
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ('{compiler}') on PATH")
    tag, flags = _vector_flags()
    start = time.perf_counter()
    cpp_extension.load(
        name=f"spikenet_alif_cpu_{tag}",
        sources=[str(SOURCE)],
        extra_cflags=["-O3", "-ffp-contract=off", "-fno-trapping-math", *flags],
        is_python_module=False,
        verbose=False,
    )
    _state["build_seconds"] = time.perf_counter() - start


def ops():
    """The registered ops (``alif_forward``, ``alif_backward``); call ``available()`` first."""
    return torch.ops.spikenet_cpu
