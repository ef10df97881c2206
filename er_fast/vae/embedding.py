"""The embedding learner of paper section 2.2: a WAE-MMD trained on samples of p(z) on the manifold.

Data u ~ p(z) uniform on M ⊂ R^m (circle, torus, sphere); latent z_hid ∈ [0,1]^n, n = dim M, prior
Uniform[0,1]^n. Encoder R^m → [0,1]^n (MLP, sigmoid output), decoder f: [0,1]^n → R^m (MLP, linear
output). Loss per batch = mean ‖u − f(enc(u))‖² + λ · ops.mmd_imq(enc(u), prior batch)
(IMQ constant c = n, the WAE code's choice for a uniform prior; unbiased estimator). The decoder f is
returned, frozen, as the embedding the ER models use.

f's hidden activation is SiLU (smooth: an embedding must be a diffeomorphism onto its image, and a
ReLU net would give a polygon). An Embedding's state_dict holds only tensors, so it saves with
safetensors and reloads with ``torch.load(weights_only=True)``; ``load_embedding`` rebuilds the
module from the shapes alone.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import ops
from ..util.threads import check_threads, intra_op_threads
from ..util.validation import fail, one_of
from .config import MANIFOLDS, WaeConfig, with_overrides
from .data import angles_of, sample_manifold


def _mlp(sizes, out_act=None) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class Embedding(nn.Module):
    """f: [0,1]^n → R^m, an MLP (SiLU hidden layers, linear output); works on any leading dims."""

    def __init__(self, in_dim: int, out_dim: int, width: int = 64, depth: int = 2):
        super().__init__()
        self.in_dim, self.out_dim, self.width, self.depth = in_dim, out_dim, width, depth
        self.net = _mlp([in_dim] + [width] * depth + [out_dim])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def load_embedding(state_dict: dict) -> Embedding:
    """Rebuild an Embedding from its state_dict (shapes give in_dim, width, depth, out_dim)."""
    ws = sorted((k for k in state_dict if k.endswith(".weight")), key=lambda k: int(k.split(".")[1]))
    if not ws:
        fail("an Embedding state_dict", "hold '*.weight' entries", sorted(state_dict))
    shapes = [tuple(state_dict[k].shape) for k in ws]
    depth = len(shapes) - 1
    if depth < 1:
        fail("an Embedding state_dict", "hold at least one hidden layer", f"{len(shapes)} layer(s)")
    f = Embedding(shapes[0][1], shapes[-1][0], shapes[0][0], depth)
    f.load_state_dict(state_dict)
    return f.to(state_dict[ws[0]].dtype)


def _latent_distance(manifold: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance between latent codes: per-coordinate circular (z ≡ z+1) for circle and torus, whose
    charts wrap, Euclidean for the sphere."""
    d = (a - b).abs()
    if manifold in ("circle", "torus"):
        d = torch.minimum(d, 1 - d)
    return d.norm(dim=-1)


def _distance_to_manifold(manifold: str, p: torch.Tensor) -> torch.Tensor:
    if manifold == "sphere":
        return (p.norm(dim=-1) - 1).abs()
    q = p.unflatten(-1, (-1, 2)).norm(dim=-1)  # one circle per pair of coordinates
    return (q - 1).abs().amax(-1)


def _latent_grid(n: int, points_per_dim: int, dtype) -> torch.Tensor:
    t = (torch.arange(points_per_dim, dtype=dtype) + 0.5) / points_per_dim
    if n == 1:
        return t[:, None]
    a, b = torch.meshgrid(t, t, indexing="ij")
    return torch.stack((a.flatten(), b.flatten()), -1)


