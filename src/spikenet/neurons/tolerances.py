"""What ``benchmarks/gpu/gpu_check.py`` and the tests share: the tolerance bounds two correct float32 (or
float16 / bfloat16 storage) neuron implementations are held to, the comparison that applies them, and the
harness that runs a node forward and backward for it.

The GPU check (CuPy kernels against the torch path on a CUDA device) and the CPU tests (the same bounds on
the torch path, the host-emulated CUDA kernels, and mutations that must fail them) import these from here,
so the bound a test validates is the bound the GPU is held to. Each bound's docstring derives it.
"""

from __future__ import annotations

from typing import Any

import torch

from spikenet.neurons.functions import FusedNeuron
from spikenet.neurons.sj_compat import reset_net

FLOAT32_EPS = 2.0**-23
"""Spacing of float32 numbers at 1 (``torch.finfo(torch.float32).eps``)."""


def grad_bound(ref_grad: Any, steps: int, tol: float) -> float:
    """Largest |d grad_x| between two correct float32 BPTT implementations: max(tol, T * eps32 * max|grad_x|).

    The input gradient is a sum over the T steps after it: dL/dH_t = dL/dS_t * sg'_t + dL/dH_{t+1} *
    dV_t/dH_t * k, with k = 1 - 1/tau. With a leak (LIF, PLIF: k = 1/2 at tau = 2) old terms decay and the
    gradient stays O(1); IF has k = 1 and dV_t/dH_t = 1 - S_t + (v_reset - H_t) sg'_t, which exceeds 1
    wherever H_t < v_reset and the surrogate has mass there, so the gradient grows along T, most for
    heavy-tailed surrogates (arctan > super_spike > sigmoid; multi_gauss and triangle have (almost) none).
    Each backward step rounds the running sum once or twice (an add, a multiply: relative error <= eps/2
    each), and two implementations may round in a different order or compute exp differently, so the two
    results differ by up to ~T * eps times the gradient's magnitude, not by a fixed absolute amount.
    Measured on CPU (T = 25): float32 torch vs a float64 run of IF differs by 1.1e-4 at max |grad_x| = 250
    (arctan), i.e. 4.6e-7 relative, while T * eps = 3.0e-6; the H100's cupy-vs-torch differences (1.4e-4
    arctan, 3.4e-5 super_spike, 1.1e-5 sigmoid) sat 5x under the bound. A wrong gradient (reset term
    dropped, alpha 1 % off, a step missing) is off by >= 1e-3 relative and still fails
    (tests/neurons/test_sj_numpy_fix.py perturbs it on CPU).
    """
    return max(tol, steps * FLOAT32_EPS * float(ref_grad.abs().max()))


HALF_UNIT_ROUNDOFF = 2.0**-11
"""Unit roundoff of float16 (11 significant bits, round to nearest): one rounding's relative error."""
BF16_UNIT_ROUNDOFF = 2.0**-8
"""Unit roundoff of bfloat16 (8 significant bits)."""
HALF_SUBNORMAL_ERROR = 2.0**-25
"""Largest absolute error of rounding to float16 below its normal range (half its spacing 2^-24);
bfloat16 has float32's exponent range, so its equivalent is negligible here."""


def storage_bound(ref: Any, unit_roundoff: float, steps: int, tiny: float = 0.0) -> Any:
    """Elementwise bound on |stored - ref| for a result the kernels compute in float32 and store in a narrower
    format (float16 / bfloat16 storage: the neuron kernels load, integrate and differentiate in float32).

    ``ref``: the float32 reference computed from the same (already rounded) inputs. Two terms: the one
    final rounding to the storage format, u |ref| + tiny (u its unit roundoff, tiny its subnormal error),
    and the float32 differences of two correct implementations that accumulate over the T steps,
    T eps32 max |ref| (``grad_bound``). Nothing is accumulated in the narrow format, so no T u term: a
    kernel that kept a state in half between steps, or read a neighbour's value, exceeds it
    (tests/neurons/test_cuda_kernels.py runs the half kernels and two mutations of them on the host).
    """
    return unit_roundoff * ref.abs() + tiny + steps * FLOAT32_EPS * float(ref.abs().max())


