"""Every command shown in README.md and docs/*.md is one the code knows, so a typo in the docs fails the suite.

The commands are those of ``benchmarks/smoke/docs_commands.py`` (``extract_commands``: the lines of the fenced
``bash`` blocks), loaded from that file by path: the benchmarks are scripts, not a package, and the smoke run
(which runs every command on tiny settings) and this test must see the same list. Per command part:

* ``python src/run.py ...`` (also behind ``torchrun`` / ``srun``): the command line passes the entry point's
  own checks (``spikenet.cli.check_command_line``: group options, keys, value types), its first job (a
  multirun's every swept key at its first value) composes with Hydra and passes ``spikenet.config.validate``,
  every value of a swept plain key does too, and every option of a swept group exists;
* ``python <script> ...``: the script exists, every ``--flag`` is one its parser defines, and its Hydra
  overrides compose (with ``benchmark.yaml`` for the benchmarks built on it, ``features.yaml`` for
  ``src/features.py``) and validate;
* ``python -m pytest|ruff|pip``, ``pip``, ``wandb``, and the official code behind ``cd <CHECKOUT>``: their
  arguments name paths, extras and files that exist;
* anything else fails as unknown.

The smoke script must also have a plan for each (run it shrunk, or skip it with a reason).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import CONF_DIR, PROJECT_ROOT, compose_config
from plugin_package import plugin_imported, write_plugin

from spikenet.cli import check_command_line, with_plugins
from spikenet.config import validate


def _load_docs_commands():
    path = PROJECT_ROOT / "benchmarks" / "smoke" / "docs_commands.py"
    spec = importlib.util.spec_from_file_location("docs_commands_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


DOCS = _load_docs_commands()
COMMANDS = DOCS.extract_commands(PROJECT_ROOT)
OVERRIDE = re.compile(r"^[+~]?[\w./-]+=")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # CHECKOUT, SIGNN_CHECKOUT: a folder the reader supplies


def _check_run(args: list[str], capsys) -> None:
    if any(a.lstrip("+").startswith("plugins=") for a in args):  # docs/extending.md's package, written for the test
        args = with_plugins(args)  # imports it (its parts register) and adds its conf/ to hydra.searchpath
    try:
        check_command_line(args, CONF_DIR)
    except SystemExit:
        pytest.fail(f"src/run.py {' '.join(args)}: {capsys.readouterr().err.strip()}")
    job = DOCS.first_job(args)
    validate(compose_config(job))
    for arg in args:
        sweep = DOCS.sweep_values(arg)
        if not sweep:
            continue
        key, values = sweep
        if (CONF_DIR / key.lstrip("+")).is_dir():
            for value in values:
                assert (CONF_DIR / key.lstrip("+") / f"{value}.yaml").is_file(), f"{key}={value}: no such option"
        elif not key.startswith("hydra"):
            for value in values[1:]:
                validate(compose_config([a for a in job if not a.startswith(f"{key}=")] + [f"{key}={value}"]))


def _compose_named(config_name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def _check_script(script: Path, args: list[str], capsys) -> None:
    assert script.is_file(), f"{script.relative_to(PROJECT_ROOT)}: no such script"
    source = script.read_text()
    flags = set(re.findall(r"add_argument\(\s*\"(--?[\w-]+)\"", source)) | {"--help", "-h"}
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in flags, f"{script.name}: unknown option {arg} (defined: {sorted(flags)})"
    overrides = [a for a in args if OVERRIDE.match(a)]
    if not overrides:
        return
    if script.name == "features.py":
        _compose_named("features", overrides)
        return
    uses_benchmark = re.search(r"config_name=\"benchmark\"|compose\(\"benchmark\"", source)
    if uses_benchmark:
        cfg = _compose_named("benchmark", DOCS.first_job(overrides))
        validate(cfg)
    else:
        _check_run(overrides, capsys)


def _check_pip(args: list[str]) -> None:
    extras = set(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert args[0] == "install", args
    for arg in args[1:]:
        if match := re.fullmatch(r"\.\[([\w,-]+)\]", arg):
            assert set(match.group(1).split(",")) <= extras, f"unknown extra in {arg}"
        elif not arg.startswith("-") and arg != "-e":
            assert re.fullmatch(r"[\w.-]+==[\w.]+", arg), f"pip install {arg}: pin an exact version"


ENV_ASSIGNMENT = re.compile(r"^(PYTHONPATH|SPIKENET_[A-Z_]+|CUDA_VISIBLE_DEVICES|WANDB_[A-Z_]+)=\S+$")


def _check_part(argv: list[str], capsys, external: bool) -> bool:
    """Check one ``&&`` part; returns whether the next parts run inside an external checkout."""
    while argv and ENV_ASSIGNMENT.match(argv[0]):  # VAR=value before a command: an environment variable it reads
        argv = argv[1:]
    program = argv[0]
    if program == "export":
        assert argv[1:] and all(ENV_ASSIGNMENT.match(a) for a in argv[1:]), f"export {argv[1:]}: unknown variable"
        return external
    if program == "cd":
        assert PLACEHOLDER.match(argv[1]), f"cd {argv[1]}: only a placeholder checkout folder is expected"
        return True
    if external:  # the official code, run in its own checkout
        assert program == "python" and argv[1] == "main.py", argv
        return True
    run_args = DOCS.run_py_args(argv)
    if run_args is not None:
        assert program in ("python", "torchrun", "srun"), argv
        _check_run(run_args, capsys)
    elif program == "python" and argv[1] == "-m":
        module, rest = argv[2], argv[3:]
        if module == "pip":
            _check_pip(rest)
        elif module in ("pytest", "ruff"):
            for path in (a for a in rest if not a.startswith("-") and a != "check"):
                assert (PROJECT_ROOT / path).exists(), f"{module} {path}: no such path"
        else:
            pytest.fail(f"python -m {module}: not a known module")
    elif program == "python":
        _check_script(PROJECT_ROOT / argv[1], argv[2:], capsys)
    elif program == "pip":
        _check_pip(argv[1:])
    elif program == "wandb":
        assert argv[1] in ("sweep", "agent"), argv
        if argv[1] == "sweep":
            assert (PROJECT_ROOT / argv[2]).is_file(), f"wandb sweep {argv[2]}: no such file"
    else:
        pytest.fail(f"{program}: not a known program")
    return False


def test_the_documents_show_commands():
    places = {c.path for c in COMMANDS}
    assert "README.md" in places and len(COMMANDS) > 50, places
    readme = [c.text for c in COMMANDS if c.path == "README.md"]
    assert readme[2] == "python src/run.py", readme[:3]  # the first block: install, tests, the main run


def test_extraction_joins_continuations_and_drops_comments(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "text\n```bash\n# a comment line\npython src/run.py a=1 \\\n    b=2   # trailing\n\npython x.py\n```\n"
        "```python\nnot_a_command()\n```\n")
    (tmp_path / "docs" / "page.md").write_text("```bash\nwandb agent <id>\n```\n")
    commands = DOCS.extract_commands(tmp_path)
    assert [(c.path, c.line, c.text) for c in commands] == [
        ("README.md", 4, "python src/run.py a=1 b=2"), ("README.md", 7, "python x.py"),
        ("docs/page.md", 2, "wandb agent <id>")]
    assert DOCS.first_job(["-m", "neuron=if,lif", "model.hids=[16,4]", "seed=0,1"]) == [
        "neuron=if", "model.hids=[16,4]", "seed=0"]


@pytest.fixture(scope="module")
def plugin_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugin")
    write_plugin(folder)
    return folder


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_command_is_known(command, capsys, tmp_path, plugin_folder):
    external = False
    with plugin_imported(plugin_folder):  # commands with plugins=[mylab]; its parts are forgotten afterwards
        for argv in command.parts():
            external = _check_part(argv, capsys, external)
    reason, parts = DOCS.plan(command, tmp_path)
    assert reason or parts, f"{command.where}: the smoke script neither runs nor skips it"
