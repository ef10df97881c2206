"""er_fast.vae.model, specs, densities, stacked_mlp: the registry, every model's shapes and gradients, the closed-form pieces."""
import math

import pytest
import torch

import er_fast
from er_fast.vae.densities import beta_log_prob, kl_beta_uniform, kl_gauss_std
from er_fast.vae.embedding import Embedding
from er_fast.vae.model import StackedVAE
from er_fast.vae.seeds import Streams
from er_fast.vae.specs import REGISTRY, get_spec, list_models
from er_fast.vae.stacked_mlp import StackedMLP, StackedMLPFn, StackedMLPSqErrFn

IDS = list(REGISTRY)


def gens(S, base=0):
    """Random streams of S seeds (base, base+1, ...)."""
    return Streams(range(base, base + S))


def make(model_id, S=2, dtype=torch.float64, width=8, **kw):
    emb = Embedding(1, 2, 8, 2).to(dtype) if get_spec(model_id).embed == "learned" else None
    return StackedVAE(model_id, S, data_dim=6, width=width, depth=2, streams=gens(S),
                      embedding=emb, dtype=dtype, **kw)


def test_registry():
    assert IDS == ["vae-gauss-1d", "vae-gauss-2d", "vae-beta-1d", "vae-beta-2d", "er-proj-1d", "er-learned-1d",
                   "er-learned-group-1d", "er-proj-group-1d"]
    assert [s.id for s in list_models()] == IDS
    for s in list_models():
        assert s.description and s.latent in ("gauss", "beta") and s.n in (1, 2)
    with pytest.raises(ValueError, match="model id must be one of"):
        get_spec("vae-gauss-3d")


@pytest.mark.parametrize("model_id", IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_gradients(model_id, dtype):
    S, B = 3, 5
    m = make(model_id, S, dtype)
    x = torch.randn(S, B, 6, dtype=dtype)
    rec, kl, post = m.elbo_terms(x, gens(S, 100))
    assert rec.shape == kl.shape == (S, B) and rec.dtype == dtype
    assert (kl >= -1e-6).all()
    n = get_spec(model_id).n
    assert m.posterior_mean(post).shape == (S, B, n)
    if get_spec(model_id).group:
        assert post["theta"].shape == (S, B)
    (-(rec - kl).mean(1).sum()).backward()
    for name, p in m.named_parameters():
        if not p.requires_grad:
            assert name.startswith("embedding.")
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # every seed's slice gets a gradient
        assert (p.grad.reshape(S, -1).abs().sum(1) > 0).all(), name
    lw = m.log_weights(x, m.encode(x), gens(S, 200), 4)
    assert lw.shape == (S, B, 4) and torch.isfinite(lw).all()


@pytest.mark.parametrize("model_id", ["er-proj-1d", "vae-beta-2d", "er-learned-group-1d"])
def test_seeds_do_not_mix(model_id):
    """Perturbing seed 1's parameters leaves seed 0's ELBO unchanged."""
    m = make(model_id, 2)
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    e0 = m(x, gens(2, 5))
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p[1].add_(0.3)
    e1 = m(x, gens(2, 5))
    torch.testing.assert_close(e0[0], e1[0], rtol=0, atol=0)
    assert not torch.allclose(e0[1], e1[1])


def test_decoder_inputs():
    S, N = 2, 5
    z = torch.rand(S, N, 1, dtype=torch.float64)
    th = torch.randn(S, N, dtype=torch.float64)
    torch.testing.assert_close(make("er-proj-1d").decoder_input(z, None), er_fast.circle_embed(z).flatten(-2))
    torch.testing.assert_close(make("er-proj-group-1d").decoder_input(z, th),
                               er_fast.so2_rotate(er_fast.circle_embed(z)[..., 0, :], th))
    m = make("er-learned-group-1d")
    torch.testing.assert_close(m.decoder_input(z, th), er_fast.so2_rotate(m.embedding(z), th))
    torch.testing.assert_close(make("vae-beta-1d").decoder_input(z, None), z)


def test_kl_beta_uniform_closed_form():
    a = torch.tensor([0.1, 0.5, 1.0, 2.0, 30.0, 1e4], dtype=torch.float64)
    b = torch.tensor([0.3, 0.5, 1.0, 7.0, 3.0, 2e4], dtype=torch.float64)
    kl = kl_beta_uniform(a, b)
    torch.testing.assert_close(kl, -torch.distributions.Beta(a, b).entropy())
    assert kl[2] == 0  # Beta(1, 1) is the prior
    assert (kl >= 0).all()
    # float32 input: computed in float64, so no lgamma cancellation at large concentrations
    torch.testing.assert_close(kl_beta_uniform(a.float(), b.float()).double(), kl, rtol=1e-5, atol=1e-5)


def test_kl_beta_uniform_derivatives():
    """The closed-form derivatives equal autograd through the formula (torch's Beta entropy), in
    reverse mode, forward mode and second order, with broadcasting and float32 inputs."""
    g = torch.Generator().manual_seed(3)
    a = (torch.rand(5, 3, generator=g, dtype=torch.float64) * 20 + 0.05).requires_grad_()
    b = (torch.rand(1, 3, generator=g, dtype=torch.float64) * 20 + 0.05).requires_grad_()
    torch.autograd.gradcheck(kl_beta_uniform, (a, b))
    torch.autograd.gradgradcheck(kl_beta_uniform, (a, b))
    torch.autograd.gradcheck(kl_beta_uniform, (a, b), check_forward_ad=True, check_backward_ad=False,
                             check_undefined_grad=False, check_batched_grad=False)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64)
    ref = torch.autograd.grad((-torch.distributions.Beta(a, b).entropy() * w).sum(), (a, b))
    got = torch.autograd.grad((kl_beta_uniform(a, b) * w).sum(), (a, b))
    for r, x in zip(ref, got):
        torch.testing.assert_close(x, r, rtol=1e-12, atol=1e-12)
    a32, b32 = a.detach().float().requires_grad_(), b.detach().float().requires_grad_()
    out = kl_beta_uniform(a32, b32)
    out.sum().backward()
    assert out.dtype == a32.grad.dtype == b32.grad.dtype == torch.float32 and b32.grad.shape == (1, 3)
    torch.testing.assert_close(a32.grad.double(), torch.autograd.grad(kl_beta_uniform(a, b).sum(), a)[0],
                               rtol=1e-5, atol=1e-5)


