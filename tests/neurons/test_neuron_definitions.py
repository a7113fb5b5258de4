"""Every neuron defined once (``definitions.py``): its generated torch path and compiled CPU kernel against its
SpikingJelly-style step loop (and SpikingJelly's own nodes, and SiGNN's BLIF as the official code computes it),
forward and backward, for every surrogate; gradients against float64 finite differences; the expression
machinery itself; the kernel's build hygiene; ``neuron=blif`` and ``surrogate=multi_gauss`` in training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY_OVERRIDES, compose_config
from omegaconf import OmegaConf

from spikenet.neurons import NEURONS, build_neuron, build_surrogate, cpu_kernel, neuron_config, node_class
from spikenet.neurons import expr as E
from spikenet.neurons.definitions import NeuronDef, Param
from spikenet.neurons.sj_compat import reset_net, sj_neuron
from spikenet.neurons.surrogates import SURROGATES, Sigmoid

SURROGATE_NAMES = SURROGATES.names()
EPS32 = 2.0**-23
ALPHAS = {"sigmoid": 1.0, "triangle": 1.0, "arctan": 10.0, "super_spike": 10.0, "multi_gauss": 0.5}
NODE_KW = {  # per neuron: a configuration with a leak / reset / threshold that is not the trivial one
    "adaptive_lif": dict(tau=1.5, v_reset=0.1, thresh_decay=0.6, gamma=0.3),
    "lif": dict(tau=1.8, v_reset=-0.1, v_threshold=0.9),
    "if": dict(v_reset=0.05, v_threshold=1.1),
    "plif": dict(init_tau=1.6, v_reset=0.1, v_threshold=0.8),
    "blif": dict(v_reset=0.1, v_threshold=0.7),
}
T, ROWS, C = 10, 12, 8


def _node(name: str, sg, mode: str, dtype=torch.float32, **kw):
    """A neuron on the compiled kernel ("kernel"), the generated torch path ("torch") or the step loop ("loop")."""
    if name in NODE_KW:
        args = {**NODE_KW[name], **kw, **({"channels": C} if name == "blif" else {})}
        node = node_class(name)(surrogate_function=sg, fused=mode != "loop", **args).to(dtype)
    else:  # a registered neuron without hand-picked values (a plugin's): its default config
        node = build_neuron(neuron_config(name, fused=mode != "loop", **kw), sg, "torch", channels=C).to(dtype)
    node.cpu_kernel = mode == "kernel"
    with torch.no_grad():  # parameters away from their (equal) initial values
        for p in node.parameters():
            p.copy_(torch.linspace(-0.8, 1.5, p.numel()).view(p.shape))
    return node


def _run(node, x, states, weights):
    """One multi-step call from the given initial states: outputs, final states and every gradient (input,
    initial states, parameters) of a loss weighting each output."""
    xr = x.clone().requires_grad_(True)
    sr = [s.clone().requires_grad_(True) for s in states]
    for name, s in zip(node.definition.states, sr, strict=True):
        setattr(node, name, s)
    spikes = node(xr)
    finals = [getattr(node, s) for s in node.definition.states]
    loss = (spikes * weights[0]).sum() + sum((f * w).sum() for f, w in zip(finals, weights[1:], strict=False))
    grads = torch.autograd.grad(loss, [xr, *sr, *node.parameters()])
    return spikes.detach(), [f.detach() for f in finals], grads, type(spikes.grad_fn).__name__


def _data(name: str, seed: int = 11):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, ROWS, C, generator=gen) * 0.9 + 0.5
    states = [torch.rand(ROWS, C, generator=gen) * 0.6 - 0.1, 0.6 + 0.5 * torch.rand(ROWS, C, generator=gen)]
    states = states[: len(NEURONS.get(name).states)]
    weights = [torch.randn(T, ROWS, C, generator=gen)] + [torch.randn(ROWS, C, generator=gen) for _ in states]
    return x, states, weights


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("sg", SURROGATE_NAMES)
@pytest.mark.parametrize("name", NEURONS.names())
def test_generated_paths_match_the_step_loop(name, sg, detach):
    """Torch path and CPU kernel vs the node's own step-by-step reference, from carried (non-rest) states:
    spikes equal; final states equal bit for bit (the adaptive LIF's loop writes its charge as
    V + (X - (V - v_reset)) / tau, the generated code as (X + v_reset) / tau + (1 - 1/tau) V: bound 8 eps32 of
    the magnitudes involved); every gradient to float32 rounding over T steps."""
    assert cpu_kernel.available(name), cpu_kernel.status(name)
    surrogate = build_surrogate(sg, ALPHAS[sg])
    x, states, weights = _data(name)
    loop = _run(_node(name, surrogate, "loop", detach_reset=detach), x, states, weights)
    assert 0.05 < loop[0].mean().item() < 0.95, "inputs should make neurons both fire and stay silent"
    for mode, fn in (("kernel", "KernelNeuronBackward"), ("torch", "FusedNeuronBackward")):
        got = _run(_node(name, surrogate, mode, detach_reset=detach), x, states, weights)
        assert got[3] == fn, f"{mode} did not run"
        assert torch.equal(got[0], loop[0]), mode
        for a, b in zip(got[1], loop[1], strict=True):
            if name == "adaptive_lif":
                bound = 8 * EPS32 * (x.abs().max() + b.abs().max() + 1.0)
                assert (a - b).abs().max() <= bound, mode
            else:
                assert torch.equal(a, b), mode
        for g, ref in zip(got[2], loop[2], strict=True):
            assert ref.abs().max() > 0 or g.abs().max() == 0
            scale = ref.abs().max().item()
            torch.testing.assert_close(g, ref, rtol=1e-5, atol=max(1e-6, T * 4 * EPS32 * scale * ROWS))


@pytest.mark.parametrize("sg", ["sigmoid", "arctan"])
@pytest.mark.parametrize("name", ["lif", "if", "plif"])
def test_lif_if_plif_match_spikingjelly_nodes(name, sg):
    """Same dynamics as SpikingJelly's LIFNode(decay_input=True) / IFNode / ParametricLIFNode with a hard reset:
    SpikingJelly's own step loop gives the same spikes and final V bit for bit, and the same gradients."""
    surrogate = build_surrogate(sg, ALPHAS[sg])
    common = dict(v_threshold=0.9, v_reset=0.1, surrogate_function=surrogate, step_mode="m", detach_reset=False)
    theirs = {"lif": lambda: sj_neuron.LIFNode(tau=1.8, decay_input=True, **common),
              "if": lambda: sj_neuron.IFNode(**common),
              "plif": lambda: sj_neuron.ParametricLIFNode(init_tau=1.8, decay_input=True, **common)}[name]()
    ours_kw = {"lif": dict(tau=1.8), "if": {}, "plif": dict(init_tau=1.8)}[name]
    x, _, weights = _data(name, seed=4)
    results = []
    for mode in ("theirs", "kernel", "torch"):
        node = theirs if mode == "theirs" else node_class(name)(surrogate_function=surrogate, v_threshold=0.9,
                                                           v_reset=0.1, **ours_kw)
        if mode != "theirs":
            node.cpu_kernel = mode == "kernel"
        reset_net(node)
        xr = x.clone().requires_grad_(True)
        spikes = node(xr)
        loss = (spikes * weights[0]).sum() + (node.v * weights[1]).sum()
        grads = torch.autograd.grad(loss, [xr, *node.parameters()])
        results.append((spikes.detach(), node.v.detach(), grads))
    ref = results[0]
    assert 0 < ref[0].sum() < ref[0].numel()
    for got in results[1:]:
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        for g, r in zip(got[2], ref[2], strict=True):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------- BLIF
def _official_blif(x, k, c, v_threshold, v_reset, alpha, strict_fire):
    """SiGNN's BLIF step loop as its official code computes it (src/neuron.py), with the arctan surrogate
    1 / (1 + alpha x^2) on both crossings; written here independently of the package."""

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            ctx.save_for_backward(z)
            return z.gt(0).float() if strict_fire else z.ge(0).float()

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g / (1 + alpha * z * z)

    v, th, out = 0.0, v_threshold, []
    for dv in x:
        v = v - (v - v_reset) * k + (1 - k) * dv
        spike = Spike.apply(v - th) + Spike.apply(-th - v)
        v = (1 - spike) * v + spike * v_reset
        th = th * c + (1 - c) * spike
        out.append(spike)
    return torch.stack(out), v, th


