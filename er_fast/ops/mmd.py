"""er_fast.mmd_imq: the op's Python face (checks, fake kernel, autograd, reference fallback)."""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch

from ..util.validation import fail, shown, tensor
from . import backend, reference

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
    c = 2.0 * x.shape[-1] if c is None else _real("c", c)
    scales = _scales(scales)
    _check(x, y, c, scales, unbiased)
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # accumulate in float32
        x, y = x.float(), y.float()
    if backend.compiled("mmd_imq", x):
        gx = x.requires_grad and torch.is_grad_enabled()
        gy = y.requires_grad and torch.is_grad_enabled()
        out = torch.ops.er_fast.mmd_imq(x, y, c, scales, unbiased, gx, gy)[0]
    else:
        out = reference.mmd_imq(x, y, c, scales, unbiased)
    return out.to(dtype)


if backend.defined("mmd_imq"):

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
            raise RuntimeError("er_fast.mmd_imq: double backward (create_graph=True) is not supported")
        gx, gy = ctx.saved_tensors
        if (ctx.needs_input_grad[0] and not ctx.grad_x) or (ctx.needs_input_grad[1] and not ctx.grad_y):
            raise RuntimeError("er_fast.mmd_imq: gradient requested for an input the op was told not to differentiate")
        # grad (...) scales the per-batch-element gradient (..., n, d).
        dx = grad[..., None, None] * gx if ctx.grad_x else None
        dy = grad[..., None, None] * gy if ctx.grad_y else None
        return dx, dy, None, None, None, None, None

    torch.library.register_autograd("er_fast::mmd_imq", _backward, setup_context=_setup_context)
