"""The paper protocol preset (``+protocol=paper``): what it sweeps and where, a real tiny multirun of it, and
its report over several run folders with the paper's Table 2 as reference rows."""

from __future__ import annotations

import importlib.util
import logging
import re
import runpy
import statistics
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONF_DIR, RUN_SCRIPT
from hydra.core.global_hydra import GlobalHydra
from report_runs import write_run

from spikenet.reporting import make_report
from spikenet.reporting.references import DATA_NOTES, PAPER, SPIKENET_TABLE2, spikenet_table2

ROOT = Path(__file__).resolve().parents[2]
SIZES = ("0.4", "0.6", "0.8")


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from spikenet.cli import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_preset_sweeps_the_paper_protocol():
    cfg = compose_with_hydra(["+protocol=paper", "experiment=dblp", "model=ann"])
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert params == {"task.train_size": list(SIZES), "seed": [str(s) for s in range(2022, 2027)]}
    assert re.fullmatch(r"outputs/protocol/dblp_ann/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", cfg.hydra.sweep.dir)
    assert cfg.trainer.epochs == 100 and cfg.task.name == "node_classification"
    # the command line still wins (a quick look), and each swept train size validates
    quick = compose_with_hydra(["+protocol=paper", "trainer.epochs=2"])
    assert quick.trainer.epochs == 2 and quick.hydra.sweep.dir.startswith("outputs/protocol/synthetic_spikenet/")
    from spikenet.config import validate

    for size in SIZES:
        validate(compose_with_hydra(["+protocol=paper", "experiment=dblp", f"task.train_size={size}"]))


