"""er_fast.vae.evaluation: ELBO, IWAE (against 1-d quadrature of log p(x)), active units."""
import math

import numpy as np
import pytest
import torch

from er_fast.vae import DataConfig, StackedVAE, ToyData, TrainConfig, TrainedModels, evaluate, train_seeds
from er_fast.vae.seeds import Streams


@pytest.fixture(scope="module")
def trained():
    d = ToyData(test_size=64, dtype=torch.float64)
    tr = train_seeds("er-proj-1d", [0, 1], d, steps=600, batch_size=64, width=32, lr=3e-3, log_every=100,
                     dtype=torch.float64, threads=1)
    return d, tr


def _synthetic(S=2, D=100, P=16, sigma=0.01):
    """er-proj-1d with a random decoder, σ = 0.01, and data drawn from that decoder at z0 ~ U(0,1)
    plus N(0, σ²) noise: a sharp likelihood in z. The encoder is cut off so q(z|x) = Beta(2, 2) for
    every x — a poor proposal, deterministic whatever the sampler's random stream."""
    cfg = TrainConfig(width=32, dtype="float64", log_sigma_init=math.log(sigma))
    m = StackedVAE("er-proj-1d", S, cfg, data_dim=D, streams=Streams(range(S)))
    with torch.no_grad():
        m.encoder.weights[-1].zero_()
        m.encoder.biases[-1].fill_(math.log(math.expm1(2.0 - m.beta_floor)))
        g = torch.Generator().manual_seed(0)
        z0 = torch.rand(S, P, 1, generator=g, dtype=torch.float64)
        mean = m.decoder(m.decoder_input(z0, None))
        x = mean + sigma * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    return TrainedModels(m, list(range(S)), cfg, {}, DataConfig(dim_x=D)), x


def _log_px_quadrature(tr, x, grid=20000):
    """log p(x) = log ∫_0^1 p(x|z) dz (uniform prior, 1-d latent), midpoint rule, mean over points.
    x (S, P, D)."""
    m = tr.model
    S, P = x.shape[:2]
    z = ((torch.arange(grid, dtype=torch.float64) + 0.5) / grid).view(1, 1, grid, 1).expand(S, P, grid, 1)
    with torch.no_grad():
        ll = m.log_lik(x, m.decoder_input(z.reshape(S, P * grid, 1), None), grid).view(S, P, grid)
    return (torch.logsumexp(ll, -1) - math.log(grid)).mean(1).numpy()  # (S,)


def test_iwae_against_quadrature():
    tr, x = _synthetic()
    logpx = _log_px_quadrature(tr, x)
    res = {k: evaluate(tr, x, iwae_k=k, iwae_points=x.shape[1], chunk=4096) for k in (1, 10, 100, 1000)}
    for r in res.values():
        # log-mean-exp ≥ mean on the same samples (Jensen): exact, for every seed
        assert (r["iwae"] >= r["elbo_iwae_points"] - 1e-9).all()
        assert (r["iwae"] <= logpx + 0.5).all(), (r["iwae"], logpx)
    np.testing.assert_allclose(res[1]["iwae"], res[1]["elbo_iwae_points"], rtol=1e-12)
    iw = np.stack([res[k]["iwae"] for k in (1, 10, 100, 1000)])
    assert (np.diff(iw, axis=0) > 0.1).all(), iw  # grows with K (by hundreds of nats at first)
    assert (iw[0] < logpx - 100).all()  # the ELBO of a poor proposal is far below log p(x) ...
    assert (np.abs(iw[-1] - logpx) < 0.5).all(), (iw[-1], logpx)  # ... K = 1000 closes the gap


def test_chunking_is_statistically_neutral(trained):
    d, tr = trained
    a = evaluate(tr, d.x_test, iwae_k=300, iwae_points=16, chunk=100000)
    b = evaluate(tr, d.x_test, iwae_k=300, iwae_points=16, chunk=64)  # K split in 5 chunks, 1 point each
    np.testing.assert_allclose(a["iwae"], b["iwae"], atol=0.5)
    np.testing.assert_array_equal(a["elbo"], b["elbo"])  # the ELBO pass does not depend on the IWAE chunk


def test_outputs_and_reproducibility(trained):
    d, tr = trained
    a = evaluate(tr, d.x_test, iwae_k=5, iwae_points=3)
    b = evaluate(tr, d.x_test.unsqueeze(0).expand(2, -1, -1), iwae_k=5, iwae_points=3)
    assert set(a) == {"elbo", "rec", "kl", "iwae", "elbo_iwae_points", "active_units", "sigma", "finite"}
    for k in a:
        assert a[k].shape == (2,)
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_allclose(a["elbo"], a["rec"] - a["kl"])
    assert a["finite"].all() and (a["kl"] > 0).all()
    # explicit streams are used when given (fresh ones: the same numbers as the default)
    c = evaluate(tr, d.x_test, iwae_k=5, iwae_points=3, streams=Streams([0, 1]))
    np.testing.assert_array_equal(a["iwae"], c["iwae"])


def test_active_units():
    d = ToyData(test_size=200)
    tr = train_seeds("vae-gauss-2d", [0], d, steps=1, batch_size=4, width=8)
    enc = tr.model.encoder
    with torch.no_grad():
        w, b = enc.weights[-1], enc.biases[-1]
        w[:, :, 0] = 0.0  # mean of latent 0 constant in x: inactive
        b[:, :, 0] = 0.7
        w[:, :, 1] *= 50.0  # latent 1 varies strongly with x: active
    r = evaluate(tr, d.x_test, iwae_k=2, iwae_points=2)
    assert int(r["active_units"][0]) == 1
    with torch.no_grad():
        w[:, :, 1] = 0.0
    assert int(evaluate(tr, d.x_test, iwae_k=2, iwae_points=2)["active_units"][0]) == 0


def test_bad_arguments(trained):
    d, tr = trained
    for kw in (dict(iwae_k=0), dict(iwae_points=0), dict(chunk=-1), dict(elbo_samples=0), dict(iwae_k=2.5),
               dict(threads=0)):
        with pytest.raises(ValueError):
            evaluate(tr, d.x_test, **kw)
    with pytest.raises(ValueError, match="x_test must have shape"):
        evaluate(tr, d.x_test[:, :50])
    with pytest.raises(ValueError, match="x_test must have shape"):
        evaluate(tr, d.x_test.unsqueeze(0).expand(3, -1, -1))
    with pytest.raises(ValueError, match="TrainedModels"):
        evaluate(tr.model, d.x_test)
    with pytest.raises(ValueError, match="streams"):
        evaluate(tr, d.x_test, streams=Streams([0]))
