"""The ceiling: the true log-likelihood of held-out points under the NOISY circle data model.

With observation noise σ0 > 0 the data density is a 1-d mixture of Gaussians along the curve
g(u(φ)) = W2ᵀ relu(W1ᵀ u(φ) + b1) + b2, u(φ) = (cos φ, sin φ), φ uniform on [0, 2π):

    p(x) = (1/2π) ∫₀^{2π} N(x; g(u(φ)), σ0² I) dφ.

No model of the data can have a larger expected log-likelihood (Gibbs' inequality), so the mean of
log p over the test points bounds every row's IWAE from above. With σ0 = 0 the data lie on a curve
in R^D and have no density: refused.

Quadrature (float64, log-sum-exp). g is analytic between the ReLU kinks — the angles where a hidden
pre-activation A cos φ + B sin φ + c crosses 0, i.e. φ = atan2(B, A) ± arccos(−c / hypot(A, B)),
computed exactly — and only continuous across them, so a periodic trapezoid rule would converge
only as O(h²) there. We integrate piecewise: every inter-kink arc is cut into equal sub-intervals
of length ≤ h, each carrying an ``order``-point Gauss-Legendre rule (exponential convergence on
analytic pieces). The integrand is a bump of width ≈ σ0 / |g'(φ)| in φ, so the first grid already
spaces its nodes at most σ0 / max|g'| apart (no peak falls between nodes); h is then halved until
the largest change of log p over the points is below ``tol`` nats. The result is the finer level;
the info dict carries the whole refinement history as the convergence evidence.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from ..util.validation import fail, positive_float, positive_int
from .data import relu_kinks as _kinks

LOG_2PI = math.log(2 * math.pi)


def _params(data) -> dict:
    """The generating map in float64 (the very numbers that drew the data, float32 rounding included)."""
    if getattr(data, "manifold", None) != "circle":
        fail("data.manifold", "be 'circle' (the ceiling integrates over the circle only)",
             repr(getattr(data, "manifold", None)))
    return {k: v.detach().to("cpu", torch.float64).numpy() for k, v in data.map_params.items()}


def relu_kinks(data) -> np.ndarray:
    """Sorted angles in [0, 2π) where some hidden pre-activation of the map crosses zero."""
    p = _params(data)
    return _kinks(torch.from_numpy(p["w1"]), torch.from_numpy(p["b1"])).numpy()


def curve(data, phi: np.ndarray, *, derivative: bool = False):
    """g(u(φ)) for angles φ (K,) as float64 (K, D); with ``derivative``, also dg/dφ (K, D)."""
    p = _params(data)
    phi = np.asarray(phi, dtype=np.float64)
    u = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
    pre = u @ p["w1"] + p["b1"]
    g = np.maximum(pre, 0) @ p["w2"] + p["b2"]
    if not derivative:
        return g
    du = np.stack([-np.sin(phi), np.cos(phi)], axis=-1)
    return g, ((pre > 0) * (du @ p["w1"])) @ p["w2"]


def _rule(breaks: np.ndarray, h: float, order: int) -> Tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (sum 2π) of a composite Gauss-Legendre rule on the circle: the arcs
    between consecutive ``breaks`` (wrapping around), each cut into sub-intervals of length ≤ h."""
    t, w = np.polynomial.legendre.leggauss(order)
    ends = np.append(breaks, breaks[0] + 2 * math.pi)
    lo, hi = [], []
    for a, b in zip(ends[:-1], ends[1:]):
        if b - a <= 0:
            continue  # two kinks at the same angle
        n = max(1, math.ceil((b - a) / h))
        e = np.linspace(a, b, n + 1)
        lo.append(e[:-1])
        hi.append(e[1:])
    lo, hi = np.concatenate(lo), np.concatenate(hi)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    nodes = (mid[:, None] + half[:, None] * t).ravel()
    weights = (half[:, None] * w).ravel()
    return nodes % (2 * math.pi), weights


