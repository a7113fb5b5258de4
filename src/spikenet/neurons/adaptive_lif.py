"""The paper's LIF neuron with an adaptive firing threshold, as a SpikingJelly node.

Per step t, with V_0 = v_reset and theta_0 = v_threshold::

    H_t     = V_{t-1} + (X_t - (V_{t-1} - v_reset)) / tau     # charge
    S_t     = Heaviside(H_t - theta_{t-1})                     # fire (surrogate backward)
    V_t     = (1 - S_t) * H_t + S_t * v_reset                  # hard reset
    theta_t = thresh_decay * theta_{t-1} + gamma * S_t         # threshold adaptation

Unlike SpikingJelly's LIFNode, tau = 1.0 is allowed (the reference default). It subclasses
``BaseNode`` (not ``LIFNode``, whose eval mode bypasses overridden methods); theta is a
registered memory, so ``functional.reset_net`` resets it with V.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron

from spikenet.neurons.fused_adaptive_lif import FusedAdaptiveLIF
from spikenet.neurons.surrogates import Sigmoid, SpikeSurrogate


class AdaptiveLIFNode(neuron.BaseNode):
    """Multi-step adaptive-threshold LIF; ``fused`` picks the one-Function BPTT path on torch."""

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
        if tau < 1.0:
            raise ValueError(f"neuron.tau must be >= 1.0, got {tau}")
        if not 0.0 <= thresh_decay <= 1.0:
            raise ValueError(f"neuron.thresh_decay must be in [0, 1], got {thresh_decay}")
        if v_reset is None:
            raise ValueError("AdaptiveLIFNode uses a hard reset: v_reset must be a number")
        super().__init__(
            v_threshold=float(v_threshold),
            v_reset=float(v_reset),
            surrogate_function=surrogate_function or Sigmoid(1.0),
            detach_reset=detach_reset,
            step_mode=step_mode,
            backend=backend,
        )
        self.tau = float(tau)
        self.thresh_decay = float(thresh_decay)
        self.gamma = float(gamma)
        self.fused = fused
        self.register_memory("theta", float(v_threshold))

    @property
    def supported_backends(self) -> tuple[str, ...]:
        return ("torch",) if self.step_mode == "s" else ("torch", "cupy")

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, tau={self.tau}, thresh_decay={self.thresh_decay}, "
            f"gamma={self.gamma}, fused={self.fused}"
        )

    # --- the step-by-step reference path (BaseNode's charge -> fire -> reset) ---------------
    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + (x - (self.v - self.v_reset)) / self.tau

    def neuronal_fire(self) -> torch.Tensor:
        return self.surrogate_function(self.v - self.theta)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        spike_d = spike.detach() if self.detach_reset else spike
        self.v = (1.0 - spike_d) * self.v + spike_d * self.v_reset

    def _states_to_tensor(self, x: torch.Tensor) -> None:
        self.v_float_to_tensor(x)
        if isinstance(self.theta, float):
            self.theta = torch.full_like(x.data, self.theta)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._states_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        self.theta = self.thresh_decay * self.theta + self.gamma * spike
        return spike

    # --- multi-step: fused torch Function, CuPy kernel, or the loop above -------------------
    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if self.backend == "cupy":
            from spikenet.neurons.cupy_adaptive_lif import adaptive_lif_cupy

            self._states_to_tensor(x_seq[0])
            spikes, self.v, self.theta = adaptive_lif_cupy(x_seq, self.v, self.theta, self)
            return spikes
        if self.fused:
            self._states_to_tensor(x_seq[0])
            spikes, self.v, self.theta = FusedAdaptiveLIF.apply(
                x_seq,
                self.v,
                self.theta,
                self.tau,
                self.v_reset,
                self.thresh_decay,
                self.gamma,
                self.surrogate_function.alpha,
                type(self.surrogate_function).derivative,
                self.detach_reset,
            )
            return spikes
        return super().multi_step_forward(x_seq)
