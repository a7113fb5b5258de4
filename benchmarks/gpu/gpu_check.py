"""One-command GPU check of the CuPy neuron backends (run from the repository root on a CUDA machine).

    python benchmarks/gpu/gpu_check.py [--T 25 --N 4096 --F 128] [--bench-N 65536] [--skip-epoch]

1. Parity, cupy vs torch, for every registered neuron (adaptive_lif, lif, if, plif, blif, plugins') x every
   surrogate on the same random input (same seed, same parameters): spikes identical, max |dV| and |dtheta| <= --tol
   (the kernels are compiled without fused multiply-adds: they round as the torch path does), max |d grad_x| <=
   ``grad_bound`` (T * eps32 * max |grad_x|: it accumulates over T), parameter gradients (PLIF's w, BLIF's tau_raw
   and d_raw) <= ``param_grad_bound`` (from the sum of |terms|, ``param_grad_terms``). References: the generated
   torch path, SpikingJelly's step loop over the node's reference methods and, for lif / if / plif, SpikingJelly's
   own nodes (torch; 0.0.0.0.14: also its CuPy nodes; 2.x: ``neuron.backend=triton``, its own fused node, with the
   sigmoid surrogate, and a line saying its CuPy nodes need 0.0.0.0.14); plus each neuron's autograd Function from
   carried initial states (their gradients too) with and without detach_reset, and the one-neuron-per-thread kernels
   on [T, 1001, 3]. Inputs are multiples of 1/256 (exact in float16), so the adaptive LIF's charge is exact at tau =
   1.
2. fp16 / bf16 rows, counted like the others: the CuPy kernels with float16 storage, and the torch path with
   bfloat16 storage, against the float32 torch path on the same rounded inputs. Both integrate and
   differentiate in float32 and round once when storing, so spikes must be identical and every stored value
   within ``storage_bound`` (u |ref| + T eps32 max |ref|, u = 2^-11 or 2^-8).
3. Forward+backward time of both backends at [--bench-T, --bench-N, --bench-F] (sigmoid surrogate), and of
   SpikingJelly's own fast nodes (CuPy on 0.0.0.0.14, Triton on 2.x) beside this project's CuPy kernels.
4. DBLP epoch seconds per backend and ``trainer.data_device``, from ``benchmarks/speed/epoch_time.py`` (last
   stdout line: JSON with ``epoch_seconds``, the split and peak GPU memory).

``--json PATH`` also writes every figure (parity rows, timings, epochs) to PATH.

Exits 1 if a parity check fails, 2 (with a message, no traceback) when no CUDA device / CuPy is usable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
try:
    import spikenet  # noqa: F401
except ImportError:  # not installed: the GPU machine runs it with PYTHONPATH=<deps>:src (benchmarks/README.md)
    sys.exit("error: cannot import spikenet: `pip install -e .`, or run with PYTHONPATH=<deps>:src")
from spikenet.neurons import NEURONS, neuron_config  # noqa: E402
from spikenet.neurons.sj_compat import (  # noqa: E402
    SJ_SURROGATE_TWINS,
    SJ_VERSION,
    reset_net,
    sj_cupy_available,
    sj_cupy_message,
    sj_node,
)
from spikenet.neurons.tolerances import (  # noqa: E402,F401 - shared with the tests (spikenet/neurons/tolerances.py)
    BF16_UNIT_ROUNDOFF,
    FLOAT32_EPS,
    HALF_SUBNORMAL_ERROR,
    HALF_UNIT_ROUNDOFF,
    compare,
    grad_bound,
    node_states,
    param_grad_bound,
    param_grad_terms,
    plif_weight_terms,
    run_node,
    set_parameters,
    storage_bound,
)
from spikenet.registry import load_plugins  # noqa: E402

load_plugins()  # $SPIKENET_PLUGINS: their neurons are checked too
NEURON_NAMES = NEURONS.names()
"""Every registered neuron (spikenet.neurons.NEURONS)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=25, help="time steps of the parity input")
    p.add_argument("--N", type=int, default=4096, help="batch size of the parity input")
    p.add_argument("--F", type=int, default=128, help="features (channels) of the parity input")
    p.add_argument("--bench-T", type=int, default=25)
    p.add_argument("--bench-N", type=int, default=65536)
    p.add_argument("--bench-F", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10, help="timed forward+backward runs (after one warm-up)")
    p.add_argument("--alpha", type=float, default=1.0, help="surrogate alpha")
    p.add_argument("--adaptive-tau", type=float, default=1.0, help="tau of adaptive_lif (paper: 1.0)")
    p.add_argument("--tau", type=float, default=2.0, help="tau of lif/plif (SpikingJelly needs > 1)")
    p.add_argument("--tol", type=float, default=1e-5, help="max abs difference allowed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--neurons", default=",".join(NEURON_NAMES), help="comma-separated neurons to check")
    p.add_argument("--skip-bench", action="store_true", help="skip the timing table")
    p.add_argument("--skip-epoch", action="store_true", help="skip the DBLP epoch timing")
    p.add_argument("--data-root", default=os.environ.get("SPIKENET_DATA_ROOT", "data"),
                   help="dataset.root for epoch_time.py (a folder holding dblp/)")
    p.add_argument("--data-devices", default="cuda,cpu", help="trainer.data_device values for the epoch table")
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    p.add_argument("--epoch-timeout", type=float, default=300.0, help="seconds per epoch_time.py run")
    return p.parse_args(argv)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line reason and exit (no traceback)."""
    print(f"gpu_check: {message}", file=sys.stderr)
    sys.exit(code)


def check_environment() -> None:
    """Exit with a clear message unless torch sees a CUDA device and CuPy can use it."""
    try:
        import torch
    except Exception as exc:
        fail(f"cannot import torch: {exc}")
    if not torch.cuda.is_available():
        fail("no CUDA device is visible (torch.cuda.is_available() is False); run this on a GPU machine.")
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            fail("CuPy sees no CUDA device.")
    except SystemExit:
        raise
    except Exception as exc:
        fail(f"CuPy is not usable ({type(exc).__name__}: {exc}); install cupy-cuda13x on the GPU machine.")
    from spikenet.neurons import patch_spikingjelly_numpy

    patch_spikingjelly_numpy()  # SpikingJelly's CuPy kernels check arguments with np.int (numpy >= 1.24)


# ------------------------------------------------------------------------------------------------ parity
def neuron_cfg(name: str, args: argparse.Namespace, fused: bool = True, detach_reset: bool = False) -> Any:
    """The ``neuron`` config for ``build_neuron``: conf/neuron/<name>.yaml (a plugin's registered config) with
    --adaptive-tau (adaptive_lif) or --tau (the others that have a tau), ``fused`` and ``detach_reset``."""
    cfg = neuron_config(name, fused=fused, detach_reset=detach_reset)
    if "tau" in cfg:
        cfg.tau = args.adaptive_tau if name == "adaptive_lif" else args.tau
    return cfg


def make_node(name: str, sg_name: str, backend: str, args: argparse.Namespace, fused: bool = True,
              detach_reset: bool = False) -> Any:
    """One multi-step neuron on CUDA (channels: --F), train mode, parameters set by ``set_parameters``."""
    from spikenet.neurons import build_neuron, build_surrogate

    node = build_neuron(neuron_cfg(name, args, fused, detach_reset), build_surrogate(sg_name, args.alpha), backend,
                        args.F)
    set_parameters(node)
    return node.cuda().train()


def triton_node(name: str, sg_name: str, args: argparse.Namespace) -> Any:
    """``neuron.backend=triton`` (SpikingJelly 2.x): SpikingJelly's own node with its twin surrogate."""
    from spikenet.neurons import build_neuron, build_surrogate

    node = build_neuron(neuron_cfg(name, args), build_surrogate(sg_name, args.alpha), "triton", args.F)
    set_parameters(node)
    return node.cuda().train()


def sj_rows(neuron: str, sg_name: str) -> list[str]:
    """SpikingJelly's own fast node for this neuron and surrogate: "cupy" (0.0.0.0.14), "triton" (2.x, twin
    surrogates only), or none."""
    if neuron not in NEURONS.where(sj_node=True):
        return []
    if sj_cupy_available():
        return ["cupy"]
    return ["triton"] if sg_name in SJ_SURROGATE_TWINS else []


def spikingjelly_node(name: str, sg_name: str, args: argparse.Namespace, backend: str = "torch") -> Any:
    """SpikingJelly's own LIFNode / IFNode / ParametricLIFNode (decay_input, hard reset) on its ``backend``."""
    from spikenet.neurons import build_surrogate

    node = sj_node(name, build_surrogate(sg_name, args.alpha), tau=args.tau, backend=backend)
    set_parameters(node)
    return node.cuda().train()


def run_functions(node: Any, x: Any, states0: dict[str, Any], grads: dict[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The node's autograd Functions (cupy vs the torch path) from carried initial states, with their gradients."""
    import torch

    from spikenet.neurons.cupy_kernels import CuPyNeuron
    from spikenet.neurons.functions import FusedNeuron

    names = node_states(node)
    results = []
    for fn in (CuPyNeuron, FusedNeuron):
        xr = x.detach().clone().requires_grad_(True)
        sr = [states0[s].detach().clone().requires_grad_(True) for s in names]
        outs = fn.apply(node.call(), xr, *sr, *node.kernel_params())
        torch.autograd.backward(list(outs), [grads["spikes"], *(grads[s] for s in names)])
        res = {"spikes": outs[0].detach(), "grad_x": xr.grad}
        res.update({s: o.detach() for s, o in zip(names, outs[1:], strict=True)})
        res.update({f"grad_{s}0": r.grad for s, r in zip(names, sr, strict=True)})
        results.append(res)
    return results[0], results[1]


def fmt(v: Any) -> str:
    """Table cell."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2e}"
    return str(v)


def _inputs(shape: tuple[int, ...], seed: int, names: tuple[str, ...] = ("v", "theta")) -> tuple[Any, dict, dict]:
    """x (multiples of 1/256 around 0.25: exact in float16), upstream gradients (float16-exact), initial states."""
    import torch

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(seed)
    x = torch.round(torch.randn(shape, device=dev, generator=gen) * 256.0 + 64.0) / 256.0
    grads = {"spikes": torch.randn(shape, device=dev, generator=gen)}
    grads.update({s: torch.randn(shape[1:], device=dev, generator=gen) for s in names})
    grads = {k: g.half().float() for k, g in grads.items()}  # float16-exact, like x
    states0 = {"v": torch.rand(shape[1:], device=dev, generator=gen) * 0.5,
               "theta": 1.0 + 0.2 * torch.rand(shape[1:], device=dev, generator=gen)}
    return x, grads, states0


def parity(args: argparse.Namespace, results: dict[str, Any]) -> bool:
    """Print the parity table (rows also into ``results['parity']``); True when every check passes."""
    import torch

    from spikenet.neurons import SURROGATES

    neurons = [n for n in args.neurons.split(",") if n]
    x, grads, states0 = _inputs((args.T, args.N, args.F), args.seed)
    header = f"{'neuron':<13}{'torch ref':<17}{'surrogate':<13}{'fired':>7}{'spk diff':>9}" \
             f"{'max|dV|':>10}{'max|dth|':>10}{'max|dgx|':>10}{'gx bound':>10}{'other g':>10}{'g bound':>10}  status"
    print(f"\n== parity: cupy vs torch, input [{args.T}, {args.N}, {args.F}], tol {args.tol:g} ==")
    print(f"SpikingJelly {SJ_VERSION}: " + ("its own CuPy nodes are checked too (rows 'spikingjelly cupy')"
                                          if sj_cupy_available() else f"{sj_cupy_message()}; rows 'sj2 triton': "
                                          f"neuron.backend=triton (surrogate {'/'.join(SJ_SURROGATE_TWINS)})"))
    print(header)
    print("-" * len(header))
    all_ok = True
    rows = results.setdefault("parity", [])

    def report(neuron: str, ref: str, sg_name: str, row: dict[str, Any] | None, err: str | None = None) -> None:
        nonlocal all_ok
        rows.append({"neuron": neuron, "ref": ref, "surrogate": sg_name, "error": err, **(row or {})})
        if row is None:
            print(f"{neuron:<13}{ref:<17}{sg_name:<13}  ERROR {err}")
            all_ok = False
            return
        all_ok = all_ok and row["ok"]
        print(f"{neuron:<13}{ref:<17}{sg_name:<13}{row['fired']:>7.3f}{row['mismatch']:>9}"
              f"{fmt(row['dV']):>10}{fmt(row['dtheta']):>10}{fmt(row['dgrad_x']):>10}{fmt(row['bound_gx']):>10}"
              f"{fmt(row['dgrad_other']):>10}{fmt(row['bound_other']):>10}  {'ok' if row['ok'] else 'FAIL'}")

    def attempt(neuron: str, ref: str, sg_name: str, fn: Any, *fn_args: Any) -> None:
        try:
            report(neuron, ref, sg_name, fn(*fn_args))
        except Exception as exc:  # report and go on
            report(neuron, ref, sg_name, None, f"{type(exc).__name__}: {exc}")
        finally:
            torch.cuda.empty_cache()

    def against(got: dict[str, Any], ref_node: Any, terms: dict[str, Any] | None) -> dict[str, Any]:
        return compare(got, run_node(ref_node, x, grads), args.tol, terms)

    def functions(node: Any) -> dict[str, Any]:
        return compare(*run_functions(node, x, states0, grads), args.tol)

    for neuron in neurons:
        for sg_name in SURROGATES.names():
            cu = make_node(neuron, sg_name, "cupy", args)
            terms = param_grad_terms(make_node(neuron, sg_name, "torch", args), x, grads) if list(
                cu.parameters()) else None
            cupy_out = run_node(cu, x, grads)
            attempt(neuron, "torch fused", sg_name, against, cupy_out, make_node(neuron, sg_name, "torch", args), terms)
            attempt(neuron, "torch loop", sg_name, against, cupy_out,
                    make_node(neuron, sg_name, "torch", args, fused=False), terms)
            if neuron in ("lif", "if", "plif"):
                attempt(neuron, "spikingjelly", sg_name, against, cupy_out, spikingjelly_node(neuron, sg_name, args),
                        terms)
            for sj_backend in sj_rows(neuron, sg_name):
                make = (lambda n=neuron, s=sg_name: spikingjelly_node(n, s, args, "cupy")) if sj_backend == "cupy" \
                    else (lambda n=neuron, s=sg_name: triton_node(n, s, args))
                attempt(neuron, "spikingjelly cupy" if sj_backend == "cupy" else "sj2 triton", sg_name,
                        lambda got, mk=make, t=terms: against(got, mk(), t), cupy_out)
            for detach in (False, True):
                attempt(neuron, f"fn states0{' det' if detach else ''}", sg_name, functions,
                        make_node(neuron, sg_name, "cupy", args, detach_reset=detach))

    # neurons not a multiple of 4: the kernels' one-neuron-per-thread variant (the rows above run four per thread)
    odd_args = argparse.Namespace(**{**vars(args), "F": 3})
    x_odd, grads_odd, _ = _inputs((args.T, 1001, 3), args.seed + 1)

    def odd(neuron: str, sg_name: str) -> dict[str, Any]:
        return compare(run_node(make_node(neuron, sg_name, "cupy", odd_args), x_odd, grads_odd),
                       run_node(make_node(neuron, sg_name, "torch", odd_args), x_odd, grads_odd), args.tol)

    for neuron in neurons:
        for sg_name in ("sigmoid", "arctan"):
            attempt(neuron, "fused [T,1001,3]", sg_name, odd, neuron, sg_name)

    # float16 storage (CuPy) and bfloat16 storage (torch path) against float32 on the same rounded inputs
    def narrow(neuron: str, backend: str, dtype: torch.dtype, u: float, tiny: float) -> dict[str, Any]:
        rounded = {k: g.to(dtype) for k, g in grads.items()}
        ref = run_node(make_node(neuron, "sigmoid", "torch", args), x.to(dtype).float(),
                       {k: g.float() for k, g in rounded.items()})
        got = run_node(make_node(neuron, "sigmoid", backend, args), x.to(dtype), rounded)
        node = make_node(neuron, "sigmoid", "torch", args)
        return compare(got, ref, args.tol, param_grad_terms(node, x, grads) if list(node.parameters()) else None,
                       (u, tiny))

    for neuron in neurons:
        attempt(neuron, "fp16 cupy", "sigmoid", narrow, neuron, "cupy", torch.float16, HALF_UNIT_ROUNDOFF,
                HALF_SUBNORMAL_ERROR)
        attempt(neuron, "bf16 torch", "sigmoid", narrow, neuron, "torch", torch.bfloat16, BF16_UNIT_ROUNDOFF, 0.0)
    return all_ok


# ------------------------------------------------------------------------------------------------ timing
def time_node(node: Any, x: Any, g: Any, repeats: int) -> tuple[float, float]:
    """(median milliseconds of forward + backward after one warm-up, peak MiB allocated during them)."""
    import torch

    times = []
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    for i in range(repeats + 1):
        reset_net(node)
        xr = x.detach().requires_grad_(True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        node(xr).backward(g)
        torch.cuda.synchronize()
        if i > 0:
            times.append((time.perf_counter() - t0) * 1e3)
        del xr
    reset_net(node)
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**20


def bench(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Print forward+backward times (and peak extra GPU memory) of both backends per neuron."""
    import torch

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    shape = (args.bench_T, args.bench_N, args.bench_F)
    x = torch.randn(shape, device=dev, generator=gen) + 0.25
    g = torch.randn(shape, device=dev, generator=gen)
    rows = results.setdefault("bench", [])
    args = argparse.Namespace(**{**vars(args), "F": args.bench_F})  # the neurons' channels: the bench input's
    print(f"\n== forward+backward ms, input {list(shape)}, sigmoid, median of {args.repeats} ==")
    print(f"{'neuron':<22}{'torch ms':>10}{'cupy ms':>10}{'torch/cupy':>12}{'torch MiB':>11}{'cupy MiB':>10}")
    for neuron in NEURON_NAMES:
        # "1/thread": the CuPy kernels with one neuron per thread (SPIKENET_CUPY_VECTOR=0) instead of four
        variants = [("adaptive_lif (fused)", True, True), ("adaptive_lif 1/thread", True, False),
                    ("adaptive_lif (loop)", False, True)] if neuron == "adaptive_lif" else [(neuron, True, True)]
        for label, fused, vector in variants:
            try:
                os.environ["SPIKENET_CUPY_VECTOR"] = "1" if vector else "0"
                t_cu, m_cu = time_node(make_node(neuron, "sigmoid", "cupy", args, fused), x, g, args.repeats)
                os.environ["SPIKENET_CUPY_VECTOR"] = "1"
                torch.cuda.empty_cache()
                t_th, m_th = time_node(make_node(neuron, "sigmoid", "torch", args, fused), x, g, args.repeats)
                rows.append({"neuron": label, "torch_ms": t_th, "cupy_ms": t_cu, "ratio": t_th / t_cu,
                             "torch_peak_mib": m_th, "cupy_peak_mib": m_cu})
                print(f"{label:<22}{t_th:>10.1f}{t_cu:>10.2f}{t_th / t_cu:>12.2f}{m_th:>11.0f}{m_cu:>10.0f}")
            except Exception as exc:
                rows.append({"neuron": label, "error": f"{type(exc).__name__}: {exc}"})
                print(f"{label:<22}  ERROR {type(exc).__name__}: {exc}")
            finally:
                torch.cuda.empty_cache()


def bench_spikingjelly(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Forward+backward times of SpikingJelly's own fast nodes (0.0.0.0.14: CuPy; 2.x: neuron.backend=triton)
    beside this project's CuPy kernels, for the neurons SpikingJelly has (sigmoid surrogate)."""
    import torch

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    shape = (args.bench_T, args.bench_N, args.bench_F)
    x = torch.randn(shape, device=dev, generator=gen) + 0.25
    g = torch.randn(shape, device=dev, generator=gen)
    rows = results.setdefault("bench_spikingjelly", [])
    args = argparse.Namespace(**{**vars(args), "F": args.bench_F})
    print(f"\n== SpikingJelly {SJ_VERSION}'s own nodes: forward+backward ms, input {list(shape)}, sigmoid ==")
    print(f"{'neuron':<22}{'sj ms':>10}{'cupy ms':>10}{'sj/cupy':>10}")
    for neuron in NEURONS.where(sj_node=True):
        for sj_backend in sj_rows(neuron, "sigmoid"):
            label = f"{neuron} (sj {sj_backend})"
            try:
                ref = spikingjelly_node(neuron, "sigmoid", args, "cupy") if sj_backend == "cupy" else triton_node(
                    neuron, "sigmoid", args)
                t_sj, _ = time_node(ref, x, g, args.repeats)
                torch.cuda.empty_cache()
                t_cu, _ = time_node(make_node(neuron, "sigmoid", "cupy", args), x, g, args.repeats)
                rows.append({"neuron": label, "sj_ms": t_sj, "cupy_ms": t_cu, "ratio": t_sj / t_cu})
                print(f"{label:<22}{t_sj:>10.2f}{t_cu:>10.2f}{t_sj / t_cu:>10.2f}")
            except Exception as exc:
                rows.append({"neuron": label, "error": f"{type(exc).__name__}: {exc}"})
                print(f"{label:<22}  ERROR {type(exc).__name__}: {exc}")
            finally:
                torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------- epoch
def run_epoch_time(overrides: list[str], timeout: float, label: str) -> dict[str, Any] | None:
    """Run ``benchmarks/speed/epoch_time.py`` with ``overrides``; its JSON line, or None (after printing why)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "speed" / "epoch_time.py"), *overrides]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {label}: epoch_time.py timed out after {timeout:.0f} s")
        return None
    except OSError as exc:
        print(f"  {label}: cannot run epoch_time.py: {exc}")
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        print(f"  {label}: epoch_time.py failed (exit {proc.returncode}):\n    {tail}")
        return None
    try:
        result = json.loads(lines[-1])
        float(result["epoch_seconds"])
        return result
    except (ValueError, KeyError, TypeError) as exc:
        print(f"  {label}: cannot parse the last stdout line {lines[-1]!r}: {exc}")
        return None


def print_epoch_table(title: str, rows: list[dict[str, Any]]) -> None:
    """One line per run: epoch seconds, its split (GPU-synchronised epoch) and peak GPU memory."""
    phases = ("sample", "gather", "forward", "backward", "evaluate")
    print(f"\n== {title} ==")
    print(f"{'run':<28}{'epoch s':>9}" + "".join(f"{p:>10}" for p in phases) + f"{'peak GPU MiB':>14}")
    for row in rows:
        res = row.get("result")
        if res is None:
            print(f"{row['label']:<28}{'failed':>9}")
            continue
        split = res.get("split", {})
        print(f"{row['label']:<28}{res['epoch_seconds']:>9.3f}"
              + "".join(f"{split.get(p, float('nan')):>10.3f}" for p in phases)
              + f"{res.get('peak_gpu_mb') or float('nan'):>14.0f}")


def epochs(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """DBLP epoch seconds per neuron backend and trainer.data_device."""
    rows = results.setdefault("dblp_epochs", [])
    for dd in [d for d in args.data_devices.split(",") if d]:
        for backend in ("torch", "cupy"):
            label = f"{backend}, data_device={dd}"
            res = run_epoch_time(["dataset=dblp", f"dataset.root={args.data_root}", "device=cuda",
                                  f"neuron.backend={backend}", f"trainer.data_device={dd}"],
                                 args.epoch_timeout, label)
            rows.append({"label": label, "backend": backend, "data_device": dd, "result": res})
    print_epoch_table(f"DBLP epoch seconds (epoch_time.py, dataset.root={args.data_root})", rows)
    for dd in {r["data_device"] for r in rows}:
        t = {r["backend"]: r["result"] for r in rows if r["data_device"] == dd and r["result"]}
        if "torch" in t and "cupy" in t:
            print(f"data_device={dd}: torch/cupy epoch ratio "
                  f"{t['torch']['epoch_seconds'] / t['cupy']['epoch_seconds']:.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run the checks; 0 when all parity checks pass, 1 otherwise."""
    args = parse_args(argv)
    check_environment()
    import torch

    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                               "spikingjelly": SJ_VERSION}
    print(f"device: {results['device']}, torch {torch.__version__}")
    ok = parity(args, results)
    results["parity_ok"] = ok
    if not args.skip_bench:
        bench(args, results)
        bench_spikingjelly(args, results)
    if not args.skip_epoch:
        epochs(args, results)
    print(f"\nparity: {'all passed' if ok else 'FAILED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
