"""Fused multi-step adaptive LIF for the torch backend: one autograd node for all T steps.

Autograd through a Python loop over T records ~10 small ops per step and keeps every temporary
alive; this Function runs the recurrence with in-place updates into preallocated [T, ...]
buffers, saves only H_t - theta_{t-1} (the surrogate's argument), H_t where the reset term needs
it, and the spikes, then walks back once. It computes exactly the update of ``AdaptiveLIFNode``:

    H_t = V_{t-1} + (X_t - (V_{t-1} - v_reset)) / tau;  S_t = [H_t >= theta_{t-1}]
    V_t = (1 - S_t) H_t + S_t v_reset;                   theta_t = decay theta_{t-1} + gamma S_t

With tau = 1 (the reference default) H_t = X_t + v_reset does not depend on V, so the charge is
one vectorised op over all steps and only the threshold recursion stays sequential; the backward
likewise only carries dL/dtheta. Tests check spikes and gradients against the step-by-step path.

``KernelAdaptiveLIF`` runs the same update in one compiled CPU pass per direction
(``csrc/adaptive_lif_cpu.cpp``), with an optional dropout on the output spikes folded in (its mask
given as the 16-bit words of ``FastDropout``); its backward recomputes the forward from the saved
input. ``KernelFirePool`` is that kernel with the next layer's input pooling folded in as well: it
returns the parents' outputs and their children's mean (``spikenet.models.aggregators.hop_inputs``
for a layer that maps hop 0 only) without writing the [T, M, F] spikes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from spikenet.neurons.grad_utils import reduce_to as _reduce_to


class FusedAdaptiveLIF(torch.autograd.Function):
    """Inputs: x_seq [T, ...], v0, theta0 (shaped like x_seq[0]) and the constants.

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
        diff = torch.empty_like(x_seq) if need_grad else None  # H_t - theta_{t-1}
        theta = theta0.expand_as(x_seq[0]).clone()
        if keep == 0.0:
            # no leak memory: all charges at once
            h_seq = torch.add(x_seq, v_reset).mul_(inv_tau) if (v_reset != 0.0 or tau != 1.0) else x_seq
            for t in range(T):
                s = spikes[t]
                torch.ge(h_seq[t], theta, out=s)
                if need_grad:
                    torch.sub(h_seq[t], theta, out=diff[t])
                theta.mul_(thresh_decay).add_(s, alpha=gamma)
            s_last = spikes[T - 1]
            v = h_seq[T - 1] - s_last * (h_seq[T - 1] - v_reset)
        else:
            h_seq = torch.empty_like(x_seq)
            v = v0.expand_as(x_seq[0]).clone()
            tmp = torch.empty_like(v)
            for t in range(T):
                h, s = h_seq[t], spikes[t]
                torch.add(x_seq[t], v_reset, out=h).mul_(inv_tau).add_(v, alpha=keep)
                torch.ge(h, theta, out=s)
                if need_grad:
                    torch.sub(h, theta, out=diff[t])
                # hard reset: V = H - S * (H - v_reset)
                torch.mul(h, s, out=tmp)
                torch.sub(h, tmp, out=v)
                if v_reset != 0.0:
                    v.add_(s, alpha=v_reset)
                theta.mul_(thresh_decay).add_(s, alpha=gamma)
        if need_grad:
            ctx.save_for_backward(spikes, h_seq, diff)
            ctx.consts = (tau, v_reset, thresh_decay, gamma, alpha, derivative, detach_reset)
            ctx.v0_shape = v0.shape
            ctx.theta0_shape = theta0.shape
        return spikes, v, theta

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last, grad_theta_last):
        spikes, h_seq, diff = ctx.saved_tensors
        tau, v_reset, thresh_decay, gamma, alpha, derivative, detach_reset = ctx.consts
        inv_tau = 1.0 / tau
        keep = 1.0 - inv_tau
        T = spikes.shape[0]
        slope = derivative(diff, alpha)  # surrogate dS/dH = -dS/dtheta, all steps at once
        g_theta = torch.zeros_like(spikes[0]) if grad_theta_last is None else grad_theta_last.clone()
        g_v = torch.zeros_like(spikes[0]) if grad_v_last is None else grad_v_last.clone()
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        grad_h = torch.empty_like(spikes)
        tmp = torch.empty_like(g_v)
        for t in range(T - 1, -1, -1):
            s, g_s = spikes[t], grad_h[t]
            # dL/dS_t = upstream + dL/dtheta_t * gamma + dL/dV_t * (v_reset - H_t) [reset path]
            torch.add(grad_spikes[t], g_theta, alpha=gamma, out=g_s)
            if not detach_reset and (keep != 0.0 or t == T - 1):
                torch.sub(v_reset, h_seq[t], out=tmp)
                g_s.addcmul_(g_v, tmp)
            g_s.mul_(slope[t])
            g_theta.mul_(thresh_decay).sub_(g_s)
            if keep != 0.0 or t == T - 1:
                # dL/dH_t = dL/dV_t * (1 - S_t) + surrogate part; V_{t-1} gets keep * dL/dH_t
                torch.mul(g_v, s, out=tmp)
                g_s.add_(g_v).sub_(tmp)
                g_v = g_s * keep if keep != 0.0 else g_v.zero_()
        grad_x = grad_h.mul_(inv_tau)
        grad_v0 = _reduce_to(g_v, ctx.v0_shape) if ctx.needs_input_grad[1] else None
        grad_theta0 = _reduce_to(g_theta, ctx.theta0_shape) if ctx.needs_input_grad[2] else None
        return grad_x, grad_v0, grad_theta0, None, None, None, None, None, None, None


