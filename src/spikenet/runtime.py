"""Process-level tuning for CPU training."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 31) -> bool:
    """Ask glibc to serve large tensors from its heap and keep freed memory for reuse.

    By default every tensor over 32 MB is a fresh mmap whose pages fault in on first touch: a
    [25, 6144, 128] float32 temporary costs ~50 ms of page faults for a ~10 ms op. Returns
    whether the setting took (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        )
    except (OSError, AttributeError):
        return False


def settle_vector_math() -> None:
    """Set up MKL's vector math (VML) from this thread alone, before any op splits it over threads.

    ATen computes sqrt, exp, log, tanh, ... of float tensors with VML, in chunks of 2048 elements spread over
    its threads, and VML sets itself up on first use. When that first use comes from two threads at once, the
    second thread now and then keeps another kernel for the rest of the process, and its chunks of every such
    op return other bits: on this 2-vCPU VM 5 of 120 fresh processes gave a different float32 ``sqrt`` of one
    [128, 32] input (elements 2048-4095 only), so runs of one seed drifted apart in Adam's update. With this
    call first, 0 of 240 did (``benchmarks/reproducibility/vml_race.py``). One sqrt of 16 elements is a single chunk.
    """
    torch.sqrt(torch.ones(16))