def test_kl_beta_uniform_monte_carlo():
    g = torch.Generator().manual_seed(0)
    for a, b in [(0.7, 0.4), (2.0, 5.0), (40.0, 60.0)]:
        at, bt = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        z = er_fast.beta_rsample(at.expand(200_000), bt.expand(200_000), generator=g)
        mc = beta_log_prob(z, at, bt)  # KL(q‖U) = E_q[log q]
        se = float(mc.std()) / math.sqrt(mc.numel())
        assert abs(float(mc.mean()) - float(kl_beta_uniform(at, bt))) < 5 * se + 1e-3


def test_beta_log_prob_and_gauss_kl():
    a, b = torch.tensor([0.5, 3.0]), torch.tensor([2.0, 9.0])
    z = torch.tensor([0.3, 0.7])
    torch.testing.assert_close(beta_log_prob(z, a, b).float(), torch.distributions.Beta(a, b).log_prob(z))
    # a sample that rounded to 0 or 1 stays finite
    assert torch.isfinite(beta_log_prob(torch.tensor([0.0, 1.0]), a, b)).all()
    mu, lv = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * lv).exp()),
                                            torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_gauss_std(mu, lv), ref)


def test_stacked_mlp_backward_gradcheck():
    m = StackedMLP(3, [5, 7, 6, 4], gens(3), dtype=torch.float64)
    wb = [t for pair in zip(m.weights, m.biases) for t in pair]
    x = torch.randn(3, 8, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *wb: StackedMLPFn.apply(x, *wb), (x, *wb))
    # the fused ‖target − MLP(h)‖², with k rows of h per target row, and a fan-in-1 first layer
    m1 = StackedMLP(3, [1, 7, 6, 4], gens(3), dtype=torch.float64)
    wb1 = [t for pair in zip(m1.weights, m1.biases) for t in pair]
    target = torch.randn(3, 4, 4, dtype=torch.float64)
    for k in (1, 3):
        h = torch.randn(3, 4 * k, 1, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda h, *wb: StackedMLPSqErrFn.apply(target, k, h, *wb), (h, *wb1))
        ref = (target.unsqueeze(2) - m1(h).view(3, 4, k, 4)).square().sum(-1).view(3, 4 * k)
        torch.testing.assert_close(m1.sq_err(target, h, k), ref)


def test_sigma_floor():
    m = make("vae-beta-1d", sigma_floor=0.1, log_sigma_init=-8.0)
    assert (m.sigma_log() >= math.log(0.1) - 1e-12).all()
    assert torch.allclose(make("vae-beta-1d").sigma_log(), torch.full((2,), -3.0, dtype=torch.float64))


def test_bad_arguments():
    with pytest.raises(ValueError, match="be a learned embedding f"):
        StackedVAE("er-learned-1d", 2)
    with pytest.raises(ValueError, match="no learned f.*must be None"):
        StackedVAE("er-proj-1d", 2, embedding=Embedding(1, 2))
    with pytest.raises(ValueError, match="map the latent dimension"):
        StackedVAE("er-learned-1d", 2, embedding=Embedding(2, 2))
    with pytest.raises(ValueError, match="model id must be one of"):
        StackedVAE("nope", 2)
    with pytest.raises(ValueError, match="S must be"):
        StackedVAE("er-proj-1d", 0)
    with pytest.raises(ValueError, match="width must be"):
        StackedVAE("er-proj-1d", 2, width=0)
    with pytest.raises(ValueError, match="beta_floor"):
        StackedVAE("er-proj-1d", 2, beta_floor=0.0)
    with pytest.raises(ValueError, match="sigma_floor"):
        StackedVAE("er-proj-1d", 2, sigma_floor=-1.0)
    with pytest.raises(ValueError, match="streams must hold"):
        StackedVAE("er-proj-1d", 2, streams=gens(3))
    m = make("er-proj-1d")
    with pytest.raises(ValueError, match="x must have shape"):
        m.encode(torch.zeros(3, 4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have shape"):
        m.encode(torch.zeros(2, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="streams must hold"):
        m(torch.zeros(2, 4, 6, dtype=torch.float64), gens(1))
