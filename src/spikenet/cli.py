"""Command-line helpers shared by the Hydra entry points: one-line refusals of mistyped groups, keys and values.

The YAML group files are the schema: a composed config's keys are the only keys there are, and a key's
default gives its type (an int key takes integers only, a float key any number, a bool key true/false,
a list key a list); keys whose default is null take the type listed in ``NULLABLE``. Hydra itself would
accept ``+trainer.epoch=3`` as a new key and silently train the default 100 epochs, turn
``trainer.epochs=2.5`` into 2 epochs, and report ``trainer.epochs=abc`` without naming the key.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# keys whose default is null, and the type a value must have when it is not null
NULLABLE: dict[str, type] = {
    "trainer.num_threads": int,
    "trainer.patience": int,
    "trainer.resume": str,
    "dataset.time_bins": int,
    "optimized_metric": str,
    "seed": int,
}
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


class ConfigKeyError(ValueError):
    """A command-line override names a key the config does not have, or gives it a value of the wrong type."""


def _list_value(value: str) -> list[str]:
    """``[a,b]``, ``a,b`` or ``a`` -> ``['a', 'b']`` (a command-line list, quotes dropped)."""
    return [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip().strip("'\"")]


def search_dirs(args: Sequence[str]) -> list[Path]:
    """The config folders a ``hydra.searchpath=[...]`` override adds (``file://`` paths and ``pkg://`` packages)."""
    import importlib.util

    dirs: list[Path] = []
    for arg in args:
        if not arg.lstrip("+").startswith("hydra.searchpath="):
            continue
        for entry in _list_value(arg.split("=", 1)[1]):
            if entry.startswith("file://"):
                dirs.append(Path(entry[len("file://"):]))
            elif entry.startswith("pkg://"):
                spec = importlib.util.find_spec(entry[len("pkg://"):].replace("/", "."))
                dirs += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return [d for d in dirs if d.is_dir()]


def with_plugins(args: Sequence[str]) -> list[str]:
    """Import the plugins that ``plugins=[...]`` on the command line (and ``$SPIKENET_PLUGINS``) name, so their
    parts register, and put their ``conf/`` folders on Hydra's search path (``hydra.searchpath``), so that
    ``model=myenc`` composes. Exits with one ``error:`` line when a plugin does not import."""
    from spikenet.registry import PluginError, load_plugins, plugin_config_dirs

    named = [v for a in args if a.lstrip("+").startswith("plugins=") for v in _list_value(a.split("=", 1)[1])]
    try:
        modules = load_plugins(named)
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    dirs = [f"file://{d}" for d in plugin_config_dirs(modules)]
    if not dirs:
        return list(args)
    out, merged = [], False
    for arg in args:
        if arg.lstrip("+").startswith("hydra.searchpath="):
            key, value = arg.split("=", 1)
            arg, merged = f"{key}=[{','.join([*_list_value(value), *dirs])}]", True
        out.append(arg)
    return out if merged else [*out, f"hydra.searchpath=[{','.join(dirs)}]"]


def group_options(group: Path) -> list[str]:
    """The options of the config group in folder ``group``: its YAML files, less those starting with ``_`` (parts
    that options compose through their defaults list, e.g. ``conf/dataset/_base.yaml``)."""
    return sorted(p.stem for p in group.glob("*.yaml") if not p.stem.startswith("_"))


def check_group_overrides(args: list[str], conf_dir: Path) -> None:
    """Exit with a one-line message when ``group=option`` names an option that has no config file.

    Hydra's own message for this spans several lines; a researcher mistyping ``neuron=lfi``
    should see one line with the choices.
    """
    dirs = [conf_dir, *search_dirs(args)]
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        groups = [d / key for d in dirs if (d / key).is_dir()]
        if "." in key or not groups or "(" in value or not value:
            continue
        choices = sorted({o for group in groups for o in group_options(group)})
        for option in value.split(","):
            if option not in choices and option != "null":
                print(f"error: unknown {key} '{option}'; choose one of: {', '.join(choices)}", file=sys.stderr)
                sys.exit(2)


def _run_label(*, _root_: Any) -> str:
    """``task_dataset_model`` for a dense encoder, ``task_dataset_model_neuron`` for a spiking one (run
    directory names; the task is left out for node classification, the default)."""
    from spikenet.models import is_spiking
    from spikenet.registry import load_plugins

    load_plugins(list(_root_.plugins))  # a launcher's job process: the plugin's encoder must be known here too
    task, model = str(_root_.task.name), str(_root_.model.name)
    parts = [*([task] if task != "node_classification" else []), str(_root_.dataset.name), model]
    return "_".join([*parts, *([str(_root_.neuron.name)] if is_spiking(model) else [])])


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use: ``${run_label:}`` (what ran, for run directory names)."""
    if not OmegaConf.has_resolver("run_label"):
        OmegaConf.register_new_resolver("run_label", _run_label)


def _leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted keys of every node and leaf under ``node`` (interpolations unresolved)."""
    if isinstance(node, DictConfig):
        for key in node:
            full = f"{prefix}{key}"
            yield full
            yield from _leaf_keys(node._get_node(key), f"{full}.")


def _spelled(value: Any) -> str:
    """A default as the YAML files spell it: null, false, [5, 2]."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    return json.dumps(value).replace('"', "'") if value is None or isinstance(value, bool | list | dict) else str(value)


def _closest(key: str, known: list[str]) -> str | None:
    """The valid key a mistyped ``key`` most likely meant: a sibling with a similar last name, else a similar
    key anywhere (a stricter match), else None."""
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    close = difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.6)
    if close:
        return siblings[close[0]]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    return close[0] if close else None


def _kind(value: Any) -> type | None:
    """The schema type of a default value (None: no constraint)."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, list | ListConfig):
        return list
    if isinstance(value, dict | DictConfig):
        return dict
    return None


def _fits(value: Any, kind: type) -> bool:
    if value is None or (isinstance(value, str) and "${" in value):  # null, or an interpolation: Hydra's to judge
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list)
    if kind is dict:
        return isinstance(value, dict)
    return not isinstance(value, list | dict)  # a str key takes any scalar (Hydra parses 1e-3 as a float)


