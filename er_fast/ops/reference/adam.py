"""Pure-PyTorch adam_: the operations of csrc/common/adam_math.h in the same order, each a separate
correctly rounded tensor op (no addcmul / lerp / addcdiv, which may fuse a multiply-add), so it
gives the kernels' values bit for bit. The test oracle and the fallback without the extension.

One exception to "plain torch ops": torch.sqrt on the CPU is NOT correctly rounded (measured with
torch 2.13: about 17% of float32 and 1% of float64 results are 1 ulp off), so CPU tensors take
their square root from numpy (the hardware instruction, correctly rounded). CUDA's sqrt is
correctly rounded. The step count is read on the host (a sync on CUDA; the kernel never does).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


def _split(a: float) -> tuple[float, float]:
    c = 134217729.0 * a
    hi = c - (c - a)
    return hi, a - hi


def _dd_mul(x: tuple[float, float], y: tuple[float, float]) -> tuple[float, float]:
    p = x[0] * y[0]
    xh, xl = _split(x[0])
    yh, yl = _split(y[0])
    e = (((xh * yh - p) + xh * yl) + xl * yh) + xl * yl
    e = e + (x[0] * y[1] + x[1] * y[0])
    h = p + e
    return h, e - (h - p)


def one_minus_pow(x: float, t: int) -> float:
    """1 - x^t by binary exponentiation in double-double: adam::one_minus_pow's operations."""
    r, b = (1.0, 0.0), (x, 0.0)
    while t > 0:
        if t & 1:
            r = _dd_mul(r, b)
        t >>= 1
        if t > 0:
            b = _dd_mul(b, b)
    return (1.0 - r[0]) - r[1]


def step_scalars(t: int, lr: float, beta1: float, beta2: float) -> tuple[float, float]:
    """(lr / (1 - beta1^t), sqrt(1 - beta2^t)) in float64, as adam::step_scalars."""
    return lr / one_minus_pow(beta1, t), math.sqrt(one_minus_pow(beta2, t))


def sqrt_rn(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded elementwise square root (see the module docstring)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.asarray(np.sqrt(x.detach().numpy())))
    return torch.sqrt(x)


@torch.no_grad()
def adam_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], exp_avgs: Sequence[torch.Tensor],
          exp_avg_sqs: Sequence[torch.Tensor], step: torch.Tensor, lr: float, beta1: float, beta2: float,
          eps: float) -> None:
    """One Adam step in place (arguments as er_fast.ops.adam_)."""
    t = int(step.item()) + 1
    step.fill_(t)
    a, s = step_scalars(t, float(lr), float(beta1), float(beta2))
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        def k(x: float) -> torch.Tensor:  # a constant rounded once to the parameter's dtype
            return torch.tensor(x, dtype=p.dtype)

        b1, c1, b2, c2 = k(beta1), k(1.0 - beta1), k(beta2), k(1.0 - beta2)
        m.mul_(b1).add_(torch.mul(g, c1))
        v.mul_(b2).add_(torch.mul(torch.mul(g, g), c2))
        d = torch.div(sqrt_rn(v), k(s)).add_(k(eps))
        p.sub_(torch.mul(torch.div(m, d), k(a)))