def plif_weight_terms(x: Any, grad_x: Any, w: Any, v_threshold: float, v_reset: float) -> Any:
    """[T, ...] float64: each element's share of dL/dw for SpikingJelly's PLIF (decay_input, hard reset).

    With k = sigmoid(w), H_t = V_{t-1} + (X_t - (V_{t-1} - v_reset)) k, so dL/dX_t = dL/dH_t k and
    dL/dw = sum_t dL/dH_t (X_t - V_{t-1} + v_reset) k (1 - k) = sum_t dL/dX_t (X_t - V_{t-1} + v_reset) (1 - k).
    V_{t-1} comes from a float64 forward pass; ``grad_x`` is a reference input gradient.
    """
    k = torch.sigmoid(w.detach().double())
    xd, g = x.double(), grad_x.double()
    v = torch.full_like(xd[0], 0.0)
    terms = []
    for t in range(xd.shape[0]):
        terms.append(g[t] * (xd[t] - v + v_reset) * (1.0 - k))
        h = v + (xd[t] - (v - v_reset)) * k
        v = torch.where(h >= v_threshold, torch.full_like(h, v_reset), h)
    return torch.stack(terms)


def param_grad_terms(node: Any, x: Any, grads: dict[str, Any]) -> dict[str, Any]:
    """Per element (summed over the steps), each parameter's share of its gradient: float64, the generated
    torch path with every kernel parameter expanded to the state's shape, chained through the node's
    transform (sigmoid) to the raw parameter. Their sum over elements is dL/dparameter; the sum of their
    absolute values sizes ``param_grad_bound``. Keys: ``grad_<raw parameter name>``."""

    names = node_states(node)
    shape = x.shape[1:]
    raw = list(node.named_parameters())
    kernel = node.kernel_params()
    full = [k.detach().double().expand(shape).clone().requires_grad_(True) for k in kernel]
    reset_net(node)
    node._states_to_tensor(x[0].double())  # the states a fresh forward starts from
    states = [getattr(node, s) for s in names]
    reset_net(node)
    outs = FusedNeuron.apply(node.call(), x.double(), *states, *full)
    per_element = torch.autograd.grad(list(outs), full, [grads["spikes"].double(), *(grads[s].double() for s in names)])
    terms = {}
    for (pname, p), k, g in zip(raw, kernel, per_element, strict=True):
        (dk,) = torch.autograd.grad(k.sum(), p, retain_graph=True)  # elementwise transform: its derivative
        terms[f"grad_{pname}"] = g * dk.double()
    return terms


def param_grad_bound(ref_grad: float, terms_abs_sum: float, steps: int, tol: float) -> float:
    """Largest difference, relative to max(|dL/dw|, 1), between two correct float32 parameter gradients.

    dL/dw is a sum over every element and step; with random-signed upstream gradients its terms cancel
    (sum |terms| / |sum| is ~1e3 on gpu_check's input), so the rounding of the two implementations
    (per-element BPTT, ~T * eps each, then sums in different orders) scales with sum |terms|, not with
    |dL/dw|: bound = max(tol, T * eps32 * sum |terms| / max(|dL/dw|, 1)). An error in the parameter's own
    gradient path (a factor of dH/dw, a step left out) moves dL/dw by a sizeable part of |dL/dw| or of
    the terms and still fails (``tests/neurons/test_sj_numpy_fix.py``); the input gradient, compared tightly on
    the same row, guards the shared BPTT.
    """
    return max(tol, steps * FLOAT32_EPS * terms_abs_sum / max(abs(ref_grad), 1.0))


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

def set_parameters(node: Any) -> None:
    """Deterministic parameter values away from the (equal) initial ones, so per-channel gradients differ."""
    with torch.no_grad():
        for p in node.parameters():
            p.copy_(torch.linspace(-0.8, 1.5, p.numel(), device=p.device).view(p.shape))

def node_states(node: Any) -> tuple[str, ...]:
    definition = getattr(node, "definition", None)
    return definition.states if definition is not None else ("v",)


def run_node(node: Any, x: Any, grads: dict[str, Any]) -> dict[str, Any]:
    """Forward + backward of a fresh node; returns outputs (spikes, final states) and gradients (x, parameters)."""

    reset_net(node)
    for p in node.parameters():
        p.grad = None
    xr = x.detach().clone().requires_grad_(True)
    spikes = node(xr)
    out = {"spikes": spikes.detach()}
    loss = (spikes * grads["spikes"]).sum()
    for s in node_states(node):
        out[s] = getattr(node, s).detach().clone()
        loss = loss + (getattr(node, s) * grads[s]).sum()
    loss.backward()
    out["grad_x"] = xr.grad
    for pname, p in node.named_parameters():
        out[f"grad_{pname}"] = p.grad.detach().clone()
    reset_net(node)
    return out
