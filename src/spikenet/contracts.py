"""The contracts between the layers: encoders, tasks, batch loaders, fused neurons and their dropout.

Each side of a boundary reads this module instead of probing attributes:

- ``Encoder`` (``spikenet.models``): layer-0 inputs of a batch's nodes over a window of steps in,
  one embedding per node out. It knows nothing about labels, losses or metrics; it counts its own
  operations (for the energy estimate) and records its spiking layers' firing rates on request.
- ``Task`` (``spikenet.tasks``): what a training example is, its splits, the head that reads the
  embeddings, the loss, the metrics and the validation metric that picks the best epoch.
- ``BatchLoader`` (``spikenet.training.loader``): examples -> ``Batch`` objects whose ``inputs``
  the encoder reads.
- ``FusedFiring`` / ``WordMaskDropout`` (``spikenet.neurons`` / ``spikenet.models.dropout``): a
  neuron that can apply the following dropout (and the next layer's input pooling) in its own
  kernel pass, given the dropout's random words.

The trainer runs any task over any encoder through these methods alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from spikenet.energy import LayerOps
from spikenet.registry import Registry

Tables = tuple[Any, Any]  # layer 0's (self rows, neighbour aggregates): tensors [T, M, F] or ``UniqueRows``


@dataclass
class Batch:
    """One minibatch: the nodes to embed, layer 0's inputs for them, and the task's own payload.

    ``nodes`` are the nodes the encoder embeds (in order: embedding row i is ``nodes[i]``);
    ``examples`` the task's example ids of this batch (target nodes for node classification, edge
    ids for link prediction); ``extra`` holds the tensors the head needs (e.g. which embedding rows
    are an edge's endpoints), on the model's device.
    """

    nodes: torch.Tensor
    inputs: Tables
    projected: bool  # inputs come from layer 0's projected tables (evaluation), not raw features
    examples: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Examples in the batch (the weight of its loss in an epoch mean)."""
        return int((self.examples if self.examples is not None else self.nodes).numel())


class BatchLoader(Protocol):
    """Turns node ids into layer-0 inputs on the model's device (``NodeLoader``)."""

    timings: dict[str, float]

    def clock(self) -> float: ...

    def inputs(self, nodes: torch.Tensor, generator: torch.Generator | None, tables: Tables | None = None,
               steps: torch.Tensor | None = None) -> Tables: ...

    def train_order(self, examples: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class Encoder(nn.Module, ABC):
    """Layer-0 inputs of B nodes over ``num_steps`` steps -> embeddings [B, ``embedding_dim``].

    ``sizes`` and ``aggr`` tell the loader how to sample and aggregate; ``spiking`` encoders record
    per-layer, per-step firing rates into ``spike_rates`` while ``record_spikes`` is set.
    """

    spiking: ClassVar[bool] = False
    num_steps: int
    sizes: list[int]
    aggr: str

    def __init__(self) -> None:
        super().__init__()
        self.record_spikes = False
        self.spike_rates: list[torch.Tensor] = []

    @classmethod
    def check_config(cls, cfg: Any, sizes: list[int]) -> None:
        """Range checks of the ``model`` config that need no data; ``config.validate`` runs them before any data
        is read, and the constructor makes the same checks (through the same functions). None by default."""

    @classmethod
    def from_config(cls, cfg: Any, in_features: int, num_steps: int, sizes: list[int],
                    make_neuron: Callable[[int], nn.Module]) -> Encoder:
        """The encoder for the ``model`` config ``cfg``: its keys are the constructor's keyword arguments, beside
        ``in_features``, ``num_steps``, ``sizes`` and (spiking encoders) ``make_neuron``, which builds one
        multi-step neuron layer of a given width. Keys the constructor does not take are left out (``name``; a
        key an ablation over several models sets for one of them, e.g. ``++model.hidden`` for the GRU); a
        constructor with ``**kwargs`` gets them all. Override it when the keys differ."""
        import inspect

        from omegaconf import OmegaConf

        kwargs = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
        kwargs.pop("name", None)
        params = inspect.signature(cls.__init__).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params or k == "coding"}
        if "coding" in kwargs and not cls.takes_coding():  # the ``coding`` group: real-valued inputs only
            from spikenet.models.coding import refuse_coding

            refuse_coding(str(cfg["name"]), kwargs.pop("coding"))
        if cls.spiking:
            kwargs["make_neuron"] = make_neuron
        return cls(in_features=in_features, num_steps=num_steps, sizes=list(sizes), **kwargs)

    @classmethod
    def takes_coding(cls) -> bool:
        """Whether the constructor takes ``coding`` (the ``coding`` group, ``spikenet.models.coding``); encoders
        that do not read real-valued features only, and refuse any other coding."""
        import inspect

        return "coding" in inspect.signature(cls.__init__).parameters

    @property
    @abstractmethod
    def embedding_dim(self) -> int:
        """Width D of the embeddings ``forward`` returns."""

    @abstractmethod
    def forward(self, x_self: Any, x_agg: Any, projected: bool = False) -> torch.Tensor:
        """Layer-0 inputs [T, M, F] (or projected [T, M, H]) -> embeddings [B, D] of the batch's nodes."""

    @abstractmethod
    def op_counts(self, rates: list[list[float]] | None) -> list[LayerOps] | None:
        """Work per embedded node (``spikenet.energy``); None for a spiking encoder without rates."""

    @abstractmethod
    def embedding_ops(self, name: str, fan_out: int, rates: list[list[float]] | None) -> LayerOps:
        """The work of a linear map of ``fan_out`` outputs reading one embedding (a head's first layer)."""

    @property
    def reads_hop_rows(self) -> bool:
        """Whether ``forward`` takes every hop's rows [T, n_0 + ... + n_L, F] and None (an encoder that codes its
        features into spikes before it aggregates neighbours) instead of self rows and neighbour aggregates."""
        return False

    def projection_pays(self, num_targets: int, num_nodes: int, feature_steps: int, budget_bytes: float) -> bool:
        """Whether evaluation should map layer 0 once for all nodes (``project_inputs``); never by default."""
        return False

    def project_inputs(self, features: torch.Tensor) -> Tables:
        """Layer 0's linear maps of every node, for ``projected`` evaluation batches."""
        raise NotImplementedError(f"{type(self).__name__} has no projected evaluation path")


class Task(ABC):
    """One question asked of a dynamic graph: examples, splits, head, loss, metrics, model selection.

    Metric names are bare (``micro_f1``, ``ap``); the trainer reports them per split as
    ``<split>_<name>``. ``select`` names the validation metric that picks the best epoch (higher is
    better). The examples of a split are one 1-D tensor of ids, so that distributed evaluation can
    shard them and put the kept outputs back in order.
    """

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    select: ClassVar[str]

    @abstractmethod
    def encoder_steps(self) -> int:
        """How many steps the encoder reads per example (all of them, or a window before the example's step)."""

    @abstractmethod
    def build_head(self, encoder: Encoder) -> nn.Module:
        """The task's head: ``head(embeddings, batch.extra)`` -> the output ``loss`` and ``keep`` read."""

    @abstractmethod
    def examples(self, split: str) -> torch.Tensor:
        """The example ids of ``split`` (``train``, ``val`` or ``test``)."""

    @abstractmethod
    def batches(self, loader: BatchLoader, examples: torch.Tensor, batch_size: int,
                generator: torch.Generator | None, tables: Tables | None = None, limit: int | None = None,
                shuffle: bool = False) -> Iterator[Batch]:
        """Batches of ``examples`` (in order; ``shuffle`` reorders batches where the task groups them)."""

    @abstractmethod
    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The mean training loss of one batch."""

    @abstractmethod
    def keep(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """What evaluation keeps of a batch's output: one row per example, in the batch's example order."""

    @abstractmethod
    def score(self, split: str, examples: torch.Tensor, kept: torch.Tensor) -> dict[str, float]:
        """The metrics of ``split`` from the kept rows of all its ``examples`` (same order)."""

    def baselines(self) -> dict[str, dict[str, float]]:
        """Reference scores that need no training, per predictor: ``{"majority": {"test_micro_f1": ...}}``
        (metrics.json's ``baselines``; reports show them as reference rows)."""
        return {}

    def warnings(self, result: dict) -> list[str]:
        """One-line warnings about a finished fit's result that only this task can judge."""
        return []

    def head_ops(self, encoder: Encoder, head: nn.Module, rates: list[list[float]] | None) -> list[LayerOps]:
        """The head's work per example, for the energy estimate."""
        return []

    def place(self, model_device: torch.device, data_device: torch.device) -> Task:
        """Put what the loss reads (labels) on ``model_device`` and the example ids where the graph lives
        (``data_device``: shuffling and sampling run there); returns self."""
        return self

    def summary(self, metrics: dict) -> str:
        """The scores part of the run's last console line."""
        test = " ".join(f"{m} {metrics[f'test_{m}']:.4f}" for m in self.metrics
                        if isinstance(metrics.get(f"test_{m}"), float))
        return (f"test {test} at epoch {metrics.get('best_epoch')} "
                f"(val {self.select} {metrics.get(f'val_{self.select}', float('nan')):.4f})")


ENCODERS: Registry[type[Encoder]] = Registry("model", "model.name")
"""``model=<name>`` -> an ``Encoder`` subclass, registered beside it with ``@ENCODERS.register("name")``; the class
says whether it is ``spiking`` (then it reads the ``neuron`` and ``surrogate`` groups), ``check_config`` checks its
config before any data is read and ``from_config`` builds it. Its keys live in ``conf/model/<name>.yaml``."""

TaskBuilder = Callable[[Any, Any, int], Task]  # (task config, TemporalGraph, run seed) -> Task
TASKS: Registry[TaskBuilder] = Registry("task", "task.name")
"""``task=<name>`` -> a builder of the ``Task``, registered with ``@TASKS.register("name", check=fn)``; ``check(cfg)``
validates the ``task`` config before any data is read. Its keys live in ``conf/task/<name>.yaml``."""


class FusedFiring(ABC):
    """A multi-step neuron that can fold the following dropout, and the next layer's input pooling, into
    its own kernel pass (``SpikeNet`` calls these instead of neuron, dropout and pooling one by one)."""

    @abstractmethod
    def fire_and_drop(self, x_seq: torch.Tensor, dropout: nn.Module) -> torch.Tensor:
        """``dropout(self(x_seq))``, in one pass where the neuron's kernel applies."""

    @abstractmethod
    def fire_drop_pool(self, x_seq: torch.Tensor, dropout: nn.Module, n0: int, size: int, aggr: str
                       ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The next layer's (self rows, neighbour aggregates) of ``dropout(self(x_seq))`` in one pass, or None
        where the kernel does not apply (the caller then takes the unfused path)."""


class WordMaskDropout(ABC):
    """A dropout whose mask a fused kernel can apply: 16-bit random words with a keep threshold and scale."""

    p: float
    training: bool

    @abstractmethod
    def keep_words(self, numel: int, device: torch.device) -> tuple[torch.Tensor, int, float]:
        """(int16 words, threshold, scale) of the next ``numel`` units: kept where ``word < threshold``."""
