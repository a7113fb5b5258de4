"""Hints that are commands: the command line that reproduces the dataset at hand, plus a fix.

An error or warning about a dataset suggests e.g. ``python src/features.py dataset=edgelist
dataset.name=yelp dataset.root=/data dataset.edges=yelp.csv``: the config group the dataset comes from
(``conf/dataset/<name>.yaml``, else the group of its reader) and an override for every key whose value
differs from that group's defaults, so that pasting the hint into a shell acts on the same data.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from spikenet.data.storage.paths import PROJECT_ROOT

CONF_DATASETS = PROJECT_ROOT / "conf" / "dataset"
SCRIPTS = {"run": "src/run.py", "features": "src/features.py"}
_PLAIN = re.compile(r"[A-Za-z_/~.][A-Za-z0-9_./~\-+:@]*")  # a string Hydra reads as that same string
_WORDS = {"null", "true", "false", "nan", "inf", "none", "yes", "no", "on", "off"}


DERIVED = frozenset({"cost"})  # dataset keys interpolated from the run's other groups: never written in a hint
FALLBACK_GROUP = "dblp"  # a reader without a config file of its own is selected on top of a real-data group


def _plain(cfg: Any) -> dict:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def dataset_group(cfg: Any) -> str | None:
    """The ``conf/dataset`` option this dataset comes from: its name's, else its reader's, else
    ``FALLBACK_GROUP`` (None outside a checkout, where there is no ``conf/``)."""
    for option in (cfg.get("name"), cfg.get("reader"), FALLBACK_GROUP):
        if option and (CONF_DATASETS / f"{option}.yaml").is_file():
            return str(option)
    return None


def group_file(path: Path) -> Any:
    """A config file as Hydra composes it within its own group: the sibling files its defaults list names
    (``conf/dataset/_base.yaml``) merged in order, its own keys where ``_self_`` stands (last when it is not
    listed); entries choosing other groups' options (``config.yaml``'s) are left out."""
    from omegaconf import OmegaConf

    node = OmegaConf.load(path)
    defaults = list(node.pop("defaults", []) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    parts = [node if d == "_self_" else group_file(path.parent / f"{d}.yaml") for d in defaults
             if d == "_self_" or (isinstance(d, str) and (path.parent / f"{d}.yaml").is_file())]
    return OmegaConf.merge(*parts)


def group_defaults(group: str) -> dict:
    """The dataset keys of ``conf/dataset/<group>.yaml`` (composed and resolved; ``@package _global_`` presets
    included)."""
    from omegaconf import OmegaConf

    path = CONF_DATASETS / f"{group}.yaml"
    node = group_file(path)
    if "@package _global_" in path.read_text().split("\n", 1)[0] or ("dataset" in node and "name" not in node):
        node = node.get("dataset", {})
    return OmegaConf.to_container(node, resolve=True) if node else {}  # type: ignore[return-value]


def _flat(d: Mapping, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, Mapping):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def hydra_value(v: Any) -> str:
    """``v`` written as a Hydra override value that parses back to the same value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v) if math.isfinite(v) else str(v)
    if isinstance(v, list | tuple):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    s = str(v)
    if _PLAIN.fullmatch(s) and s.lower() not in _WORDS:
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


_PINNED: dict[tuple, dict[str, Any]] = {}


def _identity(current: Mapping) -> tuple:
    return tuple(str(current.get(k)) for k in ("name", "reader", "root", "folder", "edges", "labels"))


def pin(cfg: Any, key: str, value: Any) -> None:
    """Record a choice a reader made for this dataset on its own (e.g. automatic ``time_bins``), so that every
    hint printed for it afterwards in this process pins the same value: a features command then builds the
    same snapshots as the run that printed it, whatever that command's other settings."""
    _PINNED.setdefault(_identity(_plain(cfg)), {})[key] = value


def unpin(cfg: Any) -> None:
    """Forget the choices recorded for this dataset (it was read again)."""
    _PINNED.pop(_identity(_plain(cfg)), None)


def dataset_overrides(cfg: Any, *fixes: str) -> list[str]:
    """Overrides that select and reproduce this dataset (``dataset=<group>`` first, choices a reader made on
    its own pinned), then ``fixes``."""
    current = _plain(cfg)
    pinned = {k: v for k, v in _PINNED.get(_identity(current), {}).items() if current.get(k) in (None, "auto")}
    current = {**current, **pinned}
    group = dataset_group(cfg)
    defaults = group_defaults(group) if group else {}
    fixed = {f.split("=", 1)[0].lstrip("+~") for f in fixes}
    out = [f"dataset={group}"] if group else []
    flat_defaults = dict(_flat(defaults))
    items = dict(_flat(current))
    order = [k for k in ("name", "root") if k in items] + [k for k in items if k not in ("name", "root")]
    for key in order:
        full = f"dataset.{key}"
        value = items[key]
        if full in fixed or (key in flat_defaults and flat_defaults[key] == value):
            continue
        if key.split(".", 1)[0] in DERIVED:
            continue
        if key == "root" and value is None:
            continue
        prefix = "" if key in flat_defaults or not group else "++"
        out.append(f"{prefix}{full}={hydra_value(value)}")
    for fix in fixes:  # a key the group does not declare must be added (Hydra's ++) rather than overridden
        key = fix.split("=", 1)[0]
        bare = key.startswith("dataset.") and key[len("dataset."):] not in flat_defaults
        out.append(f"++{fix}" if group and bare else fix)
    return out


def command(cfg: Any, script: str, *fixes: str) -> str:
    """A shell command running ``script`` (run | features) on this dataset with ``fixes`` applied."""
    tokens = dataset_overrides(cfg, *fixes)
    return " ".join(["python", SCRIPTS[script], *(shlex.quote(t) for t in tokens)])