@torch.no_grad()
def embedding_quality(
    f: nn.Module,
    manifold: str = "circle",
    *,
    encoder: Optional[nn.Module] = None,
    n_samples: int = 1000,
    bins: Optional[int] = None,
    seed: int = 0,
) -> dict:
    """How good an embedding f: [0,1]^n → M ⊂ R^m is. Returns a dict of floats:

    * ``recon`` (only with ``encoder``): mean ‖u − f(enc(u))‖² on n_samples fresh u ~ p(z).
    * ``mmd``: mmd_imq(f(Uniform[0,1]^n), p(z)), n_samples each (c = 2m, the op's default).
    * ``dist_mean``, ``dist_max``: distance of f(z) from M on a latent grid: | ‖f(z)‖ − 1 | (circle,
      sphere; for the torus the worse of its two circles).
    * ``coverage``: fraction of equal-size bins of M hit by f(grid): circle 360 one-degree bins;
      torus 30×30 angle cells; sphere 20 (cos polar) × 40 (azimuth) equal-area cells.
    * ``injectivity``: min ‖f(z1) − f(z2)‖ over grid pairs whose latent distance exceeds 0.1. The
      latent distance is CIRCULAR for circle and torus (|z1 − z2| taken mod 1): f(0) and f(1) are
      the same point of S¹ when f wraps around once, so that pair must not count as a failure.
      ``wrap_gap`` = ‖f(0) − f(1)‖ (circle: small when f closes the loop) is reported beside it.
    """
    one_of("manifold", manifold, MANIFOLDS)
    m, n = MANIFOLDS[manifold]
    p0 = next(f.parameters())
    dev, dt = p0.device, p0.dtype
    g = torch.Generator(device=dev).manual_seed(seed)
    out = {}
    u = sample_manifold(manifold, n_samples, g, device=dev, dtype=dt)
    if encoder is not None:
        out["recon"] = float((u - f(encoder(u))).square().sum(-1).mean())
    zu = torch.rand(n_samples, n, generator=g, device=dev, dtype=dt)
    out["mmd"] = float(ops.mmd_imq(f(zu), u))

    grid = _latent_grid(n, 4000 if n == 1 else 100, dt).to(dev)
    fg = f(grid)
    dist = _distance_to_manifold(manifold, fg)
    out["dist_mean"], out["dist_max"] = float(dist.mean()), float(dist.max())

    ang = angles_of(manifold, fg)
    if manifold == "circle":
        nb = bins or 360
        idx = (ang[:, 0] / (2 * math.pi) * nb).long().clamp(0, nb - 1)
        total = nb
    elif manifold == "torus":
        nb = bins or 30
        ij = (ang / (2 * math.pi) * nb).long().clamp(0, nb - 1)
        idx, total = ij[:, 0] * nb + ij[:, 1], nb * nb
    else:
        nb = bins or 20
        i = ((ang[:, 0] + 1) / 2 * nb).long().clamp(0, nb - 1)
        j = (ang[:, 1] / (2 * math.pi) * 2 * nb).long().clamp(0, 2 * nb - 1)
        idx, total = i * 2 * nb + j, 2 * nb * nb
    out["coverage"] = float(torch.unique(idx).numel() / total)

    # injectivity on a coarser grid (pairwise)
    cg = _latent_grid(n, 500 if n == 1 else 24, dt).to(dev)
    fc = f(cg)
    dz = _latent_distance(manifold, cg[:, None, :], cg[None, :, :])
    df = (fc[:, None, :] - fc[None, :, :]).square().sum(-1).sqrt()
    far = dz > 0.1
    out["injectivity"] = float(df[far].min())
    if n == 1:
        ends = f(torch.tensor([[0.0], [1.0]], device=dev, dtype=dt))
        out["wrap_gap"] = float((ends[0] - ends[1]).norm())
    return out


