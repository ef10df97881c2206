"""The models of the reproduction, each a row of the paper's Table 1, as S stacked seeds.

Every parameter carries a leading seed dimension S (weights (S, in, out), biases (S, 1, out)); a
linear layer is one ``torch.baddbmm`` over the S seeds, so S independent models run as one
program, and seed s's numbers depend only on seed s's parameters, data and generators.

Modelling choices (all documented in README, section Library):
  * MLPs: ``depth`` hidden layers of ``width`` units, ReLU; every layer initialised like PyTorch's
    nn.Linear default, U(±1/sqrt(fan_in)) for weights and biases, drawn per seed from that seed's
    init generator (CPU, float64, then cast: float32 and float64 runs start from the same point).
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
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import er_fast

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class ModelSpec:
    """One row of the reproduction."""

    id: str
    description: str
    latent: str  # 'gauss' (N(μ, σ²) posterior, N(0, I) prior) or 'beta' (Beta posterior, Uniform prior)
    n: int  # latent dimension (dim Z_hid)
    embed: Optional[str]  # None (decoder sees z), 'proj' (circle_embed(z)), 'learned' (f(z), f from the WAE)
    group: bool  # group-action head rotating the embedded point by θ(x)


REGISTRY: dict[str, ModelSpec] = {
    s.id: s
    for s in (
        ModelSpec("vae-gauss-1d", "VAE, Gaussian posterior, N(0,1) prior, dim Z = 1", "gauss", 1, None, False),
        ModelSpec("vae-gauss-2d", "VAE, Gaussian posterior, N(0,I) prior, dim Z = 2", "gauss", 2, None, False),
        ModelSpec("vae-beta-1d", "VAE, Beta posterior, Uniform[0,1] prior, decoder sees z, dim Z = 1", "beta", 1, None, False),
        ModelSpec("vae-beta-2d", "VAE, Beta posterior, Uniform[0,1]^2 prior, decoder sees z, dim Z = 2", "beta", 2, None, False),
        ModelSpec("er-proj-1d", "Manifold-latent VAE, f = f_proj = circle_embed (exact projection), dim Z_hid = 1", "beta", 1, "proj", False),
        ModelSpec("er-learned-1d", "Manifold-latent VAE, f learned by WAE-MMD, dim Z_hid = 1", "beta", 1, "learned", False),
        ModelSpec("er-learned-group-1d", "Manifold-latent VAE, learned f + group-action encoder (so2_rotate(f(z), θ(x))), dim Z_hid = 1", "beta", 1, "learned", True),
        ModelSpec("er-proj-group-1d", "Manifold-latent VAE, f = f_proj + group-action encoder (circle_embed(z, θ(x))), dim Z_hid = 1", "beta", 1, "proj", True),
    )
}


def list_models() -> list[ModelSpec]:
    """Every registered model, in table order."""
    return list(REGISTRY.values())


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in REGISTRY:
        raise ValueError(f"unknown model id {model_id!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[model_id]


# -------------------------------------------------------------------------------------------------
# closed-form pieces
# -------------------------------------------------------------------------------------------------
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


# -------------------------------------------------------------------------------------------------
# stacked layers
# -------------------------------------------------------------------------------------------------
class StackedMLP(nn.Module):
    """S independent MLPs sizes[0] → … → sizes[-1], ReLU between layers, as stacked parameters.

    forward: (S, N, sizes[0]) -> (S, N, sizes[-1]); one baddbmm per layer for all S seeds.
    """

    def __init__(self, S: int, sizes: Sequence[int], init_generators: Optional[Sequence[torch.Generator]], *,
                 device="cpu", dtype=torch.float32):
        super().__init__()
        self.S, self.sizes = S, list(sizes)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.zeros(S, fan_in, fan_out, dtype=torch.float64)
            b = torch.zeros(S, 1, fan_out, dtype=torch.float64)
            self.weights.append(nn.Parameter(w.to(device, dtype)))
            self.biases.append(nn.Parameter(b.to(device, dtype)))
        if init_generators is not None:
            self.reset_parameters(init_generators)

    @torch.no_grad()
    def reset_parameters(self, init_generators: Sequence[torch.Generator]) -> None:
        """nn.Linear's default init, U(±1/sqrt(fan_in)) for W then b, layer by layer, seed s from
        init_generators[s] (CPU generators; drawn in float64)."""
        for w, b in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(w.shape[1])
            w64 = torch.empty(w.shape, dtype=torch.float64)
            b64 = torch.empty(b.shape, dtype=torch.float64)
            for s, g in enumerate(init_generators):
                w64[s].uniform_(-bound, bound, generator=g)
                b64[s].uniform_(-bound, bound, generator=g)
            w.copy_(w64)
            b.copy_(b64)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        wb = [t for pair in zip(self.weights, self.biases) for t in pair]
        if torch.is_grad_enabled() and (h.requires_grad or any(t.requires_grad for t in wb)):
            return _StackedMLPFn.apply(h, *wb)
        return _mlp_forward(h, wb)[-1]

    def sq_err(self, target: torch.Tensor, h: torch.Tensor, k: int = 1) -> torch.Tensor:
        """‖target − self(h)‖² per row, fused (see _StackedMLPSqErrFn). target (S, P, D), h
        (S, P·k, d_in) (k rows of h per target row) -> (S, P·k)."""
        wb = [t for pair in zip(self.weights, self.biases) for t in pair]
        if torch.is_grad_enabled() and (h.requires_grad or any(t.requires_grad for t in wb)):
            return _StackedMLPSqErrFn.apply(target, k, h, *wb)
        _, r = _sq_err_forward(target, k, h, wb)
        return torch.linalg.vector_norm(r, dim=-1).square()


def _mlp_forward(h: torch.Tensor, wb, relu_last: bool = False) -> list:
    """[input, relu(layer 1), ..., output]: each hidden ReLU is applied in place on baddbmm's
    fresh output (no extra buffer); the last layer is linear unless relu_last."""
    acts = [h]
    last = len(wb) // 2 - 1
    for i in range(last + 1):
        w, b = wb[2 * i], wb[2 * i + 1]
        # fan_in 1 (a 1-d latent): an outer product, 3x faster as addcmul than as a K=1 GEMM
        h = torch.addcmul(b, h, w) if w.shape[1] == 1 else torch.baddbmm(b, h, w)
        if i < last or relu_last:
            h.relu_()
        acts.append(h)
    return acts


def _mlp_backward(ctx, acts, wb, g, need_x: bool):
    """Backward through the layers given the gradient g at the last layer's output (S, N, out).
    Returns (grad of the MLP input or None, [grad W0, grad b0, ...]); ``ctx.needs_input_grad`` is
    indexed from ``ctx.wb_offset`` for the weights."""
    L = len(wb) // 2
    need = ctx.needs_input_grad
    off = ctx.wb_offset
    grads = [None] * (2 * L)
    for i in reversed(range(L)):
        a = acts[i]
        if need[off + 2 * i]:
            grads[2 * i] = torch.bmm(a.transpose(1, 2), g)
        if need[off + 2 * i + 1]:
            grads[2 * i + 1] = g.sum(1, keepdim=True)
        if i > 0 or need_x:
            g = torch.bmm(g, wb[2 * i].transpose(1, 2))
            if i > 0:  # ReLU backward, in place: a is the post-ReLU input of layer i
                torch.ops.aten.threshold_backward.grad_input(g, a, 0.0, grad_input=g)
    return (g if need_x else None), grads


class _StackedMLPFn(torch.autograd.Function):
    """The stacked MLP with a hand-written backward: saves only each layer's input, and does the
    ReLU backward in place on the incoming gradient (threshold_backward with out = grad), so the
    backward allocates one buffer per layer instead of autograd's three."""

    @staticmethod
    def forward(ctx, x, *wb):
        acts = _mlp_forward(x, wb)
        ctx.save_for_backward(*acts[:-1], *wb)
        ctx.n_layers, ctx.wb_offset = len(wb) // 2, 1
        return acts[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        L = ctx.n_layers
        saved = ctx.saved_tensors
        gx, grads = _mlp_backward(ctx, saved[:L], saved[L:], g.contiguous(), ctx.needs_input_grad[0])
        return (gx, *grads)


def _sq_err_forward(target, k: int, h, wb):
    """Hidden activations and the residual r = target − MLP(h), the last layer's bias subtracted from
    the target in the same pass that broadcasts it over k samples per target row. target (S, P, D);
    h (S, P·k, d_in). Returns (acts: inputs of each layer, r (S, P·k, D))."""
    acts = _mlp_forward(h, wb[:-2], relu_last=True)
    w, b = wb[-2], wb[-1]
    S, P, D = target.shape
    if k == 1:
        c = target - b
    else:
        c = torch.sub(target.unsqueeze(2).expand(S, P, k, D), b.unsqueeze(1)).view(S, P * k, D)
    r = c.baddbmm_(acts[-1], w, alpha=-1.0)  # target − b − a·W, in place on the fresh c (no copy)
    return acts, r


class _StackedMLPSqErrFn(torch.autograd.Function):
    """‖target − MLP(h)‖² per row, fused: the output layer, the residual and its squared norm share
    passes, and the backward starts from dsq/dout = −2r without autograd's chain of elementwise
    nodes. Differentiable in h and the weights (not in the target: the data)."""

    @staticmethod
    def forward(ctx, target, k, h, *wb):
        acts, r = _sq_err_forward(target, k, h, wb)
        sq = torch.linalg.vector_norm(r, dim=-1).square()
        ctx.save_for_backward(*acts, r, *wb)
        ctx.n_layers, ctx.wb_offset = len(wb) // 2, 3
        return sq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_sq):
        L = ctx.n_layers
        saved = ctx.saved_tensors
        acts, r, wb = saved[:L], saved[L], saved[L + 1:]
        g = r * (-2.0 * g_sq).unsqueeze(-1)  # d sq / d out = −2 r
        gh, grads = _mlp_backward(ctx, acts, wb, g, ctx.needs_input_grad[2])
        return (None, None, gh, *grads)