@pytest.mark.parametrize("mode", ["kernel", "torch", "loop"])
def test_blif_matches_the_official_update(mode):
    """Spikes on both crossings, V from 0 (not v_reset), theta from v_threshold, gradients into tau_raw and
    d_raw (reduced over rows and steps) and through V, theta and the reset: as SiGNN's code."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(T, ROWS, C, generator=gen) * 1.5
    w_out = torch.randn(T, ROWS, C, generator=gen)
    node = _node("blif", build_surrogate("arctan", 1.0), mode)
    reset_net(node)
    xr = x.clone().requires_grad_(True)
    spikes = node(xr)
    loss = (spikes * w_out).sum() + node.v.sum() + node.theta.sum()
    g_ours = torch.autograd.grad(loss, [xr, node.tau_raw, node.d_raw])
    tau_raw, d_raw = (p.detach().clone().requires_grad_(True) for p in (node.tau_raw, node.d_raw))
    xr2 = x.clone().requires_grad_(True)
    ref, v, th = _official_blif(xr2, tau_raw.sigmoid(), d_raw.sigmoid(), 0.7, 0.1, 1.0, strict_fire=True)
    g_ref = torch.autograd.grad((ref * w_out).sum() + v.sum() + th.sum(), [xr2, tau_raw, d_raw])
    assert torch.equal(spikes, ref)
    assert ((spikes == 1) & (node.v == 0.1)).any()  # reset to v_reset; V itself started at 0
    for g, r in zip(g_ours, g_ref, strict=True):
        assert r.abs().max() > 0
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    assert g_ours[1].shape == g_ours[2].shape == (C,)


def test_blif_fires_on_negative_crossings_with_strict_comparisons():
    """Hand-computed, one channel, k = c = sigmoid(0) = 1/2, v_threshold 1, v_reset 0, V_0 = 0:
        X=3:    H = 0 - 0/2 + 3/2 = 1.5  > 1         -> S=1, V=0,   th = 1/2 + 1/2 = 1.0
        X=-5:   H = -2.5, -1 - (-2.5) = 1.5 > 0       -> S=1 (negative crossing), V=0, th = 1.0
        X=2:    H = 1.0, 1.0 - 1.0 = 0: not > 0       -> S=0 (strict), V=1.0, th = 0.5
        X=-3:   H = 1/2 - 3/2 = -1.0, -0.5 + 1 = 0.5  -> S=1, V=0, th = 0.25 + 0.5 = 0.75
    """
    node = node_class("blif")(channels=1, tau_raw=0.0, d_raw=0.0, v_threshold=1.0, v_reset=0.0,
                         surrogate_function=build_surrogate("arctan", 1.0))
    for mode in ("kernel", "torch", "loop"):
        node.fused, node.cpu_kernel = mode != "loop", mode == "kernel"
        reset_net(node)
        x = torch.tensor([3.0, -5.0, 2.0, -3.0]).view(4, 1, 1)
        assert node(x).flatten().tolist() == [1.0, 1.0, 0.0, 1.0], mode
        assert node.v.item() == 0.0 and node.theta.item() == 0.75, mode
    with pytest.raises(ValueError, match="channels"):
        node(torch.zeros(2, 1, 3))
    cfg = OmegaConf.create(dict(name="blif", v_threshold=1.0, v_reset=0.0, tau_raw=1.0, d_raw=1.0))
    with pytest.raises(ValueError, match="channels"):
        build_neuron(cfg, build_surrogate("arctan", 1.0), "torch")
    built = build_neuron(cfg, build_surrogate("arctan", 1.0), "torch", channels=5)
    assert [n for n, _ in built.named_parameters()] == ["tau_raw", "d_raw"]
    assert built.tau_raw.tolist() == [1.0] * 5 == built.d_raw.tolist()


# ---------------------------------------------------------------- surrogate gradients vs finite differences
class _FrozenSpikes(torch.nn.Module):
    """A smooth stand-in for the spike function, for finite differences: at the base point it records each call's
    argument z_b; afterwards it returns step(z_b) + P(z) - P(z_b) with P the surrogate's primitive. Its value
    at the base point is the spike, its derivative P'(z) is the surrogate's: the surrogate gradient of the
    network is the exact gradient of the network built from it."""

    def __init__(self, cls, alpha: float) -> None:
        super().__init__()
        self.cls, self.alpha, self.base, self.calls, self.recording = cls, alpha, [], 0, True

    def _spike(self, z: torch.Tensor, strict: bool) -> torch.Tensor:
        if self.recording:
            self.base.append(z.detach().clone())
        zb = self.base[self.calls]
        self.calls += 1
        step = (zb > 0) if strict else (zb >= 0)
        prim = self.cls.primitive_function
        return step.to(z.dtype) + (prim(z, self.alpha) - prim(zb, self.alpha))  # exactly the step at z_b

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._spike(z, False)

    def strict(self, z: torch.Tensor) -> torch.Tensor:
        return self._spike(z, True)


def _flat_inputs(node, x, states):
    return torch.cat([x.flatten(), *(s.flatten() for s in states), *(p.detach().flatten() for p in node.parameters())])


@pytest.mark.parametrize("sg", ["sigmoid", "arctan", "multi_gauss", "super_spike"])
@pytest.mark.parametrize("name", NEURONS.names())
def test_bptt_gradients_match_finite_differences(name, sg):
    """dL/dX, dL/d(initial states) and dL/dparameters of the torch path (float64) and the CPU kernel (float32)
    against central differences of the frozen-spike network in float64 (the node's step loop)."""
    Tn, rows = 6, 2
    shape = (Tn, rows, C)
    alpha = {"sigmoid": 1.5, "arctan": 2.0, "multi_gauss": 0.7, "super_spike": 2.0}[sg]
    for seed in range(40):  # the first draw with no spike argument within 1e-3 of 0 (float32 would flip it)
        gen = torch.Generator().manual_seed(seed)
        x = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.8 + 0.5)
        states = [torch.rand(rows, C, generator=gen, dtype=torch.float64) * 0.6 - 0.1,
                  0.6 + 0.5 * torch.rand(rows, C, generator=gen, dtype=torch.float64)]
        states = states[: len(NEURONS.get(name).states)]
        weights = [torch.randn(*shape, generator=gen, dtype=torch.float64)] + [
            torch.randn(rows, C, generator=gen, dtype=torch.float64) for _ in states]
        frozen = _FrozenSpikes(SURROGATES.get(sg), alpha)
        ref_node = _node(name, frozen, "loop", torch.float64)
        spikes = _run(ref_node, x, states, weights)[0]
        if min(float(z.abs().min()) for z in frozen.base) > 1e-3:
            break
    assert 0 < spikes.sum() < spikes.numel()
    frozen.recording = False
    base = _flat_inputs(ref_node, x, states)
    sizes = [x.numel(), *(s.numel() for s in states), *(p.numel() for p in ref_node.parameters())]

    def loss_at(flat: torch.Tensor) -> float:
        parts = list(torch.split(flat, sizes))
        xs, ss, ps = parts[0].view(shape), parts[1:1 + len(states)], parts[1 + len(states):]
        with torch.no_grad():
            for p, v in zip(ref_node.parameters(), ps, strict=True):
                p.copy_(v.view(p.shape))
            for s, v in zip(ref_node.definition.states, ss, strict=True):
                setattr(ref_node, s, v.view(rows, C).clone())
            frozen.calls = 0
            out = ref_node(xs)
            finals = [getattr(ref_node, s) for s in ref_node.definition.states]
            return float((out * weights[0]).sum() + sum((f * w).sum() for f, w in zip(finals, weights[1:],
                                                                                     strict=False)))

    h = 1e-6
    fd = torch.empty_like(base)
    for i in range(base.numel()):
        e = torch.zeros_like(base)
        e[i] = h
        fd[i] = (loss_at(base + e) - loss_at(base - e)) / (2 * h)
    loss_at(base)  # parameters back at the base point
    surrogate = build_surrogate(sg, alpha)
    for mode, dtype, tol in (("torch", torch.float64, dict(rtol=1e-6, atol=1e-7)),
                             ("kernel", torch.float32, dict(rtol=1e-4, atol=1e-5))):
        node = _node(name, surrogate, mode, dtype)
        with torch.no_grad():
            for p, q in zip(node.parameters(), ref_node.parameters(), strict=True):
                p.copy_(q)
        got = _run(node, x.to(dtype), [s.to(dtype) for s in states], [w.to(dtype) for w in weights])
        assert torch.equal(got[0].double(), spikes), mode
        flat = torch.cat([g.flatten().double() for g in got[2]])
        np.testing.assert_allclose(flat.numpy(), fd.numpy(), err_msg=f"{name} {sg} {mode}", **tol)


