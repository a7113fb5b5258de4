"""``spikenet.neurons.sj_compat`` on whichever SpikingJelly is installed (0.0.0.0.14 by default; .ci/sj2 runs this
file on 2.x): the one module that knows the version gives the same nodes, surrogates and reset on both."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT

from spikenet.neurons import build_neuron, build_surrogate, neuron_config, resolve_backend
from spikenet.neurons import sj_compat as sj
from spikenet.neurons.nodes import SpikingNode
from spikenet.neurons.sj_compat import reset_net


def test_version_is_detected():
    assert importlib.metadata.version("spikingjelly") == sj.SJ_VERSION
    assert sj.SJ_VERSION.startswith("2.") == sj.SJ2
    assert sj.SJ_VERSION == sj.SJ_CUPY_VERSION or sj.SJ2, f"unsupported SpikingJelly {sj.SJ_VERSION}"


def test_only_sj_compat_imports_spikingjelly():
    """Everything under src/ reaches SpikingJelly through sj_compat (tests may import it to compare)."""
    offenders = []
    for path in (PROJECT_ROOT / "src").rglob("*.py"):
        if path.name == "sj_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "spikingjelly" for n in names):
                offenders.append(f"{Path(path).relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize("spiking", [True, False])
def test_surrogate_constructor_and_attributes(spiking):
    sg = build_surrogate("sigmoid", 2.5)
    assert isinstance(sg, sj.SurrogateBase) and sg.alpha == 2.5 and sg.spiking
    x = torch.linspace(-1, 1, 7, requires_grad=True)
    type(sg)(alpha=2.5, spiking=spiking)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_nodes_are_spikingjelly_step_nodes_with_memories():
    from spikenet.neurons.nodes import LIFNode

    node = LIFNode(tau=2.0, v_reset=0.1, surrogate_function=build_surrogate("arctan", 2.0))
    assert isinstance(node, sj.StepNode) and isinstance(node, SpikingNode)
    assert node.backend == "torch" and node.step_mode == "m" and "backend=torch" in repr(node)
    node(torch.randn(3, 2, 4))
    assert isinstance(node.v, torch.Tensor)
    sj.reset_net(torch.nn.Sequential(node))
    assert node.v == 0.1


def test_spikingjelly_cupy_nodes_are_reported_with_the_version_that_has_them():
    if sj.sj_cupy_available():
        assert not sj.SJ2 and "cupy" in sj.SJ_MULTI_STEP_BACKENDS
        sj.require_sj_cupy()
        return
    with pytest.raises(RuntimeError, match=r"spikingjelly==0\.0\.0\.0\.14") as err:
        sj.require_sj_cupy()
    assert "\n" not in str(err.value) and sj.SJ_VERSION in str(err.value)
    with pytest.raises(RuntimeError, match="0.0.0.0.14"):
        sj.sj_node("lif", build_surrogate("sigmoid", 1.0), backend="cupy")


@pytest.mark.parametrize("name", ["lif", "if", "plif"])
def test_spikingjelly_own_nodes_build_on_torch(name):
    node = sj.sj_node(name, build_surrogate("sigmoid", 1.0), tau=1.5)
    out = node(torch.randn(4, 3, 2))
    assert out.shape == (4, 3, 2) and set(out.unique().tolist()) <= {0.0, 1.0}


def test_numpy_patch_is_a_no_op_on_spikingjelly_2():
    if sj.SJ2:
        assert sj.patch_spikingjelly_numpy() is False


# ------------------------------------------------ neuron.backend=triton: SpikingJelly 2.x's own fused nodes
def _run(node, x, g):
    reset_net(torch.nn.Sequential(node))
    xr = x.clone().requires_grad_(True)
    out = node(xr)
    loss = (out * g).sum() + node.v.sum()
    grads = torch.autograd.grad(loss, [xr, *node.parameters()])
    return out.detach(), node.v.detach(), grads


@pytest.mark.parametrize("name", ["lif", "if", "plif"])
def test_triton_backend_is_spikingjelly_2s_own_node_with_the_same_dynamics(name):
    """On 2.x, ``neuron.backend=triton`` builds SpikingJelly's own node with its twin of our sigmoid (on CUDA its
    fused operator runs it, Triton where installed; here on CPU its torch reference): same spikes, same V and
    gradients within float32 rounding as this project's node. On 0.0.0.0.14: a one-line error."""
    sg = build_surrogate("sigmoid", 2.0)
    cfg = neuron_config(name, v_reset=0.1, v_threshold=0.9)
    if not sj.SJ2:
        with pytest.raises(ValueError, match="needs SpikingJelly 2.x"):
            build_neuron(cfg, sg, "triton")
        with pytest.raises(ValueError, match="needs SpikingJelly 2.x"):
            resolve_backend("triton", torch.device("cpu"))
        return
    theirs = build_neuron(cfg, sg, "triton")
    assert not isinstance(theirs, SpikingNode) and isinstance(theirs, sj.sj_neuron.BaseNode)
    assert type(theirs.surrogate_function).__module__.startswith("spikingjelly")
    ours = build_neuron(cfg, sg, "torch")
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(12, 6, 8, generator=gen) * 0.8 + 0.4
    g = torch.randn(x.shape, generator=gen)
    a, b = _run(theirs, x, g), _run(ours, x, g)
    assert torch.equal(a[0], b[0]) and 0 < a[0].sum() < a[0].numel()
    torch.testing.assert_close(a[1], b[1], rtol=1e-6, atol=1e-6)
    for ga, gb in zip(a[2], b[2], strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="device=cuda"):
        resolve_backend("triton", torch.device("cpu"))


