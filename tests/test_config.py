"""Config validation: out-of-range values raise a one-line ConfigError; bad group options exit."""

from __future__ import annotations

import pytest

from spikenet.cli import check_group_overrides
from spikenet.config import ConfigError, validate


def test_default_config_is_valid(compose):
    cfg = compose()
    validate(cfg)
    assert cfg.neuron.name == "adaptive_lif" and cfg.neuron.tau == 1.0  # tau = 1.0 accepted
    assert len(cfg.model.hids) == len(cfg.sampler.sizes)


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["sampler.p=1.5"], "sampler.p"),
        (["sampler.p=-0.1"], "sampler.p"),
        (["model.hids=[]"], "model.hids"),
        (["neuron.tau=0.5"], "neuron.tau"),
        (["neuron=lif", "neuron.tau=1.0"], "neuron.tau"),
        (["task.train_size=0.05"], "task.train_size"),
        (["task.train_size=0.01"], "task.train_size"),
        (["task.train_size=1.0"], "task.train_size"),
        (["task.train_size=1.2"], "task.train_size"),
        (["model.hids=[8]"], "model.hids"),
        (["model.hids=[8,4]", "sampler.sizes=[5,2,2]"], "sampler.sizes"),
        (["surrogate.alpha=0"], "surrogate.alpha"),
        (["model.dropout=1.0"], "model.dropout"),
    ],
)
def test_invalid_values_raise_one_line_config_error(compose, overrides, key):
    cfg = compose(overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    assert key in message, message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "overrides",
    [["sampler.p=0"], ["sampler.p=1"], ["task.train_size=0.8"], ["neuron=plif"], ["neuron=if"],
     ["model.hids=[16]", "sampler.sizes=[3]"], ["surrogate=multi_gauss", "sampler=rw"]],
)
def test_valid_edge_values_pass(compose, overrides):
    validate(compose(overrides))


@pytest.mark.parametrize("args", [["neuron=nope"], ["trainer.epochs=1", "sampler=sage,nope"],
                                  ["+surrogate=nope"]])
def test_unknown_group_option_exits_with_one_line(conf_dir, capsys, args):
    with pytest.raises(SystemExit) as info:
        check_group_overrides(args, conf_dir)
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "nope" in lines[0]
    group = "neuron" if "neuron" in args[0] else ("sampler" if "sampler" in args[-1] else "surrogate")
    choices = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
    assert all(c in lines[0] for c in choices), lines[0]


def test_known_options_and_value_overrides_pass(conf_dir, capsys):
    check_group_overrides(["neuron=lif", "sampler=sage,rw", "neuron.tau=2.0", "model.hids=[8,4]",
                           "hydra.run.dir=/tmp/x", "trainer.epochs=1", "-m"], conf_dir)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "key,value",
    [
        ("neuron.thresh_decay", -0.1),
        ("neuron.thresh_decay", 1.01),
        ("neuron.gamma", -0.2),
        ("neuron.backend", "gpu"),
        ("model.aggr", "max"),
        ("trainer.test_schedule", "sometimes"),
        ("trainer.epochs", 0),
        ("trainer.batch_size", 0),
        ("trainer.lr", 0.0),
        ("trainer.lr", -0.001),
        ("device", "tpu"),
    ],
)
def test_out_of_range_values_name_their_key(compose, key, value):
    cfg = compose([f"{key}={value}"])
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert "\n" not in message and message.startswith(key), message
    assert str(value) in message, message


@pytest.mark.parametrize(
    "overrides",
    [["neuron.thresh_decay=0.0"], ["neuron.thresh_decay=1.0"], ["neuron.gamma=0.0"], ["neuron.backend=torch"],
     ["neuron.backend=auto"], ["model.aggr=sum"], ["trainer.test_schedule=every"],
     ["trainer.test_schedule=improved"], ["trainer.epochs=1"], ["trainer.batch_size=1"], ["trainer.lr=1e-6"],
     ["device=cpu"], ["device=auto"]],
)
def test_edge_values_in_range_pass(compose, overrides):
    validate(compose(overrides))


def test_cuda_device_needs_a_gpu(compose):
    import torch

    cfg = compose(["device=cuda"])
    if torch.cuda.is_available():
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match="device=cuda"):
            validate(cfg)


def test_resolve_backend(monkeypatch):
    import torch

    import spikenet.neurons as neurons

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(neurons, "cupy_available", lambda: True)
    assert neurons.resolve_backend("auto", cpu) == "torch"  # CuPy kernels never run on CPU tensors
    assert neurons.resolve_backend("auto", gpu) == "cupy"
    assert neurons.resolve_backend("torch", gpu) == "torch"
    assert neurons.resolve_backend("cupy", gpu) == "cupy"
    monkeypatch.setattr(neurons, "cupy_available", lambda: False)
    assert neurons.resolve_backend("auto", gpu) == "torch"  # no working CuPy: fall back, do not fail
    with pytest.raises(ValueError, match="neuron.backend"):
        neurons.resolve_backend("cuda", gpu)
