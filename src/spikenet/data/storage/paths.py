"""Where datasets live: the default data root (the repository's ``data/`` folder) and a dataset's folder.

``dataset.root`` unset (null, the config default unless ``$SPIKENET_DATA_ROOT`` is set) means the
``data/`` folder of this project, whatever the working directory; a root given by the user is taken as
written (relative to the working directory, like any command-line path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[4]  # src/spikenet/data/storage/paths.py -> the repository


def default_data_root() -> Path:
    """The repository's ``data/`` folder (shipped datasets, e.g. ``data/dblp``); the working directory's
    ``data/`` when the package runs outside a checkout."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def data_root(cfg: Any) -> Path:
    """``dataset.root`` expanded, or the default data root when it is unset."""
    root = cfg.get("root")
    if root is None or str(root) == "":
        return default_data_root()
    return Path(str(root)).expanduser()


def dataset_dir(cfg: Any) -> Path:
    """``<dataset.root>/<dataset.folder or dataset.name>``."""
    return data_root(cfg) / str(cfg.get("folder") or cfg.name)

