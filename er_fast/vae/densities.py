"""Closed-form densities and KL divergences of the posteriors and priors."""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_beta_uniform(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """KL(Beta(α, β) ‖ Uniform[0,1]) = −H(Beta(α, β))
    = −log B(α,β) + (α−1)ψ(α) + (β−1)ψ(β) − (α+β−2)ψ(α+β) ≥ 0 (0 at α = β = 1),
    elementwise, computed in float64 and cast back. Differentiable (reverse, forward and higher
    order) through its closed-form derivatives ∂/∂α = (α−1)ψ′(α) − (α+β−2)ψ′(α+β) (likewise β):
    autograd through the formula would evaluate ψ again and walk a chain of ~20 nodes (the KL and its
    gradient took 1.7 ms at 6400 elements, 1.1 ms this way; one thread)."""
    return _KLBetaUniform.apply(*torch.broadcast_tensors(alpha, beta))


def _kl_beta_uniform64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = a + b
    lbeta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(ab)
    return -lbeta + (a - 1) * torch.digamma(a) + (b - 1) * torch.digamma(b) - (ab - 2) * torch.digamma(ab)


def _kl_beta_uniform_grads(alpha: torch.Tensor, beta: torch.Tensor):
    """(∂KL/∂α, ∂KL/∂β) in float64, from differentiable ops (so they have derivatives too)."""
    a, b = alpha.double(), beta.double()
    ab = a + b
    t = (ab - 2) * torch.polygamma(1, ab)
    return (a - 1) * torch.polygamma(1, a) - t, (b - 1) * torch.polygamma(1, b) - t


class _KLBetaUniform(torch.autograd.Function):
    @staticmethod
    def forward(alpha, beta):
        return _kl_beta_uniform64(alpha.double(), beta.double()).to(torch.result_type(alpha, beta))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, g):
        alpha, beta = ctx.saved_tensors
        da, db = _kl_beta_uniform_grads(alpha, beta)
        g = g.double()
        return ((g * da).to(alpha.dtype) if ctx.needs_input_grad[0] else None,
                (g * db).to(beta.dtype) if ctx.needs_input_grad[1] else None)

    @staticmethod
    def jvp(ctx, ta, tb):
        alpha, beta = ctx.saved_tensors
        da, db = _kl_beta_uniform_grads(alpha, beta)
        out = 0
        if ta is not None:
            out = out + da * ta.double()
        if tb is not None:
            out = out + db * tb.double()
        return out.to(torch.result_type(alpha, beta))


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
