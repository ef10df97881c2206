"""The models of the reproduction, each a row of the paper's Table 1 (plus two Beta baselines and
f_proj with the group action), by id."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..util.validation import fail, shown


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
        fail("model id", "be one of " + ", ".join(REGISTRY), shown(model_id))
    return REGISTRY[model_id]
