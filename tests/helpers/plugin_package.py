"""The plugin package of docs/extending.md (``mylab``: an encoder, a neuron, a task and a dataset reader), written
to a folder exactly as the page shows it, and a small graph in its reader's format; for the tests that run it."""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", re.S)
PACKAGE = "mylab"


def write_plugin(folder: Path) -> list[str]:
    """The files of docs/extending.md's example package, written under ``folder``; their paths."""
    written = []
    for rel, body in FILE_BLOCK.findall(DOC.read_text()):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        written.append(rel)
    return written


def write_json_graph(path: Path, nodes: int = 150, steps: int = 4, seed: int = 0) -> None:
    """A graph in the plugin's format: three communities, most edges inside one, integer stamps."""
    rng = random.Random(seed)
    edges = []
    for t in range(steps):
        for _ in range(400):
            u = rng.randrange(nodes)
            v = (u + 3 * rng.randrange(1, nodes // 3)) % nodes if rng.random() < 0.8 else rng.randrange(nodes)
            edges.append([u, v, 1990 + 2 * t])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"edges": edges, "labels": {str(u): u % 3 for u in range(nodes)}}))


@contextmanager
def plugin_imported(folder: Path) -> Iterator[None]:
    """``folder`` (holding the package) on ``sys.path`` while the block runs; afterwards the package's modules
    and every part it registered are forgotten, so the rest of the session sees the built-in parts only."""
    import spikenet.registry as registry
    from spikenet.contracts import ENCODERS, TASKS
    from spikenet.data import READERS
    from spikenet.neurons import NEURONS, SURROGATES

    registries = (ENCODERS, TASKS, READERS, NEURONS, SURROGATES)
    saved = [dict(r._entries) for r in registries]
    loaded = dict(registry._LOADED)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for r, entries in zip(registries, saved, strict=True):
            r._entries = entries
        registry._LOADED.clear()
        registry._LOADED.update(loaded)
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
