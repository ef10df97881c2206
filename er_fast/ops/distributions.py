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
        # The parameters were validated at construction when validation is on: skip the (on CUDA
        # synchronizing) check here.
        return beta_rsample(self.concentration1, self.concentration0, sample_shape, generator=generator,
                            validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size(), generator=None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)