# -------------------------------------------------------------------------------------------------
# the stacked VAE
# -------------------------------------------------------------------------------------------------
class StackedVAE(nn.Module):
    """S seeds of one registered model.

    Args:
        spec: a ModelSpec (or model id). S: number of stacked seeds. data_dim: D (100).
        width, depth: hidden width and number of hidden layers of encoder and decoder.
        init_generators: S CPU generators for the initialisation (None: leave zeros, e.g. before
            load_state_dict).
        embedding: the frozen learned f ([0,1]^n → R^m nn.Module) for 'learned' models; shared by all
            seeds; its parameters are frozen (requires_grad False) and travel in this state_dict.
        beta_floor, log_sigma_init, sigma_floor: see the module docstring.
    """

    def __init__(self, spec, S: int, *, data_dim: int = 100, width: int = 128, depth: int = 2,
                 init_generators: Optional[Sequence[torch.Generator]] = None,
                 embedding: Optional[nn.Module] = None, beta_floor: float = 0.1,
                 log_sigma_init: float = -3.0, sigma_floor: float = 0.0,
                 device="cpu", dtype=torch.float32):
        super().__init__()
        spec = get_spec(spec) if isinstance(spec, str) else spec
        for name, v in (("S", S), ("data_dim", data_dim), ("width", width), ("depth", depth)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (math.isfinite(beta_floor) and beta_floor > 0):
            raise ValueError(f"beta_floor must be positive, got {beta_floor}")
        if not (math.isfinite(sigma_floor) and sigma_floor >= 0):
            raise ValueError(f"sigma_floor must be >= 0, got {sigma_floor}")
        if not math.isfinite(log_sigma_init):
            raise ValueError(f"log_sigma_init must be finite, got {log_sigma_init}")
        if init_generators is not None and len(init_generators) != S:
            raise ValueError(f"{len(init_generators)} init generators for S = {S}")
        self.spec, self.S, self.data_dim, self.width, self.depth = spec, S, data_dim, width, depth
        self.beta_floor, self.sigma_floor, self.log_sigma_init = float(beta_floor), float(sigma_floor), float(log_sigma_init)
        n = spec.n
        if spec.embed == "learned":
            if embedding is None:
                raise ValueError(f"model {spec.id!r} needs a learned embedding f (train_embedding / load_embedding)")
            in_dim, out_dim = getattr(embedding, "in_dim", None), getattr(embedding, "out_dim", None)
            if in_dim != n:
                raise ValueError(f"embedding maps R^{in_dim}, model {spec.id!r} has latent dimension {n}")
            if spec.group and out_dim != 2:
                raise ValueError(f"group-action model {spec.id!r} needs an embedding into R^2, got R^{out_dim}")
            self.embedding = embedding.to(device, dtype)
            for p in self.embedding.parameters():
                p.requires_grad_(False)
            dec_in = out_dim
        else:
            if embedding is not None:
                raise ValueError(f"model {spec.id!r} takes no learned embedding")
            self.embedding = None
            dec_in = 2 * n if spec.embed == "proj" else n
        enc_out = 2 * n + (2 if spec.group else 0)
        g = init_generators
        self.encoder = StackedMLP(S, [data_dim] + [width] * depth + [enc_out], g, device=device, dtype=dtype)
        self.decoder = StackedMLP(S, [dec_in] + [width] * depth + [data_dim], g, device=device, dtype=dtype)
        self.log_sigma = nn.Parameter(torch.full((S,), float(log_sigma_init), device=device, dtype=dtype))

    # -- pieces ----------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> dict:
        """x (S, B, D) -> posterior parameters, each (S, B, n), and theta (S, B) or None."""
        if x.dim() != 3 or x.shape[0] != self.S or x.shape[2] != self.data_dim:
            raise ValueError(f"x must have shape (S={self.S}, B, D={self.data_dim}), got {tuple(x.shape)}")
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

    def sample_z(self, post: dict, generators: Sequence[torch.Generator], k: Optional[int] = None):
        """Reparameterised z ~ q(z|x): (S, B, n), or (S, B, k, n) with k samples per point.
        Slice s uses generators[s] alone. Returns (z, aux) with aux the Gaussian ε (else None)."""
        if len(generators) != self.S:
            raise ValueError(f"{len(generators)} noise generators for S = {self.S}")
        if self.spec.latent == "gauss":
            mu, logvar = post["mu"], post["logvar"]
            if k is not None:
                mu, logvar = mu.unsqueeze(2), logvar.unsqueeze(2)
            shape = mu.shape if k is None else mu.shape[:2] + (k,) + mu.shape[3:]
            eps = torch.empty(shape, device=mu.device, dtype=mu.dtype)
            for s, g in enumerate(generators):
                eps[s].normal_(generator=g)
            return mu + torch.exp(0.5 * logvar) * eps, eps
        alpha, beta = post["alpha"], post["beta"]
        if k is not None:
            shape = alpha.shape[:2] + (k,) + alpha.shape[2:]
            alpha, beta = alpha.unsqueeze(2).expand(shape), beta.unsqueeze(2).expand(shape)
        return er_fast.beta_rsample(alpha, beta, generator=list(generators)), None

    def decoder_input(self, z: torch.Tensor, theta: Optional[torch.Tensor]) -> torch.Tensor:
        """z (S, N, n) [theta (S, N)] -> the decoder's input (S, N, d_in)."""
        spec = self.spec
        if spec.embed is None:
            return z
        if spec.embed == "proj":
            p = er_fast.circle_embed(z, None if theta is None else theta.unsqueeze(-1))  # (S, N, n, 2)
            return p.flatten(-2)
        p = self.embedding(z)  # (S, N, m)
        return er_fast.so2_rotate(p, theta) if spec.group else p

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
    def elbo_terms(self, x: torch.Tensor, noise_generators: Sequence[torch.Generator]):
        """One-sample ELBO pieces for x (S, B, D): (log p(x|z) (S, B), KL (S, B), post)."""
        post = self.encode(x)
        z, _ = self.sample_z(post, noise_generators)
        return self.log_lik(x, self.decoder_input(z, post["theta"])), self.kl(post), post

    def forward(self, x: torch.Tensor, noise_generators: Sequence[torch.Generator]) -> torch.Tensor:
        """Per-point one-sample ELBO estimate, (S, B)."""
        rec, kl, _ = self.elbo_terms(x, noise_generators)
        return rec - kl

    def log_weights(self, x: torch.Tensor, post: dict, generators: Sequence[torch.Generator], k: int) -> torch.Tensor:
        """Importance log-weights log p(x|z_k) + log p(z_k) − log q(z_k|x) for k samples per point:
        x (S, P, D) with its posterior ``post`` -> (S, P, k)."""
        S, P = x.shape[:2]
        z, eps = self.sample_z(post, generators, k)  # (S, P, k, n)
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

    def config(self) -> dict:
        return dict(model_id=self.spec.id, S=self.S, data_dim=self.data_dim, width=self.width, depth=self.depth,
                    beta_floor=self.beta_floor, sigma_floor=self.sigma_floor, log_sigma_init=self.log_sigma_init)
