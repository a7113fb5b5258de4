"""Stratified train/val/test splits of the labelled nodes (the reference protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split


@dataclass
class Splits:
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def check_split_sizes(train_size: float, val_size: float) -> None:
    """Raise ``ValueError`` (one line naming the key) unless 0 < val_size < train_size < 1."""
    if not 0.0 < val_size < 1.0:
        raise ValueError(f"task.val_size must be in (0, 1), got {val_size}")
    if not val_size < train_size < 1.0:
        raise ValueError(f"task.train_size must be in ({val_size}, 1), got {train_size}")


def stratified_splits(nodes: torch.Tensor, labels: torch.Tensor, train_size: float, val_size: float,
                      seed: int) -> Splits:
    """train gets ``train_size - val_size``, val ``val_size``, test ``1 - train_size`` of ``nodes``, stratified
    (``task.train_size``, ``task.val_size``, ``task.split_seed``)."""
    check_split_sizes(train_size, val_size)
    ids = nodes.numpy()
    y = labels[nodes].numpy()
    train_val, test = train_test_split(ids, train_size=train_size, stratify=y, random_state=seed)
    y_tv = labels[torch.from_numpy(train_val)].numpy()
    train, val = train_test_split(train_val, test_size=val_size / train_size, stratify=y_tv, random_state=seed)
    return Splits(*(torch.from_numpy(np.sort(a)) for a in (train, val, test)))
