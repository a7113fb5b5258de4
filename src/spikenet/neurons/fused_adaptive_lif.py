"""Fused multi-step adaptive LIF for the torch backend: one autograd node for all T steps.

Autograd through a Python loop over T records ~10 small ops per step and keeps every
temporary alive; this Function runs the recurrence with in-place updates, saves only what
the hand-written BPTT needs (H_t, the surrogate slope and the spikes), and walks back once.
It computes exactly the update of ``AdaptiveLIFNode`` (see that class for the equations);
tests check spikes and gradients against the step-by-step path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class FusedAdaptiveLIF(torch.autograd.Function):
    """Inputs: x_seq [T, ...], v0, theta0 (broadcastable to x_seq[0]) and the constants.

    Returns spikes [T, ...], the final V and the final theta.
    """

    @staticmethod
    def forward(
        ctx,
        x_seq: torch.Tensor,
        v0: torch.Tensor,
        theta0: torch.Tensor,
        tau: float,
        v_reset: float,
        thresh_decay: float,
        gamma: float,
        alpha: float,
        derivative: Callable,
        detach_reset: bool,
    ):
        T = x_seq.shape[0]
        need_grad = any(ctx.needs_input_grad[:3])
        inv_tau = 1.0 / tau
        keep = 1.0 - inv_tau
        spikes = torch.empty_like(x_seq)
        h_seq = torch.empty_like(x_seq) if need_grad else None
        slope_seq = torch.empty_like(x_seq) if need_grad else None
        v = v0.expand_as(x_seq[0]).clone()
        theta = theta0.expand_as(x_seq[0]).clone()
        h = torch.empty_like(x_seq[0])
        for t in range(T):
            # H = V + (X - (V - v_reset)) / tau = keep * V + (X + v_reset) / tau
            torch.add(x_seq[t], v_reset, out=h)
            h.mul_(inv_tau)
            if keep != 0.0:
                h.add_(v, alpha=keep)
            s = spikes[t]
            torch.ge(h, theta, out=s)  # bool -> float copy into the spike slot
            if need_grad:
                h_seq[t].copy_(h)
                slope_seq[t].copy_(derivative(h - theta, alpha))
            # hard reset: V = H + S * (v_reset - H)
            torch.addcmul(h, s, v_reset - h, out=v)
            theta.mul_(thresh_decay).add_(s, alpha=gamma)
        if need_grad:
            ctx.save_for_backward(spikes, h_seq, slope_seq)
            ctx.consts = (tau, v_reset, thresh_decay, gamma, detach_reset)
            ctx.v0_shape = v0.shape
            ctx.theta0_shape = theta0.shape
        return spikes, v, theta

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last, grad_theta_last):
        spikes, h_seq, slope_seq = ctx.saved_tensors
        tau, v_reset, thresh_decay, gamma, detach_reset = ctx.consts
        inv_tau = 1.0 / tau
        keep = 1.0 - inv_tau
        T = spikes.shape[0]
        zeros = torch.zeros_like(spikes[0])
        g_v = zeros.clone() if grad_v_last is None else grad_v_last.clone()
        g_theta = zeros.clone() if grad_theta_last is None else grad_theta_last.clone()
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        grad_x = torch.empty_like(spikes)
        g_s = torch.empty_like(spikes[0])
        for t in range(T - 1, -1, -1):
            s, h = spikes[t], h_seq[t]
            # dL/dS_t = upstream + dL/dV_t * (v_reset - H_t) [reset path] + dL/dtheta_t * gamma
            torch.add(grad_spikes[t], g_theta, alpha=gamma, out=g_s)
            if not detach_reset:
                g_s.addcmul_(g_v, v_reset - h)
            g_s.mul_(slope_seq[t])  # through the surrogate: d/dH = +slope, d/dtheta_{t-1} = -slope
            # dL/dH_t = dL/dV_t * (1 - S_t) + g_s
            g_h = g_v.sub_(g_v * s).add_(g_s)
            g_theta.mul_(thresh_decay).sub_(g_s)
            torch.mul(g_h, inv_tau, out=grad_x[t])
            g_v = g_h.mul_(keep)
        grad_v0 = _reduce_to(g_v, ctx.v0_shape) if ctx.needs_input_grad[1] else None
        grad_theta0 = _reduce_to(g_theta, ctx.theta0_shape) if ctx.needs_input_grad[2] else None
        return grad_x, grad_v0, grad_theta0, None, None, None, None, None, None, None


def _reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a full-size gradient down to a broadcast input's shape."""
    if grad.shape == shape:
        return grad
    return grad.sum_to_size(shape)
