"""Neurons and surrogates register themselves (``spikenet.registry``): everything that enumerates them reads the
registries, the static W&B sweep files are checked against them, and a plugin's neuron is picked up by the
parity tests without editing them."""

from __future__ import annotations

import os
import sys
import textwrap

import processes
import pytest
import yaml
from conftest import PROJECT_ROOT
from omegaconf import OmegaConf

from spikenet.neurons import NEURONS, SURROGATES, DefinedNode, build_neuron, build_surrogate, node_class
from spikenet.neurons.nodes import SpikingNode


def test_every_registered_neuron_has_a_node_class_that_builds_it_from_its_config():
    for name in NEURONS.names():
        cls = node_class(name)
        assert issubclass(cls, SpikingNode), name
        assert cls is DefinedNode or cls.definition is NEURONS.get(name), name


def test_unknown_names_raise_one_line_naming_the_choices():
    with pytest.raises(ValueError, match="neuron.name: unknown neuron 'nope'") as err:
        build_neuron(OmegaConf.create({"name": "nope", "v_threshold": 1.0, "v_reset": 0.0}),
                     build_surrogate("sigmoid", 1.0), "torch")
    assert "\n" not in str(err.value) and all(n in str(err.value) for n in NEURONS.names())
    with pytest.raises(ValueError, match="surrogate.name: unknown surrogate 'nope'"):
        build_surrogate("nope", 1.0)


@pytest.mark.parametrize("group,registry", [("neuron", NEURONS), ("surrogate", SURROGATES)])
def test_wandb_sweep_files_list_every_registered_part(group, registry):
    """W&B sweep YAML is static (the agent reads the file, no Hydra glob): sweeps/<group>.yaml must list every
    registered part that has a config file (plugins with only a registered config cannot be swept by name)."""
    values = yaml.safe_load((PROJECT_ROOT / "sweeps" / f"{group}.yaml").read_text())["parameters"][group]["values"]
    expected = set(registry.where(config=None))
    assert not expected - set(values), f"sweeps/{group}.yaml: add {sorted(expected - set(values))} to its values"
    assert not set(values) - set(registry), f"sweeps/{group}.yaml: {sorted(set(values) - set(registry))} unknown"


PLUGIN = '''
from spikenet.neurons import NeuronDef, define


def _leaky_if(n):
    h = n.v * n.decay + n.x
    s = n.fire(h - n.v_threshold)
    r = n.reset(s)
    return n.step(s, v=(1.0 - r) * h + r * n.v_reset)


define(NeuronDef("plugin_leaky_if", states=("v",), constants=("decay", "v_reset", "v_threshold"), params=(),
                 step_fn=_leaky_if, initial=(("v", "v_reset"),)),
       config=dict(decay=0.7, v_threshold=1.0, v_reset=0.0, detach_reset=False, backend="auto", fused=True))
'''


@pytest.mark.timeout(600)
def test_a_plugin_neuron_is_picked_up_by_the_parity_tests(tmp_path):
    """A module named in $SPIKENET_PLUGINS registers a neuron; tests/conftest.py imports it before collection,
    so the parity tests (generated paths against the step loop, every surrogate, forward and backward; the
    CUDA sources) run it without any edit, and pass."""
    (tmp_path / "my_neurons.py").write_text(textwrap.dedent(PLUGIN))
    env = {**os.environ, "SPIKENET_PLUGINS": "my_neurons",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT / "src")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "plugin_leaky_if",
           "tests/neurons/test_neuron_definitions.py::test_generated_paths_match_the_step_loop",
           "tests/neurons/test_neuron_definitions.py::test_bptt_gradients_match_finite_differences"]
    out = processes.run(cmd, cwd=PROJECT_ROOT, env=env, timeout=540)
    assert out.returncode == 0, out.explain()
    n_surrogates = len(SURROGATES)
    assert f"{2 * n_surrogates + 4} passed" in out.stdout, out.stdout[-2000:]


# --- spikenet.registry itself ---------------------------------------------------------------------------------
def test_a_registry_registers_once_lists_in_order_and_names_the_choices():
    from spikenet.registry import Registry

    things = Registry("thing", "group.name")

    @things.register("a", spiking=True)
    class A:
        pass

    @things.register("b")
    def b():
        return 1

    assert things.names() == ("a", "b") and "a" in things and len(things) == 2
    assert things.get("a") is A and things.entry("a")["spiking"] is True and things.where(spiking=True) == ("a",)
    with pytest.raises(ValueError) as err:
        things.get("c")
    assert str(err.value).startswith("group.name: unknown thing 'c'; choose one of a, b")
    things.add("a", A)  # the same class again (a module imported twice): kept, not an error

    class Other:
        pass

    Other.__qualname__ = "Elsewhere"
    with pytest.raises(ValueError, match="registered twice"):
        things.add("a", Other)


def test_plugins_load_from_the_key_and_the_environment_once_each(tmp_path, monkeypatch):
    import spikenet.registry as registry
    from spikenet.registry import PluginError, load_plugins, plugin_config_dirs, plugin_modules

    monkeypatch.setattr(registry, "_LOADED", dict(registry._LOADED))  # these plugins are forgotten afterwards
    (tmp_path / "lab_one.py").write_text("LOADED = True\n")
    (tmp_path / "lab_two").mkdir()
    (tmp_path / "lab_two" / "__init__.py").write_text("")
    (tmp_path / "lab_two" / "conf" / "model").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SPIKENET_PLUGINS", "lab_two, lab_one")
    assert plugin_modules(["lab_one"]) == ["lab_one", "lab_two"]
    modules = load_plugins(["lab_one"])
    assert [m.__name__ for m in modules] == ["lab_one", "lab_two"]
    assert plugin_config_dirs(modules) == [(tmp_path / "lab_two" / "conf").resolve()]
    monkeypatch.delenv("SPIKENET_PLUGINS")
    with pytest.raises(PluginError) as err:
        load_plugins(["lab_three"])
    assert str(err.value) == "plugins: cannot import 'lab_three': no module named 'lab_three' (is its folder on " \
                             "PYTHONPATH?)"
