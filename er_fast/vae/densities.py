"""Closed-form densities and KL divergences of the posteriors and priors."""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_beta_uniform(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """KL(Beta(α, β) ‖ Uniform[0,1]) = −H(Beta(α, β))
    = −log B(α,β) + (α−1)ψ(α) + (β−1)ψ(β) − (α+β−2)ψ(α+β) ≥ 0 (0 at α = β = 1),
    elementwise, computed in float64 and cast back."""
    a, b = alpha.double(), beta.double()
    ab = a + b
    lbeta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(ab)
    kl = -lbeta + (a - 1) * torch.digamma(a) + (b - 1) * torch.digamma(b) - (ab - 2) * torch.digamma(ab)
    return kl.to(alpha.dtype)


def kl_gauss_std(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, e^logvar) ‖ N(0, 1)), elementwise."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)


def beta_log_prob(z: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """log Beta(z; α, β) elementwise in float64. z is clamped to [tiny, 1 − 2⁻⁵³] so a sample that
    rounded to exactly 0 or 1 gives a finite (very small or large) density instead of ±inf."""
    z = z.double().clamp(torch.finfo(torch.float64).tiny, 1.0 - 2.0**-53)
    a, b = alpha.double(), beta.double()
    lbeta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    return (a - 1) * torch.log(z) + (b - 1) * torch.log1p(-z) - lbeta
