"""Mixed precision for the trainer: ``trainer.precision`` = fp32 | bf16 | fp16, through ``torch.autocast``.

``fp32`` changes nothing (no autocast, plain ``backward``/``step``). ``bf16`` runs autocast-eligible
ops (the linear layers) in bfloat16 on the model's device type (CPU included); ``fp16`` in float16,
with a ``GradScaler`` against gradient underflow (its ``step`` reads one flag from the device per
batch: the one host synchronisation fp16 adds to the loop). The neurons integrate in float32
under autocast (``spikenet.neurons.build_neuron``); parameters and optimizer state stay float32.
Layers that multiply into preallocated float32 buffers (``out=``, e.g. the CPU row-chunked linear
path) are not autocast-eligible and stay float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast region and backward/step for one ``trainer.precision`` on ``device``."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in PRECISIONS:
            raise ValueError(f"trainer.precision must be one of {tuple(PRECISIONS)}, got '{name}'")
        self.name = name
        self.device_type = device.type
        self.dtype = PRECISIONS[name]
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward's precision region (a no-op for fp32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``loss.backward()`` and ``optimizer.step()``, scaled for fp16."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
