"""Forward and forward+backward time of every neuron on the CPU (its compiled kernel where it has one), at a
DBLP-like size, printed as a table.

    python benchmarks/speed/neuron_kernels.py                        # this checkout, [25, 1200, 128] = [T, 153600]
    python benchmarks/speed/neuron_kernels.py --src /work/baseline/src --neurons adaptive_lif   # another version
    python benchmarks/speed/neuron_kernels.py --rows 600 --repeats 5 --json out.json

Columns (median milliseconds over ``--repeats`` runs after one warm-up): ``forward`` (no gradient, as in
evaluation), ``fwd+bwd`` (``node(x).backward(g)``), ``drop fwd+bwd`` (``fire_and_drop`` with FastDropout(0.7),
layer 0 of SpikeNet in training) and ``pool fwd+bwd`` (``fire_drop_pool``: neuron, dropout and the next
layer's input pooling, sizes [5, 2]); ``path`` names the autograd node that ran (the kernel, the torch
path, or a step loop). ``--src`` runs the same measurement in a child process whose ``PYTHONPATH`` starts
with another source tree (for instance the previous version), so that it imports ``spikenet`` from there;
that version needs the same public API (``build_neuron``, ``fire_and_drop``, ``fire_drop_pool``). Use a
separate ``TORCH_EXTENSIONS_DIR`` per checkout. Timings on a shared machine are only comparable side by side.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default=None,
                   help="source tree to import spikenet from, in a child process (default: the installed one)")
    p.add_argument("--neurons", default="", help="comma-separated names (default: every neuron of that version)")
    p.add_argument("--surrogate", default="sigmoid")
    p.add_argument("--T", type=int, default=25, help="time steps")
    p.add_argument("--rows", type=int, default=1200, help="rows per step (x channels = elements per step)")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return p.parse_args(argv)


def neuron_cfg(neurons: Any, name: str) -> Any:
    """Neuron ``name``'s default config: ``neurons.neuron_config`` (conf/neuron/<name>.yaml, or a plugin's
    registered config); a ``--src`` tree without it reads this checkout's conf/neuron/<name>.yaml."""
    from omegaconf import OmegaConf

    if hasattr(neurons, "neuron_config"):
        return neurons.neuron_config(name)
    return OmegaConf.load(ROOT / "conf" / "neuron" / f"{name}.yaml")


def _reset_net() -> Any:
    try:
        from spikenet.neurons.sj_compat import reset_net
    except ImportError:  # a --src tree from before sj_compat held it (SpikingJelly 0.0.0.0.14 only)
        from spikingjelly.activation_based.functional import reset_net
    return reset_net


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (builds the kernel on first use)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_neuron(neurons: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Timings of one neuron (``neurons``: the imported ``spikenet.neurons`` package)."""
    import torch

    from spikenet.models.dropout import FastDropout

    reset_net = _reset_net()
    cfg = neuron_cfg(neurons, name)
    sg = neurons.build_surrogate(args.surrogate, 1.0)
    takes_width = "channels" in inspect.signature(neurons.build_neuron).parameters
    node = neurons.build_neuron(cfg, sg, "torch", args.channels) if takes_width else neurons.build_neuron(
        cfg, sg, "torch")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.T, args.rows, args.channels, generator=gen) + 0.5
    g = torch.randn(x.shape, generator=gen)
    drop = FastDropout(0.7)
    row: dict[str, Any] = {"neuron": name}

    def forward() -> None:
        reset_net(node)
        with torch.no_grad():
            node(x)

    def forward_backward() -> None:
        reset_net(node)
        xr = x.detach().requires_grad_(True)
        out = node(xr)
        row["path"] = type(out.grad_fn).__name__
        out.backward(g)

    def drop_forward_backward() -> None:
        reset_net(node)
        xr = x.detach().requires_grad_(True)
        node.fire_and_drop(xr, drop).backward(g)

    n0 = args.rows // 3  # sizes [5, 2]: layer 0 maps the targets and their 2 children (M = 3 n0)
    xp, gp = x[:, : 3 * n0], torch.randn(args.T, n0, args.channels, generator=gen)

    def pool_forward_backward() -> None:
        reset_net(node)
        xr = xp.detach().requires_grad_(True)
        pooled = node.fire_drop_pool(xr, drop, n0, 2, "mean")
        if pooled is None:
            raise NotImplementedError
        (pooled[0] * gp + pooled[1] * gp).sum().backward()

    node.train()
    for key, fn in (("forward_ms", forward), ("fwd_bwd_ms", forward_backward), ("drop_ms", drop_forward_backward),
                    ("pool_ms", pool_forward_backward)):
        if key in ("drop_ms", "pool_ms") and not hasattr(node, "fire_and_drop"):  # a SpikingJelly node
            row[key] = None
            continue
        try:
            row[key] = _median_ms(fn, args.repeats)
        except NotImplementedError:
            row[key] = None
    return row


def without_src(argv: list[str]) -> list[str]:
    """``argv`` less its ``--src`` option (``--src DIR`` or ``--src=DIR``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--src":
            skip = True
        elif not arg.startswith("--src="):
            out.append(arg)
    return out


def run_other_source(src: str, argv: list[str]) -> int:
    """This script, without ``--src``, in a child process that imports ``spikenet`` from ``src``; its exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(src).resolve()), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *without_src(argv)], env=env).returncode


def main(argv: list[str] | None = None) -> int:
    """Time every neuron of the imported spikenet (another source tree's with ``--src``), print the table."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.src:
        return run_other_source(args.src, argv)
    import torch

    import spikenet.neurons as neurons

    if args.threads:
        torch.set_num_threads(args.threads)
    if hasattr(neurons, "neuron_config"):  # this checkout: $SPIKENET_PLUGINS' neurons are timed too
        from spikenet.registry import load_plugins

        load_plugins()
    names = [n for n in args.neurons.split(",") if n] or list(neurons.NEURONS)
    print(f"spikenet from {Path(neurons.__file__).resolve().parents[1]}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, input [{args.T}, {args.rows}, {args.channels}] "
          f"({args.rows * args.channels} elements per step), surrogate {args.surrogate}, median of {args.repeats}")
    header = f"{'neuron':<14}{'forward':>10}{'fwd+bwd':>10}{'drop fwd+bwd':>14}{'pool fwd+bwd':>14}  path"
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        row = bench_neuron(neurons, name, args)
        rows.append(row)
        cells = [f"{row[k]:>{w}.1f}" if row.get(k) is not None else f"{'-':>{w}}"
                 for k, w in (("forward_ms", 10), ("fwd_bwd_ms", 10), ("drop_ms", 14), ("pool_ms", 14))]
        print(f"{name:<14}{''.join(cells)}  {row.get('path', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
