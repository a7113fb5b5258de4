"""Where the training data live: ``trainer.data_device`` = auto | cpu | cuda.

On a GPU the epoch is host work unless the data sit next to the model: with the temporal CSR,
features, labels and splits on the device, sampling (device generator), layer-0 gathering and the
model run there with no per-batch host-to-device copy. ``auto`` picks the model's device when the
data fit in ``trainer.data_device_share`` of its free memory (the rest is left to activations),
else the host (batches then move through pinned staging buffers, see ``NodeLoader``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from spikenet.data.temporal_graph import TemporalGraph

DATA_DEVICES = ("auto", "cpu", "cuda")
_TENSOR_FIELDS = ("cum_indptr", "cum_indices", "cum_degree", "delta_indptr", "delta_indices", "features", "labels")


def data_nbytes(graph: TemporalGraph) -> int:
    """Bytes the graph occupies on a device: structure, features and labels."""
    tensors = (graph.features, graph.labels)
    return graph.structure_nbytes() + sum(t.numel() * t.element_size() for t in tensors)


def free_device_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device (``torch.cuda.mem_get_info``)."""
    return int(torch.cuda.mem_get_info(device)[0])


def resolve_data_device(choice: str, model_device: torch.device, graph: TemporalGraph, share: float = 0.5
                        ) -> torch.device:
    """The device for ``graph`` and the splits, from ``trainer.data_device``.

    ``cuda`` needs the model on a CUDA device (the data go to the model's device); ``auto`` takes
    the model's device when it is a GPU and ``data_nbytes(graph) <= share * free memory``.
    """
    if choice not in DATA_DEVICES:
        raise ValueError(f"trainer.data_device must be one of {DATA_DEVICES}, got '{choice}'")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"trainer.data_device_share must be in (0, 1], got {share}")
    cpu = torch.device("cpu")
    if choice == "cpu" or (choice == "auto" and model_device.type != "cuda"):
        return cpu
    if model_device.type != "cuda":
        raise ValueError(f"trainer.data_device=cuda needs the model on a CUDA device, got device={model_device}")
    if choice == "cuda" or data_nbytes(graph) <= share * free_device_bytes(model_device):
        return model_device
    return cpu


def graph_to(graph: TemporalGraph, device: torch.device) -> TemporalGraph:
    """``graph`` with every tensor on ``device`` (the same object when already there).

    Uses ``TemporalGraph.to`` when the class has it; a table moved off a memory map no longer
    needs its page release, so ``feature_array`` is dropped then.
    """
    if all(getattr(graph, f).device == device for f in _TENSOR_FIELDS):
        return graph
    if hasattr(graph, "to"):
        return graph.to(device)
    moved = {f: getattr(graph, f).to(device) for f in _TENSOR_FIELDS}
    keep_array = graph.feature_array if moved["features"].device.type == "cpu" else None
    return dataclasses.replace(graph, **moved, feature_array=keep_array)


def place_data(cfg: Any, model_device: torch.device, graph: TemporalGraph) -> tuple[TemporalGraph, torch.device]:
    """(graph, data device) for the ``trainer`` config ``cfg``; on CPU the graph unchanged. The task keeps its
    example ids where the graph is (``Task.to``) through the trainer."""
    device = resolve_data_device(str(cfg.data_device), model_device, graph, float(cfg.data_device_share))
    if device.type == "cpu":
        return graph, device
    return graph_to(graph, device), device