def _train_one(cfg: WaeConfig, seed_words, dev, dtype, progress, offset):
    m, n = MANIFOLDS[cfg.manifold]
    manifold, steps, batch_size, lam, width, depth = cfg.manifold, cfg.steps, cfg.batch_size, cfg.lam, cfg.width, cfg.depth
    lr = cfg.lr
    state = np.random.SeedSequence(seed_words).generate_state(2, np.uint32)
    g_init = torch.Generator().manual_seed(int(state[0]))
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global RNG: seed it locally
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g_init)))
        enc = _mlp([m] + [width] * depth + [n], nn.Sigmoid())
        f = Embedding(n, m, width, depth)
    enc, f = enc.to(dev, dtype), f.to(dev, dtype)
    g = torch.Generator(device=dev).manual_seed(int(state[1]))
    opt = torch.optim.Adam(list(enc.parameters()) + list(f.parameters()), lr=lr)
    # cosine decay to lr/20: large steps early find the one-turn embedding, small late ones sharpen it
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t / steps)))
    for step in range(steps):
        u = sample_manifold(manifold, batch_size, g, device=dev, dtype=dtype)
        prior = torch.rand(batch_size, n, generator=g, device=dev, dtype=dtype)
        zh = enc(u)
        rec = (u - f(zh)).square().sum(-1).mean()
        loss = rec + lam * ops.mmd_imq(zh, prior, c=float(n))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(offset + step + 1)
    enc.eval()
    f.eval()
    return enc, f


@torch.no_grad()
def wae_loss(enc: nn.Module, f: nn.Module, manifold: str, lam: float, *, n_samples: int = 1000, seed: int = 0) -> float:
    """The WAE objective, mean ‖u − f(enc(u))‖² + λ·MMD(enc(u), prior), on fresh samples."""
    m, n = MANIFOLDS[manifold]
    p0 = next(f.parameters())
    g = torch.Generator(device=p0.device).manual_seed(seed)
    u = sample_manifold(manifold, n_samples, g, device=p0.device, dtype=p0.dtype)
    prior = torch.rand(n_samples, n, generator=g, device=p0.device, dtype=p0.dtype)
    zh = enc(u)
    return float((u - f(zh)).square().sum(-1).mean() + lam * ops.mmd_imq(zh, prior, c=float(n)))


def train_embedding(config: Optional[WaeConfig] = None, *, device="cpu", dtype: torch.dtype = torch.float32,
                    progress=None, threads: Optional[int] = 1, **fields):
    """Train a WAE-MMD on p(z) (uniform on ``config.manifold``) and return (f, quality).

    ``config``: a WaeConfig (keyword overrides of its fields allowed, e.g. ``steps=500``).
    ``restarts`` independent WAEs are trained (init and data streams from SeedSequence([seed, r]))
    and the one with the lowest WAE objective on 1000 fresh held-out samples is kept: a WAE can
    stop in a fold (the encoder wraps the circle onto [0,1] twice and f covers half of it), and
    its own objective, not a quality metric, picks it out. Adam(lr) with a cosine decay of the
    learning rate to lr/20, no weight decay.

    f: the decoder, an Embedding [0,1]^n → R^m, frozen (eval mode, requires_grad False).
    quality: embedding_quality(f, manifold, encoder=...) plus ``wae_loss`` (of the kept run),
    ``wae_losses`` (all runs), ``train_seconds``. ``progress``: optional callable(step), steps
    counted over all restarts (1 .. restarts·steps). ``threads``: torch intra-op threads for the
    call (restored after; None = leave as is). Default 1: the networks are too small to gain from
    more, and on a loaded machine every OpenMP region waits for a descheduled worker (measured
    here: a 1000-step run took 5 s with 1 thread, 90 s with 2 under a load of 4 on 2 cores).
    """
    cfg = with_overrides(WaeConfig, config, fields)
    check_threads(threads)
    dev = torch.device(device)
    t0 = time.perf_counter()
    runs = []
    with intra_op_threads(threads):
        for r in range(cfg.restarts):
            enc, f = _train_one(cfg, [cfg.seed, r], dev, dtype, progress, r * cfg.steps)
            runs.append((wae_loss(enc, f, cfg.manifold, cfg.lam, seed=cfg.seed + 10_000), enc, f))
        train_s = time.perf_counter() - t0
        best = min(range(cfg.restarts), key=lambda i: runs[i][0])
        loss, enc, f = runs[best]
        for p in f.parameters():
            p.requires_grad_(False)
        q = embedding_quality(f, cfg.manifold, encoder=enc, seed=cfg.seed + 20_000)
    q["wae_loss"] = loss
    q["wae_losses"] = [r[0] for r in runs]
    q["train_seconds"] = train_s
    return f, q
