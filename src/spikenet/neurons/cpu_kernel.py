"""Build and load a neuron's compiled CPU kernel (``cpu_codegen.cpu_source``) on first use.

Each neuron gets its own extension, compiled with the local C++ compiler through
``torch.utils.cpp_extension`` the first time a process asks for it (about 20 s, announced in one log
line; later processes reuse the cached build in ``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``). The extension's name holds the neuron, the CPU capability it was built
for (AVX2 / AVX-512 -> ``-mavx2 -mfma``) and a hash of the generated source and flags, so checkouts or
versions sharing one cache never rebuild, or run, each other's kernel. Where there is no compiler, the
build fails, or ``SPIKENET_CPU_KERNEL=0`` is set, ``available()`` is False and the neuron falls back to
the generated torch path (same results, slower), with one warning saying why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from spikenet.neurons.cpu_codegen import cpu_source, ops_namespace

log = logging.getLogger(__name__)

ENV_SWITCH = "SPIKENET_CPU_KERNEL"
BUILD_NOTICE = "compiling the CPU neuron kernel (once per machine, ~20 s)..."
CFLAGS = ("-O3", "-ffp-contract=off", "-fno-trapping-math")

_state: dict[str, dict[str, Any]] = {}


def _fresh_state() -> dict[str, Any]:
    return {"tried": False, "ok": False, "reason": "", "build_seconds": None, "extension": None, "compiled": False}


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


def build_spec(name: str) -> tuple[str, str, list[str]]:
    """(extension name, C++ source, compiler flags) of neuron ``name``'s kernel on this machine."""
    source = cpu_source(name)
    tag, vector = _vector_flags()
    flags = [*CFLAGS, *vector]
    digest = hashlib.sha256("\n".join([source, *flags, torch.__version__]).encode()).hexdigest()[:12]
    return f"spikenet_{name}_cpu_{tag}_{digest}", source, flags


def available(name: str = "adaptive_lif") -> bool:
    """Whether neuron ``name``'s compiled kernel is loaded (builds it on the first call; never raises)."""
    if not enabled_by_env():
        return False
    state = _state.setdefault(name, _fresh_state())
    if not state["tried"]:
        state["tried"] = True
        try:
            _build(name, state)
            state["ok"] = True
        except Exception as err:  # no compiler, failed build, missing headers: use the torch path
            state["reason"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"
            log.warning("CPU neuron kernel for %s unavailable (%s); using the generated torch path", name,
                        state["reason"])
    return bool(state["ok"])


def status(name: str = "adaptive_lif") -> dict[str, Any]:
    """What happened on the first ``available(name)`` call: ok, reason of a failure, extension, build seconds."""
    return {"enabled": enabled_by_env(), **_state.get(name, _fresh_state())}


def _build(name: str, state: dict[str, Any]) -> None:
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)  # its import warns "No CUDA runtime is found" on CPU-only machines
    try:
        from torch.utils import cpp_extension
    finally:
        cpp_log.setLevel(level)

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ('{compiler}') on PATH")
    ext, source, flags = build_spec(name)
    build_dir = Path(cpp_extension._get_build_directory(ext, False))
    src_path = build_dir / f"{ext}.cpp"
    if not src_path.is_file() or src_path.read_text() != source:  # same text: keep the file, no rebuild
        tmp = src_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(source)
        tmp.replace(src_path)
    state["extension"] = ext
    state["compiled"] = not (build_dir / f"{ext}.so").is_file()
    if state["compiled"]:
        log.info("%s (%s: %s)", BUILD_NOTICE, name, ext)
    start = time.perf_counter()
    cpp_extension.load(name=ext, sources=[str(src_path)], extra_cflags=flags, is_python_module=False,
                       verbose=False)
    state["build_seconds"] = time.perf_counter() - start


def ops(name: str) -> Any:
    """The registered ops of neuron ``name`` (``forward``, ``backward``, ``pool_*``); call ``available`` first."""
    return getattr(torch.ops, ops_namespace(name))