def _multirun(monkeypatch, args: list[str]) -> None:
    """``python src/run.py -m <args>`` in this process (Hydra's basic launcher runs the jobs in turn).

    ``hydra/job_logging=disabled`` disables every existing logger (``disable_existing_loggers``); their state
    is put back afterwards, so later tests that read the ``spikenet`` log still see it.
    """
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    disabled, root_level = [lg.disabled for lg in loggers], logging.getLogger().level
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(sys, "argv", [str(RUN_SCRIPT), "-m", *args])
    spec = importlib.util.spec_from_file_location("spikenet_run_entry", RUN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main()
    finally:
        GlobalHydra.instance().clear()
        for lg, was in zip(loggers, disabled, strict=True):
            lg.disabled = was
        logging.getLogger().setLevel(root_level)


TINY = ["seed=1,2", "trainer.epochs=1", "dataset.num_nodes=200", "dataset.num_steps=3",
        "model.hids=[8,4]", "trainer.progress=false", "trainer.save_checkpoint=false", "trainer.num_threads=1",
        "device=cpu", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def test_protocol_multirun_lands_in_its_folder_and_reports_per_train_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the preset's relative sweep dir: outputs/protocol/<dataset>_<model>/<stamp>
    threads = torch.get_num_threads()
    try:
        _multirun(monkeypatch, ["+protocol=paper", *TINY])
    finally:
        torch.set_num_threads(threads)
    (sweep,) = (tmp_path / "outputs" / "protocol" / "synthetic_spikenet").iterdir()
    assert len([p for p in sweep.iterdir() if p.name.isdigit()]) == 6

    report = make_report(sweep, figures=False)
    (section,) = report.sections
    assert section.varying == ["task.train_size"]
    assert [v.labels["task.train_size"] for v in section.variants] == list(SIZES)
    assert all(sorted(v.seeds) == [1, 2] for v in section.variants)
    md = (sweep / "summary.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith(tuple(f"| {s} | 2 |" for s in SIZES))
            or line.startswith(tuple(f"| **{s}** | **2** |" for s in SIZES))]
    assert len(rows) == 3 and all(" ± " in r for r in rows)  # mean ± std over the two seeds per train size
    # the runs' own baselines: majority and chance rows, over all 6 runs, split by train size where they differ
    refs = [line.split("|")[1:4] for line in md.split("| reference |")[1].splitlines()[2:] if line.startswith("|")]
    for predictor in ("majority class", "chance (training class frequencies)"):
        mine = [r for r in refs if r[0].strip() == predictor]
        assert sum(int(r[2]) for r in mine) == 6
        assert all(r[1].strip() == "all runs" or r[1].strip().startswith("task.train_size=") for r in mine)
    assert PAPER not in md  # synthetic data: no published numbers


def fake_protocol(root: Path, dataset: str, model: str) -> Path:
    """The 3 train sizes x 2 seeds of a protocol run of ``model`` on ``dataset``, as run.py writes them."""
    job = 0
    for size in SIZES:
        for seed in (2022, 2023):
            micro = {"spikenet": 0.7, "ann": 0.65}[model] + float(size) / 10 + (seed - 2022) / 100
            scores = {"val_macro_f1": micro - 0.02, "val_micro_f1": micro, "test_macro_f1": micro - 0.01,
                      "test_micro_f1": micro + 0.01}
            baselines = {"majority": {"test_micro_f1": 0.2 + float(size) / 10, "val_micro_f1": 0.3}}
            overrides = [*(["model=ann"] if model == "ann" else []), f"experiment={dataset}",
                         f"task.train_size={size}", f"seed={seed}"]
            config = {"seed": seed, "model": {"name": model}, "dataset": {"name": dataset},
                      "task": {"name": "node_classification", "train_size": float(size)}}
            write_run(root / str(job), task="node_classification", metrics=["macro_f1", "micro_f1"],
                      select="val_micro_f1", scores=scores, baselines=baselines, dataset=dataset, model=model,
                      overrides=overrides, config=config)
            job += 1
    return root


def test_report_of_several_protocol_folders_shows_the_papers_table(tmp_path, capsys):
    spikenet = fake_protocol(tmp_path / "protocol" / "dblp_spikenet" / "2026-01-01_00-00-00", "dblp", "spikenet")
    ann = fake_protocol(tmp_path / "protocol" / "dblp_ann" / "2026-01-01_01-00-00", "dblp", "ann")
    main = runpy.run_path(str(ROOT / "src" / "report.py"))["main"]
    assert main([str(spikenet), str(ann), "--no-figures"]) == 0
    assert "12 run(s), 6 variant(s), varying " in capsys.readouterr().out
    md = (tmp_path / "protocol" / "summary.md").read_text()  # default: the folder holding both
    assert "# Summary of 2 run folders" in md and f"- {spikenet}" in md and f"- {ann}" in md

    # mean ± std per model and train size
    for model in ("spikenet", "ann"):
        for size in SIZES:
            micro = [{"spikenet": 0.7, "ann": 0.65}[model] + float(size) / 10 + s / 100 + 0.01 for s in (0, 1)]
            cell = f"{100 * statistics.fmean(micro):.2f} ± {100 * statistics.stdev(micro):.2f}"
            assert re.search(rf"\| \**{size}\** \| \**{model}\** \| \**2\** \| [^|]+ \| \**{re.escape(cell)}", md), \
                (model, size)

    # the best model per train size (scores on different splits do not compare): SpikeNet at each size
    bold = re.findall(r"^\| \*\*([0-9.]+)\*\* \| \*\*(\w+)\*\* \|", md, flags=re.M)
    assert bold == [(size, "spikenet") for size in SIZES]
    assert "in bold the variant with the best mean val Micro-F1 per `task.train_size`" in md

    # the paper's rows, one per train size, from references.py; baselines per train size
    refs = md.split("| reference |")[1]
    for size in SIZES:
        paper = spikenet_table2("dblp", float(size))
        line = next(x for x in refs.splitlines() if x.startswith(f"| {PAPER} | dblp, train size {size} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2:] == ["–", f"{100 * paper['test_macro_f1']:.2f}", f"{100 * paper['test_micro_f1']:.2f}", "–"]
        majority = next(x for x in refs.splitlines() if x.startswith(f"| majority class | task.train_size={size} |"))
        assert f"| 4 | – | {100 * (0.2 + float(size) / 10):.2f} | 30.00 |" in majority
    assert DATA_NOTES["dblp"] in md


def test_paper_rows_only_where_the_paper_has_numbers(tmp_path):
    fake_protocol(tmp_path, "tmall", "spikenet")
    make_report(tmp_path, figures=False)
    md = (tmp_path / "summary.md").read_text()
    sizes = sorted(SPIKENET_TABLE2["tmall"])
    assert sizes == [0.4, 0.8]  # the paper's 0.6 value is not available to us
    assert [line.split("|")[2].strip() for line in md.splitlines() if line.startswith(f"| {PAPER} |")] == \
        [f"tmall, train size {s:g}" for s in sizes]
    assert "Note on published numbers" not in md  # the DBLP caveat only


def test_references_are_fractions_of_the_published_percentages():
    for dataset, sizes in SPIKENET_TABLE2.items():
        for size, (macro, micro) in sizes.items():
            assert spikenet_table2(dataset.upper(), size) == {"test_macro_f1": pytest.approx(macro / 100),
                                                              "test_micro_f1": pytest.approx(micro / 100)}
    assert spikenet_table2("patent", 0.6) is None and spikenet_table2("synthetic", 0.4) is None

