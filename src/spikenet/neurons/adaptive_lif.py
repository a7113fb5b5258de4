"""The paper's LIF neuron with an adaptive firing threshold, as a SpikingJelly node.

Per step t, with V_0 = v_reset and theta_0 = v_threshold::

    H_t     = V_{t-1} + (X_t - (V_{t-1} - v_reset)) / tau     # charge
    S_t     = Heaviside(H_t - theta_{t-1})                     # fire (surrogate backward)
    V_t     = (1 - S_t) * H_t + S_t * v_reset                  # hard reset
    theta_t = thresh_decay * theta_{t-1} + gamma * S_t         # threshold adaptation

Unlike SpikingJelly's LIFNode, tau = 1.0 is allowed (the reference default). theta is a registered
memory, so ``functional.reset_net`` resets it with V. The generated paths (compiled CPU kernel with
``fire_and_drop`` / ``fire_drop_pool``, the torch path, the CuPy kernels) come from its definition in
``definitions.py`` through ``SpikingNode``; the methods below are the step-by-step reference.
"""

from __future__ import annotations

from typing import Any

import torch

from spikenet.neurons.definitions import ADAPTIVE_LIF, NeuronDef
from spikenet.neurons.nodes import SpikingNode, node_for
from spikenet.neurons.surrogates import SpikeSurrogate


def check_adaptive(tau: float, thresh_decay: float, gamma: float) -> None:
    """``neuron.tau`` >= 1 (1 is the paper's), ``neuron.thresh_decay`` in [0, 1], ``neuron.gamma`` >= 0."""
    if tau < 1.0:
        raise ValueError(f"neuron.tau must be >= 1.0, got {tau}")
    if not 0.0 <= thresh_decay <= 1.0:
        raise ValueError(f"neuron.thresh_decay must be in [0, 1], got {thresh_decay}")
    if gamma < 0.0:
        raise ValueError(f"neuron.gamma must be >= 0, got {gamma}")


@node_for(ADAPTIVE_LIF)
class AdaptiveLIFNode(SpikingNode):
    """Multi-step adaptive-threshold LIF; ``fused`` picks the generated one-Function paths on torch."""

    @classmethod
    def from_config(cls, definition: NeuronDef, cfg: Any, channels: int | None, **common: Any) -> AdaptiveLIFNode:
        return cls(tau=float(cfg.tau), thresh_decay=float(cfg.thresh_decay), gamma=float(cfg.gamma), **common)

    @classmethod
    def check_config(cls, definition: NeuronDef, cfg: Any) -> None:
        super().check_config(definition, cfg)
        check_adaptive(float(cfg.tau), float(cfg.thresh_decay), float(cfg.gamma))

    def __init__(
        self,
        tau: float = 1.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        thresh_decay: float = 0.7,
        gamma: float = 0.2,
        surrogate_function: SpikeSurrogate | None = None,
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: str = "torch",
        fused: bool = True,
    ) -> None:
        check_adaptive(tau, thresh_decay, gamma)
        super().__init__(v_threshold=v_threshold, v_reset=v_reset, surrogate_function=surrogate_function,
                         detach_reset=detach_reset, step_mode=step_mode, backend=backend, fused=fused)
        self.tau = float(tau)
        self.thresh_decay = float(thresh_decay)
        self.gamma = float(gamma)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau}, thresh_decay={self.thresh_decay}, gamma={self.gamma}"

    def constants(self) -> dict[str, float]:
        inv_tau = 1.0 / self.tau
        return {"inv_tau": inv_tau, "keep": 1.0 - inv_tau, "v_reset": self.v_reset,
                "thresh_decay": self.thresh_decay, "gamma": self.gamma}

    # --- the step-by-step reference path (BaseNode's charge -> fire -> reset) ---------------
    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + (x - (self.v - self.v_reset)) / self.tau

    def neuronal_fire(self) -> torch.Tensor:
        return self.surrogate_function(self.v - self.theta)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        spike_d = self._reset_spike(spike)
        self.v = (1.0 - spike_d) * self.v + spike_d * self.v_reset

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._states_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        self.theta = self.thresh_decay * self.theta + self.gamma * spike
        return spike
