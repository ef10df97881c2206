"""The paper's toy task (section 4) and its torus / sphere variants.

A point u is drawn uniformly on a manifold M (circle S¹ ⊂ R², torus T² ⊂ R⁴, sphere S² ⊂ R³) and
pushed through a FIXED random MLP  R^m → R^hidden → R^dim_x  (one hidden layer, ReLU):

    x = W2ᵀ relu(W1ᵀ u + b1) + b2   (+ noise_std · ε, ε ~ N(0, I), off by default: the paper has no noise)

Initialisation of the random map (drawn, in this order, from its own generator seeded with map_seed,
in float64, then cast):
  * hidden layer W1 (m × hidden): Xavier-uniform, U(±sqrt(6 / (m + hidden))) — the paper's statement;
  * every other tensor (b1, W2, b2): PyTorch's nn.Linear default, U(±1/sqrt(fan_in)) — the paper says
    nothing about them, and nn.Linear's default is what an unmodified PyTorch MLP would carry.

The map's seed (map_seed), the held-out test set's seed (test_seed) and the training streams (one
counter-based stream per training seed, see er_fast.vae.seeds) are independent, so every trained seed sees the
same task and is scored on the same test set.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..util.validation import fail, float_dtype, one_of, positive_int
from .config import MANIFOLDS, DataConfig, with_overrides
from .seeds import Streams


def draw_params(manifold: str, n: int, generator: torch.Generator, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The random numbers behind n points of M, from ONE generator: (n, k) uniforms for circle (k=1)
    and torus (k=2), (n, 3) standard normals for the sphere. ``out`` (a view) is filled in place."""
    k = {"circle": 1, "torus": 2, "sphere": 3}[manifold]
    if out is None:
        out = torch.empty(n, k, device=generator.device)
    if manifold == "sphere":
        return out.normal_(generator=generator)
    return out.uniform_(generator=generator)


def params_to_points(manifold: str, r: torch.Tensor) -> torch.Tensor:
    """Map draw_params' numbers (..., k) to points of M in R^m (..., m)."""
    if manifold == "sphere":
        return r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    ang = 2 * math.pi * r
    # (cos a1, sin a1[, cos a2, sin a2])
    return torch.stack((torch.cos(ang), torch.sin(ang)), dim=-1).flatten(-2)


def sample_manifold(
    manifold: str,
    n: int,
    generator: Optional[torch.Generator] = None,
    *,
    device="cpu",
    dtype=torch.float32,
) -> torch.Tensor:
    """n points drawn uniformly on M (the distribution p(z) the WAE learns), shape (n, m)."""
    one_of("manifold", manifold, MANIFOLDS)
    positive_int("n", n)
    if generator is None:
        generator = torch.Generator(device=device)
        generator.seed()
    r = draw_params(manifold, n, generator, torch.empty(n, {"circle": 1, "torus": 2, "sphere": 3}[manifold],
                                                         device=device, dtype=dtype))
    return params_to_points(manifold, r)


def angles_of(manifold: str, p: torch.Tensor) -> torch.Tensor:
    """Angles in [0, 2π) of points (..., m): circle -> (..., 1), torus -> (..., 2); sphere -> (..., 2)
    holding (polar cos θ in [-1, 1], azimuth in [0, 2π)) — equal-area coordinates (Archimedes)."""
    two_pi = 2 * math.pi
    if manifold == "sphere":
        return torch.stack((p[..., 2].clamp(-1, 1), torch.atan2(p[..., 1], p[..., 0]) % two_pi), dim=-1)
    q = p.unflatten(-1, (-1, 2))
    return torch.atan2(q[..., 1], q[..., 0]) % two_pi


