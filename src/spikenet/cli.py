"""Command-line helpers shared by the Hydra entry points."""

from __future__ import annotations

import sys
from pathlib import Path


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
