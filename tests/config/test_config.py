"""Config validation: out-of-range values raise a one-line ConfigError; bad group options exit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from spikenet.cli import check_group_overrides, group_options
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
    choices = group_options(conf_dir / group)
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


# --- keys and types from the command line (spikenet.cli.check_value_overrides) ---------------------------------
@pytest.mark.parametrize("args,message", [
    (["+trainer.epoch=3"],
     "unknown config key 'trainer.epoch' (from '+trainer.epoch=3'); did you mean 'trainer.epochs'?"),
    (["trainer.epcohs=3"], "did you mean 'trainer.epochs'?"),
    (["++model.hidden_size=3"], "unknown config key 'model.hidden_size'"),
    (["neuron=lif", "neuron.gamma=0.1"], "unknown config key 'neuron.gamma'"),  # adaptive_lif's key, not lif's
    (["trainer.epochs=abc"], "trainer.epochs must be an integer (default 100), got 'abc'"),
    (["trainer.epochs=2.5"], "trainer.epochs must be an integer (default 100), got '2.5'"),
    (["trainer.lr=fast"], "trainer.lr must be a number (default 0.005), got 'fast'"),
    (["neuron.detach_reset=1"], "neuron.detach_reset must be true or false (default false), got '1'"),
    (["sampler.sizes=5"], "sampler.sizes must be a list (default [5, 2]), got '5'"),
    (["trainer.patience=soon"], "trainer.patience must be an integer (default null), got 'soon'"),
    (["seed=1,x"], "seed must be an integer (default 2022), got 'x'"),  # each value of a sweep
])
def test_unknown_keys_and_mistyped_values_are_refused_in_one_line(conf_dir, args, message):
    from spikenet.cli import ConfigKeyError, check_value_overrides

    with pytest.raises(ConfigKeyError) as info:
        check_value_overrides(args, conf_dir)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("args", [
    ["trainer.epochs=3", "trainer.lr=1", "sampler.p=1", "model.hids=[8,4]", "seed=1,2,3"],
    ["model=gru", "model.hidden=16", "trainer.patience=5", "trainer.num_threads=1"],
    ["model=spikenet,gru", "model.hidden=16"],  # a key of one swept option is known
    ["dataset=dblp", "dataset.features=fastrp", "task.train_size=0.6", "hydra.run.dir=/tmp/x"],
    ["neuron.tau=interval(1.0,2.0)", "trainer.resume=auto", "optimized_metric=params", "trainer.patience=null"],
    ["experiment=dblp", "dataset.root=${oc.env:HOME}", "~trainer.patience"],
])
def test_valid_overrides_pass_the_key_check(conf_dir, args):
    from spikenet.cli import check_value_overrides

    check_value_overrides(args, conf_dir)


def test_nullable_types_name_keys_that_exist_with_a_null_default(compose):
    from omegaconf import OmegaConf

    from spikenet.cli import NULLABLE

    cfg = compose()
    for key in NULLABLE:
        if key.startswith("dataset."):
            cfg_key = compose(["dataset=edgelist"])
            assert OmegaConf.select(cfg_key, key, default="absent") is None, key
        elif key not in ("seed",):
            assert OmegaConf.select(cfg, key, default="absent") is None, key


def test_run_refuses_a_mistyped_key_before_starting(cli, tmp_path):
    result = cli(["+trainer.epoch=3"], tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown config key 'trainer.epoch' (from '+trainer.epoch=3'); did you mean 'trainer.epochs'?"]
    assert not (tmp_path / "run").exists()


# --- the dataset group: one base, composed by the file datasets -----------------------------------------------
DATASET_CONFIGS = Path(__file__).with_name("dataset_configs.json")  # every option's `dataset` node before _base
# keys a dataset option gained when code stopped restating their defaults: (option, key) -> the default the code
# used before (so the composed values are what those datasets ran with)
ADDED_KEYS: dict[tuple[str, str], object] = {
    **{(o, "feature_seed"): 0 for o in ("dblp", "tmall", "patent", "edgelist", "tgbn")},  # SMF / FastRP seed
    **{(o, "cache_keep"): 4 for o in ("dblp", "tmall", "patent", "tgbn")},  # hygiene.DEFAULT_KEEP
    ("tgbn", "smf"): {"window": 10, "align": True, "device": "auto"},  # SMFConfig's defaults (tgbn with features=auto)
    ("synthetic", "mmap"): "auto", ("synthetic", "mmap_share"): 0.4,  # the synthetic reader's fallbacks
    ("synthetic_tmall", "max_steps"): 1000, ("synthetic_patent", "max_steps"): 1000,  # guards.DEFAULT_MAX_STEPS
    ("static", "comments"): "#",  # the table reader's fallback
}


def _dataset_node(compose, option: str) -> dict:
    return OmegaConf.to_container(compose([f"dataset={option}"]).dataset, resolve=False)


def test_dataset_options_compose_what_they_did_before_the_base(compose, conf_dir):
    """Every option's composed ``dataset`` node equals the one its file alone gave (tests/config/dataset_configs.json,
    dumped from the tree before conf/dataset/_base.yaml), plus only the keys listed in ADDED_KEYS."""
    before = json.loads(DATASET_CONFIGS.read_text())
    assert sorted(set(before) | set(EDGELIST_PRESETS)) == group_options(conf_dir / "dataset")
    for option, node in before.items():
        expected = copy.deepcopy(node)
        for (opt, key), value in ADDED_KEYS.items():
            if opt == option:
                expected[key] = value
        assert _dataset_node(compose, option) == expected, option


# options added after the base: presets of `edgelist` for public graphs (docs/energy-results.md)
EDGELIST_PRESETS = ("primaryschool", "thiers2011")


@pytest.mark.parametrize("option", EDGELIST_PRESETS)
def test_edgelist_presets_are_edgelist_with_their_files_and_bins(compose, option):
    """A public graph's preset reads with the edgelist reader and differs from ``dataset=edgelist`` only in its
    name, files, columns and snapshot bins."""
    node, edgelist = _dataset_node(compose, option), _dataset_node(compose, "edgelist")
    changed = {k for k in edgelist if node[k] != edgelist[k]}
    assert set(node) == set(edgelist)
    assert changed == {"name", "edges", "labels", "columns", "time_bins", "empty_bins"}
    assert node["name"] == option and node["reader"] == "edgelist"


def test_base_keys_are_inherited_not_repeated(compose, conf_dir):
    """The options that list ``_base`` get all its keys, and none of their files restates one of its values."""
    base = yaml.safe_load((conf_dir / "dataset" / "_base.yaml").read_text())
    users = [o for o in group_options(conf_dir / "dataset")
             if "_base" in (yaml.safe_load((conf_dir / "dataset" / f"{o}.yaml").read_text()).get("defaults") or [])]
    assert {"dblp", "tmall", "patent", "edgelist", "tgbn"} <= set(users)
    for option in users:
        own = yaml.safe_load((conf_dir / "dataset" / f"{option}.yaml").read_text())
        node = _dataset_node(compose, option)
        assert set(base) <= set(node), option
        repeated = [k for k, v in own.items() if k in base and v == base[k]]
        assert not repeated, (option, repeated)


def test_base_is_not_an_option(conf_dir, capsys):
    assert "_base" not in group_options(conf_dir / "dataset") and "dblp" in group_options(conf_dir / "dataset")
    with pytest.raises(SystemExit):
        check_group_overrides(["dataset=_base"], conf_dir)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: unknown dataset '_base'; choose one of:") and ", _base" not in line, line


# --- validate once, on the parts built once ---------------------------------------------------------------------
def test_validate_builds_no_model_or_neuron_and_a_run_builds_each_part_once(monkeypatch, tiny_overrides):
    """``validate`` checks the encoder, neuron, task and trainer configs without building an encoder or a neuron
    (it builds the surrogate, the device and the precision, which need no data); ``build_experiment`` validates
    once and builds the encoder once, one neuron per layer, and uses validate's surrogate and precision."""
    from collections import Counter

    from conftest import compose_config

    import spikenet.config as config_module
    from spikenet.experiment import build_experiment
    from spikenet.models import SpikeNet
    from spikenet.neurons import SpikingNode
    from spikenet.training.precision import Precision

    counts: Counter = Counter()

    def counting(cls, key):
        init = cls.__init__

        def wrapped(self, *args, **kwargs):
            counts[key] += 1
            init(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", wrapped)

    counting(SpikeNet, "encoder")
    counting(SpikingNode, "neuron")
    counting(Precision, "precision")
    build_surrogate = config_module.build_surrogate
    monkeypatch.setattr(config_module, "build_surrogate",
                        lambda *a: counts.update(["surrogate"]) or build_surrogate(*a))
    cfg = compose_config([*tiny_overrides, "trainer.save_checkpoint=false"])
    checked = validate(cfg)
    assert counts == Counter(surrogate=1, precision=1), counts
    counts.clear()
    exp = build_experiment(cfg)
    assert counts == Counter(surrogate=1, precision=1, encoder=1, neuron=len(cfg.model.hids)), counts
    encoder = exp.trainer.model.encoder
    assert all(n.surrogate_function is encoder.neurons[0].surrogate_function for n in encoder.neurons)
    assert exp.trainer.precision.name == checked.precision.name and exp.backend == checked.backend == "torch"
