"""Run every command shown in README.md and docs/*.md, on tiny settings.

    python benchmarks/smoke/docs_commands.py                 # all of them, one line each: ok / failed / skipped
    python benchmarks/smoke/docs_commands.py --list          # what would run (the shrunk command lines), no run
    python benchmarks/smoke/docs_commands.py --only report   # those whose text contains "report" (or several words)

The commands are the lines of the fenced ```bash blocks (``\\`` continuations joined, comments dropped), in
file order: README.md first, then docs/*.md by name. Each runs as written, from a temporary folder that links
``src``, ``conf``, ``benchmarks`` and ``sweeps`` and holds its own ``data`` (links to the shipped DBLP and
tgbn-toy files, a generated ``mygraph`` edge list for the own-data examples) and ``outputs``; placeholders
name folders there (``DIR`` and ``/data``: that data root, ``/tmp/...`` and ``OUT``: folders under it), and
``SPIKENET_DATA_ROOT`` / ``SPIKENET_CACHE`` point there, so nothing is written into the checkout. Shrinking:
``src/run.py`` gets ``trainer.epochs=1 trainer.progress=false``, a multirun keeps the first value of every
swept key and of a preset's sweeper params (``+ablation=...``, ``+protocol=...``; Optuna gets 2 trials), the
Tmall- and Patent-sized synthetic graphs get a few thousand nodes, and each benchmark its smallest settings
(see ``shrink``). Commands that need what a CPU machine lacks (a GPU, a W&B server, SLURM, the official code,
downloads) are listed as skipped with the reason. Exit status 1 when any command failed.

``extract_commands`` is also what ``tests/project/test_docs_commands.py`` checks (it loads this file by path), so the
test and this script always see the same commands.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```bash[ \t]*\n(.*?)^```", re.S | re.M)
COMMENT = re.compile(r"(^|\s+)#(\s.*)?$")


@dataclass(frozen=True)
class Command:
    """One command of a document: where it is and its text (continuations joined, comment dropped)."""

    path: str  # relative to the repository root
    line: int  # 1-based line of its first physical line
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def parts(self) -> list[list[str]]:
        """The argument lists of its ``&&``-joined parts."""
        return [shlex.split(part) for part in self.text.split("&&") if part.strip()]


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md, then every docs/*.md by name."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def extract_commands(root: Path = ROOT) -> list[Command]:
    """Every command of the fenced ``bash`` blocks of README.md and docs/*.md, in file order."""
    commands = []
    for path in doc_files(root):
        text = path.read_text()
        for block in FENCE.finditer(text):
            first = text.count("\n", 0, block.start(1)) + 1
            pending, start = "", None
            for offset, raw in enumerate(block.group(1).splitlines()):
                line = COMMENT.sub("", raw).rstrip()
                if not line.strip() and not pending:
                    continue
                if start is None:
                    start = first + offset
                if line.endswith("\\"):
                    pending += line[:-1].strip() + " "
                    continue
                full = (pending + line.strip()).strip()
                if full:
                    commands.append(Command(str(path.relative_to(root)), start, full))
                pending, start = "", None
    return commands


def split_top_level(value: str) -> list[str]:
    """``a,b,[1,2]`` -> ``['a', 'b', '[1,2]']``: commas outside brackets, parentheses and quotes."""
    items, depth, quote, current = [], 0, None, ""
    for char in value:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        current += char
    return [*items, current]


def sweep_values(arg: str) -> tuple[str, list[str]] | None:
    """``key=a,b`` -> (key, [a, b]) for a Hydra sweep override; None for anything else."""
    if "=" not in arg or arg.startswith("-"):
        return None
    key, value = arg.split("=", 1)
    if value.startswith(("choice(", "range(", "interval(", "glob(")):
        return key, [value]
    values = split_top_level(value)
    return (key, values) if len(values) > 1 else None


def run_py_args(argv: list[str]) -> list[str] | None:
    """The arguments after ``src/run.py`` in ``argv`` (also behind torchrun or srun), or None."""
    for i, arg in enumerate(argv):
        if arg.endswith("src/run.py"):
            return argv[i + 1:]
    return None


def first_job(args: list[str]) -> list[str]:
    """The overrides of a (multi)run's first job: ``-m`` dropped, every swept key at its first value."""
    job = []
    for arg in args:
        if arg in ("-m", "--multirun"):
            continue
        sweep = sweep_values(arg)
        job.append(f"{sweep[0]}={sweep[1][0]}" if sweep else arg)
    return job


# --- what the smoke run does with each command -------------------------------------------------------------

SKIPS: tuple[tuple[str, str], ...] = (  # (regex on the command text, reason); the first match wins
    (r"benchmarks/smoke/docs_commands\.py", "this script"),
    (r"\bpip install\b", "changes the installed packages (.ci/run runs the install line)"),
    (r"\bpytest\b", "the test suite itself (.ci/run runs it)"),
    (r"^wandb\b", "needs a W&B server and account"),
    (r"^srun\b|launcher=slurm", "needs a SLURM cluster"),
    (r"^torchrun\b", "starts 4 GPU (or CPU) ranks on the Patent files, which do not ship"),
    (r"--official\b|^cd SIGNN_CHECKOUT", "needs a built checkout of the official code"),
    (r"--device cuda|device=cuda|gpu_suite\.py --out|gpu_check\.py", "needs a GPU"),
    (r"gpu_suite\.py --dry-run", "checks the wheels prepared in .whl/ for the GPU machine"),
    (r"dataset\.download=true", "downloads TGB's files"),
    (r"plugins=\[mylab\]|^export PYTHONPATH",
     "docs/extending.md's plugin package: tests/e2e/test_plugins.py writes and runs it"),
    (r"\b(dataset|experiment)=(tmall|patent)\b", "needs the Tmall or Patent files, which do not ship"),
    (r"\bdataset=(primaryschool|thiers2011)\b", "needs the SocioPatterns files, which do not ship"),
)

SMALL_SYNTHETIC = ("dataset.num_nodes=3000", "dataset.num_edges=20000")
BENCH_FLAGS = {  # per benchmark script: flags set (or replaced) for the smoke run
    "aggregation.py": {"--steps": "4", "--parents": "256", "--nodes": "2000", "--repeats": "1"},
    "vml_race.py": {"--processes": "4"},
    "owndata_standin.py": {"--interactions": "5000", "--stamps": "60"},
}


def skip_reason(command: Command) -> str | None:
    for pattern, reason in SKIPS:
        if re.search(pattern, command.text):
            return reason
    return None


def set_overrides(args: list[str], values: dict[str, str]) -> list[str]:
    """``args`` with each ``key=value`` of ``values`` replacing that key's override, or appended."""
    out, seen = [], set()
    for arg in args:
        key = arg.split("=", 1)[0].lstrip("+~") if "=" in arg and not arg.startswith("-") else None
        if key in values:
            out.append(f"{key}={values[key]}")
            seen.add(key)
        else:
            out.append(arg)
    return out + [f"{k}={v}" for k, v in values.items() if k not in seen]


def set_flags(args: list[str], flags: dict[str, str]) -> list[str]:
    """``args`` with each ``--flag value`` of ``flags`` replacing that flag's value, or appended."""
    out, i = [], 0
    while i < len(args):
        if args[i] in flags:
            i += 2
            continue
        out.append(args[i])
        i += 1
    for flag, value in flags.items():
        out += [flag, value]
    return out


def preset_pins(args: list[str], conf: Path) -> dict[str, str]:
    """First values of the sweeper params of ``+ablation=X`` / ``+protocol=X`` that the command does not set."""
    import yaml

    pins: dict[str, str] = {}
    given = {a.split("=", 1)[0].lstrip("+") for a in args if "=" in a}
    for arg in args:
        match = re.fullmatch(r"\+?(ablation|protocol)=(\w+)", arg)
        if not match:
            continue
        preset = yaml.safe_load((conf / match.group(1) / f"{match.group(2)}.yaml").read_text())
        params = preset.get("hydra", {}).get("sweeper", {}).get("params", {}) or {}
        for key, value in params.items():
            if key not in given:
                pins[key] = split_top_level(str(value))[0]
    return pins


def shrink_overrides(args: list[str], conf: Path) -> list[str]:
    """Hydra overrides of a run or benchmark on tiny settings."""
    multirun = "-m" in args or "--multirun" in args
    args = first_job(args)
    if multirun:
        args = ["-m", *args, *(f"{k}={v}" for k, v in preset_pins(args, conf).items())]
    values = {}
    if any(re.fullmatch(r"dataset=synthetic_(tmall|patent)", a) for a in args):
        values.update(dict(v.split("=") for v in SMALL_SYNTHETIC))
    if "hparams_search=optuna" in args:
        values["hydra.sweeper.n_trials"] = "2"
    return set_overrides(args, values)


def shrink(argv: list[str], conf: Path, work: Path) -> list[str]:
    """The smoke run's version of one command part (see the module docstring)."""
    if argv[0] != "python" or len(argv) < 2:
        return argv
    argv = [sys.executable, *argv[1:]]
    script = argv[1]
    name = Path(script).name
    rest = argv[2:]
    if script.endswith("src/run.py"):
        rest = set_overrides(shrink_overrides(rest, conf), {"trainer.epochs": "1", "trainer.progress": "false"})
    elif script.endswith("src/features.py"):
        rest = set_overrides(rest, {"dataset.root": str(work / "features_data"), "dataset.deepwalk.walks": "1",
                                    "dataset.deepwalk.length": "10", "progress": "false"})
    elif name == "epoch_time.py":
        rest = set_overrides(shrink_overrides(rest, conf), {"bench.epochs": "1", "bench.batches": "2"})
    elif name == "scaling.py":
        flags = [a for a in rest if a.startswith("-") or not re.match(r"^[\w.+~/]+=", a)]
        overrides = [a for a in rest if a not in flags]
        overrides = set_overrides(shrink_overrides(overrides, conf), {"bench.batches": "1", "bench.epochs": "1"})
        rest = flags + overrides
    elif name == "tgbn_memory.py" and "--kind" not in rest:
        rest = set_flags(rest, {"--events": "20000", "--days": "30", "--batches": "1", "--eval-batches": "1"})
    elif name in BENCH_FLAGS:
        rest = set_flags(rest, BENCH_FLAGS[name])
    return [argv[0], script, *rest]


def substitute(text: str, work: Path) -> str:
    """Placeholders -> folders of the smoke run's temporary folder."""
    data = str(work / "data")
    text = re.sub(r"(?<![\w.])/tmp/", f"{work}/tmp/", text)  # first: the substitutions below name /tmp folders
    text = re.sub(r"\bDIR\b", data, text)
    text = re.sub(r"dataset\.root=/data\b", f"dataset.root={data}", text)
    return re.sub(r"\bOUT\b", str(work / "out"), text)


def prepare(work: Path) -> dict[str, str]:
    """The temporary folder's links and data; the environment the commands run with."""
    for name in ("src", "conf", "benchmarks", "sweeps", "tests", "pyproject.toml"):
        (work / name).symlink_to(ROOT / name)
    for root in ("data", "features_data"):
        for dataset in ("dblp", "tgbn-toy"):
            folder = work / root / dataset
            folder.mkdir(parents=True)
            for source in (ROOT / "data" / dataset).iterdir():
                if source.is_file() and source.suffix != ".npy":
                    (folder / source.name).symlink_to(source)
    env = {**os.environ, "SPIKENET_DATA_ROOT": str(work / "data"), "SPIKENET_CACHE": str(work / "cache"),
           "WANDB_MODE": "offline", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                              os.environ.get("PYTHONPATH")]))}
    env.pop("CI", None)
    for root in ("data", "features_data"):  # the own-data examples' graph: dataset.name=mygraph
        standin = ROOT / "benchmarks" / "data" / "owndata_standin.py"
        subprocess.run([sys.executable, str(standin), "--out", str(work / root),
                        "--name", "mygraph", "--interactions", "5000", "--stamps", "60"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        folder = work / root / "mygraph"
        (folder / "node_labels.csv").rename(folder / "node_classes.csv")
        (folder / "edges.txt").symlink_to(folder / "interactions.csv")  # dataset=edgelist's default file names
        (folder / "labels.txt").symlink_to(folder / "node_classes.csv")
    return env


def plan(command: Command, work: Path) -> tuple[str | None, list[list[str]]]:
    """(skip reason or None, the argument lists to run)."""
    reason = skip_reason(command)
    if reason:
        return reason, []
    text = substitute(command.text, work)
    return None, [shrink(shlex.split(part), ROOT / "conf", work) for part in text.split("&&") if part.strip()]


def previous_ok(log: Path) -> dict[tuple[str, str], str]:
    """(file, text) -> seconds of the commands an earlier run's output reports ok (run there, not skipped)."""
    found = {}
    for line in log.read_text().splitlines():
        match = re.match(r"ok +([\d.]+)s  (\S+):\d+  (.*?)(  \[.*\])?$", line)
        if match:
            found[(match.group(2), match.group(3))] = match.group(1)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="only commands containing one of these")
    parser.add_argument("--list", action="store_true", help="print each command's smoke version, run nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    parser.add_argument("--resume", type=Path, nargs="*", default=[],
                        help="earlier runs' outputs: their ok commands (same file, same text) are not run again")
    args = parser.parse_args(argv)
    earlier = {key: seconds for log in args.resume for key, seconds in previous_ok(log).items()}

    commands = [c for c in extract_commands() if args.only is None or any(s in c.text for s in args.only)]
    work = Path(tempfile.mkdtemp(prefix="spikenet_docs_"))
    failed = 0
    ran: dict[str, tuple[str, str]] = {}  # the smoke version of a command -> (where it ran first, status)
    try:
        env = prepare(work) if not args.list else {}
        for command in commands:
            reason, parts = plan(command, work)
            if reason:
                print(f"skipped   {'':>6}  {command.where}  {command.text}  [{reason}]", flush=True)
                continue
            if args.list:
                print(f"would run {'':>6}  {command.where}  {' && '.join(shlex.join(p) for p in parts)}")
                continue
            key = (command.path, command.text)
            if key in earlier:
                print(f"ok        {earlier[key]:>5}s  {command.where}  {command.text}  [earlier run]", flush=True)
                ran.setdefault(repr(parts), (f"{command.where} in an earlier run", "ok"))
                continue
            same = ran.get(repr(parts))
            if same:
                print(f"{same[1]:<9} {'':>6}  {command.where}  {command.text}  [same command as {same[0]}]",
                      flush=True)
                failed += same[1] == "failed"
                continue
            start, status, output = time.monotonic(), "ok", ""
            for part in parts:
                try:
                    done = subprocess.run(part, cwd=work, env=env, capture_output=True, text=True,
                                          timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    status, output = "failed", f"timed out after {args.timeout:.0f} s"
                    break
                if done.returncode != 0:
                    status, output = "failed", (done.stdout + done.stderr)[-3000:]
                    break
            seconds = time.monotonic() - start
            ran[repr(parts)] = (command.where, status)
            print(f"{status:<9} {seconds:5.1f}s  {command.where}  {command.text}", flush=True)
            if status == "failed":
                failed += 1
                print("    " + output.strip().replace("\n", "\n    "), flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(commands)} commands, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