def _reference_configs(parsed: list, conf_dir: Path, config_name: str) -> list[DictConfig]:
    """The config composed with the command's group choices (one per option of a swept group), without its
    value overrides: what the value overrides are checked against."""
    from hydra import compose, initialize_config_dir

    dirs = [conf_dir, *search_dirs([o.input_line for o in parsed])]
    choices, swept = [], []
    for o in parsed:
        key = o.key_or_group
        if "/" in key or ("." not in key and any((d / key).is_dir() for d in dirs)):
            value = o.value()
            options = list(value.list) if o.is_sweep_override() and hasattr(value, "list") else [value]
            choices.append((o, [str(v) for v in options]))
    base = [o.input_line for o in parsed if o.key_or_group == "hydra.searchpath"]
    base += [_choice_line(o, opts[0]) for o, opts in choices]
    variants = [base]
    offset = len(base) - len(choices)
    for i, (o, opts) in enumerate(choices):
        for opt in opts[1:]:
            swept.append(base[:offset + i] + [_choice_line(o, opt)] + base[offset + i + 1:])
    configs = []
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        for overrides in variants + swept:
            configs.append(compose(config_name=config_name, overrides=overrides))
    return configs


def _choice_line(override: Any, option: str) -> str:
    prefix = "++" if override.is_force_add() else "+" if override.is_add() else "~" if override.is_delete() else ""
    return f"{prefix}{override.key_or_group}={option}"


def check_value_overrides(args: Sequence[str], conf_dir: Path, config_name: str = "config") -> None:
    """Raise ``ConfigKeyError`` (one line) for a ``key=value`` override whose key no composed config has (with
    ``+`` too), or whose value does not fit the type of the key's default (``NULLABLE`` for null defaults).

    Group choices (``neuron=lif``), ``hydra.*`` keys and sweeps other than plain lists are left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    lines = [a for a in args if "=" in a or a.startswith("~")]
    lines = [a for a in lines if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException:
        return  # Hydra reports its own grammar errors
    values = [o for o in parsed if "." in o.key_or_group and "/" not in o.key_or_group
              and not o.key_or_group.startswith("hydra.") and o.package is None]
    dirs = [conf_dir, *search_dirs(lines)]
    values += [o for o in parsed if "." not in o.key_or_group and "/" not in o.key_or_group
               and not any((d / o.key_or_group).is_dir() for d in dirs)]
    if not values:
        return
    references = _reference_configs(parsed, conf_dir, config_name)
    for o in values:
        key = o.key_or_group
        found = [OmegaConf.select(ref, key, default=_ABSENT, throw_on_missing=False) for ref in references]
        found = [f for f in found if f is not _ABSENT]
        if not found:
            known = sorted({k for ref in references for k in _leaf_keys(ref)})
            close = _closest(key, known)
            hint = f"; did you mean '{close}'?" if close else ""
            raise ConfigKeyError(f"unknown config key '{key}' (from '{o.input_line}'){hint}")
        if o.is_delete():
            continue
        kind = NULLABLE.get(key) if found[0] is None else _kind(found[0])
        if kind is None:
            continue
        value = o.value()
        candidates = list(value.list) if o.is_sweep_override() and hasattr(value, "list") else (
            [] if o.is_sweep_override() else [value])
        for v in candidates:
            if not _fits(v, kind):
                default = _spelled(found[0])
                raise ConfigKeyError(f"{key} must be {_TYPE_NAMES[kind]} (default {default}), got '{v}'")


_ABSENT = object()


def check_command_line(args: Sequence[str], conf_dir: Path, config_name: str = "config") -> None:
    """Exit with one ``error:`` line (code 2) for an unknown group option, an unknown key or a mistyped value."""
    check_group_overrides(list(args), conf_dir)
    try:
        check_value_overrides(args, conf_dir, config_name)
    except ConfigKeyError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
