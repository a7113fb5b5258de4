"""What T snapshots will cost a run, before they are built: peak memory and epoch time from T, N and E.

The terms follow what a run holds and does (docs/design.md):
- structure: the temporal CSR, O(E + N·T) int64 (``cum_degree`` and ``delta_indptr`` are [T, N]);
- features: [T, N, F] floats (FastRP or a file), and in evaluation two projected tables [T, N, H0]
  when the model projects layer 0 first (``SpikeNet.projection_pays``, within ``trainer.eval_cache_mb``);
- a training batch: every target samples R = 1 + s0 + s0·s1 rows per step (sizes [s0, s1]), so the
  gathered inputs, activations and their gradients grow with T · batch · R rows of width ~F + 4·H0;
  the test split's evaluation (once per run, batches of ``trainer.eval_batch_size`` targets) likewise,
  and it is usually the peak;
- time: a fixed cost per batch plus a cost per sampled row (train: forward and backward; evaluation:
  forward of the validation targets) plus the projection's T·N·F·H0 multiply-adds.

The constants are fitted (``benchmarks/speed/snapshot_cost.py --fit``) on this project's 2-core CPU machine
on the synthetic generator's shapes and DBLP (figures in ``CALIBRATION``). Other jobs shared the cores
during the calibration, which inflated even CPU seconds (DBLP: 13.6 CPU s for an epoch the README
measures at 2.89 s wall on the idle machine), so the time model is fitted in CPU seconds and scaled to
DBLP's idle epoch; Tmall's size checks it (``synthetic_tmall``: 54.9 s estimated, README 55-60 s).
Other thread counts scale it by (2 / threads)^0.75 (an assumption, not measured); a CUDA model divides
it by ``GPU_SPEEDUP`` (DBLP: 0.105 s on an H200, README). It is an estimate meant to tell 10 s from
100 s and 2 GB from 20 GB, not a benchmark.

``choose_steps`` turns the estimate into a snapshot count: the stamps' own count when it fits, else the
largest count of ``LADDER`` within the memory budget (``dataset.memory_share`` of the machine's memory,
and never more than is available now) and the target epoch time (never fewer than ``MIN_AUTO_STEPS``
for time alone), else a refusal.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

# Time, in wall seconds of a 2-thread CPU run on an idle machine: fitted CPU seconds / LOAD.
LOAD = 4.43  # CPU seconds of the (loaded) calibration per idle wall second: DBLP fit 12.79 / 2.89 s (README)
SECONDS_PER_BATCH = 0.521 / LOAD  # per training batch (sampling setup, optimiser step, small ops)
SECONDS_PER_ROW = 2.175e-6 / LOAD  # per sampled training row (forward and backward) at the reference width
EVAL_ROW_SHARE = 1.0 / 3.0  # an evaluation row (forward only) against a training row
SECONDS_PER_PROJECTION_MAC = 3e-11  # evaluation's layer-0 projection (~70 GFLOP/s products, docs/design.md)
REFERENCE_THREADS = 2
GPU_SPEEDUP = 20.0  # a CUDA model against this CPU (DBLP epoch: 0.105 s on an H200, 2.89 s here)
# Memory: peak RSS = BASE_BYTES + data (structure, features) + the larger of the largest training batch and
# the test evaluation (projected tables + its largest batch; test is scored once, after training).
BASE_BYTES = 622 * 2**20  # Python, torch, SpikingJelly, the CPU kernel, allocator arenas (fit intercept)
BYTES_PER_BATCH_ROW = 1158.0  # per sampled row (T x batch x R) of the largest training batch, reference width
BYTES_PER_EVAL_ROW = 1050.0  # per sampled row of the largest evaluation batch (test: T x eval batch x R)
CALIBRATION = """
benchmarks/speed/snapshot_cost.py, torch threads 2, load average 4-16 on 2 cores (other jobs), 1 training epoch
+ 1 validation pass (+ the test pass in the second table); time: CPU s measured and fitted
(batches x 0.521 + rows x 2.175e-6), memory: peak RSS and the model (622 MB + data + the larger of
training rows x 1158 B and projected tables + test rows x 1050 B); rows = T x batch x R, R = 16
(sizes [5, 2]), hids [128, 10], all nodes labelled, train 0.4.
shape N:E:T:F          CPU s   fit   peak MB (after training and validation)   fit (training part)
3219:40000:10:128       1.64   1.45      718                                    820
3219:40000:25:128       2.36   2.07      960                                   1116
3219:40000:50:128       3.69   3.09     1526                                   1609
3219:40000:100:128      4.59   5.15     2511                                   2595
3219:40000:200:128      6.37   9.25     4074                                   4566
3219:40000:400:128     18.43  17.46     8723                                   8509
3219:40000:100:32       5.50   5.15     2265                                   2206
25000:185000:10:128     7.60   7.88      956                                    935
25000:185000:25:128    11.87  12.66     1648                                   1395
25000:185000:50:128    21.10  20.64     2551                                   2162
dblp (25387, 25, 128)  13.63  12.79     1382                                   1400
with the test evaluation (its batch of min(4096, test) targets dominates; peak MB, estimate):
3219:40000:50:128  2347, 2335   3219:40000:100:128  4202, 4046   3219:40000:200:128  6811, 7469
25000:185000:25:128  3495, 3116   dblp  3336, 3130
"""
REFERENCE_WIDTH = 128 + 4 * 128  # F + 4 H0 of the calibration: the per-row figures scale with it


def _width(feature_dim: int, hidden: int) -> float:
    """Per-row cost relative to the calibration: F + 4 H0 (the [rows, H0] activations, spikes and gradients
    outweigh the gathered [rows, F] inputs; 32-d features cost ~0.9x of 128-d ones in memory, the same time)."""
    return (feature_dim + 4 * hidden) / REFERENCE_WIDTH


LADDER = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128, 160, 200, 256, 320, 400, 500,
          640, 800, 1000)
MIN_AUTO_STEPS = 16  # the time target alone never bins below this (the reference datasets have 13-27 steps)


# Where a run's settings come from when the dataset config does not carry them (``dataset.cost`` null, e.g.
# in ``src/features.py``, which composes no trainer): the groups' own defaults, read from their YAML files.
DEFAULT_GROUPS = {"batch_size": ("trainer/default", "batch_size"),
                  "eval_batch_size": ("trainer/default", "eval_batch_size"),
                  "train_size": ("task/node_classification", "train_size"),
                  "val_size": ("task/node_classification", "val_size"),
                  "eval_cache_mb": ("trainer/default", "eval_cache_mb"), "sizes": ("sampler/sage", "sizes"),
                  "hids": ("model/spikenet", "hids"), "device": ("config", "device")}


@dataclass(frozen=True)
class TrainShape:
    """What the estimate needs from the run's other groups: ``dataset.cost``, interpolated from ``trainer``,
    ``sampler``, ``model`` and ``device`` (conf/dataset/edgelist.yaml), else those groups' defaults."""

    batch_size: int
    eval_batch_size: int
    sizes: tuple[int, ...]
    hids: tuple[int, ...]
    train_size: float
    val_size: float
    eval_cache_mb: float
    feature_dim: int
    feature_itemsize: int = 4
    cuda: bool = False

    @classmethod
    def from_cfg(cls, dataset: Any = None, **overrides: Any) -> TrainShape:
        """From ``dataset.cost`` (missing or null values: the groups' YAML defaults); feature width from
        ``dataset.feature_dim`` (or ``num_features``, else the FastRP default); ``overrides`` replace fields."""
        given = dict(dataset.get("cost") or {}) if dataset is not None else {}
        values = {k: given.get(k) if given.get(k) is not None else _group_default(*where)
                  for k, where in DEFAULT_GROUPS.items()}
        dim = (dataset.get("feature_dim") or dataset.get("num_features")) if dataset is not None else None
        dtype = str(dataset.feature_dtype) if dataset is not None else "float32"
        device = str(values.pop("device"))
        shape = cls(
            batch_size=int(values["batch_size"]), eval_batch_size=int(values["eval_batch_size"]),
            sizes=tuple(int(x) for x in values["sizes"]), hids=tuple(int(h) for h in values["hids"]),
            train_size=float(values["train_size"]), val_size=float(values["val_size"]),
            eval_cache_mb=float(values["eval_cache_mb"]),
            feature_dim=int(dim or _group_default("dataset/edgelist", "feature_dim")),
            feature_itemsize=2 if dtype == "float16" else 4,
            cuda=device.startswith("cuda") or (device == "auto" and _cuda_available()),
        )
        return dataclasses.replace(shape, **overrides) if overrides else shape

    @property
    def rows_per_target(self) -> int:
        """R: rows sampled per target and step over all hops (1 + s0 + s0*s1 for sizes [s0, s1])."""
        return sum(math.prod(self.sizes[:h]) for h in range(len(self.sizes) + 1))

    @property
    def width(self) -> float:
        """Per-row cost relative to the calibration (``_width``)."""
        return _width(self.feature_dim, self.hids[0])


