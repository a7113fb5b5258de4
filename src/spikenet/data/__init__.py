"""Data: the ``TemporalGraph`` container, dataset readers (a registry) and node features."""

from spikenet.data import readers as _readers  # noqa: F401  (registers the built-in readers)
from spikenet.data.registry import READERS, load_dataset, register_reader
from spikenet.data.temporal_graph import TemporalGraph

__all__ = ["READERS", "TemporalGraph", "load_dataset", "register_reader"]
