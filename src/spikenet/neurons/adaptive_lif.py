"""The paper's LIF neuron with an adaptive firing threshold, as a SpikingJelly node.

Per step t, with V_0 = v_reset and theta_0 = v_threshold::

    H_t     = V_{t-1} + (X_t - (V_{t-1} - v_reset)) / tau     # charge
    S_t     = Heaviside(H_t - theta_{t-1})                     # fire (surrogate backward)
    V_t     = (1 - S_t) * H_t + S_t * v_reset                  # hard reset
    theta_t = thresh_decay * theta_{t-1} + gamma * S_t         # threshold adaptation

Unlike SpikingJelly's LIFNode, tau = 1.0 is allowed (the reference default). It subclasses
``BaseNode`` (not ``LIFNode``, whose eval mode bypasses overridden methods); theta is a
registered memory, so ``functional.reset_net`` resets it with V.

With ``fused`` on CPU, float32 inputs and one of the surrogates the compiled kernel knows
(``cpu_kernel.SURROGATE_KINDS``), the multi-step forward runs ``KernelAdaptiveLIF`` (one compiled
pass per direction), ``fire_and_drop`` folds the following dropout into it and ``fire_drop_pool``
the next layer's input pooling as well; elsewhere, or when
the kernel cannot be built, the torch-op ``FusedAdaptiveLIF``. ``cpu_kernel=False`` forces the
latter (``None``, the default, uses the kernel where it is available).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron
from torch import nn

from spikenet.contracts import FusedFiring, WordMaskDropout
from spikenet.neurons import cpu_kernel
from spikenet.neurons.fused_adaptive_lif import FusedAdaptiveLIF, KernelAdaptiveLIF, KernelFirePool
from spikenet.neurons.surrogates import ArcTan, Sigmoid, SpikeSurrogate, SuperSpike, Triangle

# surrogate class -> its id in the compiled kernel (exact types: a subclass may change the derivative)
_KERNEL_SURROGATES = {Sigmoid: "sigmoid", Triangle: "triangle", ArcTan: "arctan", SuperSpike: "super_spike"}


class AdaptiveLIFNode(neuron.BaseNode, FusedFiring):
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
        if gamma < 0.0:
            raise ValueError(f"neuron.gamma must be >= 0, got {gamma}")
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
        self.cpu_kernel: bool | None = None
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
        if self.fused and self._kernel_applies(x_seq):
            self._states_to_tensor(x_seq[0])
            spikes, self.v, self.theta = self._kernel(x_seq, None, 0, 1.0)
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

    # --- the compiled CPU kernel, with the dropout that follows the neuron folded in ----------
    def _kernel_applies(self, x_seq: torch.Tensor) -> bool:
        return (
            self.cpu_kernel is not False
            and self.step_mode == "m"
            and self.backend == "torch"
            and x_seq.device.type == "cpu"
            and x_seq.dtype == torch.float32
            and type(self.surrogate_function) in _KERNEL_SURROGATES
            and cpu_kernel.available()
        )

    def _kernel(self, x_seq: torch.Tensor, words: torch.Tensor | None, drop_threshold: int,
                drop_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kind = cpu_kernel.SURROGATE_KINDS[_KERNEL_SURROGATES[type(self.surrogate_function)]]
        return KernelAdaptiveLIF.apply(
            x_seq, self.v, self.theta, self.tau, self.v_reset, self.thresh_decay, self.gamma,
            self.surrogate_function.alpha, kind, self.detach_reset, words, drop_threshold, drop_scale,
        )

    def fire_and_drop(self, x_seq: torch.Tensor, dropout: nn.Module) -> torch.Tensor:
        """``dropout(self(x_seq))`` for a ``FastDropout``; in one kernel pass where the kernel applies.

        The dropout's random draws are the ones it would make itself, so the result is the same.
        """
        if not (dropout.training and dropout.p > 0.0 and isinstance(dropout, WordMaskDropout) and self.fused
                and self._kernel_applies(x_seq)):
            return dropout(self(x_seq))
        self._states_to_tensor(x_seq[0])
        words, threshold, scale = dropout.keep_words(x_seq.numel(), x_seq.device)
        out, self.v, self.theta = self._kernel(x_seq, words, threshold, scale)
        return out

    def fire_drop_pool(self, x_seq: torch.Tensor, dropout: nn.Module, n0: int, size: int, aggr: str
                       ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``hop_inputs(dropout(self(x_seq)), [n0, n0 * size], [size], aggr)`` in one kernel pass, or None
        where the kernel does not apply (the caller then takes the unfused path).

        Same random draws as ``fire_and_drop``; the [T, M, F] spikes are never written.
        """
        T, M, F = x_seq.shape
        if not (self.fused and self._kernel_applies(x_seq) and aggr in ("mean", "sum") and n0 * (1 + size) == M
                and F <= 1024 and (not dropout.training or dropout.p == 0.0 or isinstance(dropout, WordMaskDropout))):
            return None
        self._states_to_tensor(x_seq[0])
        words, threshold, scale = None, 0, 1.0
        if dropout.training and dropout.p > 0.0:
            words, threshold, scale = dropout.keep_words(x_seq.numel(), x_seq.device)
        kind = cpu_kernel.SURROGATE_KINDS[_KERNEL_SURROGATES[type(self.surrogate_function)]]
        x_self, x_neigh, self.v, self.theta = KernelFirePool.apply(
            x_seq, self.v, self.theta, self.tau, self.v_reset, self.thresh_decay, self.gamma,
            self.surrogate_function.alpha, kind, self.detach_reset, words, threshold, scale, n0, size, aggr,
        )
        return x_self, x_neigh