# -------------------------------------------------------------------------------------- the expressions
def test_constructors_simplify_only_exact_identities():
    x, y = E.sym("x", "x"), E.sym("state", "v")
    assert x + 0.0 is x and 0.0 + x is x and x * 1.0 is x and x / 1.0 is x and E.neg(E.neg(x)) is x
    assert (x * 0.0).op == "const" and (x - 0.0) is x and (0.0 - x).op == "neg"
    assert (x + y) is (x + y)  # interned: common subexpressions are one node
    assert E.const(0.5) * E.const(4.0) is E.const(2.0)  # exact in float32: folded
    assert (E.const(0.1) * E.const(3.0)).op == "mul"  # 0.1 is not a float32: left to the backends


def test_reverse_mode_matches_torch_autograd():
    """``expr.reverse`` of a step-like expression against autograd of the same expression evaluated by torch."""
    x, v, k = E.sym("x", "x"), E.sym("state", "v"), E.sym("param", "k")
    h = v - (v - 0.3) * k + (1.0 - k) * x * E.exp(-0.5 * v * v) / (1.0 + E.absolute(k) * 0.0 + k * k)
    out = h * h - v / (2.0 + x * x)
    adj = E.reverse([(out, E.const(1.0))], [x, v, k], E.const(1.0))
    vals = {s: torch.rand(5, dtype=torch.float64, requires_grad=True) for s in (x, v, k)}
    (value,) = E.evaluate([out], vals, f32_scalars=False)
    auto = torch.autograd.grad(value.sum(), [vals[s] for s in (x, v, k)])
    for s, a in zip((x, v, k), auto, strict=True):
        (got,) = E.evaluate([adj[s]], {n: t.detach() for n, t in vals.items()}, f32_scalars=False)
        torch.testing.assert_close(got, a)


