"""The ceiling: the true log-likelihood of the noisy circle data, by piecewise Gauss-Legendre quadrature."""
import math

import numpy as np
import pytest
import torch

from er_fast.vae import ToyData
from er_fast.vae.ceiling import curve, curve_geometry, relu_kinks, true_log_likelihood


def _data(sigma, **kw):
    return ToyData(noise_std=sigma, test_size=64, **kw)


def _brute_force(data, x, sigma, n=2**20, chunk=2**15):
    """Periodic trapezoid rule on n equally spaced angles, log-sum-exp accumulated over chunks of
    angles (x - g computed directly, no expansion): a slow, independent route to log p(x)."""
    D = x.shape[1]
    acc = np.full(x.shape[0], -np.inf)
    for i in range(0, n, chunk):
        g = curve(data, (np.arange(i, i + chunk) + 0.5) * (2 * math.pi / n))
        s = -((x[:, None, :] - g[None]) ** 2).sum(-1) / (2 * sigma**2)
        acc = np.logaddexp(acc, np.logaddexp.reduce(s, axis=1))
    return acc - math.log(n) - 0.5 * D * math.log(2 * math.pi * sigma**2)


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_matches_a_brute_force_fine_grid(sigma):
    data = _data(sigma)
    x = data.x_test[:4].double().numpy()
    rng = np.random.default_rng(1)
    far = x[0] + 3 * sigma * math.sqrt(data.dim_x) * rng.standard_normal(data.dim_x)  # well off the curve
    x = np.concatenate([x, far[None]])
    lp, info = true_log_likelihood(data, x, tol=1e-8)
    ref = _brute_force(data, x, sigma)
    np.testing.assert_allclose(lp, ref, atol=1e-5, rtol=0)
    assert info["converged"] and info["max_change"] < 1e-8


def test_agrees_with_monte_carlo_within_its_standard_error():
    sigma, M = 0.3, 2**18
    data = _data(sigma)
    x = data.x_test[:6].double().numpy()
    lp, _ = true_log_likelihood(data, x)
    phi = np.random.default_rng(0).uniform(0, 2 * math.pi, M)
    logk = np.concatenate([-((x[:, None, :] - curve(data, c)[None]) ** 2).sum(-1) / (2 * sigma**2)
                           for c in np.split(phi, 16)], axis=1)
    c = logk.max(axis=1, keepdims=True)
    w = np.exp(logk - c)
    mc = c[:, 0] + np.log(w.mean(axis=1)) - 0.5 * data.dim_x * math.log(2 * math.pi * sigma**2)
    se = w.std(axis=1) / w.mean(axis=1) / math.sqrt(M)  # standard error of log p̂ (delta method)
    assert np.all(se < 0.05), se  # the test must have power: a tight Monte Carlo estimate
    assert np.all(np.abs(mc - lp) < 4 * se), (mc - lp, se)


def test_noise_free_data_is_refused():
    data = ToyData(test_size=8)
    with pytest.raises(ValueError, match=r"noise_std must be > 0 .*no density"):
        true_log_likelihood(data, data.x_test)
    with pytest.raises(ValueError, match="noise_std must be > 0"):
        true_log_likelihood(_data(0.1), data.x_test, 0.0)
    with pytest.raises(ValueError, match="noise_std must be a positive finite number"):
        true_log_likelihood(_data(0.1), data.x_test, -0.1)


def test_bad_inputs():
    data = _data(0.1)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 100\)"):
        true_log_likelihood(data, data.x_test[:, :5])
    with pytest.raises(ValueError, match="x must be finite"):
        true_log_likelihood(data, torch.full((2, 100), float("nan")))
    with pytest.raises(ValueError, match="data.manifold must be 'circle'"):
        true_log_likelihood(ToyData(manifold="torus", noise_std=0.1, test_size=8), torch.zeros(2, 100))


def test_convergence_is_checked_and_reported():
    data = _data(0.05)
    _, info = true_log_likelihood(data, data.x_test[:16], tol=1e-7)
    h = info["history"]
    assert len(h) >= 2 and h[-1]["max_change"] < 1e-7 <= h[-2]["max_change"]
    assert [r["nodes"] for r in h] == sorted(r["nodes"] for r in h)
    assert info["nodes"] == h[-1]["nodes"] and info["kinks"] > 0
    small = _data(0.003)  # sharp bumps: the first grid has 1728 nodes, the next 2960
    with pytest.raises(RuntimeError, match="did not converge to tol=1e-07 nats within max_nodes=2000"):
        true_log_likelihood(small, small.x_test[:4], tol=1e-7, max_nodes=2000)


def test_kinks_are_exact_zero_crossings():
    data = _data(0.05)
    k = relu_kinks(data)
    p = {n: t.double().numpy() for n, t in data.map_params.items()}
    pre = np.stack([np.cos(k), np.sin(k)], -1) @ p["w1"] + p["b1"]
    assert np.all(np.abs(pre).min(axis=1) < 1e-12)
    assert np.all(np.diff(k) >= 0) and k.min() >= 0 and k.max() < 2 * math.pi


def test_no_model_beats_it_on_average():
    # Gibbs: on points drawn from the data model, E log p >= E log q for every q. Compare with
    # the same curve under a wrong σ, and with a full-covariance Gaussian fitted to other samples.
    sigma = 0.05
    data = _data(sigma)
    x = data.sample(2000, torch.Generator().manual_seed(3)).double().numpy()
    true, _ = true_log_likelihood(data, x)
    for wrong in (sigma / 1.3, sigma * 1.3):
        other, _ = true_log_likelihood(data, x, wrong)
        assert other.mean() < true.mean() - 1.0
    fit = data.sample(20000, torch.Generator().manual_seed(4)).double().numpy()
    mu, cov = fit.mean(0), np.cov(fit.T) + 1e-8 * np.eye(data.dim_x)
    _, logdet = np.linalg.slogdet(cov)
    r = np.linalg.solve(np.linalg.cholesky(cov), (x - mu).T)
    gauss = -0.5 * ((r**2).sum(0) + logdet + data.dim_x * math.log(2 * math.pi))
    assert gauss.mean() < true.mean() - 1.0


def test_curve_matches_the_data_map_and_its_geometry_is_sane():
    data = ToyData(dtype=torch.float64, test_size=8)
    phi = np.linspace(0, 2 * math.pi, 7)
    pts = torch.tensor(np.stack([np.cos(phi), np.sin(phi)], -1))
    np.testing.assert_allclose(curve(data, phi), data.embed(pts).numpy(), rtol=1e-12, atol=1e-12)
    _, dg = curve(data, phi, derivative=True)
    eps = 1e-6
    fd = (curve(data, phi + eps) - curve(data, phi - eps)) / (2 * eps)
    np.testing.assert_allclose(dg, fd, atol=1e-5)  # no kink within 1e-6 of these angles
    geo = curve_geometry(data, n=512)
    assert 0 < geo["speed_min"] <= geo["speed_median"] <= geo["speed_max"]
    assert 0 < geo["min_far_distance"] and 0 < geo["coord_std_min"] <= geo["coord_std_mean"]
