"""er_fast.mmd_imq: the op's Python face (checks, fake kernel, autograd, reference fallback)."""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch

from ..util.validation import fail, shown, tensor
from . import backend, reference
from .autograd_impl import (derivative_tangents, guard, has_tangent, redispatch, refuse_nested_differentiation,
                            refuse_second_order, register, save_with_first_derivatives)
from .fake_checks import check, check_float, check_same_device, check_same_dtype, num, sizes
from .fake_checks import scalar_type as fake_scalar

DEFAULT_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
MAX_SCALES = 32  # the kernels' fixed-size constant block (csrc/common/mmd_imq_math.h kMaxScales)
OP = "er_fast.mmd_imq"


def _real(what: str, v) -> float:
    # A tensor c or scale would silently get no gradient: only plain numbers are accepted.
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        fail(f"{OP}: {what}", "be a real number (not a tensor or string)", type(v).__name__, TypeError)
    return float(v)


def _scales(scales) -> list[float]:
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = (scales,)
    if isinstance(scales, (str, bytes, torch.Tensor)) or not isinstance(scales, Sequence):
        fail(f"{OP}: scales", "be a sequence of real numbers", shown(scales), TypeError)
    return [_real("every scale", s) for s in scales]


def _check(x, y, c: float, scales: Sequence[float], unbiased: bool) -> None:
    """The same rules, in the same words, as the C++ entry (csrc/common/mmd_imq_checks.h)."""
    tensor(f"{OP}: x", x, floating=True)
    tensor(f"{OP}: y", y, floating=True)
    if y.device != x.device:
        fail(f"{OP}: y", f"be on the device of x ({x.device})", y.device)
    if y.dtype != x.dtype:
        fail(f"{OP}: y", f"be of the dtype of x ({x.dtype})", y.dtype, TypeError)
    if x.dim() < 2 or y.dim() < 2:
        fail(f"{OP}: x and y", "be of shape (..., n, d)", f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[:-2] != y.shape[:-2]:
        fail(f"{OP}: x and y", "be of the same batch shape", f"{tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[-1] != y.shape[-1]:
        fail(f"{OP}: x and y", "be of the same d", f"{x.shape[-1]} and {y.shape[-1]}")
    if x.shape[-1] < 1:
        fail(f"{OP}: d", "be at least 1", x.shape[-1])
    n, m = x.shape[-2], y.shape[-2]
    if unbiased and (n < 2 or m < 2):
        fail(f"{OP}: x and y", "be samples of at least 2 points each when unbiased=True", f"n={n}, m={m}")
    if n < 1 or m < 1:
        fail(f"{OP}: x and y", "be samples of at least one point each", f"n={n}, m={m}")
    if not (math.isfinite(c) and c > 0):
        fail(f"{OP}: c", "be positive and finite", c)
    if len(scales) == 0:
        fail(f"{OP}: scales", "be non-empty", [])
    if len(scales) > MAX_SCALES:
        fail(f"{OP}: scales", f"be a list of at most {MAX_SCALES} values", f"{len(scales)} values")
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    fi = torch.finfo(compute)
    for s in scales:
        if not (math.isfinite(s) and s > 0):
            fail(f"{OP}: every scale", "be positive and finite", s)
        # C_s = c * s must be a normal positive number in the compute dtype (float32 below float64).
        if not (fi.tiny <= c * s <= fi.max):
            fail(f"{OP}: c * scale", f"be a positive normal {str(compute)[6:]} number", c * s)


def _fake_check(x, y, c, scales, unbiased) -> None:
    """csrc/common/mmd_imq_checks.h for the fake kernel, in its words (torch._check)."""
    op = "mmd_imq"
    check_float(x, op, "x")
    check_same_dtype(x, y, op, "x", "y")
    check_same_device(x, y, op, "x", "y")
    check(x.dim() >= 2 and y.dim() >= 2, op,
          lambda: f"x and y must be of shape (..., n, d), got {sizes(x.shape)} and {sizes(y.shape)}")
    check(x.dim() == y.dim() and x.shape[:-2] == y.shape[:-2], op,
          lambda: f"x and y must be of the same batch shape, got {sizes(x.shape)} and {sizes(y.shape)}")
    d, n, m = x.shape[-1], x.shape[-2], y.shape[-2]
    check(d == y.shape[-1], op, lambda: f"x and y must be of the same d, got {d} and {y.shape[-1]}")
    check(d >= 1, op, lambda: f"d must be at least 1, got {d}")
    if unbiased:
        check(n >= 2 and m >= 2, op,
              lambda: f"x and y must be samples of at least 2 points each when unbiased=True, got n={n}, m={m}")
    else:
        check(n >= 1 and m >= 1, op, lambda: f"x and y must be samples of at least one point each, got n={n}, m={m}")
    check(n < 2**31 and m < 2**31, op, lambda: f"n and m must be < 2^31, got n={n}, m={m}")
    check(math.isfinite(c) and c > 0, op, lambda: f"c must be positive and finite, got {num(c)}")
    check(len(scales) > 0, op, lambda: "scales must be non-empty, got []")
    check(len(scales) <= MAX_SCALES, op,
          lambda: f"scales must be a list of at most {MAX_SCALES} values, got {len(scales)} values")
    fi = torch.finfo(torch.float32 if x.dtype == torch.float32 else torch.float64)
    for s in scales:
        check(math.isfinite(s) and s > 0, op, lambda: f"every scale must be positive and finite, got {num(s)}")
        check(fi.tiny <= c * s <= fi.max, op,
              lambda: f"c * scale must be a positive normal {fake_scalar(x.dtype)} number, got {num(c * s)}")


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
    tensor(f"{OP}: x", x)
    refuse_nested_differentiation(OP)
    c = 2.0 * x.shape[-1] if c is None else _real("c", c)
    scales = _scales(scales)
    _check(x, y, c, scales, unbiased)
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # accumulate in float32
        x, y = x.float(), y.float()
    if backend.compiled("mmd_imq", x):
        # Gradients ride along when reverse mode needs them or a forward-mode tangent is present.
        # (torch.func.jvp hands zero tangents to inputs it does not differentiate: with any tangent
        # present both gradients are computed, in the same pass.)
        fwd = has_tangent(x, y)
        gx = (x.requires_grad and torch.is_grad_enabled()) or fwd
        gy = (y.requires_grad and torch.is_grad_enabled()) or fwd
        out = torch.ops.er_fast.mmd_imq(x, y, c, scales, unbiased, gx, gy)[0]
    else:
        out = reference.mmd_imq(x, y, c, scales, unbiased)
    return out.to(dtype)


if backend.defined("mmd_imq"):
    _OP = torch.ops.er_fast.mmd_imq.default

    @torch.library.register_fake("er_fast::mmd_imq")
    def _(x, y, c, scales, unbiased, grad_x, grad_y):
        _fake_check(x, y, c, scales, unbiased)
        batch = x.shape[:-2]
        gx = torch.empty_like(x, memory_format=torch.contiguous_format) if grad_x else x.new_empty(0)
        gy = torch.empty_like(y, memory_format=torch.contiguous_format) if grad_y else y.new_empty(0)
        return x.new_empty(batch), gx, gy

    class _MmdImq(torch.autograd.Function):
        """The op's autograd: backward scales the gradients the op returned; jvp contracts them with
        the tangents, <dMMD/dx, tx> + <dMMD/dy, ty>. Second derivatives are not implemented: the
        first ones carry a guard that raises when they are differentiated again."""

        @staticmethod
        def forward(x, y, c, scales, unbiased, grad_x, grad_y, keyset):
            return redispatch(_OP, keyset, (x, y, c, scales, unbiased, grad_x, grad_y))

        @staticmethod
        def setup_context(ctx, inputs, output):
            _, gx, gy = output
            save_with_first_derivatives(ctx, (gx, gy), inputs[0], inputs[1])
            ctx.grad_x, ctx.grad_y = inputs[5], inputs[6]
            ctx.args, ctx.keyset = inputs[2:5], inputs[7]
            ctx.out_shapes = (gx.shape, gy.shape)

        @staticmethod
        def backward(ctx, grad, dgx, dgy):
            refuse_second_order(OP, dgx, dgy)
            gx, gy, x, y = ctx.saved_tensors
            if grad is None:
                return (None,) * 8
            if (ctx.needs_input_grad[0] and not ctx.grad_x) or (ctx.needs_input_grad[1] and not ctx.grad_y):
                raise RuntimeError(f"{OP}: gradient requested for an input the op was told not to differentiate")
            g = guard(OP, x, y)  # 0; raises if these gradients are differentiated again
            # grad (...) scales the per-batch-element gradient (..., n, d).
            dx = grad[..., None, None] * gx + g if ctx.needs_input_grad[0] else None
            dy = grad[..., None, None] * gy + g if ctx.needs_input_grad[1] else None
            return dx, dy, None, None, None, None, None, None

        @staticmethod
        def jvp(ctx, tx, ty, *_):
            gx, gy, x, y = ctx.saved_tensors
            if (tx is not None and not ctx.grad_x) or (ty is not None and not ctx.grad_y):
                # Called without the gradient this tangent needs (a direct call, or a graph traced
                # by torch.compile without tangents in sight): compute both once more.
                _, gx, gy = redispatch(_OP, ctx.keyset, (x.detach(), y.detach(), *ctx.args, True, True))
            t = guard(OP, x, y)
            for g, tg in ((gx, tx), (gy, ty)):
                if tg is not None:
                    t = t + (g * tg).sum((-2, -1))
            return (t, *derivative_tangents(gx, *ctx.out_shapes))

    register("mmd_imq", _MmdImq)
