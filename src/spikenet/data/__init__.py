"""Data: the ``TemporalGraph`` container, dataset readers (a registry) and node features."""

from spikenet.data import readers as _readers  # noqa: F401  (registers the built-in readers)
from spikenet.data.registry import READERS, load_dataset, load_graph, register_reader
from spikenet.data.temporal_graph import TemporalGraph

__all__ = ["READERS", "TemporalGraph", "load_dataset", "load_graph", "register_reader"]

from spikenet.data import edgelist as _edgelist  # noqa: E402, F401  (registers dataset=edgelist)
from spikenet.data import static as _static  # noqa: E402, F401  (registers dataset=static; uses register_reader)
from spikenet.data import tgb as _tgb  # noqa: E402, F401  (registers dataset=tgbn)