def test_rendered_statements_read_every_input_before_writing():
    """A target that is also an input (a saved state, an updated state) is read before any assignment."""
    v, th = E.sym("state", "v"), E.sym("state", "theta")
    lines = E.render([("v[j]", th * 2.0), ("theta[j]", v), ("saved[j]", th)], lambda s: f"{s.data[1]}[j]", "cpp")
    first_write = next(i for i, ln in enumerate(lines) if ln.startswith(("v[j] =", "theta[j] =")))
    assert all("v[j]" not in ln.split("=", 1)[1] and "theta[j]" not in ln.split("=", 1)[1]
               for ln in lines[first_write:]), lines


# ------------------------------------------------------------------------------------ kernel build hygiene
def test_kernel_names_hash_the_generated_source(monkeypatch):
    """Each neuron's extension is named after it, the CPU capability and a hash of its generated source, so
    checkouts sharing torch's extension cache never load (or rebuild over) each other's kernel."""
    from spikenet.neurons import cpu_codegen

    names = {n: cpu_kernel.build_spec(n)[0] for n in NEURONS}
    assert len(set(names.values())) == len(NEURONS)
    assert all(ext.startswith(f"spikenet_{n}_cpu_") and len(ext.rsplit("_", 1)[1]) == 12 for n, ext in names.items())
    original = cpu_codegen.cpu_source("lif")
    monkeypatch.setattr(cpu_kernel, "cpu_source", lambda n: original.replace("kBlock = 1024", "kBlock = 512"))
    assert cpu_kernel.build_spec("lif")[0] != names["lif"]