@functools.cache
def _group_file(group: str) -> dict:
    from omegaconf import OmegaConf

    from spikenet.data.storage.hints import group_file
    from spikenet.data.storage.paths import PROJECT_ROOT

    path = PROJECT_ROOT / "conf" / f"{group}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: dataset.cost needs the run's trainer, sampler and model settings")
    return OmegaConf.to_container(group_file(path), resolve=False)  # type: ignore[return-value]


def _group_default(group: str, key: str) -> Any:
    """``key`` of ``conf/<group>.yaml`` (with the files of its defaults list): the one place its default lives."""
    return _group_file(group)[key]


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


@dataclass
class Estimate:
    """A run's estimated peak memory (bytes) and epoch time (seconds) at ``steps`` snapshots."""

    steps: int
    peak_bytes: int
    epoch_seconds: float
    parts: dict

    def as_dict(self) -> dict:
        return asdict(self)


def split_counts(labelled: int, shape: TrainShape) -> tuple[int, int, int]:
    """(training, validation, test) targets of ``labelled`` nodes under ``task.train_size``/``val_size``."""
    n_val = int(round(shape.val_size * labelled))
    n_train = max(0, int(round(shape.train_size * labelled)) - n_val)
    return n_train, n_val, max(0, labelled - n_train - n_val)