_EMPTY = torch.empty(0)


def _flat_kernel_inputs(x_seq: torch.Tensor, v0: torch.Tensor, theta0: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled kernels' inputs: x [T, R] contiguous, V_0 and theta_0 [R] float32 (broadcast out)."""
    T = x_seq.shape[0]
    x = x_seq.contiguous().view(T, -1)
    R, state_shape = x.shape[1], x_seq.shape[1:]
    v = v0.detach().float().expand(state_shape).reshape(R).contiguous()
    th = theta0.detach().float().expand(state_shape).reshape(R).contiguous()
    return x, v, th


def _final_state_grads(grad_v_last: torch.Tensor | None, grad_theta_last: torch.Tensor | None, R: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/dV_T and dL/dtheta_T as fresh [R] float32 buffers (the kernels overwrite them with dL/dV_0, dL/dtheta_0)."""
    g_v = torch.zeros(R) if grad_v_last is None else grad_v_last.float().reshape(R).clone()
    g_theta = torch.zeros(R) if grad_theta_last is None else grad_theta_last.float().reshape(R).clone()
    return g_v, g_theta


def _initial_state_grads(ctx, g_v: torch.Tensor, g_theta: torch.Tensor
                         ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """dL/dV_0 and dL/dtheta_0 reduced to the shapes v0 and theta0 came in (``ctx.shapes``)."""
    x_shape, v0_shape, theta0_shape = ctx.shapes
    state_shape = x_shape[1:]
    grad_v0 = _reduce_to(g_v.view(state_shape), v0_shape) if ctx.needs_input_grad[1] else None
    grad_theta0 = _reduce_to(g_theta.view(state_shape), theta0_shape) if ctx.needs_input_grad[2] else None
    return grad_v0, grad_theta0


class KernelAdaptiveLIF(torch.autograd.Function):
    """``FusedAdaptiveLIF`` (+ dropout of the spikes) as one compiled CPU kernel per direction.

    Inputs: x_seq [T, ...] float32 on CPU, v0, theta0 (broadcastable to x_seq[0]), the constants,
    the surrogate's kernel id (``cpu_kernel.SURROGATE_KINDS``) and, for dropout, int16 ``words``
    (>= x_seq.numel()) with the keep threshold and scale (``FastDropout.keep_words``), or None.
    Returns (spikes, or spikes * dropout scale, [T, ...]), the final V and the final theta.
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
        surrogate_kind: int,
        detach_reset: bool,
        words: torch.Tensor | None,
        drop_threshold: int,
        drop_scale: float,
    ):
        from spikenet.neurons.cpu_kernel import ops

        ctx.set_materialize_grads(False)
        x, v, th = _flat_kernel_inputs(x_seq, v0, theta0)
        R, state_shape = x.shape[1], x_seq.shape[1:]
        need_grad = any(ctx.needs_input_grad[:3])
        out = torch.empty_like(x)
        v_last, theta_last = torch.empty(R), torch.empty(R)
        w = _EMPTY if words is None else words
        ops().alif_forward(x, v, th, w, out, v_last, theta_last, float(tau), float(v_reset), float(thresh_decay),
                           float(gamma), int(drop_threshold), float(drop_scale))
        if need_grad:  # the backward recomputes the forward from these (the kernel's header says why)
            ctx.save_for_backward(x, v, th, w)
            ctx.consts = (tau, v_reset, thresh_decay, gamma, alpha, surrogate_kind, detach_reset, drop_threshold,
                          drop_scale)
            ctx.shapes = (x_seq.shape, v0.shape, theta0.shape)
        return out.view(x_seq.shape), v_last.view(state_shape), theta_last.view(state_shape)

    @staticmethod
    def backward(ctx, grad_out, grad_v_last, grad_theta_last):
        from spikenet.neurons.cpu_kernel import ops

        x, v, th, words = ctx.saved_tensors
        tau, v_reset, thresh_decay, gamma, alpha, kind, detach_reset, drop_threshold, drop_scale = ctx.consts
        T, R = x.shape
        g = torch.zeros_like(x) if grad_out is None else grad_out.float().contiguous().view(T, R)
        g_v, g_theta = _final_state_grads(grad_v_last, grad_theta_last, R)
        grad_x = torch.empty_like(x)
        ops().alif_backward(x, v, th, g, words, g_v, g_theta, grad_x, float(tau), float(v_reset),
                            float(thresh_decay), float(gamma), float(alpha), int(kind), bool(detach_reset),
                            grad_v_last is not None, int(drop_threshold), float(drop_scale))
        return (grad_x.view(ctx.shapes[0]), *_initial_state_grads(ctx, g_v, g_theta), *([None] * 10))


class KernelFirePool(torch.autograd.Function):
    """``KernelAdaptiveLIF`` (+ dropout) followed by ``hop_inputs(out, [n0, n0 * size], [size], aggr)``.

    x_seq [T, M, F] holds n0 parent rows then each parent's ``size`` children (M = n0 (1 + size)).
    Returns (x_self [T, n0, F]: the parents' outputs, x_neigh [T, n0, F]: the mean, or sum, of each
    parent's children's outputs, the final V and theta shaped like x_seq[0]).
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, v0: torch.Tensor, theta0: torch.Tensor, tau: float, v_reset: float,
                thresh_decay: float, gamma: float, alpha: float, surrogate_kind: int, detach_reset: bool,
                words: torch.Tensor | None, drop_threshold: int, drop_scale: float, n0: int, size: int,
                aggr: str):
        from spikenet.neurons.cpu_kernel import ops

        ctx.set_materialize_grads(False)
        T, M, F = x_seq.shape
        x, v, th = _flat_kernel_inputs(x_seq, v0, theta0)
        R, state_shape = x.shape[1], x_seq.shape[1:]
        x_self, x_neigh = torch.empty(T, n0, F), torch.empty(T, n0, F)
        v_last, theta_last = torch.empty(R), torch.empty(R)
        w = _EMPTY if words is None else words
        mean = aggr == "mean"
        ops().alif_pool_forward(x, v, th, w, x_self.view(T, -1), x_neigh.view(T, -1), v_last, theta_last, int(n0),
                                int(size), mean, float(tau), float(v_reset), float(thresh_decay), float(gamma),
                                int(drop_threshold), float(drop_scale))
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(x, v, th, w)
            ctx.consts = (tau, v_reset, thresh_decay, gamma, alpha, surrogate_kind, detach_reset, drop_threshold,
                          drop_scale, n0, size, mean)
            ctx.shapes = (x_seq.shape, v0.shape, theta0.shape)
        return x_self, x_neigh, v_last.view(state_shape), theta_last.view(state_shape)

    @staticmethod
    def backward(ctx, g_self, g_neigh, grad_v_last, grad_theta_last):
        from spikenet.neurons.cpu_kernel import ops

        x, v, th, words = ctx.saved_tensors
        tau, v_reset, decay, gamma, alpha, kind, detach, thr, scale, n0, size, mean = ctx.consts
        T, R = x.shape
        pooled = (T, R // (1 + size))
        g_self = torch.zeros(pooled) if g_self is None else g_self.float().contiguous().view(pooled)
        g_neigh = torch.zeros(pooled) if g_neigh is None else g_neigh.float().contiguous().view(pooled)
        g_v, g_theta = _final_state_grads(grad_v_last, grad_theta_last, R)
        grad_x = torch.empty_like(x)
        ops().alif_pool_backward(x, v, th, g_self, g_neigh, words, g_v, g_theta, grad_x, int(n0), int(size), mean,
                                 float(tau), float(v_reset), float(decay), float(gamma), float(alpha), int(kind),
                                 bool(detach), grad_v_last is not None, int(thr), float(scale))
        return (grad_x.view(ctx.shapes[0]), *_initial_state_grads(ctx, g_v, g_theta), *([None] * 13))