def test_kernel_build_is_announced_once(monkeypatch, tmp_path, caplog):
    """One log line when the kernel is compiled, none when the cached build is loaded."""
    from torch.utils import cpp_extension

    loads = []

    def fake_load(name, sources, **kw):
        loads.append(name)
        (tmp_path / name / f"{name}.so").write_text("built")

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "load", fake_load)
    for expect_notice in (True, False):
        monkeypatch.setattr(cpu_kernel, "_state", {})
        caplog.clear()
        with caplog.at_level("INFO", logger="spikenet.neurons.cpu_kernel"):
            assert cpu_kernel.available("if")
        notices = [r for r in caplog.records if cpu_kernel.BUILD_NOTICE in r.getMessage()]
        assert len(notices) == int(expect_notice)
        assert cpu_kernel.status("if")["compiled"] is expect_notice
    ext = cpu_kernel.build_spec("if")[0]
    assert loads == [ext, ext] and (tmp_path / ext / f"{ext}.cpp").read_text() == cpu_kernel.build_spec("if")[1]


@pytest.mark.parametrize("sg", SURROGATE_NAMES)
def test_every_surrogate_runs_on_the_kernel(sg):
    node = _node("adaptive_lif", build_surrogate(sg, ALPHAS[sg]), "kernel")
    node.cpu_kernel = None  # the default: the kernel where it builds
    x = torch.randn(4, 3, C, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    assert type(node(x).grad_fn).__name__ == "KernelNeuronBackward"


# ------------------------------------------------------------------------------------ training end to end
@pytest.mark.parametrize("overrides", [["neuron=blif"], ["surrogate=multi_gauss"]])
def test_training_runs_on_the_kernel_without_fallback(monkeypatch, caplog, overrides):
    """``neuron=blif`` and ``surrogate=multi_gauss`` train through SpikeNet on the compiled kernel (no torch-path
    fallback, no warning), and the loss is finite."""
    from spikenet.experiment import build_experiment
    from spikenet.neurons.functions import FusedNeuron, KernelFirePool, KernelNeuron

    used = []
    for fn in (KernelNeuron, KernelFirePool, FusedNeuron):
        apply = fn.apply
        monkeypatch.setattr(fn, "apply", lambda *a, _fn=fn, _apply=apply: used.append(_fn.__name__) or _apply(*a))
    cfg = compose_config([*TINY_OVERRIDES, "trainer.save_checkpoint=false", *overrides])
    with caplog.at_level("WARNING"):
        result = build_experiment(cfg).trainer.fit()
    assert not [r for r in caplog.records if "kernel" in r.getMessage()]
    assert used and "FusedNeuron" not in used and {"KernelNeuron", "KernelFirePool"} & set(used)
    assert math.isfinite(result["history"][0]["loss"])


def test_neuron_configs_build_every_neuron(conf_dir):
    """One config file per built-in neuron (plugins bring their own), and each builds its node (the layer width
    given)."""
    built_in = [e.name for e in NEURONS.entries() if e.module.startswith("spikenet.")]
    assert {p.stem for p in (conf_dir / "neuron").glob("*.yaml")} == set(built_in)
    for name in built_in:
        cfg = compose_config([f"neuron={name}"])
        node = build_neuron(cfg.neuron, Sigmoid(1.0), "torch", channels=4)
        assert isinstance(node, node_class(name)) and node.step_mode == "m" and node.fused


# ------------------------------------------------------------------ a new neuron: one definition, one config
def _soft_alif(n):
    """A neuron the package does not have: soft reset (the threshold is subtracted), a threshold relaxing to
    v_threshold, and a learnable per-channel input gain (read as it is: transform "identity")."""
    h = n.v * n.decay + n.gain * n.x
    s = n.fire(h - n.theta)
    r = n.reset(s)
    return n.step(s, v=h - r * n.theta, theta=n.theta + n.beta * (s - (n.theta - n.v_threshold)))


SOFT_ALIF = NeuronDef("soft_alif_test", states=("v", "theta"), constants=("decay", "beta", "v_threshold"),
                      params=(Param("gain", raw="gain", transform="identity"),), step_fn=_soft_alif,
                      initial=(("v", 0.0), ("theta", "v_threshold")))
SOFT_ALIF_CONFIG = dict(name="soft_alif_test", decay=0.8, beta=0.3, gain=1.0, v_threshold=0.9, v_reset=0.0,
                        detach_reset=False, backend="auto", fused=True)


def test_a_new_neuron_is_one_definition_and_one_config(monkeypatch):
    """Registering a definition and writing its config is all a new neuron needs: ``build_neuron`` gives a
    ``DefinedNode`` whose compiled CPU kernel and torch path match its step loop (the definition evaluated
    with autograd) forward and backward, whose surrogate gradients match finite differences, whose CUDA
    sources compile, and which trains inside SpikeNet."""
    from test_cuda_kernels import _compile_one, _nvrtc_missing

    from spikenet.models import SpikeNet
    from spikenet.neurons import DefinedNode
    from spikenet.neurons import cupy_kernels as ck

    monkeypatch.setattr(NEURONS, "_entries", dict(NEURONS._entries))  # the registration is undone after the test
    NEURONS.add(SOFT_ALIF.name, SOFT_ALIF)
    cfg = OmegaConf.create(SOFT_ALIF_CONFIG)
    sg = build_surrogate("sigmoid", 2.0)
    x, states, weights = _data("adaptive_lif", seed=21)
    results = {}
    for mode in ("kernel", "torch", "loop"):
        node = build_neuron(cfg, sg, "torch", channels=C)
        assert isinstance(node, DefinedNode)
        node.fused, node.cpu_kernel = mode != "loop", mode == "kernel"
        with torch.no_grad():
            node.gain.copy_(torch.linspace(0.5, 1.5, C))
        results[mode] = _run(node, x, states, weights)
    assert results["kernel"][3] == "KernelNeuronBackward" and results["torch"][3] == "FusedNeuronBackward"
    loop = results["loop"]
    assert 0.05 < loop[0].mean().item() < 0.95
    for mode in ("kernel", "torch"):
        got = results[mode]
        assert torch.equal(got[0], loop[0]), mode
        for a, b in zip(got[1], loop[1], strict=True):
            assert torch.equal(a, b), mode  # the same float operations
        for g, ref in zip(got[2], loop[2], strict=True):
            assert ref.abs().max() > 0
            torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="beta"):
        build_neuron(OmegaConf.create({k: v for k, v in SOFT_ALIF_CONFIG.items() if k != "beta"}), sg, "torch", C)

    # float64 finite differences of the frozen-spike network against the generated torch path
    frozen = _FrozenSpikes(SURROGATES.get("sigmoid"), 2.0)
    ref_node = build_neuron(cfg, frozen, "torch", channels=C).double()
    ref_node.fused = False
    xs, ss = x[:5, :2].double(), [s[:2].double() for s in states]
    ws = [weights[0][:5, :2].double()] + [w[:2].double() for w in weights[1:]]
    _run(ref_node, xs, ss, ws)
    assert min(float(z.abs().min()) for z in frozen.base) > 1e-4
    frozen.recording = False
    node = build_neuron(cfg, sg, "torch", channels=C).double()
    got = _run(node, xs, ss, ws)[2]
    flat = [xs, *ss, ref_node.gain.detach().clone()]
    for which, (tensor, grad) in enumerate(zip(flat, got, strict=True)):
        fd = torch.empty_like(tensor).flatten()
        for i in range(fd.numel()):
            vals = []
            for sign in (1.0, -1.0):
                parts = [t.clone() for t in flat]
                parts[which].view(-1)[i] += sign * 1e-6
                with torch.no_grad():
                    ref_node.gain.copy_(parts[-1])
                frozen.calls = 0
                out = _run(ref_node, parts[0], parts[1:3], ws)
                vals.append(float((out[0] * ws[0]).sum() + sum((f * w).sum() for f, w in zip(out[1], ws[1:],
                                                                                            strict=True))))
            fd[i] = (vals[0] - vals[1]) / 2e-6
        torch.testing.assert_close(grad.flatten(), fd, rtol=1e-6, atol=1e-7)

    # the CUDA kernels are generated for it too
    if _nvrtc_missing() is None:
        for detach in (False, True):
            src = ck.kernel_sources(SOFT_ALIF.name, sg, 0, "half", detach, 4)
            for text in (src.forward, src.backward):
                ok, log = _compile_one(text)
                assert ok, log

    # and SpikeNet trains with it (the layer width is its channel count)
    torch.manual_seed(0)
    model = SpikeNet(6, [C, 3], 4, [2, 2], lambda width: build_neuron(cfg, sg, "torch", width), dropout=0.5)
    gen = torch.Generator().manual_seed(1)
    x_self, x_agg = torch.randn(4, 4 + 8, 6, generator=gen), torch.randn(4, 4 + 8, 6, generator=gen)
    out = model(x_self, x_agg)  # the spike trains of the last layer: weight them as a head would
    (out * torch.randn(out.shape, generator=gen)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.neurons[0].gain.grad.abs().sum() > 0
