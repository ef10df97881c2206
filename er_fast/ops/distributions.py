"""Distributions whose reparameterized samples use er_fast's kernels."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from .beta import beta_rsample

__all__ = ["Beta"]


class Beta(torch.distributions.Beta):
    """torch.distributions.Beta whose ``rsample`` is er_fast.beta_rsample: log-space Gamma draws
    (right also for tiny concentrations) and the exact implicit reparameterization gradient.
    log_prob, entropy, mean, ... and ``kl_divergence(Beta, Uniform)`` are torch's.
    ``rsample``/``sample`` accept ``generator=`` (one generator, or one per leading slice)."""

    has_rsample = True

    def rsample(
        self,
        sample_shape: torch.Size = torch.Size(),
        generator: Optional[Union[torch.Generator, Sequence[torch.Generator]]] = None,
    ) -> torch.Tensor:
        a, b = self.concentration1, self.concentration0
        inf_a, inf_b = torch.isinf(a), torch.isinf(b)
        if self._validate_args and bool((inf_a & inf_b).any()):
            raise ValueError("er_fast.distributions.Beta: concentration1 and concentration0 must not both be "
                             "infinite (Beta(inf, inf) has no limit), got both infinite")
        # Beta(inf, b) is the point mass at 1 and Beta(a, inf) the one at 0 (the limits in
        # distribution): sample finite stand-ins there and put the limits in. torch.where also
        # gives those elements zero gradient. Both infinite: NaN (refused above when validating).
        one = torch.ones((), dtype=a.dtype, device=a.device)
        x = beta_rsample(torch.where(inf_a, one, a), torch.where(inf_b, one, b), sample_shape, generator=generator,
                         validate_args=bool(self._validate_args))  # the supported range [1e-3, 1e5]
        x = torch.where(inf_a, one, x)
        x = torch.where(inf_b, torch.zeros_like(one), x)
        return torch.where(inf_a & inf_b, torch.full_like(one, float("nan")), x)

    def sample(self, sample_shape: torch.Size = torch.Size(), generator=None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)
