"""Command-line helpers shared by the Hydra entry points."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


def check_group_overrides(args: list[str], conf_dir: Path) -> None:
    """Exit with a one-line message when ``group=option`` names an option that has no config file.

    Hydra's own message for this spans several lines; a researcher mistyping ``neuron=lfi``
    should see one line with the choices.
    """
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        group = conf_dir / key
        if "." in key or not group.is_dir() or "(" in value or not value:
            continue
        choices = sorted(p.stem for p in group.glob("*.yaml"))
        for option in value.split(","):
            if option not in choices and option != "null":
                print(f"error: unknown {key} '{option}'; choose one of: {', '.join(choices)}", file=sys.stderr)
                sys.exit(2)


def _run_label(*, _root_: Any) -> str:
    """``task_dataset_model`` for a dense encoder, ``task_dataset_model_neuron`` for a spiking one (run
    directory names; the task is left out for node classification, the default)."""
    from spikenet.models import is_spiking

    task, model = str(_root_.task.name), str(_root_.model.name)
    parts = [*([task] if task != "node_classification" else []), str(_root_.dataset.name), model]
    return "_".join([*parts, *([str(_root_.neuron.name)] if is_spiking(model) else [])])


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use: ``${run_label:}`` (what ran, for run directory names)."""
    if not OmegaConf.has_resolver("run_label"):
        OmegaConf.register_new_resolver("run_label", _run_label)
