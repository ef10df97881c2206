"""S independent MLPs as stacked parameters, with hand-written backward passes.

Every parameter carries a leading seed dimension S (weights (S, in, out), biases (S, 1, out)); a
linear layer is one ``torch.baddbmm`` over the S seeds, so S independent models run as one
program, and seed s's numbers depend only on seed s's parameters and inputs.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from .seeds import Streams


class StackedMLP(nn.Module):
    """S independent MLPs sizes[0] → … → sizes[-1], ReLU between layers, as stacked parameters.

    forward: (S, N, sizes[0]) -> (S, N, sizes[-1]); one baddbmm per layer for all S seeds.
    """

    def __init__(self, S: int, sizes: Sequence[int], streams: Optional[Streams], *, device="cpu",
                 dtype=torch.float32):
        super().__init__()
        self.S, self.sizes = S, list(sizes)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.zeros(S, fan_in, fan_out, dtype=torch.float64)
            b = torch.zeros(S, 1, fan_out, dtype=torch.float64)
            self.weights.append(nn.Parameter(w.to(device, dtype)))
            self.biases.append(nn.Parameter(b.to(device, dtype)))
        if streams is not None:
            self.reset_parameters(streams)

    @torch.no_grad()
    def reset_parameters(self, streams: Streams) -> None:
        """nn.Linear's default init, U(±1/sqrt(fan_in)) for W and b: per layer ONE draw of the
        seeds' ``init`` stream (float64, then cast: float32 and float64 runs start from the same
        point), W from its first fan_in·fan_out numbers, b from the rest."""
        for w, b in zip(self.weights, self.biases):
            S, fan_in, fan_out = w.shape
            bound = 1.0 / math.sqrt(fan_in)
            u = streams.uniform("init", (fan_in * fan_out + fan_out,), torch.float64)
            u = (2.0 * u - 1.0) * bound
            w.copy_(u[:, : fan_in * fan_out].view(S, fan_in, fan_out))
            b.copy_(u[:, fan_in * fan_out:].view(S, 1, fan_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        wb = [t for pair in zip(self.weights, self.biases) for t in pair]
        if torch.is_grad_enabled() and (h.requires_grad or any(t.requires_grad for t in wb)):
            return StackedMLPFn.apply(h, *wb)
        return _mlp_forward(h, wb)[-1]

    def sq_err(self, target: torch.Tensor, h: torch.Tensor, k: int = 1) -> torch.Tensor:
        """‖target − self(h)‖² per row, fused (see StackedMLPSqErrFn). target (S, P, D), h
        (S, P·k, d_in) (k rows of h per target row) -> (S, P·k)."""
        wb = [t for pair in zip(self.weights, self.biases) for t in pair]
        if torch.is_grad_enabled() and (h.requires_grad or any(t.requires_grad for t in wb)):
            return StackedMLPSqErrFn.apply(target, k, h, *wb)
        _, r = _sq_err_forward(target, k, h, wb)
        return torch.linalg.vector_norm(r, dim=-1).square()


# Layers with at most this many outputs (the encoder's last layer: 2 or 4) are computed transposed:
# MKL's batched GEMM takes 410-480 µs for (128 x 64) @ (64 x 2) at S = 50 and 75-190 µs for the
# transposed product (measured, one thread; docs/performance.md).
NARROW = 4


def _linear(b: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """b + h @ w per seed: h (S, N, in), w (S, in, out), b (S, 1, out) -> (S, N, out)."""
    if w.shape[1] == 1:  # fan_in 1 (a 1-d latent): an outer product, 3x faster as addcmul than as a K=1 GEMM
        return torch.addcmul(b, h, w)
    if w.shape[2] <= NARROW:  # (wᵀ hᵀ + bᵀ)ᵀ: a view of a (S, out, N) result
        return torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), h.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(b, h, w)


def _weight_grad(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """aᵀ g per seed: the weight gradient of a layer with input a (S, N, in), output gradient g (S, N, out)."""
    if g.shape[2] <= NARROW:
        return torch.bmm(g.transpose(1, 2), a).transpose(1, 2)
    return torch.bmm(a.transpose(1, 2), g)


def _mlp_forward(h: torch.Tensor, wb, relu_last: bool = False) -> list:
    """[input, relu(layer 1), ..., output]: each hidden ReLU is applied in place on baddbmm's
    fresh output (no extra buffer); the last layer is linear unless relu_last."""
    acts = [h]
    last = len(wb) // 2 - 1
    for i in range(last + 1):
        h = _linear(wb[2 * i + 1], h, wb[2 * i])
        if i < last or relu_last:
            h.relu_()
        acts.append(h)
    return acts


def _mlp_backward(ctx, acts, wb, g, need_x: bool):
    """Backward through the layers given the gradient g at the last layer's output (S, N, out).
    Returns (grad of the MLP input or None, [grad W0, grad b0, ...]); ``ctx.needs_input_grad`` is
    indexed from ``ctx.wb_offset`` for the weights."""
    L = len(wb) // 2
    need = ctx.needs_input_grad
    off = ctx.wb_offset
    grads = [None] * (2 * L)
    for i in reversed(range(L)):
        a = acts[i]
        if need[off + 2 * i]:
            grads[2 * i] = _weight_grad(a, g)
        if need[off + 2 * i + 1]:
            grads[2 * i + 1] = g.sum(1, keepdim=True)
        if i > 0 or need_x:
            w = wb[2 * i]
            # fan-in 1 (a 1-d latent): a row sum, as the forward's addcmul; a (N, out) x (out, 1)
            # GEMM would take a matrix-vector path whose rounding depends on the batch count S
            g = (g * w).sum(-1, keepdim=True) if w.shape[1] == 1 else torch.bmm(g, w.transpose(1, 2))
            if i > 0:  # ReLU backward, in place: a is the post-ReLU input of layer i
                torch.ops.aten.threshold_backward.grad_input(g, a, 0.0, grad_input=g)
    return (g if need_x else None), grads


class StackedMLPFn(torch.autograd.Function):
    """The stacked MLP with a hand-written backward: saves only each layer's input, and does the
    ReLU backward in place on the incoming gradient (threshold_backward with out = grad), so the
    backward allocates one buffer per layer instead of autograd's three."""

    @staticmethod
    def forward(ctx, x, *wb):
        acts = _mlp_forward(x, wb)
        ctx.save_for_backward(*acts[:-1], *wb)
        ctx.n_layers, ctx.wb_offset = len(wb) // 2, 1
        return acts[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        L = ctx.n_layers
        saved = ctx.saved_tensors
        gx, grads = _mlp_backward(ctx, saved[:L], saved[L:], g.contiguous(), ctx.needs_input_grad[0])
        return (gx, *grads)


def _sq_err_forward(target, k: int, h, wb):
    """Hidden activations and the residual r = target − MLP(h), the last layer's bias subtracted from
    the target in the same pass that broadcasts it over k samples per target row. target (S, P, D);
    h (S, P·k, d_in). Returns (acts: inputs of each layer, r (S, P·k, D))."""
    acts = _mlp_forward(h, wb[:-2], relu_last=True)
    w, b = wb[-2], wb[-1]
    S, P, D = target.shape
    if k == 1:
        c = target - b
    else:
        c = torch.sub(target.unsqueeze(2).expand(S, P, k, D), b.unsqueeze(1)).view(S, P * k, D)
    r = c.baddbmm_(acts[-1], w, alpha=-1.0)  # target − b − a·W, in place on the fresh c (no copy)
    return acts, r


class StackedMLPSqErrFn(torch.autograd.Function):
    """‖target − MLP(h)‖² per row, fused: the output layer, the residual and its squared norm share
    passes, and the backward starts from dsq/dout = −2r without autograd's chain of elementwise
    nodes. Differentiable in h and the weights (not in the target: the data)."""

    @staticmethod
    def forward(ctx, target, k, h, *wb):
        acts, r = _sq_err_forward(target, k, h, wb)
        sq = torch.linalg.vector_norm(r, dim=-1).square()
        ctx.save_for_backward(*acts, r, *wb)
        ctx.n_layers, ctx.wb_offset = len(wb) // 2, 3
        return sq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_sq):
        L = ctx.n_layers
        saved = ctx.saved_tensors
        acts, r, wb = saved[:L], saved[L], saved[L + 1:]
        g = r * (-2.0 * g_sq).unsqueeze(-1)  # d sq / d out = −2 r
        gh, grads = _mlp_backward(ctx, acts, wb, g, ctx.needs_input_grad[2])
        return (None, None, gh, *grads)
