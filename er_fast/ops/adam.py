"""er_fast.adam_: one Adam step over lists of tensors, in place, whose per-element arithmetic is
the same wherever the element sits.

``adam_(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps)`` is torch.optim.Adam's
default update (no weight decay, no amsgrad, minimizing). Every element goes through one fixed
sequence of correctly rounded operations with no fused multiply-add (csrc/common/adam_math.h,
docs/adam.md), in the vector body and the scalar tail alike, in every CPU ISA copy and on CUDA.
So seed s of a stacked (S, ...) parameter gets the same bits whatever S — which torch's fused
CPU Adam does not give (its scalar tail rounds differently from its vector body).

``step`` is a 0-dim int64 / float32 / float64 tensor on the parameters' device holding the
number of steps taken; the op increments it and derives the bias corrections from it inside the
kernel, so the whole step can be replayed from a CUDA graph. Not differentiable (an optimizer
update); the tensors are updated in place and nothing is returned.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

from ..util.validation import fail, shown
from . import backend
from .reference import adam as _ref

_FN = "er_fast.adam_"
_STEP_DTYPES = (torch.int64, torch.float32, torch.float64)


def _number(what: str, v, lo: float, hi: float | None, rule: str) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        fail(f"{_FN}: {what}", rule, shown(v), TypeError)
    if not math.isfinite(float(v)):
        fail(f"{_FN}: {what}", rule, v)
    v = float(v)
    if v < lo or (hi is not None and v >= hi):
        fail(f"{_FN}: {what}", rule, v)
    return v


def _tensors(what: str, ts) -> list:
    if isinstance(ts, torch.Tensor) or not isinstance(ts, Sequence):
        fail(f"{_FN}: {what}", "be a list of tensors", type(ts).__name__, TypeError)
    for i, t in enumerate(ts):
        if not isinstance(t, torch.Tensor):
            fail(f"{_FN}: {what}[{i}]", "be a torch.Tensor", type(t).__name__, TypeError)
    return list(ts)


def _check(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps):
    params, grads = _tensors("params", params), _tensors("grads", grads)
    exp_avgs, exp_avg_sqs = _tensors("exp_avgs", exp_avgs), _tensors("exp_avg_sqs", exp_avg_sqs)
    n = len(params)
    if not len(grads) == len(exp_avgs) == len(exp_avg_sqs) == n:
        fail(f"{_FN}: params, grads, exp_avgs and exp_avg_sqs", "have the same length",
             f"{n}, {len(grads)}, {len(exp_avgs)}, {len(exp_avg_sqs)}")
    if not isinstance(step, torch.Tensor):
        fail(f"{_FN}: step", "be a 0-dim tensor on the params' device", type(step).__name__, TypeError)
    if step.dtype not in _STEP_DTYPES:
        fail(f"{_FN}: step", "be int64, float32 or float64", step.dtype, TypeError)
    if step.dim() != 0:
        fail(f"{_FN}: step", "be a 0-dim tensor", f"shape {tuple(step.shape)}")
    lr = _number("lr", lr, 0.0, None, "be a finite number >= 0")
    beta1 = _number("beta1", beta1, 0.0, 1.0, "be in [0, 1)")
    beta2 = _number("beta2", beta2, 0.0, 1.0, "be in [0, 1)")
    eps = _number("eps", eps, 0.0, None, "be a finite number >= 0")
    for i, p in enumerate(params):
        if p.dtype not in (torch.float32, torch.float64):
            fail(f"{_FN}: params[{i}]", "be float32 or float64", p.dtype, TypeError)
        if p.device != step.device:
            fail(f"{_FN}: params[{i}]", f"be on the device of step ({step.device})", p.device)
        for name, t in (("params", p), ("grads", grads[i]), ("exp_avgs", exp_avgs[i]),
                        ("exp_avg_sqs", exp_avg_sqs[i])):
            if t.dtype != p.dtype:
                fail(f"{_FN}: {name}[{i}]", f"have the dtype of params[{i}] ({p.dtype})", t.dtype, TypeError)
            if t.device != p.device:
                fail(f"{_FN}: {name}[{i}]", f"be on the device of params[{i}] ({p.device})", t.device)
            if t.shape != p.shape:
                fail(f"{_FN}: {name}[{i}]", f"have the shape of params[{i}] ({tuple(p.shape)})", tuple(t.shape))
            if not t.is_contiguous():
                fail(f"{_FN}: {name}[{i}]", "be contiguous", f"strides {t.stride()}")
    if step.device.type == "cpu" and not torch.compiler.is_compiling():
        s, limit = float(step), 2.0**24 if step.dtype == torch.float32 else 2.0**53
        if not (0 <= s < limit and s == math.floor(s)):
            fail(f"{_FN}: step", f"hold a whole number in [0, {int(limit)})", s)
    return params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps


def adam_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], exp_avgs: Sequence[torch.Tensor],
          exp_avg_sqs: Sequence[torch.Tensor], step: torch.Tensor, lr: float, beta1: float = 0.9,
          beta2: float = 0.999, eps: float = 1e-8) -> None:
    """One Adam step of every parameter, in place.

    params, grads, exp_avgs (first moments), exp_avg_sqs (second moments): equally long lists;
    the four tensors of parameter i share one shape, dtype (float32 or float64) and device, and are
    contiguous. step: 0-dim int64 / float32 / float64 tensor on the parameters' device, the number
    of steps already taken (0 before the first); incremented to t, then
    m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;  p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps),
    in the operation order of docs/adam.md. On the CPU a step outside [0, 2^53) ([0, 2^24) for
    float32) is refused; on CUDA it is not read on the host.
    """
    params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps = _check(
        params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps)
    if backend.compiled("adam_", step):
        torch.ops.er_fast.adam_(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps)
    else:
        _ref.adam_(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps)


if backend.defined("adam_"):

    @torch.library.register_fake("er_fast::adam_")
    def _fake(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps):
        return None  # in place: nothing to allocate