def _projects(steps: int, nodes: int, n_val: int, shape: TrainShape) -> bool:
    """Whether evaluation projects layer 0 for all nodes (the model's rule, ``SpikeNet.projection_pays``)."""
    direct_rows = 2 * sum(math.prod(shape.sizes[:h]) for h in range(len(shape.sizes)))
    tables = 2 * steps * nodes * shape.hids[0] * 4
    return 2 * nodes * steps < n_val * direct_rows * steps and tables <= shape.eval_cache_mb * 2**20


def work_units(steps: int, nodes: int, n_train: int, n_val: int, shape: TrainShape) -> dict:
    """The time model's terms: batches, width-scaled training and evaluation rows, projection MACs."""
    scale = max(1.0, shape.width)  # narrower rows were not measured to be faster
    r = shape.rows_per_target
    projects = _projects(steps, nodes, n_val, shape)
    return {
        "batches": math.ceil(n_train / max(shape.batch_size, 1)),
        "train_rows": steps * n_train * r * scale,
        "eval_rows": steps * n_val * r * scale,
        "projection": 2.0 * steps * nodes * shape.feature_dim * shape.hids[0] if projects else 0.0,
    }


def memory_parts(steps: int, nodes: int, interactions: int, n_train: int, n_test: int, shape: TrainShape) -> dict:
    """The memory model's terms: data bytes (structure, features), evaluation's projected tables, and the
    width-scaled rows of the largest training batch and of the largest evaluation batch (the test split's,
    scored once per run)."""
    structure = 8 * (2 * steps * nodes + 4 * interactions + 2 * nodes)
    features = steps * nodes * shape.feature_dim * shape.feature_itemsize
    tables = 2 * steps * nodes * shape.hids[0] * 4 if _projects(steps, nodes, n_test, shape) else 0
    return {
        "structure": structure,
        "features": features,
        "data": structure + features,
        "tables": tables,
        "batch_rows": steps * min(shape.batch_size, max(n_train, 1)) * shape.rows_per_target * shape.width,
        "eval_rows": steps * min(shape.eval_batch_size, max(n_test, 1)) * shape.rows_per_target * shape.width,
    }


