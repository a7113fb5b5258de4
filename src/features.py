"""Hydra entry point: generate DeepWalk node features for a dataset (the reference recipe, docs/data.md).

    python src/features.py dataset=dblp                          # -> data/dblp/dblp.npy (the shipped DBLP)
    python src/features.py dataset=tmall dataset.root=/data dataset.deepwalk.workers=16 force=true
    python src/features.py dataset=edgelist dataset.name=mygraph dataset.root=/data dataset.time_bins=20

Writes ``<root>/<name>/<name>.npy`` ([T, N, dim] float32) atomically; an existing file is reused unless
``force=true``. When the dataset folder is read-only the file goes to the user cache, where
``dataset.features=auto|file|deepwalk`` finds it too. Settings: ``dataset.deepwalk.*``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from spikenet.cli import check_command_line
from spikenet.data import load_graph  # importing the package registers the readers
from spikenet.data.features.arrays import check_feature_shape
from spikenet.data.features.files import generate_deepwalk
from spikenet.data.formats.parsing import DataFormatError, DatasetNotFoundError
from spikenet.data.storage import hints

log = logging.getLogger("spikenet")


@hydra.main(version_base="1.3", config_path="../conf", config_name="features")
def main(cfg: DictConfig) -> None:
    """Load the graph (cached), then reuse or generate ``<name>.npy``; one line on success or error."""
    start = time.perf_counter()
    try:
        graph = load_graph(cfg.dataset)
        force, progress = bool(cfg.force), bool(cfg.progress)
        path, generated = generate_deepwalk(graph, cfg.dataset, force=force, progress=progress)
        shape = tuple(np.load(path, mmap_mode="r").shape)
        check_feature_shape(shape, graph.num_steps, graph.num_nodes, str(path))
    except (DatasetNotFoundError, DataFormatError, PermissionError, ValueError) as err:
        regenerate = hints.command(cfg.dataset, "features", "force=true")
        hint = f"; regenerate it: `{regenerate}`" if "expected features of shape" in str(err) else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        sys.exit(2)
    if generated:
        print(f"features: wrote {path} {list(shape)} in {time.perf_counter() - start:.0f} s", flush=True)
    else:
        regenerate = hints.command(cfg.dataset, "features", "force=true")
        print(f"features: reusing existing {path} {list(shape)}; `{regenerate}` regenerates it", flush=True)


if __name__ == "__main__":
    check_command_line(sys.argv[1:], Path(__file__).resolve().parents[1] / "conf", "features")
    main()
