"""Hints are commands that work for the dataset at hand: take the printed command and compose/run it."""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from spikenet.data import load_dataset, load_graph
from spikenet.data.features.files import generate_deepwalk
from spikenet.data.formats.parsing import DatasetNotFoundError
from spikenet.data.storage import hints

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY_DW = {"walks": 2, "length": 10, "dim": 8, "window": 3, "workers": 1}


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("SPIKENET_CACHE", str(folder))
    return folder


def composed(config_name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def yelp(root: Path) -> list[str]:
    """An edge-list dataset named yelp with its own file names and a comma in a setting, as a user composes it."""
    rng = np.random.default_rng(0)
    folder = root / "yelp"
    folder.mkdir(parents=True)
    rows = [f"{a},{b},{t}" for a, b, t in zip(rng.integers(0, 40, 160), rng.integers(0, 40, 160),
                                              rng.integers(0, 4, 160), strict=True)]
    (folder / "reviews.csv").write_text("user,business,day\n" + "\n".join(rows) + "\n")
    (folder / "stars.csv").write_text("node,stars\n" + "".join(f"{u},{u % 3}\n" for u in range(0, 40, 2)))
    return ["dataset=edgelist", "dataset.name=yelp", f"dataset.root={root}", "dataset.edges=reviews.csv",
            "dataset.labels=stars.csv", "dataset.delimiter=','", "dataset.feature_dim=8",
            *[f"dataset.deepwalk.{k}={v}" for k, v in TINY_DW.items()]]


def printed_command(text: str, script: str) -> list[str]:
    (command,) = re.findall(r"`(python [^`]+)`", text)
    tokens = shlex.split(command)
    assert tokens[:2] == ["python", f"src/{script}.py"], command
    return tokens[2:]


class Records(logging.Handler):
    """The feature choice's log records (info and up), whatever logging setup earlier tests (Hydra runs) left behind."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def records_logged():
    logger = logging.getLogger("spikenet.data.features.choice")
    handler, level, disabled = Records(), logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.disabled = disabled


def test_missing_features_note_gives_a_working_features_command(tmp_path: Path, records_logged: list[str]):
    user = composed("config", yelp(tmp_path))
    load_dataset(user.dataset)
    (note,) = [m for m in records_logged if "no feature file" in m]  # info: SMF is used, DeepWalk offered
    overrides = printed_command(note, "features")
    assert overrides[:3] == ["dataset=edgelist", "dataset.name=yelp", f"dataset.root={tmp_path}"]
    assert "dataset=yelp" not in overrides  # the invalid hint of issue 13
    cfg = composed("features", overrides)  # what `python src/features.py ...` composes
    same = [{k: v for k, v in OmegaConf.to_container(c.dataset, resolve=True).items() if k not in hints.DERIVED}
            for c in (cfg, user)]  # dataset.cost follows each script's own trainer/sampler/model groups
    assert same[0] == same[1]
    path, generated = generate_deepwalk(load_graph(cfg.dataset), cfg.dataset, progress=False)  # and runs
    assert generated and path == tmp_path / "yelp" / "yelp.npy"
    records_logged.clear()
    g = load_dataset(user.dataset)  # the user's own command now finds the features
    assert not [m for m in records_logged if "no feature file" in m]
    assert g.num_features == TINY_DW["dim"]


def test_features_file_error_gives_a_working_command(tmp_path: Path):
    user = composed("config", [*yelp(tmp_path), "dataset.features=file"])
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(user.dataset)
    cfg = composed("features", printed_command(str(err.value).split("; the full")[0], "features"))
    assert cfg.dataset.name == "yelp" and cfg.dataset.edges == "reviews.csv" and cfg.dataset.delimiter == ","


def test_shipped_dataset_command_is_short():
    cfg = composed("config", ["dataset=dblp"])
    assert hints.command(cfg.dataset, "features") == "python src/features.py dataset=dblp"
    assert hints.command(cfg.dataset, "run", "dataset.merge=2") == "python src/run.py dataset=dblp dataset.merge=2"


@pytest.mark.parametrize("value", ["a b", "1.5", "true", "null", "x,y", "it's", "/p/q-r.txt", 3, 2.5, None, False])
def test_values_parse_back(value):
    token = shlex.split(shlex.quote(f"dataset.name={hints.hydra_value(value)}"))[0]
    assert composed("config", ["dataset=dblp", token]).dataset.name == value


def test_fix_for_a_dataset_key_composes():
    """Every dataset group has the keys a fix names (the command line refuses unknown keys), so the fix is a
    plain override that composes."""
    cfg = composed("config", ["dataset=synthetic"])
    command = hints.command(cfg.dataset, "run", "dataset.max_steps=40")
    assert command == "python src/run.py dataset=synthetic dataset.max_steps=40"
    assert composed("config", shlex.split(command)[2:]).dataset.max_steps == 40