def estimate(steps: int, nodes: int, interactions: int, labelled: int, shape: TrainShape,
             threads: int | None = None) -> Estimate:
    """Peak memory (the run's: training, then the test evaluation) and epoch time (training + one
    validation pass) at ``steps`` snapshots."""
    n_train, n_val, n_test = split_counts(labelled, shape)
    units = work_units(steps, nodes, n_train, n_val, shape)
    seconds = (SECONDS_PER_BATCH * units["batches"] + SECONDS_PER_ROW * (units["train_rows"] + EVAL_ROW_SHARE
               * units["eval_rows"]) + SECONDS_PER_PROJECTION_MAC * units["projection"])
    threads = threads or _torch_threads()
    seconds *= (REFERENCE_THREADS / max(1, threads)) ** 0.75
    if shape.cuda:
        seconds /= GPU_SPEEDUP
    mem = memory_parts(steps, nodes, interactions, n_train, n_test, shape)
    build = 8 * (3 * steps * nodes + 24 * interactions)  # building the snapshots (guards.snapshot_build_bytes)
    train = BYTES_PER_BATCH_ROW * mem["batch_rows"]
    evaluate = mem["tables"] + BYTES_PER_EVAL_ROW * mem["eval_rows"]
    peak = BASE_BYTES + max(mem["data"] + max(train, evaluate), build)
    parts = {"structure": mem["structure"], "features": mem["features"], "tables": mem["tables"],
             "train_batch": int(train), "eval_batch": int(BYTES_PER_EVAL_ROW * mem["eval_rows"]), **units}
    return Estimate(int(steps), int(peak), float(seconds), parts)


def _torch_threads() -> int:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        return 1


@dataclass
class Budget:
    """Peak memory and target epoch time a plan must stay within."""

    memory_bytes: float
    epoch_seconds: float


@dataclass
class Plan:
    """The snapshot count to build: ``steps`` (``raw_steps`` when nothing changed), how (time bins or a
    merge) and why; ``fits`` false when not even one snapshot fits the memory budget."""

    steps: int
    raw_steps: int
    estimate: Estimate
    raw_estimate: Estimate
    fits: bool
    binding: str  # "" (the stamps' own count fits), "memory", "time" or "max_steps"

    @property
    def changed(self) -> bool:
        return self.steps != self.raw_steps


def choose_steps(raw_steps: int, nodes: int, interactions: int, labelled: int, shape: TrainShape, budget: Budget,
                 max_steps: int, threads: int | None = None) -> Plan:
    """The stamps' own ``raw_steps`` when they fit ``budget`` and ``max_steps``, else the largest ``LADDER``
    count that does (the time target alone never goes below ``MIN_AUTO_STEPS``)."""

    def est(t: int) -> Estimate:
        return estimate(t, nodes, interactions, labelled, shape, threads)

    raw = est(raw_steps)
    mem_ok = raw.peak_bytes <= budget.memory_bytes
    time_ok = raw.epoch_seconds <= budget.epoch_seconds or raw_steps <= MIN_AUTO_STEPS
    if mem_ok and time_ok and raw_steps <= max_steps:
        return Plan(raw_steps, raw_steps, raw, raw, True, "")
    binding = "max_steps" if mem_ok and time_ok else ("memory" if not mem_ok else "time")
    for t in sorted((c for c in LADDER if c < raw_steps and c <= max_steps), reverse=True):
        e = est(t)
        if e.peak_bytes <= budget.memory_bytes and (e.epoch_seconds <= budget.epoch_seconds or t <= MIN_AUTO_STEPS):
            return Plan(t, raw_steps, e, raw, True, binding)
    return Plan(1, raw_steps, est(1), raw, False, "memory")
