"""er_fast.vae.embedding: the WAE-MMD embedding learner and its quality report."""
import math

import pytest
import torch
from torch import nn

from er_fast.vae.embedding import Embedding, embedding_quality, load_embedding, train_embedding


class ProjCircle(nn.Module):
    """The exact f_proj(z) = (cos 2πz, sin 2πz), as a module (for checking the metrics)."""

    def __init__(self, turns=1.0, radius=1.0):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.turns, self.radius = turns, radius

    def forward(self, z):
        a = 2 * math.pi * self.turns * z[..., 0]
        return self.radius * torch.stack((torch.cos(a), torch.sin(a)), -1)


def test_quality_metrics_on_known_maps():
    q = embedding_quality(ProjCircle(), "circle")
    assert q["coverage"] == 1.0 and q["dist_max"] < 1e-6 and q["wrap_gap"] < 1e-5
    assert abs(q["mmd"]) < 5e-3
    # latent pairs > 0.1 apart on the circle land >= 2 sin(π · 0.1) apart
    assert abs(q["injectivity"] - 2 * math.sin(math.pi * 0.1)) < 0.01
    half = embedding_quality(ProjCircle(turns=0.5), "circle")  # covers half the circle, no wrap
    assert abs(half["coverage"] - 0.5) < 0.01 and half["wrap_gap"] > 1.9 and half["mmd"] > 0.05
    double = embedding_quality(ProjCircle(turns=2.0), "circle")  # wraps twice: not injective
    assert double["injectivity"] < 1e-2
    off = embedding_quality(ProjCircle(radius=1.2), "circle")
    assert abs(off["dist_mean"] - 0.2) < 1e-5


def test_short_wae_learns_a_circle_embedding():
    f, q = train_embedding(manifold="circle", steps=1000, restarts=2, seed=1)  # ~10 s; 2 restarts guard against a fold
    # stated bounds for this short run (README, section Library): close to S¹, most of it covered
    # once, f(0) near f(1), and no fold
    assert q["dist_mean"] < 0.1 and q["dist_max"] < 0.3, q
    assert q["coverage"] > 0.8, q
    assert q["injectivity"] > 0.2, q
    assert q["wrap_gap"] < 1.2, q
    assert q["mmd"] < 0.1 and q["recon"] < 0.2, q
    assert not any(p.requires_grad for p in f.parameters())
    out = f(torch.rand(3, 4, 1))
    assert out.shape == (3, 4, 2)


@pytest.mark.parametrize("manifold,n,m", [("torus", 2, 4), ("sphere", 2, 3)])
def test_other_manifolds_run(manifold, n, m):
    f, q = train_embedding(manifold=manifold, steps=5, batch_size=16, width=8, seed=1, restarts=2)
    assert len(q["wae_losses"]) == 2 and q["wae_loss"] == min(q["wae_losses"])
    assert f.in_dim == n and f.out_dim == m
    assert set(q) >= {"recon", "mmd", "dist_mean", "dist_max", "coverage", "injectivity"}
    assert all(math.isfinite(v) for v in q.values() if isinstance(v, float))


def test_state_dict_roundtrip(tmp_path):
    from safetensors.torch import load_file, save_file

    f = Embedding(1, 2, 16, 3)
    save_file(f.state_dict(), tmp_path / "f.safetensors")
    g = load_embedding(load_file(tmp_path / "f.safetensors"))
    torch.save(f.state_dict(), tmp_path / "f.pt")
    h = load_embedding(torch.load(tmp_path / "f.pt", weights_only=True))
    z = torch.rand(10, 1)
    torch.testing.assert_close(g(z), f(z), rtol=0, atol=0)
    torch.testing.assert_close(h(z), f(z), rtol=0, atol=0)
    assert (g.in_dim, g.out_dim, g.width, g.depth) == (1, 2, 16, 3)
    with pytest.raises(ValueError, match="Embedding state_dict"):
        load_embedding({})


def test_bad_arguments():
    with pytest.raises(ValueError, match="manifold must be one of"):
        train_embedding(manifold="mobius", steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_embedding(steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_embedding(steps=1, batch_size=1)
    with pytest.raises(ValueError, match="lam"):
        train_embedding(steps=1, lam=-1.0)
    with pytest.raises(ValueError, match="lr"):
        train_embedding(steps=1, lr=0.0)
    with pytest.raises(ValueError, match="threads"):
        train_embedding(steps=1, threads=0)
    with pytest.raises(ValueError, match="restarts"):
        train_embedding(steps=1, restarts=0)
    with pytest.raises(ValueError, match="seed"):
        train_embedding(steps=1, seed=-2)
    with pytest.raises(ValueError, match="manifold must be one of"):
        embedding_quality(Embedding(1, 2), "klein")
