"""Held-out evaluation of S stacked seeds: ELBO, IWAE bound on log p(x), active latent units.

Units: nats per data point (the paper's Table 1). The data are noise-free and σ is learned, so the
Gaussian log-density of x is large and positive (−D·log σ dominates): ELBOs of several hundred nats.

* ``elbo``: mean over ALL test points of  E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), the expectation
  estimated with ``elbo_samples`` reparameterised samples per point, the KL in closed form.
* ``iwae``: mean over the first ``iwae_points`` test points (the test set is i.i.d., so they are a
  random subset) of  log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x),  z_k ~ q(z|x)  (Burda et al.) — a
  lower bound on log p(x) that tightens as K grows. ``elbo_iwae_points`` is the K-sample average of
  the same log-weights (an ELBO estimate on the same points), so iwae − elbo_iwae_points ≥ 0 is the
  gain from importance weighting.
* ``active_units``: number of latent dimensions whose posterior mean varies over the test set,
  Var_x(E_q[z|x]) > 0.01 (Burda et al.); 0 means the latent was collapsed to the prior.

For the group-action models the angle θ(x) is a DETERMINISTIC function of x (an amortised point
estimate, not a latent variable): their ELBO and IWAE are bounds for the decoder p(x | z, θ(x)),
with q and the KL over z_hid only — as in the paper.

Cost and the default subset: the IWAE needs K decoder passes per point and seed. With K = 1000,
iwae_points = 100, S = 100 seeds and width 128 that is 10⁷ decoder rows, ~0.6 TFLOP; measured
9.5–15 s of one core per model (width 64–128, ELBO pass included). 100 points put the standard
error of the per-seed mean well under the spread between seeds; 50 halve the IWAE part. Work is
chunked: at most ``chunk`` (point, sample) pairs per seed per pass, the log-sum-exp over K
accumulated across chunks, so memory is O(S · chunk · width); 256 was the fastest chunk here
(the intermediates stay in cache).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..util.threads import check_threads, intra_op_threads
from ..util.validation import fail
from .config import EvalConfig, with_overrides
from .seeds import Streams
from .trained import TrainedModels


def _x_for(model, x_test: torch.Tensor) -> torch.Tensor:
    S, D = model.S, model.data_dim
    if not isinstance(x_test, torch.Tensor):
        fail("x_test", "be a torch.Tensor", type(x_test).__name__)
    if x_test.dim() == 2 and x_test.shape[1] == D:
        return x_test.unsqueeze(0).expand(S, -1, -1)
    if x_test.dim() == 3 and x_test.shape[0] == S and x_test.shape[2] == D:
        return x_test
    fail("x_test", f"have shape (N, {D}) or ({S}, N, {D})", tuple(x_test.shape))


@torch.no_grad()
def evaluate(trained: TrainedModels, x_test: torch.Tensor, config: EvalConfig | None = None, *,
             streams: Streams | None = None, threads: int | None = None, **fields) -> dict:
    """Evaluate every seed of ``trained`` on x_test ((N, D), shared, or (S, N, D)).

    ``config``: an EvalConfig (keyword overrides of its fields allowed, e.g. ``iwae_k=100``).
    Returns a dict of numpy arrays of shape (S,): elbo, rec (E_q log p(x|z)), kl, iwae,
    elbo_iwae_points, active_units (int), sigma (the likelihood's σ), finite (bool: every number of
    that seed is finite). All randomness from the seeds' ``eval`` stream, counters from 0 unless
    ``streams`` is given (reproducible, and independent of which other seeds share the batch).
    Every pass dispatches the same ops for 1 seed or 10,000.
    ``threads``: torch intra-op threads for the call (restored after; None = leave as is).
    """
    if not isinstance(trained, TrainedModels):
        fail("trained", "be a TrainedModels", type(trained).__name__)
    cfg = with_overrides(EvalConfig, config, fields)
    with intra_op_threads(check_threads(threads)):
        return _evaluate(trained, x_test, cfg, streams)


def _evaluate(trained, x_test, cfg: EvalConfig, streams) -> dict:
    model = trained.model
    iwae_k, iwae_points, chunk = cfg.iwae_k, cfg.iwae_points, cfg.chunk
    elbo_samples, elbo_batch = cfg.elbo_samples, cfg.elbo_batch
    p0 = model.log_sigma
    x = _x_for(model, x_test).to(p0.device, p0.dtype)
    S, N, _ = x.shape
    streams = Streams(trained.seeds, p0.device) if streams is None else streams
    if not isinstance(streams, Streams) or streams.S != S:
        fail("streams", f"be Streams of S = {S} seeds", streams if not isinstance(streams, Streams) else streams.S)
    was_training = model.training
    model.eval()

    # ELBO over all points, and the posterior means for active units
    rec_sum = torch.zeros(S, dtype=torch.float64, device=p0.device)
    kl_sum = torch.zeros_like(rec_sum)
    means = []
    for a in range(0, N, elbo_batch):
        xb = x[:, a:a + elbo_batch]
        post = model.encode(xb)
        kl_sum += model.kl(post).double().sum(1)
        means.append(model.posterior_mean(post).double())
        for _ in range(elbo_samples):
            z, _ = model.sample_z(post, streams, stream="eval")
            rec_sum += model.log_lik(xb, model.decoder_input(z, post["theta"])).double().sum(1) / elbo_samples
    rec, kl = rec_sum / N, kl_sum / N
    mu = torch.cat(means, 1)  # (S, N, n)
    active = (mu.var(1, unbiased=False) > 0.01).sum(-1)

    # IWAE on the first iwae_points points, chunked over points and samples
    P = min(iwae_points, N)
    pts = max(1, chunk // iwae_k)
    kc = min(iwae_k, chunk)
    lse = torch.full((S, P), -math.inf, dtype=torch.float64, device=p0.device)
    lw_sum = torch.zeros(S, P, dtype=torch.float64, device=p0.device)
    for a in range(0, P, pts):
        xb = x[:, a:min(a + pts, P)]
        post = model.encode(xb)
        for k0 in range(0, iwae_k, kc):
            k = min(kc, iwae_k - k0)
            lw = model.log_weights(xb, post, streams, k).double()  # (S, p, k)
            lse[:, a:a + xb.shape[1]] = torch.logaddexp(lse[:, a:a + xb.shape[1]], torch.logsumexp(lw, -1))
            lw_sum[:, a:a + xb.shape[1]] += lw.sum(-1)
    iwae = (lse - math.log(iwae_k)).mean(1)
    elbo_sub = (lw_sum / iwae_k).mean(1)
    model.train(was_training)

    sigma = torch.exp(model.sigma_log()).double()
    out = {
        "elbo": (rec - kl).cpu().numpy(),
        "rec": rec.cpu().numpy(),
        "kl": kl.cpu().numpy(),
        "iwae": iwae.cpu().numpy(),
        "elbo_iwae_points": elbo_sub.cpu().numpy(),
        "active_units": active.cpu().numpy().astype(np.int64),
        "sigma": sigma.cpu().numpy(),
    }
    out["finite"] = np.isfinite(np.stack([out[k] for k in ("elbo", "iwae", "sigma")])).all(0)
    return out
