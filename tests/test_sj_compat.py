"""``spikenet.neurons.sj_compat`` on whichever SpikingJelly is installed (0.0.0.0.14 by default; .ci/sj2 runs this
file on 2.x): the one module that knows the version gives the same nodes, surrogates and reset on both."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT

from spikenet.neurons import build_surrogate
from spikenet.neurons import sj_compat as sj
from spikenet.neurons.nodes import SpikingNode


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
