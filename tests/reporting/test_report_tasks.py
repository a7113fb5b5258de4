"""Reports follow each run's task: one table per task with the task's own metrics, the best variant by the
task's selection metric, the runs' baselines as reference rows; old runs (before the task layer) still report."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml
from report_runs import write_run

from spikenet.reporting import RunFormatError, make_report
from spikenet.reporting.labels import column_header

NC = {"metrics": ["macro_f1", "micro_f1"], "select": "val_micro_f1"}
LP = {"metrics": ["ap", "auc", "mrr"], "select": "val_mrr"}
NC_BASELINES = {"majority": {"val_macro_f1": 0.1, "val_micro_f1": 0.4, "test_macro_f1": 0.11, "test_micro_f1": 0.38},
                "chance": {"val_macro_f1": 0.2, "val_micro_f1": 0.25, "test_macro_f1": 0.21, "test_micro_f1": 0.24}}


def nc_scores(model: str, seed: int) -> dict[str, float]:
    base = {"spikenet": 0.6, "ann": 0.5}[model] + 0.01 * seed
    return {"val_macro_f1": base - 0.05, "val_micro_f1": base, "test_macro_f1": base - 0.04,
            "test_micro_f1": base + 0.02}


def lp_scores(model: str, seed: int) -> dict[str, float]:
    """SpikeNet has the better AP, the GRU the better MRR (the selection metric)."""
    ap = {"spikenet": 0.8, "gru": 0.7}[model] + 0.01 * seed
    mrr = {"spikenet": 0.3, "gru": 0.4}[model] + 0.02 * seed
    return {"val_ap": ap, "test_ap": ap - 0.01, "val_auc": ap + 0.05, "test_auc": ap + 0.04,
            "val_mrr": mrr, "test_mrr": mrr - 0.03}


def lp_baselines(seed: int) -> dict[str, dict[str, float]]:
    """EdgeBank depends on the seed (its negatives are drawn with it); persistence does not."""
    return {"edgebank": {"val_ap": 0.55 + 0.01 * seed, "test_ap": 0.5 + 0.02 * seed, "test_mrr": 0.2},
            "persistence": {"val_mrr": 0.12, "test_mrr": 0.1}}


@pytest.fixture
def two_tasks(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    job = 0
    for model in ("spikenet", "ann"):
        for seed in (1, 2):
            write_run(root / "a_nc" / str(job), task="node_classification", metrics=NC["metrics"],
                      select=NC["select"], scores=nc_scores(model, seed), baselines=NC_BASELINES, model=model,
                      overrides=[f"model={model}", f"seed={seed}"],
                      config={"seed": seed, "model": {"name": model}, "task": {"name": "node_classification"}})
            job += 1
    for model in ("spikenet", "gru"):
        for seed in (1, 2):
            write_run(root / "b_lp" / str(job), task="link_prediction", metrics=LP["metrics"], select=LP["select"],
                      scores=lp_scores(model, seed), baselines=lp_baselines(seed), model=model,
                      overrides=["task=link_prediction", f"model={model}", f"seed={seed}"],
                      config={"seed": seed, "model": {"name": model}, "task": {"name": "link_prediction"}})
            job += 1
    return root


def table(md: str, header_start: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table whose header line starts with ``header_start``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return [rows[0], *rows[2:]]  # header, then the rows after the |---| line


def section(md: str, task: str) -> str:
    return md.split(f"## Task: {task}")[1].split("## Task: ")[0]


def pct(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def test_one_table_per_task_with_its_own_metrics(two_tasks):
    report = make_report(two_tasks)
    assert [s.task.name for s in report.sections] == ["node_classification", "link_prediction"]
    assert [s.varying for s in report.sections] == [["model"], ["model"]]
    md = (two_tasks / "summary.md").read_text()
    assert "8 finished run(s) in 4 variant(s) of 2 tasks." in md

    nc, lp = section(md, "node_classification"), section(md, "link_prediction")
    nc_table = table(nc, "| `model`")
    assert nc_table[0][:5] == ["`model`", "runs", "test Ma-F1 (%)", "test Mi-F1 (%)", "val Mi-F1 (%)"]
    lp_table = table(lp, "| `model`")
    assert lp_table[0][:6] == ["`model`", "runs", "test AP (%)", "test AUC (%)", "test MRR (%)", "val MRR (%)"]
    assert "F1" not in lp and "Common overrides: `task=link_prediction`" in lp

    # the cells: mean ± std over the seeds, in %
    gru = next(r for r in lp_table[1:] if r[0].strip("*") == "gru")
    for column, key in zip(lp_table[0][2:6], ("test_ap", "test_auc", "test_mrr", "val_mrr"), strict=True):
        assert column == column_header(key)
        assert gru[lp_table[0].index(column)].strip("*") == pct([lp_scores("gru", s)[key] for s in (1, 2)])

    # the best variant is the one with the best selection metric: GRU by MRR in link prediction (although
    # SpikeNet has the better AP), SpikeNet by Micro-F1 in node classification
    bold = [r[0] for r in lp_table[1:] if r[0].startswith("**")]
    assert bold == ["**gru**"]
    assert [r[0] for r in nc_table[1:] if r[0].startswith("**")] == ["**spikenet**"]
    assert [[v.labels["model"] for v in s.best()] for s in report.sections] == [["spikenet"], ["gru"]]

    # figures per task, named after it, on the task's main metric
    names = {p.name for p in report.files}
    assert {"bars_node_classification.png", "bars_link_prediction.png"} <= names
    assert "bars.png" not in names


def test_csv_holds_every_task_with_a_task_column(two_tasks):
    make_report(two_tasks, figures=False)
    rows = list(csv.DictReader((two_tasks / "summary.csv").open()))
    assert [r["task"] for r in rows] == ["node_classification"] * 2 + ["link_prediction"] * 2
    gru = next(r for r in rows if r["model"] == "gru")
    assert float(gru["test_mrr_mean"]) == pytest.approx(statistics.fmean(lp_scores("gru", s)["test_mrr"]
                                                                         for s in (1, 2)), rel=1e-5)
    assert gru["test_micro_f1_mean"] == "" and gru["runs"] == "2"
    ann = next(r for r in rows if r["model"] == "ann")
    assert ann["test_ap_mean"] == "" and float(ann["val_macro_f1_mean"]) == pytest.approx(
        statistics.fmean(nc_scores("ann", s)["val_macro_f1"] for s in (1, 2)), rel=1e-5)


def test_baselines_are_reference_rows_under_each_table(two_tasks):
    make_report(two_tasks, figures=False)
    md = (two_tasks / "summary.md").read_text()
    nc = table(section(md, "node_classification"), "| reference")
    assert nc[0] == ["reference", "for", "runs", "test Ma-F1 (%)", "test Mi-F1 (%)", "val Mi-F1 (%)"]
    majority = next(r for r in nc[1:] if r[0] == "majority class")
    # identical over the runs: one row for all of them, no ± part
    assert majority[1:] == ["all runs", "4", *(f"{100 * NC_BASELINES['majority'][k]:.2f}"
                                              for k in ("test_macro_f1", "test_micro_f1", "val_micro_f1"))]
    assert any(r[0] == "chance (training class frequencies)" for r in nc[1:])

    lp = table(section(md, "link_prediction"), "| reference")
    assert lp[0] == ["reference", "for", "runs", "test AP (%)", "test AUC (%)", "test MRR (%)", "val MRR (%)"]
    edgebank = next(r for r in lp[1:] if r[0] == "EdgeBank")
    seeds = [1, 2, 1, 2]  # spikenet's runs, then the GRU's
    assert edgebank[3] == pct([lp_baselines(s)["edgebank"]["test_ap"] for s in seeds])  # varies with the seed
    assert edgebank[4] == "–"  # no AUC for EdgeBank
    assert edgebank[5] == f"{100 * lp_baselines(1)['edgebank']['test_mrr']:.2f}"
    persistence = next(r for r in lp[1:] if r[0] == "persistence")
    assert persistence[6] == f"{100 * lp_baselines(1)['persistence']['val_mrr']:.2f}"


def test_baselines_that_differ_between_variants_get_a_row_each(tmp_path):
    """Baselines follow the split: runs at two train sizes get one majority row per size, named by it."""
    for job, (size, seed) in enumerate([(0.4, 1), (0.4, 2), (0.8, 1), (0.8, 2)]):
        baselines = {"majority": {"test_micro_f1": 0.3 + size / 10, "val_micro_f1": 0.35}}
        write_run(tmp_path / str(job), task="node_classification", metrics=NC["metrics"], select=NC["select"],
                  scores=nc_scores("spikenet", seed), baselines=baselines,
                  overrides=[f"task.train_size={size}", f"seed={seed}"],
                  config={"seed": seed, "task": {"name": "node_classification", "train_size": size}})
    make_report(tmp_path, figures=False)
    refs = table((tmp_path / "summary.md").read_text(), "| reference")
    assert [r[:3] for r in refs[1:]] == [["majority class", "task.train_size=0.4", "2"],
                                         ["majority class", "task.train_size=0.8", "2"]]
    assert [r[4] for r in refs[1:]] == [f"{100 * (0.3 + s / 10):.2f}" for s in (0.4, 0.8)]


def old_run(path: Path, seed: int, val: float) -> None:
    """A run folder from before the task layer: no task, metrics, select_metric or baselines."""
    metrics = {"dataset": "synthetic", "neuron": "adaptive_lif", "val_micro_f1": val, "val_macro_f1": val - 0.1,
               "test_macro_f1": val - 0.05, "test_micro_f1": val + 0.01, "best_epoch": 1, "epoch_seconds": 0.5,
               "params": 1000, "overrides": [f"seed={seed}", "trainer.train_size=0.4"], "history": []}
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "trainer": {"train_size": 0.4}}))
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_old_runs_report_as_node_classification(tmp_path):
    old_run(tmp_path / "old" / "0", 1, 0.5)
    old_run(tmp_path / "old" / "1", 2, 0.6)
    write_run(tmp_path / "new" / "0", task="node_classification", metrics=NC["metrics"], select=NC["select"],
              scores=nc_scores("spikenet", 3), baselines=NC_BASELINES, overrides=["seed=3", "trainer.epochs=1"],
              config={"seed": 3})
    report = make_report(tmp_path, figures=False)
    (nc,) = report.sections  # old and new node-classification runs share one table
    assert nc.task.name == "node_classification" and nc.task.select == "val_micro_f1"
    assert nc.varying == ["trainer.epochs", "trainer.train_size"] and len(nc.runs) == 3 and len(nc.variants) == 2
    md = (tmp_path / "summary.md").read_text()
    header = table(md, "|")[0]
    first = header.index("test Ma-F1 (%)")
    assert header[first:first + 3] == ["test Ma-F1 (%)", "test Mi-F1 (%)", "val Mi-F1 (%)"]
    # only the new run recorded baselines: its row says so
    refs = table(md, "| reference")
    assert refs[1][:3] == ["majority class", "trainer.epochs=1, trainer.train_size=-", "1"]
    # old runs alone: no baselines, so no reference rows
    report = make_report(tmp_path / "old", figures=False)
    assert report.sections[0].task.metrics == ("macro_f1", "micro_f1")
    md = (tmp_path / "old" / "summary.md").read_text()
    assert "| reference" not in md and pct([0.5, 0.6]) in md


@pytest.mark.parametrize(("field", "value", "key"), [
    ("metrics", "ap", "metrics"),
    ("select_metric", "test_ap", "select_metric"),
    ("baselines", {"edgebank": 0.5}, "baselines.edgebank"),
    ("baselines", {"edgebank": {"test_ap": "high"}}, "baselines.edgebank.test_ap"),
])
def test_malformed_task_fields_name_the_file_and_key(tmp_path, field, value, key):
    path = write_run(tmp_path / "0", task="link_prediction", metrics=LP["metrics"], select=LP["select"],
                     scores=lp_scores("gru", 1), overrides=[], config={})
    metrics = json.loads((path / "metrics.json").read_text())
    metrics[field] = value
    (path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunFormatError, match=rf"metrics\.json: key '{key}' should be"):
        make_report(tmp_path, figures=False)


def test_a_new_task_without_metrics_is_refused(tmp_path):
    path = write_run(tmp_path / "0", task="link_prediction", metrics=LP["metrics"], select=LP["select"],
                     scores=lp_scores("gru", 1), overrides=[], config={})
    metrics = json.loads((path / "metrics.json").read_text())
    del metrics["metrics"], metrics["select_metric"]
    (path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunFormatError, match="task 'link_prediction' without the key 'metrics'"):
        make_report(tmp_path, figures=False)


def test_figures_plot_the_tasks_main_metric(tmp_path, monkeypatch):
    """A link-prediction grid over tau x alpha x p with differing costs gets every figure, and the figures
    and tables ask the runs for the task's own metrics only (MRR first: the selection metric's test side)."""
    from spikenet.reporting.collect import Variant

    job = 0
    for tau in (1.0, 2.0):
        for alpha in (0.5, 1.0):
            for p in (0.0, 1.0):
                scores = {k: v + tau / 100 - alpha / 50 + p / 20 for k, v in lp_scores("spikenet", 1).items()}
                write_run(tmp_path / str(job), task="link_prediction", metrics=LP["metrics"], select=LP["select"],
                          scores=scores, overrides=[f"neuron.tau={tau}", f"surrogate.alpha={alpha}",
                                                    f"sampler.p={p}", "seed=1"],
                          config={"seed": 1}, extra={"energy_uj": 1.0 + tau, "params": 1000 + job})
                job += 1
    asked: list[str] = []
    values = Variant.values
    monkeypatch.setattr(Variant, "values", lambda self, metric: asked.append(metric) or values(self, metric))
    report = make_report(tmp_path)
    names = {p.name for p in report.files}
    assert {"heatmap_tau_alpha.png", "score_vs_p.png", "score_vs_cost.png", "bars.png"} <= names
    for name in ("heatmap_tau_alpha.png", "score_vs_p.png", "score_vs_cost.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
    scores = {m for m in asked if m.startswith(("val_", "test_"))}
    assert {"test_mrr", "val_mrr", "test_ap", "test_auc"} <= scores
    assert not [m for m in scores if "f1" in m]
    assert report.sections[0].task.main_test == "test_mrr"


def test_main_metric_falls_back_to_the_first_metric():
    from spikenet.reporting.task_spec import LEGACY, TaskSpec

    assert LEGACY.main_test == "test_micro_f1" and LEGACY.main_val == "val_micro_f1"
    spec = TaskSpec("node_property", ("ndcg@10", "mae"), "val_loss_proxy")
    assert spec.main == "ndcg@10" and spec.table_columns == ("test_ndcg@10", "test_mae", "val_loss_proxy")
    assert column_header("test_ndcg@10") == "test NDCG@10 (%)" and column_header("test_mae") == "test mae"


def test_baseline_groups_without_a_telling_override_name_their_variants(tmp_path):
    """Two models whose runs saw different baselines (e.g. different seeds' negatives) but no override that
    explains it: each row names the variants it averages."""
    for job, (model, value) in enumerate([("spikenet", 0.5), ("ann", 0.5), ("gru", 0.6)]):
        write_run(tmp_path / str(job), task="link_prediction", metrics=LP["metrics"], select=LP["select"],
                  scores=lp_scores("gru", job), baselines={"edgebank": {"test_ap": value}}, model=model,
                  overrides=[f"model={model}", "seed=1"], config={"seed": 1, "model": {"name": model}})
    make_report(tmp_path, figures=False)
    refs = table((tmp_path / "summary.md").read_text(), "| reference")
    assert [r[:4] for r in refs[1:]] == [["EdgeBank", "model=spikenet; model=ann", "2", "50.00"],
                                         ["EdgeBank", "model=gru", "1", "60.00"]]


def test_a_key_added_after_a_run_does_not_set_it_apart(tmp_path):
    """Runs of one command line group together although only the later ones have a key added since
    (``model.coding.bias``); a run that sets the key is its own variant, and a run whose config never has the
    key (another model) stays '-'."""
    def run(job: int, overrides: list[str], coding: dict, model: str = "spikenet") -> None:
        seed = int(overrides[-1].split("=")[1])
        write_run(tmp_path / str(job), task="node_classification", metrics=NC["metrics"], select=NC["select"],
                  scores=nc_scores(model, seed), model=model, overrides=overrides,
                  config={"seed": seed, "model": {"name": model, "coding": coding},
                          "task": {"name": "node_classification"}})

    run(0, ["coding=threshold", "seed=1"], {"name": "threshold", "gain": 4.0})  # made before `bias` existed
    run(1, ["coding=threshold", "seed=2"], {"name": "threshold", "gain": 4.0, "bias": 0.0})
    run(2, ["coding=threshold", "model.coding.bias=-1.0", "seed=1"], {"name": "threshold", "gain": 4.0, "bias": -1.0})
    run(3, ["model=ann", "seed=1"], {"name": "real"}, model="ann")
    report = make_report(tmp_path, figures=False)
    groups = {tuple(v.labels.values()): sorted(r.seed for r in v.runs) for v in report.variants}
    assert groups == {("threshold", "0.0", "spikenet"): [1, 2], ("threshold", "-1.0", "spikenet"): [1],
                      ("-", "-", "ann"): [1]}
