"""er_fast.beta_rsample. PLACEHOLDER until issue 3 lands: delegates to torch.distributions.Beta
so the library can be written against the final signature."""
from __future__ import annotations

from typing import Optional

import torch


def beta_rsample(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    sample_shape: torch.Size = torch.Size(),
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """x ~ Beta(alpha, beta) of shape sample_shape + broadcast shape, differentiable in alpha and beta."""
    if generator is not None:
        raise NotImplementedError("placeholder: generator support arrives with issue 3")
    return torch.distributions.Beta(alpha, beta).rsample(torch.Size(sample_shape))