def relu_kinks(w1: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
    """Sorted angles φ ∈ [0, 2π) (float64) where a hidden pre-activation of the circle map,
    w1[0,j] cos φ + w1[1,j] sin φ + b1[j], crosses 0: φ = atan2(w1[1,j], w1[0,j]) ± arccos(−b1[j] / r_j)
    with r_j = hypot(w1[0,j], w1[1,j]), for the units with r_j > |b1[j]| (the others are always on or
    always off)."""
    a, b, c = w1[0].double(), w1[1].double(), b1.double()
    r = torch.hypot(a, b)
    cross = r > c.abs()
    psi, half = torch.atan2(b[cross], a[cross]), torch.acos(-c[cross] / r[cross])
    return torch.sort(torch.cat([psi - half, psi + half]).remainder(2 * math.pi)).values


class CircleMap:
    """The circle task's map in closed form. Between two consecutive ReLU kinks the set of active
    hidden units is fixed, so there g(φ) = cos φ · A_k + sin φ · B_k + C_k with
    A_k = Σ_{j on} w1[0,j] w2[j], B_k = Σ_{j on} w1[1,j] w2[j], C_k = Σ_{j on} b1[j] w2[j] + b2 —
    precomputed in float64 from the map's own (dtype-rounded) parameters, then cast. A point costs
    one segment lookup and one 3-term weighted row sum (``embedding_bag``): 3·D multiply-adds
    instead of the two GEMMs' (m + D)·hidden (4–7× faster for S = 50 batches of 128 points, one
    thread, quiet machine: benchmarks/bench_step_parts.py). The same function as ``ToyData.embed``, to rounding."""

    def __init__(self, params: dict):
        w1, b1, w2, b2 = (params[k].to("cpu", torch.float64) for k in ("w1", "b1", "w2", "b2"))
        kinks = relu_kinks(w1, b1) / (2 * math.pi)  # in turns, as the positions r are drawn
        edges = torch.cat([kinks.new_zeros(1), kinks, kinks.new_ones(1)])
        mid = 2 * math.pi * (edges[:-1] + edges[1:]) / 2  # one angle inside each segment
        on = (torch.cos(mid)[:, None] * w1[0] + torch.sin(mid)[:, None] * w1[1] + b1 > 0).double()
        a, b, c = (on * w1[0]) @ w2, (on * w1[1]) @ w2, (on * b1) @ w2 + b2  # (segments, D) each
        dtype, device = params["w2"].dtype, params["w2"].device
        self.table = torch.stack([a, b, c], 1).reshape(-1, w2.shape[1]).to(device, dtype)  # rows 3k, 3k+1, 3k+2
        self.kinks = kinks.to(device, dtype)
        self.offsets = torch.arange(3, device=device)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """g at positions r (..., 1) in turns (angle 2πr), -> (..., D)."""
        flat = r.reshape(-1)
        seg = torch.searchsorted(self.kinks, flat, right=True)
        ang = 2 * math.pi * flat
        w = torch.stack((torch.cos(ang), torch.sin(ang), torch.ones_like(ang)), -1)
        x = F.embedding_bag((3 * seg).unsqueeze(-1) + self.offsets, self.table, per_sample_weights=w, mode="sum")
        return x.view(*r.shape[:-1], self.table.shape[1])


class ToyData:
    """The toy data set: a fixed random MLP applied to uniform points of a manifold.

    ``ToyData(config=None, *, device="cpu", dtype=torch.float32, **fields)``: the settings are a
    DataConfig (default: the paper's circle task), with keyword overrides of its fields, e.g.
    ``ToyData(noise_std=0.05)``. The map, the test set and sampled batches live on ``device`` in
    ``dtype``.

    Attributes: ``config`` (the DataConfig), ``x_test`` (test_size, dim_x), ``points_test``
    (test_size, m), ``ambient_dim`` m, ``intrinsic_dim`` n, ``dim_x``, ``manifold``.
    """

    def __init__(self, config: Optional[DataConfig] = None, *, device="cpu", dtype: torch.dtype = torch.float32,
                 **fields):
        cfg = with_overrides(DataConfig, config, fields)
        self.config = cfg
        self.manifold, self.dim_x, self.hidden = cfg.manifold, cfg.dim_x, cfg.hidden
        self.ambient_dim, self.intrinsic_dim = MANIFOLDS[cfg.manifold]
        self.noise_std = cfg.noise_std
        self.device, self.dtype = torch.device(device), float_dtype("dtype", dtype)

        g = torch.Generator().manual_seed(cfg.map_seed)
        m, hidden, dim_x = self.ambient_dim, cfg.hidden, cfg.dim_x
        f64 = torch.float64
        a = math.sqrt(6.0 / (m + hidden))  # Xavier-uniform, gain 1
        w1 = torch.empty(m, hidden, dtype=f64).uniform_(-a, a, generator=g)
        b1 = torch.empty(hidden, dtype=f64).uniform_(-1 / math.sqrt(m), 1 / math.sqrt(m), generator=g)
        w2 = torch.empty(hidden, dim_x, dtype=f64).uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden), generator=g)
        b2 = torch.empty(dim_x, dtype=f64).uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden), generator=g)
        self.map_params = {k: v.to(self.device, self.dtype) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}
        self._circle_map = CircleMap(self.map_params) if cfg.manifold == "circle" else None

        gt = torch.Generator(device=self.device).manual_seed(cfg.test_seed)
        self.x_test, self.points_test = self.sample(cfg.test_size, gt, return_points=True)

    # -- the map -------------------------------------------------------------------------------
    def embed(self, points: torch.Tensor) -> torch.Tensor:
        """The random map applied to points (..., m) -> (..., dim_x), noise-free.

        Points (S, n, m) are mapped as S batched products of n rows each, so slice s's numbers do
        not depend on S (one GEMM over all S·n rows blocks, hence rounds, rows differently for
        different S)."""
        if points.shape[-1] != self.ambient_dim:
            fail("points", f"have last dimension {self.ambient_dim}", tuple(points.shape))
        p = self.map_params
        pts = points.reshape(-1, points.shape[-2] if points.dim() >= 2 else 1, self.ambient_dim)
        S = pts.shape[0]
        h = torch.baddbmm(p["b1"], pts, p["w1"].expand(S, -1, -1)).relu_()
        return torch.baddbmm(p["b2"], h, p["w2"].expand(S, -1, -1)).reshape(*points.shape[:-1], self.dim_x)

    def _map(self, r: torch.Tensor) -> torch.Tensor:
        """The map applied to draw_params' numbers (..., k): the circle in closed form (CircleMap),
        the torus and sphere through their points and ``embed``."""
        if self._circle_map is not None:
            return self._circle_map(r)
        return self.embed(params_to_points(self.manifold, r))

    # -- sampling ------------------------------------------------------------------------------
    def _k(self) -> int:
        return {"circle": 1, "torus": 2, "sphere": 3}[self.manifold]

    def sample(self, n: int, generator: torch.Generator, *, return_points: bool = False):
        """n data points (n, dim_x) from ONE torch.Generator (positions first, then the noise if any):
        the held-out test set and single draws."""
        positive_int("n", n)
        r = draw_params(self.manifold, n, generator, torch.empty(n, self._k(), device=self.device, dtype=self.dtype))
        x = self._map(r)
        if self.noise_std > 0:
            x = x + self.noise_std * torch.empty_like(x).normal_(generator=generator)
        return (x, params_to_points(self.manifold, r)) if return_points else x

    def sample_seeds(self, n: int, streams: Streams, *, return_points: bool = False):
        """One training batch per seed, (S, n, dim_x), from the seeds' ``data`` stream: positions,
        then the noise (if any), each ONE op for all seeds; slice s is what seed s alone draws."""
        positive_int("n", n)
        if not isinstance(streams, Streams):
            fail("streams", "be an er_fast.vae.seeds.Streams", type(streams).__name__, TypeError)
        if self.manifold == "sphere":
            r = streams.normal("data", (n, 3), self.dtype)
        else:
            r = streams.uniform("data", (n, self._k()), self.dtype)
        x = self._map(r)
        if self.noise_std > 0:
            x = x + self.noise_std * streams.normal("data", (n, self.dim_x), self.dtype)
        return (x, params_to_points(self.manifold, r)) if return_points else x

    def sample_manifold(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points of p(z) on M, (n, m) (the WAE's training data)."""
        return sample_manifold(self.manifold, n, generator, device=self.device, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"ToyData({self.config!r}, device={str(self.device)!r}, dtype={self.dtype})"
