"""er_fast.evaluate: ELBO, IWAE (against 1-d quadrature of log p(x)), active units."""
import copy
import math

import numpy as np
import pytest
import torch

from er_fast.data import ToyData
from er_fast.evaluate import evaluate
from er_fast.train import seed_generators, train_seeds


@pytest.fixture(scope="module")
def trained():
    d = ToyData(test_size=64, dtype=torch.float64)
    tr = train_seeds("er-proj-1d", [0, 1], d, steps=600, batch_size=64, width=32, lr=3e-3, log_every=100,
                     dtype=torch.float64)
    return d, tr


def _log_px_quadrature(tr, x, grid=20000):
    """log p(x) = log ∫_0^1 p(x|z) dz (uniform prior, 1-d latent), midpoint rule."""
    m = tr.model
    S, P = m.S, x.shape[0]
    z = ((torch.arange(grid, dtype=torch.float64) + 0.5) / grid).view(1, 1, grid, 1).expand(S, P, grid, 1)
    with torch.no_grad():
        h = m.decoder_input(z.reshape(S, P * grid, 1), None)
        ll = m.log_lik(x.unsqueeze(0).expand(S, -1, -1), h, grid).view(S, P, grid)
    return torch.logsumexp(ll, -1) - math.log(grid)  # (S, P)


def test_iwae_tight_against_quadrature(trained):
    d, tr = trained
    P = 8
    logpx = _log_px_quadrature(tr, d.x_test[:P]).mean(1).numpy()
    res = {k: evaluate(tr, d.x_test, iwae_k=k, iwae_points=P, chunk=512) for k in (1, 2000)}
    for k, r in res.items():
        # log-sum-exp ≥ mean on the same samples (Jensen): exact, for every seed
        assert (r["iwae"] >= r["elbo_iwae_points"] - 1e-9).all()
        assert (r["iwae"] <= logpx + 0.5).all(), (k, r["iwae"], logpx)
    np.testing.assert_allclose(res[1]["iwae"], res[1]["elbo_iwae_points"], rtol=1e-12)
    # a tight bound at K = 2000 for a 1-d latent with a trained posterior
    assert (np.abs(res[2000]["iwae"] - logpx) < 1.0).all(), (res[2000]["iwae"], logpx)
    # the ELBO (all points, closed-form KL) is below log p(x) too, on average
    assert (res[1]["elbo"] < logpx + 5).all()


def test_iwae_grows_with_k(trained):
    """With a poor proposal (q(z|x) = Beta(2, 2) for every x) the ELBO is far below log p(x) and the
    IWAE bound climbs towards it as K grows."""
    d, tr = trained
    tr = copy.deepcopy(tr)
    with torch.no_grad():
        tr.model.encoder.weights[-1].zero_()
        tr.model.encoder.biases[-1].fill_(math.log(math.expm1(2.0 - tr.model.beta_floor)))
    P = 8
    logpx = _log_px_quadrature(tr, d.x_test[:P]).mean(1).numpy()
    iw = np.stack([evaluate(tr, d.x_test, iwae_k=k, iwae_points=P, chunk=4096)["iwae"] for k in (1, 10, 100, 1000)])
    assert (np.diff(iw, axis=0) > 0).all(), iw
    assert (iw <= logpx + 0.5).all(), (iw, logpx)
    assert (iw[0] < logpx - 20).all()  # the ELBO of a bad proposal is far from log p(x)


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
    # explicit generators are used when given
    c = evaluate(tr, d.x_test, iwae_k=5, iwae_points=3, generators=seed_generators([0, 1], "eval"))
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
    for kw in (dict(iwae_k=0), dict(iwae_points=0), dict(chunk=-1), dict(elbo_samples=0), dict(iwae_k=2.5)):
        with pytest.raises(ValueError):
            evaluate(tr, d.x_test, **kw)
    with pytest.raises(ValueError, match="x_test must have shape"):
        evaluate(tr, d.x_test[:, :50])
    with pytest.raises(ValueError, match="x_test must have shape"):
        evaluate(tr, d.x_test.unsqueeze(0).expand(3, -1, -1))
    with pytest.raises(ValueError, match="TrainedModels"):
        evaluate(tr.model, d.x_test)
    with pytest.raises(ValueError, match="generators"):
        evaluate(tr, d.x_test, generators=seed_generators([0], "eval"))
