"""The stacked VAE: S seeds of one model of the registry (specs.py) as one program.

Every parameter carries a leading seed dimension S (weights (S, in, out), biases (S, 1, out)); a
linear layer is one ``torch.baddbmm`` over the S seeds, so S independent models run as one
program, and seed s's numbers depend only on seed s's parameters, data and random streams.

Modelling choices (documented in docs/design.md, "Modelling choices"):
  * MLPs: ``depth`` hidden layers of ``width`` units, ReLU; every layer initialised like PyTorch's
    nn.Linear default, U(±1/sqrt(fan_in)) for weights and biases, drawn per seed from that seed's
    ``init`` stream (float64, then cast: float32 and float64 runs start from the same point).
  * Beta posterior: α = softplus(a) + beta_floor, β = softplus(b) + beta_floor (beta_floor = 0.1 by
    default: α, β < 1 stay allowed — a U-shaped Beta on [0,1] is a unimodal posterior around the
    circle's cut point under circle_embed — while the very small concentrations where Gamma-based
    samplers underflow (pytorch issue 15738) stay out of reach).
  * KL(Beta(α,β) ‖ Uniform[0,1]) = −H(Beta) in closed form, computed in float64 (lgamma terms of
    size ~α cancel to O(log α)).
  * Gaussian likelihood on R^D with ONE learned scale per seed: σ = exp(log_sigma), log_sigma
    initialised at −3 (σ = 0.05; starting at σ = 1 lets the Gaussian VAEs collapse to the prior, see
    DESIGN.md). Optional floor: σ_eff = sqrt(σ² + sigma_floor²) (off by default: the likelihood is
    then unbounded on the noise-free data and models are compared at an equal training budget).
  * Group-action head: two extra encoder outputs (u, v), θ(x) = atan2(v, u) ∈ (−π, π]. θ is a
    deterministic function of x (an amortised point estimate, not a latent variable): ELBO and IWAE
    of the group models are bounds for a decoder that sees θ(x).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..util.validation import fail, positive_int
from .config import TrainConfig, with_overrides
from .seeds import Streams
from .densities import LOG_2PI, beta_log_prob, kl_beta_uniform, kl_gauss_std
from .specs import get_spec
from .stacked_mlp import StackedMLP


class StackedVAE(nn.Module):
    """S seeds of one registered model.

    Args:
        spec: a ModelSpec (or model id). S: number of stacked seeds.
        config: the TrainConfig whose network and likelihood fields (width, depth, beta_floor,
            log_sigma_init, sigma_floor, dtype) this model uses; keyword overrides of its fields
            are allowed (``StackedVAE("er-proj-1d", 4, width=64)``).
        data_dim: D (100). streams: the seeds' Streams, whose ``init`` stream initialises the
            parameters (None: leave zeros, e.g. before load_state_dict).
        embedding: the frozen learned f ([0,1]^n → R^m nn.Module) for 'learned' models; shared by all
            seeds; its parameters are frozen (requires_grad False) and travel in this state_dict.
    """

    def __init__(self, spec, S: int, config: Optional[TrainConfig] = None, *, data_dim: int = 100,
                 streams: Optional[Streams] = None, embedding: Optional[nn.Module] = None, device="cpu", **fields):
        super().__init__()
        config = with_overrides(TrainConfig, config, fields)
        spec = get_spec(spec) if isinstance(spec, str) else spec
        S, data_dim = positive_int("S", S), positive_int("data_dim", data_dim)
        if streams is not None and streams.S != S:
            fail("streams", f"hold S = {S} seeds", streams.S)
        self.spec, self.S, self.data_dim, self.config = spec, S, data_dim, config
        width, depth, dtype = config.width, config.depth, config.torch_dtype
        self.beta_floor, self.sigma_floor = config.beta_floor, config.sigma_floor
        n = spec.n
        if spec.embed == "learned":
            if embedding is None:
                fail(f"model {spec.id!r}: embedding", "be a learned embedding f (train_embedding / load_embedding)",
                     None)
            in_dim, out_dim = getattr(embedding, "in_dim", None), getattr(embedding, "out_dim", None)
            if in_dim != n:
                fail(f"model {spec.id!r}: embedding", f"map the latent dimension {n}", f"R^{in_dim}")
            if spec.group and out_dim != 2:
                fail(f"group-action model {spec.id!r}: embedding", "map into R^2", f"R^{out_dim}")
            self.embedding = embedding.to(device, dtype)
            for p in self.embedding.parameters():
                p.requires_grad_(False)
            dec_in = out_dim
        else:
            if embedding is not None:
                fail(f"model {spec.id!r} (no learned f): embedding", "be None", type(embedding).__name__)
            self.embedding = None
            dec_in = 2 * n if spec.embed == "proj" else n
        enc_out = 2 * n + (2 if spec.group else 0)
        self.encoder = StackedMLP(S, [data_dim] + [width] * depth + [enc_out], streams, device=device, dtype=dtype)
        self.decoder = StackedMLP(S, [dec_in] + [width] * depth + [data_dim], streams, device=device, dtype=dtype)
        self.log_sigma = nn.Parameter(torch.full((S,), config.log_sigma_init, device=device, dtype=dtype))

    # -- pieces ----------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict:
        """x (S, B, D) -> posterior parameters, each (S, B, n), and theta (S, B) or None."""
        if x.dim() != 3 or x.shape[0] != self.S or x.shape[2] != self.data_dim:
            fail("x", f"have shape (S={self.S}, B, D={self.data_dim})", tuple(x.shape))
        h = self.encoder(x)
        n = self.spec.n
        a, b = h[..., :n], h[..., n:2 * n]
        if self.spec.latent == "gauss":
            post = {"mu": a, "logvar": b}
        else:
            post = {"alpha": F.softplus(a) + self.beta_floor, "beta": F.softplus(b) + self.beta_floor}
        post["theta"] = torch.atan2(h[..., 2 * n + 1], h[..., 2 * n]) if self.spec.group else None
        return post

    def posterior_mean(self, post: dict) -> torch.Tensor:
        if self.spec.latent == "gauss":
            return post["mu"]
        return post["alpha"] / (post["alpha"] + post["beta"])

    def kl(self, post: dict) -> torch.Tensor:
        """KL(q(z|x) ‖ p(z)) per point, (S, B)."""
        if self.spec.latent == "gauss":
            return kl_gauss_std(post["mu"], post["logvar"]).sum(-1)
        return kl_beta_uniform(post["alpha"], post["beta"]).sum(-1)

    def sample_z(self, post: dict, streams: Streams, k: Optional[int] = None, stream: str = "noise"):
        """Reparameterised z ~ q(z|x): (S, B, n), or (S, B, k, n) with k samples per point, from ONE
        draw of the seeds' ``stream``. Returns (z, aux) with aux the Gaussian ε (else None)."""
        if streams.S != self.S:
            fail("streams", f"hold S = {self.S} seeds", streams.S)
        if self.spec.latent == "gauss":
            mu, logvar = post["mu"], post["logvar"]
            if k is not None:
                mu, logvar = mu.unsqueeze(2), logvar.unsqueeze(2)
            shape = mu.shape if k is None else mu.shape[:2] + (k,) + mu.shape[3:]
            eps = streams.normal(stream, shape[1:], mu.dtype)
            return mu + torch.exp(0.5 * logvar) * eps, eps
        alpha, beta = post["alpha"], post["beta"]
        if k is not None:
            shape = alpha.shape[:2] + (k,) + alpha.shape[2:]
            alpha, beta = alpha.unsqueeze(2).expand(shape), beta.unsqueeze(2).expand(shape)
        # The concentrations are softplus + a positive floor: valid by construction, so no
        # validation (it would be a host sync on CUDA).
        key = streams.beta_key(stream)
        return ops.beta_rsample_keyed(alpha, beta, key), None

    def decoder_input(self, z: torch.Tensor, theta: Optional[torch.Tensor]) -> torch.Tensor:
        """z (S, N, n) [theta (S, N)] -> the decoder's input (S, N, d_in)."""
        spec = self.spec
        if spec.embed is None:
            return z
        if spec.embed == "proj":
            p = ops.circle_embed(z, None if theta is None else theta.unsqueeze(-1))  # (S, N, n, 2)
            return p.flatten(-2)
        p = self.embedding(z)  # (S, N, m)
        return ops.so2_rotate(p, theta) if spec.group else p

    def sigma_log(self) -> torch.Tensor:
        """log σ_eff per seed, (S,)."""
        if self.sigma_floor > 0:
            return 0.5 * torch.logaddexp(2 * self.log_sigma, torch.full_like(self.log_sigma, 2 * math.log(self.sigma_floor)))
        return self.log_sigma

    def log_lik_from_sq(self, sq: torch.Tensor) -> torch.Tensor:
        """log N(x; mean, σ²I) summed over D, from sq = ‖x − mean‖² (S, ...) -> (S, ...)."""
        ls = self.sigma_log().view(-1, *([1] * (sq.dim() - 1)))
        D = self.data_dim
        return -0.5 * sq * torch.exp(-2 * ls) - D * ls - 0.5 * D * LOG_2PI

    def log_lik(self, x: torch.Tensor, h: torch.Tensor, k: int = 1) -> torch.Tensor:
        """log p(x | decoder input h): x (S, P, D), h (S, P·k, d_in) -> (S, P·k). The decoder's
        output layer, the residual and its norm are fused (StackedMLP.sq_err)."""
        return self.log_lik_from_sq(self.decoder.sq_err(x, h, k))

    # -- the ELBO --------------------------------------------------------------------------------
    def elbo_terms(self, x: torch.Tensor, streams: Streams):
        """One-sample ELBO pieces for x (S, B, D): (log p(x|z) (S, B), KL (S, B), post)."""
        post = self.encode(x)
        z, _ = self.sample_z(post, streams)
        return self.log_lik(x, self.decoder_input(z, post["theta"])), self.kl(post), post

    def forward(self, x: torch.Tensor, streams: Streams) -> torch.Tensor:
        """Per-point one-sample ELBO estimate, (S, B)."""
        rec, kl, _ = self.elbo_terms(x, streams)
        return rec - kl

    def log_weights(self, x: torch.Tensor, post: dict, streams: Streams, k: int, stream: str = "eval") -> torch.Tensor:
        """Importance log-weights log p(x|z_k) + log p(z_k) − log q(z_k|x) for k samples per point:
        x (S, P, D) with its posterior ``post`` -> (S, P, k)."""
        S, P = x.shape[:2]
        z, eps = self.sample_z(post, streams, k, stream)  # (S, P, k, n)
        theta = post["theta"]
        th = None if theta is None else theta.unsqueeze(2).expand(S, P, k).reshape(S, P * k)
        h = self.decoder_input(z.reshape(S, P * k, -1), th)
        ll = self.log_lik(x, h, k).view(S, P, k)
        if self.spec.latent == "gauss":
            logvar = post["logvar"].unsqueeze(2)
            # log p(z) - log q(z|x) with z = μ + σ ε
            lpz = -0.5 * (z.square().sum(-1) + self.spec.n * LOG_2PI)
            lqz = -0.5 * (eps.square().sum(-1) + self.spec.n * LOG_2PI) - 0.5 * logvar.sum(-1)
            return ll + (lpz - lqz)
        lq = beta_log_prob(z, post["alpha"].unsqueeze(2), post["beta"].unsqueeze(2)).sum(-1)
        return (ll.double() - lq).to(ll.dtype)  # log p(z) = 0 on [0,1]^n
