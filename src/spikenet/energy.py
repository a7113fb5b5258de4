"""Operation counts -> synaptic operations, multiply-accumulates and an energy estimate.

Models describe their work per classified target node as a list of ``LayerOps`` (one per linear
map: input rows, fan-in, fan-out, time steps, and the per-step firing rate of its inputs when they
are spikes). This module turns those counts into

- SOPs (synaptic operations): every input spike adds one weight column into ``fan_out`` outputs,
  so a map over spiking inputs costs ``rate_t * rows * fan_in * fan_out`` accumulates at step t;
- MACs: a map over real-valued inputs costs ``rows * fan_in * fan_out`` multiply-accumulates per
  step, whatever the values (the model's own dense work, e.g. SpikeNet's first layer); a map over
  sparse real-valued inputs (``valued``: e.g. SiGNN's spikes times a gate, zero where no spike) costs
  one multiply-accumulate per input event and output, ``rate_t * rows * fan_in * fan_out`` at step t;
- ANN MACs: what an ANN of the same shape needs, every map dense; an ANN aggregates neighbours
  before the map, so its rows are ``ann_rows`` where the spiking model feeds each neighbour's
  spikes in directly;
- energy: ``pj_per_ac * SOPs + pj_per_mac * MACs`` (and ``pj_per_mac * ANN MACs`` for the ANN),
  with per-operation costs from the config (defaults 0.9 pJ and 4.6 pJ: 32-bit float add and
  multiply-add at 45 nm, Horowitz, ISSCC 2014, the figures SNN papers usually quote).

Aggregation adds, neuron updates and nonlinearities are left out, for both sides alike.

A second account (``memory``, docs/energy.md) adds memory traffic to that compute, with per-access energies
from the config (``energy.*``): every operation reads its weight; a map reads its inputs once per row and
step (dense words, or one address per spike event); ``UnitOps`` (a layer of neurons, ReLUs or a spike
coder) reads and writes its state words every step and writes its outputs (dense words, or spike events).
A spike coder's own operations (comparisons, random numbers, its affine map) count in both accounts.
``break_even`` gives, per account, the factor on every firing rate at which the spiking model's energy
equals its dense twin's (energy is linear in the rates), against the twin in float32 and deployed in int8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

PJ_PER_AC = 0.9
PJ_PER_MAC = 4.6


@dataclass(frozen=True)
class LayerOps:
    """One linear map's work per target node: ``rows`` input rows of ``fan_in`` values at each of ``steps`` steps.

    ``rates`` (one per step) marks spiking inputs with their firing rate; None marks real-valued
    inputs. ``valued``: the inputs are events (at ``rates``) that carry a real value, so each costs
    multiply-accumulates, not accumulates. ``ann_rows``: the rows an ANN of the same shape multiplies
    (default ``rows``).
    """

    name: str
    rows: int
    fan_in: int
    fan_out: int
    steps: int
    rates: tuple[float, ...] | None = None
    ann_rows: int | None = None
    valued: bool = False
    source_rows: int | None = None  # rows the inputs are read from (a neighbour map: every neighbour's row)

    def __post_init__(self) -> None:
        if self.rates is not None and len(self.rates) != self.steps:
            raise ValueError(f"{self.name}: {len(self.rates)} firing rates for {self.steps} steps")
        if self.valued and self.rates is None:
            raise ValueError(f"{self.name}: valued inputs need their event rates")

    @property
    def dense_ops(self) -> int:
        """Multiply-accumulates of one step with every input present."""
        return self.rows * self.fan_in * self.fan_out

    @property
    def sops(self) -> float:
        """Spike-driven accumulates over all steps (0 for real-valued inputs, sparse or not)."""
        if self.rates is None or self.valued:
            return 0.0
        return float(sum(self.rates)) * self.dense_ops

    @property
    def macs(self) -> float:
        """Multiply-accumulates the model itself performs over all steps (0 for spiking inputs; rate-weighted
        for ``valued`` events)."""
        if self.rates is None:
            return self.steps * self.dense_ops
        return float(sum(self.rates)) * self.dense_ops if self.valued else 0

    @property
    def ann_macs(self) -> int:
        """Multiply-accumulates of the same map in an ANN of the same shape, over all steps."""
        rows = self.rows if self.ann_rows is None else self.ann_rows
        return self.steps * rows * self.fan_in * self.fan_out

    @property
    def input_rows(self) -> int:
        return self.rows if self.source_rows is None else self.source_rows

    def memory_pj(self, costs: EnergyCosts) -> float:
        """Memory traffic of the map over all steps: one weight read per operation, its inputs read once per
        row and step (dense words; or an address per spike event, plus a value word for ``valued`` events)."""
        if self.rates is None:
            inputs = self.steps * self.input_rows * self.fan_in * costs.pj_per_state_access
            return self.macs * costs.pj_per_weight_read + inputs
        events = float(sum(self.rates)) * self.rows * self.fan_in
        per_event = costs.pj_per_event + (costs.pj_per_state_access if self.valued else 0.0)
        return (self.sops + self.macs) * costs.pj_per_weight_read + events * per_event

    def ann_memory_pj(self, costs: EnergyCosts) -> float:
        """The same traffic in the dense twin: every weight per MAC, every input word (neighbours read to be
        aggregated)."""
        inputs = self.steps * self.input_rows * self.fan_in * costs.pj_per_state_access
        return self.ann_macs * costs.pj_per_weight_read + inputs


@dataclass(frozen=True)
class UnitOps:
    """Per-unit work of a layer of ``rows`` x ``width`` units at each of ``steps`` steps, per target node: neurons,
    ReLUs, a GRU cell or a spike coder.

    ``rates`` (one per step): the units emit spikes, written as events; None: one dense output word per unit
    and step. Per unit and step: ``states`` state words read and written, ``reads`` input words read (a coder's
    feature), ``params`` parameter words read, ``macs`` multiply-accumulates, ``acs`` accumulates (a comparison
    counts as one), ``randoms`` random numbers. ``twin``: the dense twin has this layer too (as ReLUs: no
    state, dense outputs); False for a spike coder.
    """

    name: str
    rows: int
    width: int
    steps: int
    rates: tuple[float, ...] | None = None
    states: int = 0
    reads: int = 0
    params: int = 0
    macs: int = 0
    acs: int = 0
    randoms: int = 0
    twin: bool = True

    def __post_init__(self) -> None:
        if self.rates is not None and len(self.rates) != self.steps:
            raise ValueError(f"{self.name}: {len(self.rates)} firing rates for {self.steps} steps")

    @property
    def units(self) -> int:
        """Unit updates over all steps."""
        return self.rows * self.width * self.steps

    @property
    def spikes(self) -> float:
        return 0.0 if self.rates is None else float(sum(self.rates)) * self.rows * self.width

    def memory_pj(self, costs: EnergyCosts) -> float:
        words = self.units * (2 * self.states + self.reads)
        outputs = self.units * costs.pj_per_state_access if self.rates is None else self.spikes * costs.pj_per_event
        return words * costs.pj_per_state_access + self.units * self.params * costs.pj_per_weight_read + outputs

    def ann_memory_pj(self, costs: EnergyCosts) -> float:
        """The dense twin's layer: a dense layer is its own twin; spiking units become ReLUs writing one word per
        unit and step; a coder has none."""
        if not self.twin:
            return 0.0
        return self.memory_pj(costs) if self.rates is None else self.units * costs.pj_per_state_access


@dataclass(frozen=True)
class EnergyCosts:
    """Energy per operation in picojoules."""

    pj_per_ac: float = PJ_PER_AC
    pj_per_mac: float = PJ_PER_MAC
    pj_per_weight_read: float = 10.0  # the config's values (conf/config.yaml, sources in docs/energy.md)
    pj_per_state_access: float = 5.0
    pj_per_event: float = 5.0
    pj_per_random: float = 0.6
    pj_per_mac_int8: float = 0.3  # the twin deployed in int8: 8-bit multiply 0.2 + 32-bit integer add 0.1
    int8_word_share: float = 0.25  # an 8-bit weight or activation costs this share of a 32-bit word's access

    def int8_twin(self) -> EnergyCosts:
        """The costs the int8-deployed twin pays: int8 MACs, 8-bit weights and activations."""
        share = self.int8_word_share
        return replace(self, pj_per_mac=self.pj_per_mac_int8, pj_per_weight_read=share * self.pj_per_weight_read,
                       pj_per_state_access=share * self.pj_per_state_access)

    @classmethod
    def from_cfg(cls, cfg: Any) -> EnergyCosts:
        """From the ``energy`` config node: one key per field."""
        return cls(**{f.name: float(cfg[f.name]) for f in fields(cls)})


Ops = LayerOps | UnitOps


def summarize(ops: Sequence[Ops], costs: EnergyCosts) -> dict[str, float]:
    """Totals per target node: ``sops``, ``macs``, ``ann_macs``, both accounts (``energy_uj`` and
    ``ann_energy_uj``: compute; ``memory_energy_uj`` and ``ann_memory_energy_uj``: compute plus memory),
    the mean firing rate of the spiking units, the costs used."""
    maps = [op for op in ops if isinstance(op, LayerOps)]
    units = [op for op in ops if isinstance(op, UnitOps)]
    sops = sum(op.sops for op in maps)
    macs = sum(op.macs for op in maps) + sum(u.units * u.macs for u in units)
    ann_macs = sum(op.ann_macs for op in maps)
    coder_pj = sum(u.units * (u.acs * costs.pj_per_ac + u.randoms * costs.pj_per_random) for u in units)
    energy_pj = costs.pj_per_ac * sops + costs.pj_per_mac * macs + coder_pj
    ann_energy_pj = costs.pj_per_mac * ann_macs
    memory_pj = sum(op.memory_pj(costs) for op in ops)
    ann_memory_pj = sum(op.ann_memory_pj(costs) for op in ops)
    int8 = costs.int8_twin()
    ann_int8_pj = int8.pj_per_mac * ann_macs
    ann_int8_memory_pj = sum(op.ann_memory_pj(int8) for op in ops)
    spiking = [u for u in units if u.rates is not None]
    unit_steps = sum(u.units for u in spiking)
    return {
        "sops": float(sops),
        "macs": float(macs),
        "ann_macs": float(ann_macs),
        "energy_uj": energy_pj * 1e-6,
        "ann_energy_uj": ann_energy_pj * 1e-6,
        "memory_energy_uj": (energy_pj + memory_pj) * 1e-6,
        "ann_memory_energy_uj": (ann_energy_pj + ann_memory_pj) * 1e-6,
        "ann_int8_energy_uj": ann_int8_pj * 1e-6,
        "ann_int8_memory_energy_uj": (ann_int8_pj + ann_int8_memory_pj) * 1e-6,
        "mean_rate": sum(u.spikes for u in spiking) / unit_steps if unit_steps else None,
        **{f.name: getattr(costs, f.name) for f in fields(costs)},
    }


def scale_rates(ops: Sequence[Ops], factor: float) -> list[Ops]:
    """``ops`` with every firing rate (map inputs and unit outputs) multiplied by ``factor``."""
    return [op if op.rates is None else replace(op, rates=tuple(factor * r for r in op.rates)) for op in ops]


ACCOUNTS = {"compute": ("energy_uj", "ann_energy_uj"), "memory": ("memory_energy_uj", "ann_memory_energy_uj"),
            "compute_int8": ("energy_uj", "ann_int8_energy_uj"),
            "memory_int8": ("memory_energy_uj", "ann_int8_memory_energy_uj")}


def break_even(ops: Sequence[Ops], costs: EnergyCosts) -> dict[str, float | None]:
    """Per account (against the float32 twin, and ``_int8`` against the int8-deployed twin): the factor λ on every
    firing rate (all layers and steps, the coder's included) at which the
    spiking model's energy equals its dense twin's, and the mean firing rate there (λ times ``mean_rate``).

    Energy is linear in the rates, E(λ) = E(0) + λ (E(1) − E(0)), so λ* = (E_twin − E(0)) / (E(1) − E(0)); λ* > 1:
    the model is cheaper than its twin now, λ* < 0: more expensive even without a spike. None for a model whose
    energy does not depend on rates (dense encoders).
    """
    at0, at1 = summarize(scale_rates(ops, 0.0), costs), summarize(ops, costs)
    out: dict[str, float | None] = {}
    for account, (own, twin) in ACCOUNTS.items():
        slope = at1[own] - at0[own]
        scale = (at1[twin] - at0[own]) / slope if slope > 0 else None
        out[f"break_even_scale_{account}"] = scale
        out[f"break_even_rate_{account}"] = (None if scale is None or at1["mean_rate"] is None
                                             else scale * at1["mean_rate"])
    return out
