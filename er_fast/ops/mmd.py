"""er_fast.mmd_imq: the op's Python face (checks, fake kernel, autograd, reference fallback)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from .. import reference
from . import _ext

DEFAULT_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
MAX_SCALES = 32  # the kernels' fixed-size constant block (csrc/common/imq.h kMaxScales)


def _check(x: torch.Tensor, y: torch.Tensor, c: float, scales: Sequence[float], unbiased: bool) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"mmd_imq: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"mmd_imq: {name} must be a floating-point tensor, got {t.dtype}")
        if t.dim() < 2:
            raise ValueError(f"mmd_imq: {name} must have shape (..., n, d), got {tuple(t.shape)}")
    if x.device != y.device:
        raise ValueError(f"mmd_imq: x and y are on different devices ({x.device} and {y.device})")
    if x.dtype != y.dtype:
        raise TypeError(f"mmd_imq: x and y have different dtypes ({x.dtype} and {y.dtype})")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"mmd_imq: x and y must have the same d, got {x.shape[-1]} and {y.shape[-1]}")
    if x.shape[:-2] != y.shape[:-2]:
        raise ValueError(
            f"mmd_imq: x and y must have the same batch shape, got {tuple(x.shape[:-2])} and {tuple(y.shape[:-2])}"
        )
    if x.shape[-1] < 1:
        raise ValueError("mmd_imq: d must be at least 1")
    if unbiased and (x.shape[-2] < 2 or y.shape[-2] < 2):
        raise ValueError(
            f"mmd_imq: unbiased=True needs at least 2 points in x and in y, got n={x.shape[-2]}, m={y.shape[-2]}"
        )
    if not unbiased and (x.shape[-2] < 1 or y.shape[-2] < 1):
        raise ValueError("mmd_imq: x and y need at least one point each")
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"mmd_imq: c must be positive and finite, got {c}")
    if len(scales) == 0:
        raise ValueError("mmd_imq: scales must not be empty")
    if len(scales) > MAX_SCALES:
        raise ValueError(f"mmd_imq: at most {MAX_SCALES} scales are supported, got {len(scales)}")
    for s in scales:
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"mmd_imq: every scale must be positive and finite, got {s}")
        # C_s = c * s must be a normal positive number in the compute dtype (float32 below float64).
        fi = torch.finfo(torch.float64 if x.dtype == torch.float64 else torch.float32)
        if not (fi.tiny <= c * s <= fi.max):
            raise ValueError(f"mmd_imq: c * scale = {c * s} is not a positive finite {fi.dtype} number")


def mmd_imq(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    c: Optional[float] = None,
    scales: Sequence[float] = DEFAULT_SCALES,
    unbiased: bool = True,
) -> torch.Tensor:
    """Squared MMD between x (..., n, d) and y (..., m, d) with the multi-scale IMQ kernel.

    k(a, b) = sum_s C_s / (C_s + |a - b|²), C_s = c * s, c defaulting to 2 * d (the WAE code's
    constant for a unit Gaussian prior). ``unbiased=True`` leaves the diagonal out of the
    within-sample terms (divided by n(n-1), m(m-1)); ``False`` gives the V-statistic.
    float16/bfloat16 inputs are computed in float32 and cast back.
    Returns a tensor of the batch shape (...).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"mmd_imq: x must be a torch.Tensor, got {type(x).__name__}")
    c = 2.0 * x.shape[-1] if c is None else float(c)
    if isinstance(scales, (int, float)):
        scales = (scales,)
    scales = [float(s) for s in scales]
    _check(x, y, c, scales, unbiased)
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # accumulate in float32
        x, y = x.float(), y.float()
    if _ext.compiled("mmd_imq", x):
        gx = x.requires_grad and torch.is_grad_enabled()
        gy = y.requires_grad and torch.is_grad_enabled()
        out = torch.ops.er_fast.mmd_imq(x, y, c, scales, unbiased, gx, gy)[0]
    else:
        out = reference.mmd_imq(x, y, c, scales, unbiased)
    return out.to(dtype)


if _ext.defined("mmd_imq"):

    @torch.library.register_fake("er_fast::mmd_imq")
    def _(x, y, c, scales, unbiased, grad_x, grad_y):
        batch = x.shape[:-2]
        gx = torch.empty_like(x, memory_format=torch.contiguous_format) if grad_x else x.new_empty(0)
        gy = torch.empty_like(y, memory_format=torch.contiguous_format) if grad_y else y.new_empty(0)
        return x.new_empty(batch), gx, gy

    def _setup_context(ctx, inputs, output):
        _, gx, gy = output
        ctx.save_for_backward(gx, gy)
        ctx.mark_non_differentiable(gx, gy)
        ctx.grad_x, ctx.grad_y = inputs[5], inputs[6]

    def _backward(ctx, grad, _gx, _gy):
        if torch.is_grad_enabled():
            # The saved gradients are constants to autograd: a second derivative would be wrong.
            raise RuntimeError("mmd_imq: double backward (create_graph=True) is not supported")
        gx, gy = ctx.saved_tensors
        if (ctx.needs_input_grad[0] and not ctx.grad_x) or (ctx.needs_input_grad[1] and not ctx.grad_y):
            raise RuntimeError("mmd_imq: gradient requested for an input the op was told not to differentiate")
        # grad (...) scales the per-batch-element gradient (..., n, d).
        dx = grad[..., None, None] * gx if ctx.grad_x else None
        dy = grad[..., None, None] * gy if ctx.grad_y else None
        return dx, dy, None, None, None, None, None

    torch.library.register_autograd("er_fast::mmd_imq", _backward, setup_context=_setup_context)
