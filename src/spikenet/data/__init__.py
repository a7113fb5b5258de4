"""Data: the ``TemporalGraph`` container, dataset readers (a registry) and node features.

Sub-packages by role, each importing only those listed before it (docs/data.md, "Code layout"):
``storage`` (paths, size guards, command hints, cache files and their hygiene), ``formats`` (parsing text and
JSON files, node ids), ``snapshots`` (time stamps -> steps, the snapshot plan and its cost estimate),
``features`` (standardisation, FastRP, SMF, DeepWalk, the feature cache and the choice among them),
``readers`` (one module per format, registered in ``READERS``), and ``load`` (``load_graph``: reader and
graph cache; ``load_dataset``: then the features).
"""

from spikenet.data.load import load_dataset, load_graph
from spikenet.data.readers import READERS
from spikenet.data.temporal_graph import TemporalGraph

__all__ = ["READERS", "TemporalGraph", "load_dataset", "load_graph"]
