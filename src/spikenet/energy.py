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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class EnergyCosts:
    """Energy per operation in picojoules."""

    pj_per_ac: float = PJ_PER_AC
    pj_per_mac: float = PJ_PER_MAC

    @classmethod
    def from_cfg(cls, cfg: Any | None) -> EnergyCosts:
        """From an ``energy`` config node (``pj_per_ac``, ``pj_per_mac``: conf/config.yaml); None: the constants."""
        if cfg is None:
            return cls()
        return cls(float(cfg.pj_per_ac), float(cfg.pj_per_mac))


def summarize(ops: Sequence[LayerOps], costs: EnergyCosts) -> dict[str, float]:
    """Totals per target node: ``sops``, ``macs``, ``ann_macs``, ``energy_uj``, ``ann_energy_uj``, costs used."""
    sops = sum(op.sops for op in ops)
    macs = sum(op.macs for op in ops)
    ann_macs = sum(op.ann_macs for op in ops)
    energy_pj = costs.pj_per_ac * sops + costs.pj_per_mac * macs
    ann_energy_pj = costs.pj_per_mac * ann_macs
    return {
        "sops": float(sops),
        "macs": float(macs),
        "ann_macs": float(ann_macs),
        "energy_uj": energy_pj * 1e-6,
        "ann_energy_uj": ann_energy_pj * 1e-6,
        "pj_per_ac": costs.pj_per_ac,
        "pj_per_mac": costs.pj_per_mac,
    }
