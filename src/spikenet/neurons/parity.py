"""One neuron against another implementation of it: a config and deterministic parameters for both, one
forward + backward from the same input and upstream gradients, and the comparison of spikes, states and
gradients within the bounds of ``spikenet.neurons.tolerances``. ``benchmarks/gpu/gpu_check.py`` runs it on a
GPU (CuPy against torch, SpikingJelly, float16 / bfloat16 storage); ``tests/test_sj_numpy_fix.py`` on the CPU.
"""

from __future__ import annotations

import argparse
from typing import Any

from spikenet.neurons.tolerances import _states, grad_bound, param_grad_bound, storage_bound


def neuron_cfg(name: str, args: argparse.Namespace, fused: bool = True, detach_reset: bool = False) -> Any:
    """The ``neuron`` config group for ``build_neuron``."""
    from omegaconf import OmegaConf

    tau = args.adaptive_tau if name == "adaptive_lif" else args.tau
    return OmegaConf.create(
        dict(name=name, tau=tau, v_threshold=1.0, v_reset=0.0, thresh_decay=0.7, gamma=0.2, tau_raw=1.0, d_raw=1.0,
             detach_reset=detach_reset, fused=fused)
    )


def set_parameters(node: Any) -> None:
    """Deterministic parameter values away from the (equal) initial ones, so per-channel gradients differ."""
    import torch

    with torch.no_grad():
        for p in node.parameters():
            p.copy_(torch.linspace(-0.8, 1.5, p.numel(), device=p.device).view(p.shape))


def run_node(node: Any, x: Any, grads: dict[str, Any]) -> dict[str, Any]:
    """Forward + backward of a fresh node; returns outputs (spikes, final states) and gradients (x, parameters)."""
    from spikingjelly.activation_based import functional

    functional.reset_net(node)
    for p in node.parameters():
        p.grad = None
    xr = x.detach().clone().requires_grad_(True)
    spikes = node(xr)
    out = {"spikes": spikes.detach()}
    loss = (spikes * grads["spikes"]).sum()
    for s in _states(node):
        out[s] = getattr(node, s).detach().clone()
        loss = loss + (getattr(node, s) * grads[s]).sum()
    loss.backward()
    out["grad_x"] = xr.grad
    for pname, p in node.named_parameters():
        out[f"grad_{pname}"] = p.grad.detach().clone()
    functional.reset_net(node)
    return out


def compare(a: dict[str, Any], b: dict[str, Any], tol: float, param_terms: dict[str, Any] | None = None,
            storage: tuple[float, float] | None = None) -> dict[str, Any]:
    """Spike mismatches and the largest differences of the shared entries (``b`` is the reference).

    float32 rows: states and initial-state gradients <= ``tol``, grad_x <= ``grad_bound``, parameter
    gradients (relative to max(|ref|, 1)) <= ``param_grad_bound`` from ``param_terms`` (else ``tol``).
    ``storage`` = (unit roundoff, subnormal error): a float16 / bfloat16 row, where the states and grad_x
    are held elementwise to ``storage_bound`` (reported: the largest difference and the bound there).
    """
    steps = b["spikes"].shape[0]
    row: dict[str, Any] = {"mismatch": int((a["spikes"] != b["spikes"]).float().sum().item())}
    checks: list[bool] = [row["mismatch"] == 0]

    def diff(key: str, fixed: float | None) -> tuple[float, float]:
        d = (a[key].float() - b[key].float()).abs()
        if storage is None:
            bound = fixed if fixed is not None else tol
            checks.append(float(d.max()) <= bound)
            return float(d.max()), bound
        bound_t = storage_bound(b[key].float(), storage[0], steps, storage[1])
        excess = d - bound_t
        k = int(excess.flatten().argmax())
        checks.append(bool((excess <= 0).all()))
        return float(d.flatten()[k]), float(bound_t.flatten()[k])

    row["dV"] = diff("v", None)[0]
    row["dtheta"] = diff("theta", None)[0] if "theta" in a and "theta" in b else None
    row["dgrad_x"], row["bound_gx"] = diff("grad_x", grad_bound(b["grad_x"], steps, tol))
    other, bounds = [], []
    for k in sorted(a):
        if not k.startswith("grad_") or k == "grad_x" or k not in b:
            continue
        ref = float(b[k].abs().max())
        if param_terms is not None and k in param_terms:
            d = float((a[k] - b[k]).abs().max()) / max(ref, 1.0)
            bd = param_grad_bound(ref, float(param_terms[k].abs().sum()), steps, tol)
        elif k.endswith("0"):  # an initial state's gradient: it accumulates over T like grad_x
            d, bd = float((a[k] - b[k]).abs().max()), grad_bound(b[k], steps, tol)
        else:
            d, bd = float((a[k] - b[k]).abs().max()) / max(ref, 1.0), tol
        other.append(d)
        bounds.append(bd)
        checks.append(d <= bd)
    row["dgrad_other"] = max(other) if other else None
    row["bound_other"] = max(bounds) if bounds else None
    row["ok"] = all(checks)
    row["fired"] = b["spikes"].float().mean().item()
    return row
