"""Run checkpoints: ``best.pt`` (the best-validation weights) and ``last.pt`` (all it takes to continue).

``last.pt`` is rewritten atomically after every epoch. It holds the model and optimizer states,
every random stream the run draws from (torch's CPU generator, every CUDA device's, numpy's,
Python's and the trainer's own ``torch.Generator`` objects), the last finished epoch, the best
result so far with its weights, and the per-epoch history. Restoring all of it makes a resumed
run draw exactly the numbers the uninterrupted run would have drawn, so both end with the same
``metrics.json``. Evaluation needs no saved stream: its generators are seeded by (seed, epoch, split).

Everything is stored as tensors and plain Python values, so ``torch.load(weights_only=True)``
reads it back.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

BEST, LAST = "best.pt", "last.pt"


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def rng_state(generators: dict[str, torch.Generator | None]) -> dict[str, Any]:
    """The state of every random stream: global torch (CPU, CUDA), numpy, Python, and ``generators``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(mt), "gauss": py_gauss},
        "generators": {name: g.get_state() for name, g in generators.items() if g is not None},
    }


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator | None]) -> None:
    """Put every stream of ``rng_state``'s result back (the CUDA ones when this process sees as many devices)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    for name, g in generators.items():
        if g is not None and name in state["generators"]:
            g.set_state(state["generators"][name])


def save_best(run_dir: Path, epoch: int, model: torch.nn.Module) -> Path:
    """``run_dir/best.pt``: the epoch and its weights."""
    return save_atomic({"epoch": epoch, "model": model.state_dict()}, run_dir / BEST)


def save_last(run_dir: Path, *, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              generators: dict[str, torch.Generator | None], best: dict, best_state: dict | None,
              history: list[dict]) -> Path:
    """``run_dir/last.pt``: everything ``restore`` needs to continue after ``epoch``."""
    return save_atomic({
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(generators),
        "best": dict(best),
        "best_state": best_state,
        "history": list(history),
    }, run_dir / LAST)


def resume_path(resume: str | None, run_dir: Path | None) -> Path | None:
    """The ``last.pt`` that ``trainer.resume`` names, or None to start afresh.

    ``null``: start afresh. ``auto``: ``run_dir/last.pt`` when it exists (a relaunch into the same
    ``hydra.run.dir``, e.g. a requeued job), else start afresh. A path: that ``last.pt``, or the
    run directory holding it; it must exist.
    """
    if resume in (None, "", "null"):
        return None
    if resume == "auto":
        path = run_dir / LAST if run_dir is not None else None
        return path if path is not None and path.is_file() else None
    path = Path(resume)
    path = path / LAST if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"trainer.resume: no checkpoint at {path}")
    return path


def load(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``save_last`` (tensors and plain values only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(ckpt: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            generators: dict[str, torch.Generator | None]) -> None:
    """Load ``ckpt``'s model, optimizer and random streams into this run's objects."""
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        first = " ".join(str(err).split())[:300] if str(err).strip() else type(err).__name__
        raise ValueError(f"trainer.resume: the checkpoint does not fit this model and optimizer ({first})") from None
    restore_rng(ckpt["rng"], generators)
