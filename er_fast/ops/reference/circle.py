"""Pure-PyTorch circle/torus embedding and SO(2) rotation."""
from __future__ import annotations

from typing import Optional

import torch


def so2_rotate(p: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotate p (..., 2) by theta (...) counter-clockwise."""
    c, s = torch.cos(theta), torch.sin(theta)
    x, y = p[..., 0], p[..., 1]
    return torch.stack((c * x - s * y, s * x + c * y), dim=-1)


def circle_embed(z: torch.Tensor, theta: Optional[torch.Tensor] = None) -> torch.Tensor:
    """z (..., k) -> (..., k, 2): (cos 2πz, sin 2πz) per coordinate, then rotated by theta.

    z is reduced modulo 1 first so that z = 4096.25 lands exactly where z = 0.25 does.
    """
    r = z - torch.round(z)  # in [-1/2, 1/2]; d r / d z = 1
    p = torch.stack((torch.cos(2 * torch.pi * r), torch.sin(2 * torch.pi * r)), dim=-1)
    return p if theta is None else so2_rotate(p, theta)
