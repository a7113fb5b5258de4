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
    ".ci/sj2",  # the second environment, SpikingJelly 2.x (test_the_spikingjelly_2_script_...)
}
SJ2_SCRIPT = PROJECT_ROOT / ".ci" / "sj2"


def readme_commands() -> list[str]:
    """The commands of the README's first ``bash`` block, comments dropped."""
    text = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md: no ```bash block with the install and test commands"
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]


def ci_lines(script: str = "run") -> list[str]:
    lines = (PROJECT_ROOT / ".ci" / script).read_text().splitlines()
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
    assert "pytest-timeout" in dev and "pytest>" in dev  # the time limit is part of the suite (tests/helpers/guards.py)
    assert "sweeps==" in install, "W&B's sweep engine (tests/config/test_sweeps.py) is installed by the install line"


def test_ci_also_runs_the_spikingjelly_2_environment_after_the_default_one():
    lines = ci_lines()
    tests = next(c for c in readme_commands() if "pytest" in c)
    assert ".ci/sj2" in lines and lines.index(tests) < lines.index(".ci/sj2"), lines
    assert lines[0] == "set -euo pipefail"  # a failing .ci/sj2 fails .ci/run
    assert SJ2_SCRIPT.stat().st_mode & 0o111, ".ci/sj2 must be executable"


def test_the_spikingjelly_2_script_installs_only_from_the_project_files():
    """.ci/sj2: a virtualenv over the default environment (no second torch download), then only the project's
    sj2 extra (SpikingJelly 2.x as pyproject.toml declares it); it checks that 2.x is what it got and runs the
    neuron, surrogate and end-to-end tests with CI=true; any failing line fails the script."""
    import tomllib

    lines = ci_lines("sj2")
    assert lines[:2] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."'], lines
    venv = [c for c in lines if " -m venv " in c]
    assert len(venv) == 1 and "--system-site-packages" in venv[0], venv
    env = shlex.split(venv[0])[-1]
    installs = [c for c in lines if " pip install " in f" {c} "]
    assert installs == [f'{env}/bin/python -m pip install -e ".[sj2]"'], installs
    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(re.fullmatch(r"spikingjelly>=2(\.0)*,<3", d) for d in extras["sj2"]), extras["sj2"]
    assert any(d == "spikingjelly==0.0.0.0.14" for d in extras["sj014"]), extras["sj014"]
    assert "spikenet[sj014]" in extras["dev"], "the default install (.[dev,...]) stays on 0.0.0.0.14"
    pytest_line = next(c for c in lines if " -m pytest " in c)
    assert pytest_line.startswith(f"{env}/bin/python -m pytest -q ") and "export CI=true" in lines
    assert lines.index("export CI=true") < lines.index(pytest_line)
    files = [a for a in shlex.split(pytest_line) if a.startswith("tests/")]
    assert {"tests/neurons/test_neurons.py", "tests/neurons/test_surrogates.py",
            "tests/neurons/test_neuron_definitions.py", "tests/e2e/test_run.py"} <= set(files), files
    assert all((PROJECT_ROOT / f).is_file() for f in files), files
    assert any("assert SJ2" in c for c in lines), "the script checks that it runs SpikingJelly 2.x"
    assert all(c.startswith((f"{env}/", "set ", "cd ", "export ", "python -m venv ")) for c in lines), lines
