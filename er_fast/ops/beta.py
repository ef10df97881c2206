"""er_fast.beta_rsample. PLACEHOLDER until issue 3 lands: delegates to torch.distributions.Beta
(seeded from the given generator(s)) so the library can be written against the final signature."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

GeneratorArg = Optional[Union[torch.Generator, Sequence[torch.Generator]]]


def _draw(alpha, beta, sample_shape, gen):
    if gen is None:
        return torch.distributions.Beta(alpha, beta).rsample(sample_shape)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.Beta(alpha, beta).rsample(sample_shape)


def beta_rsample(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    sample_shape: torch.Size = torch.Size(),
    *,
    generator: GeneratorArg = None,
) -> torch.Tensor:
    """x ~ Beta(alpha, beta), shape sample_shape + broadcast(alpha, beta).shape, differentiable in
    alpha and beta. ``generator`` is one torch.Generator, or a sequence of S generators: then the
    output's leading dimension must be S and slice s is drawn from generator s alone (so a seed's
    samples do not depend on which other seeds share the batch)."""
    sample_shape = torch.Size(sample_shape)
    if generator is None or isinstance(generator, torch.Generator):
        return _draw(alpha, beta, sample_shape, generator)
    alpha, beta = torch.broadcast_tensors(alpha, beta)
    shape = sample_shape + alpha.shape
    a, b = alpha.expand(shape), beta.expand(shape)
    if shape[0] != len(generator):
        raise ValueError(f"beta_rsample: {len(generator)} generators for a leading dimension of {shape[0]}")
    return torch.stack([_draw(a[s], b[s], torch.Size(), g) for s, g in enumerate(generator)])