if sj.SJ2:  # defined on 2.x only (CI=true fails skips); 0.0.0.0.14 refuses backend=triton first (test above)
    def test_triton_backend_refuses_what_spikingjelly_does_not_have():
        with pytest.raises(ValueError, match="neuron=blif has none"):
            build_neuron(neuron_config("blif"), build_surrogate("sigmoid", 1.0), "triton", channels=4)
        with pytest.raises(ValueError, match="'arctan' has no twin"):
            build_neuron(neuron_config("lif"), build_surrogate("arctan", 1.0), "triton")


# ------------------------------------------------ benchmarks/gpu/gpu_check.py: imports and CPU parts on both versions
def test_gpu_check_imports_and_its_cpu_parts_run():
    """gpu_check checks every registered neuron from its conf/neuron/<name>.yaml (the tau flags applied) and,
    for lif / if / plif, SpikingJelly's own fast node of the installed version (0.0.0.0.14: CuPy; 2.x: triton
    with the sigmoid twin); without CUDA it exits 2 with one line."""
    import argparse

    from conftest import load_benchmark

    from spikenet.neurons import NEURONS

    gc = load_benchmark("gpu/gpu_check")
    assert tuple(gc.NEURON_NAMES) == NEURONS.names()
    args = gc.parse_args([])
    assert args.neurons.split(",") == list(NEURONS.names())
    for name in NEURONS.names():
        cfg = gc.neuron_cfg(name, args, fused=False, detach_reset=True)
        assert cfg.name == name and cfg.fused is False and cfg.detach_reset is True
        if "tau" in cfg:
            assert cfg.tau == (args.adaptive_tau if name == "adaptive_lif" else args.tau)
        node = build_neuron(cfg, build_surrogate("sigmoid", 1.0), "torch", args.F)
        gc.set_parameters(node)
        x = torch.rand(3, 4, args.F)
        grads = {"spikes": torch.randn(3, 4, args.F), **{s: torch.randn(4, args.F) for s in gc.node_states(node)}}
        out = gc.run_node(node, x, grads)
        assert gc.compare(out, out, 1e-5)["ok"]
        assert gc.sj_rows(name, "sigmoid") == ([] if name not in ("lif", "if", "plif")
                                               else ["triton"] if sj.SJ2 else ["cupy"])
    assert gc.sj_rows("lif", "arctan") == ([] if sj.SJ2 else ["cupy"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as err:
            gc.main(["--skip-bench", "--skip-epoch"])
        assert err.value.code == 2
    assert isinstance(gc.parse_args(["--neurons", "lif"]), argparse.Namespace)