def _log_p(x: np.ndarray, g: np.ndarray, log_w: np.ndarray, sigma: float, chunk_elems: int) -> np.ndarray:
    """log Σ_k exp(log_w_k + log N(x; g_k, σ² I)) for every row of x (log-sum-exp, chunked)."""
    N, D = x.shape
    const = -0.5 * D * (LOG_2PI + 2 * math.log(sigma))
    gg = np.einsum("kd,kd->k", g, g)
    out = np.empty(N)
    step = max(1, chunk_elems // g.shape[0])
    for i in range(0, N, step):
        xi = x[i : i + step]
        # |x − g|² expanded: its terms are O(|x|²) and the float64 rounding is ≪ σ² for any σ used here
        d2 = np.einsum("nd,nd->n", xi, xi)[:, None] + gg[None, :] - 2.0 * (xi @ g.T)
        s = log_w[None, :] - np.maximum(d2, 0.0) / (2 * sigma**2)
        m = s.max(axis=1, keepdims=True)
        out[i : i + step] = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    return out + const


def true_log_likelihood(
    data,
    x,
    noise_std: Optional[float] = None,
    *,
    tol: float = 1e-6,
    order: int = 16,
    max_nodes: int = 2**21,
    chunk_elems: int = 2**23,
) -> Tuple[np.ndarray, dict]:
    """log p(x) of each row of x (N, D) under the circle data model of ``data`` (a ToyData) with
    observation noise ``noise_std`` (default: ``data.noise_std``), in nats.

    Returns ``(log_p, info)``: log_p a float64 numpy array (N,); info a dict: ``nodes`` (final
    quadrature size), ``order``, ``kinks`` (ReLU kinks used as break points), ``max_change`` (largest
    |Δ log p| over the points between the last two levels, < tol), ``history`` (per level: nodes,
    sub-interval length h, max_change), ``tol``, ``converged`` (True; otherwise RuntimeError).
    """
    if noise_std is None:
        noise_std = getattr(data, "noise_std", None)
    if noise_std is None or (isinstance(noise_std, (int, float)) and not isinstance(noise_std, bool)
                             and noise_std == 0):
        fail("noise_std", "be > 0 (with noise_std = 0 the data lie on a curve in R^D and have no "
             "density: log p(x) is +inf on the curve and -inf off it)", noise_std)
    sigma = positive_float("noise_std", noise_std)
    tol = positive_float("tol", tol)
    order = positive_int("order", order)
    max_nodes = positive_int("max_nodes", max_nodes)
    chunk_elems = positive_int("chunk_elems", chunk_elems)

    xs = x.detach().to("cpu", torch.float64).numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    D = data.dim_x
    if xs.ndim != 2 or xs.shape[1] != D:
        fail("x", f"have shape (N, {D})", tuple(xs.shape))
    if not np.isfinite(xs).all():
        fail("x", "be finite", "non-finite values")

    kinks = relu_kinks(data)
    breaks = np.unique(np.concatenate([[0.0], kinks]))
    # First grid: nodes at most σ/max|g'| apart, so no bump of width σ/|g'| falls between two nodes.
    _, dg = curve(data, np.linspace(0, 2 * math.pi, 20001)[:-1], derivative=True)
    speed_max = float(np.linalg.norm(dg, axis=1).max())
    h = min(2 * math.pi / 8, order * sigma / max(speed_max, 1e-300))

    history, prev = [], None
    while True:
        nodes, weights = _rule(breaks, h, order)
        if nodes.size > max_nodes:
            raise RuntimeError(
                f"true_log_likelihood did not converge to tol={tol:g} nats within max_nodes={max_nodes} "
                f"quadrature nodes (noise_std={sigma:g}); refinement history: {history}")
        cur = _log_p(xs, curve(data, nodes), np.log(weights) - LOG_2PI, sigma, chunk_elems)
        change = float(np.max(np.abs(cur - prev))) if prev is not None else float("inf")
        history.append({"nodes": int(nodes.size), "h": h, "max_change": change})
        if change < tol:
            break
        prev, h = cur, h / 2
    info = {"nodes": int(nodes.size), "order": order, "kinks": int(kinks.size), "max_change": change,
            "tol": tol, "converged": True, "noise_std": sigma, "speed_max": speed_max, "history": history}
    return cur, info


def curve_geometry(data, n: int = 4096) -> dict:
    """The data's length scales, to set a noise level against (float64, n points on the circle):
    ``coord_std`` (per-coordinate std of g(u), mean and min over coordinates), ``rms_radius``
    (sqrt E|g − E g|²), ``speed`` |dg/dφ| (min, median, max), ``length`` of the curve,
    ``step_2pi_over_1000`` (median |g(φ + 2π/1000) − g(φ)|) and ``min_far_distance`` (smallest
    |g(φ) − g(φ')| over pairs at least 0.5 rad apart on the circle: how close the curve comes back to
    itself, i.e. the noise at which distant parts become confusable)."""
    n = positive_int("n", n)
    phi = np.arange(n) * (2 * math.pi / n)
    g, dg = curve(data, phi, derivative=True)
    speed = np.linalg.norm(dg, axis=1)
    std = g.std(axis=0)
    gc = g - g.mean(axis=0)
    sq = np.einsum("kd,kd->k", g, g)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * g @ g.T, 0)
    sep = np.abs(phi[:, None] - phi[None, :])
    sep = np.minimum(sep, 2 * math.pi - sep)
    return {
        "coord_std_mean": float(std.mean()), "coord_std_min": float(std.min()),
        "rms_radius": float(np.sqrt(np.einsum("kd,kd->k", gc, gc).mean())),
        "speed_min": float(speed.min()), "speed_median": float(np.median(speed)), "speed_max": float(speed.max()),
        "length": float(speed.mean() * 2 * math.pi),
        "step_2pi_over_1000": float(np.median(np.linalg.norm(curve(data, phi + 2 * math.pi / 1000) - g, axis=1))),
        "min_far_distance": float(np.sqrt(d2[sep >= 0.5].min())),
    }


