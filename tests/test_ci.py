"""``.ci/run`` runs the README's install and test commands, verbatim, and nothing a user would not run.

CI passing then means a user who follows the README's first lines on a fresh machine gets a passing suite;
an install step that only CI knew about (issue 21: W&B's ``sweeps``) could hide a broken install line.
"""

from __future__ import annotations

import re
import shlex

from conftest import PROJECT_ROOT

ALSO_ALLOWED = {  # CI's own lines besides the README's commands: shell setup, the linter, CI=true
    "set -euo pipefail",
    'cd "$(dirname "$0")/.."',
    "python -m ruff check src tests benchmarks",
    "export CI=true",
}


def readme_commands() -> list[str]:
    """The commands of the README's first ``bash`` block, comments dropped."""
    text = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md: no ```bash block with the install and test commands"
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]


def ci_lines() -> list[str]:
    lines = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readme_install_and_test_commands_and_nothing_else():
    commands = readme_commands()
    install = [c for c in commands if " pip install " in f" {c} "]
    tests = [c for c in commands if "pytest" in c]
    assert len(install) == 1 and len(tests) == 1, commands
    assert commands.index(install[0]) < commands.index(tests[0]), "install before testing"
    lines = ci_lines()
    assert install[0] in lines and tests[0] in lines, f"README: {install + tests}\n.ci/run: {lines}"
    assert lines.index(install[0]) < lines.index(tests[0])
    assert lines.index("export CI=true") < lines.index(tests[0])
    assert set(lines) - {install[0], tests[0]} <= ALSO_ALLOWED, lines


def test_the_install_command_installs_the_extras_the_suite_needs():
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    install = next(c for c in readme_commands() if " pip install " in f" {c} ")
    extras = set()
    for part in install.split("&&"):
        args = shlex.split(part)
        for arg in args:
            if match := re.fullmatch(r"\.\[([\w,-]+)\]", arg):
                extras |= set(match.group(1).split(","))
    assert {"dev", "sweep"} <= extras <= set(project["optional-dependencies"]), extras
    dev = " ".join(project["optional-dependencies"]["dev"])
    assert "pytest-timeout" in dev and "pytest>" in dev  # the time limit is part of the suite (tests/guards.py)
    assert "sweeps==" in install, "W&B's sweep engine (tests/test_sweeps.py) is installed by the install line"
