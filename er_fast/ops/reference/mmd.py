"""Pure-PyTorch MMD² with the IMQ kernel (the WAE penalty of Tolstikhin et al.)."""
from __future__ import annotations

from typing import Sequence

import torch


def imq_kernel_sum(d2: torch.Tensor, c: float, scales: Sequence[float]) -> torch.Tensor:
    """sum_s C_s / (C_s + d2) with C_s = c * s."""
    out = torch.zeros_like(d2)
    for s in scales:
        cs = c * s
        out = out + cs / (cs + d2)
    return out


def mmd_imq(x: torch.Tensor, y: torch.Tensor, c: float, scales: Sequence[float], unbiased: bool) -> torch.Tensor:
    """x (..., n, d), y (..., m, d) -> (...). Builds the n×m matrices: an oracle, not a fast path.

    Squared distances are formed from differences, not |a|²+|b|²-2ab, which cancels badly.
    """
    n, m = x.shape[-2], y.shape[-2]
    kxx = imq_kernel_sum((x.unsqueeze(-2) - x.unsqueeze(-3)).square().sum(-1), c, scales)
    kyy = imq_kernel_sum((y.unsqueeze(-2) - y.unsqueeze(-3)).square().sum(-1), c, scales)
    kxy = imq_kernel_sum((x.unsqueeze(-2) - y.unsqueeze(-3)).square().sum(-1), c, scales)
    sxx, syy, sxy = kxx.sum((-1, -2)), kyy.sum((-1, -2)), kxy.sum((-1, -2))
    if unbiased:
        # The diagonal holds k(a, a) = len(scales) exactly; leave it out.
        k0 = float(len(scales))
        return (sxx - n * k0) / (n * (n - 1)) + (syy - m * k0) / (m * (m - 1)) - 2 * sxy / (n * m)
    return sxx / n**2 + syy / m**2 - 2 * sxy / (n * m)