def noise_level_evidence(sigmas, *, residual_rms=(0.006, 0.012), test_points: int = 1000,
                         fit_points: int = 20000, seed: int = 0, **data_fields) -> list[dict]:
    """The measurements behind a choice of noise level, one dict per σ0 in ``sigmas`` (the map and
    test set from ``data_fields``, ToyData's keyword overrides, e.g. test_seed=12345):

    * ``ceiling``: mean true log p of ``test_points`` held-out points (nats / point);
    * ``info_phi``: I(φ; x) = E log N(x; g(φ), σ0² I) − ceiling = −D/2·log(2πeσ0²) − ceiling, how many
      nats x says about the position φ on the circle (log 2π = 1.84 would be 'φ known to ±0.5 rad');
    * ``gauss_gap``: ceiling − mean log-likelihood of a full-covariance Gaussian fitted to
      ``fit_points`` other samples: what knowing the 1-d structure is worth over a model without it;
    * ``posterior_width``: σ0 / median |g'(φ)| (rad), the width of p(φ | x);
    * ``far_ratio``: min distance between parts of the curve ≥ 0.5 rad apart / σ0;
    * ``coord_snr``: mean per-coordinate std of g(u) / σ0;
    * ``residual_cost``: {r: D/2·log(1 + r²/σ0²)}, nats lost by a decoder whose mean is off by RMS r
      per coordinate (the noise-free run's fitted σ ≈ its residual: 0.006–0.012 at 3000 steps).
    """
    from .data import ToyData

    out = []
    geo = None
    for s in sigmas:
        data = ToyData(noise_std=float(s), test_size=test_points, **data_fields)
        if geo is None:
            geo = curve_geometry(data)
        D = data.dim_x
        lp, _ = true_log_likelihood(data, data.x_test)
        x = data.x_test.double().numpy()
        fit = data.sample(fit_points, torch.Generator().manual_seed(seed)).double().numpy()
        mu, cov = fit.mean(0), np.cov(fit.T)
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (x - mu).T)
        gauss = -0.5 * ((z**2).sum(0) + 2 * np.log(np.diag(chol)).sum() + D * LOG_2PI)
        ceiling = float(lp.mean())
        out.append({
            "sigma": float(s), "ceiling": ceiling,
            "info_phi": -0.5 * D * (LOG_2PI + 1 + 2 * math.log(s)) - ceiling,
            "gauss_gap": ceiling - float(gauss.mean()),
            "posterior_width": s / geo["speed_median"], "far_ratio": geo["min_far_distance"] / s,
            "coord_snr": geo["coord_std_mean"] / s,
            "residual_cost": {r: 0.5 * D * math.log1p(r**2 / s**2) for r in residual_rms},
        })
    return out
