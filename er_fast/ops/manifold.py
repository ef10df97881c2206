"""er_fast.circle_embed and er_fast.so2_rotate (issue 4 adds the compiled kernels)."""
from __future__ import annotations

from typing import Optional

import torch

from .. import reference


def circle_embed(z: torch.Tensor, theta: Optional[torch.Tensor] = None) -> torch.Tensor:
    """z (..., k) -> (..., k, 2) on the circle (torus for k > 1), rotated by theta (broadcast to (..., k))."""
    return reference.circle_embed(z, theta)


def so2_rotate(p: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotate p (..., 2) by the angle theta (...)."""
    return reference.so2_rotate(p, theta)
