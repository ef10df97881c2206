"""Typed settings of the science layer, one frozen dataclass per concern. Each validates itself
when built (ValueError in er_fast's one message style) and serialises to a plain dict
(``asdict``) for checkpoints and results.json.

    TrainConfig   the stacked trainer (budget, optimiser, network sizes, likelihood)
    EvalConfig    held-out ELBO / IWAE evaluation
    WaeConfig     the WAE-MMD embedding learner
    DataConfig    the toy data set

Functions that take a config also take keyword overrides of its fields:
``train_seeds(..., TrainConfig(width=64), steps=500)`` trains with width 64 and 500 steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple, TypeVar

import torch

from ..util import validation as v

C = TypeVar("C")


def with_overrides(cls: type[C], config: Optional[C], overrides: dict) -> C:
    """``config`` (default: ``cls()``) with some fields replaced; unknown names are a TypeError."""
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        v.fail("config", f"be a {cls.__name__}", type(config).__name__, TypeError)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        v.fail(f"{cls.__name__} fields", "be among " + ", ".join(sorted(names)), ", ".join(unknown), TypeError)
    return dataclasses.replace(config, **overrides) if overrides else config


def asdict(config) -> dict:
    """Plain-Python dict of a config (tuples become lists: JSON and safetensors metadata alike)."""
    return {k: list(x) if isinstance(x, tuple) else x for k, x in dataclasses.asdict(config).items()}


def _set(obj, name, value) -> None:
    object.__setattr__(obj, name, value)  # normalising inside a frozen dataclass's __post_init__


MANIFOLDS = {"circle": (2, 1), "torus": (4, 2), "sphere": (3, 2)}  # ambient m, intrinsic n


@dataclass(frozen=True)
class DataConfig:
    """The toy data set (paper section 4): ``manifold`` ('circle', 'torus', 'sphere'), data
    dimension ``dim_x`` and hidden width ``hidden`` of the fixed random map, its seed ``map_seed``,
    optional observation noise ``noise_std`` (0: the paper's noise-free task), and the held-out
    test set (``test_size`` points from ``test_seed``)."""

    manifold: str = "circle"
    dim_x: int = 100
    hidden: int = 100
    map_seed: int = 0
    noise_std: float = 0.0
    test_size: int = 10000
    test_seed: int = 2**31 - 1

    def __post_init__(self):
        v.one_of("manifold", self.manifold, MANIFOLDS)
        _set(self, "dim_x", v.positive_int("dim_x", self.dim_x))
        _set(self, "hidden", v.positive_int("hidden", self.hidden))
        _set(self, "map_seed", v.nonneg_int("map_seed", self.map_seed))
        _set(self, "noise_std", v.nonneg_float("noise_std", self.noise_std))
        _set(self, "test_size", v.positive_int("test_size", self.test_size))
        _set(self, "test_seed", v.nonneg_int("test_seed", self.test_seed))


@dataclass(frozen=True)
class TrainConfig:
    """The stacked trainer. ``steps`` Adam steps of ``batch_size`` points per seed at learning
    rate ``lr`` (betas ``adam_betas``, ``adam_eps``; optional per-seed gradient clipping
    ``clip_norm``); encoder and decoder MLPs of ``depth`` hidden layers of ``width`` (ReLU);
    Beta concentrations softplus + ``beta_floor``; Gaussian likelihood with one learned scale per
    seed, log σ starting at ``log_sigma_init``, optional floor ``sigma_floor``; the training ELBO
    logged as a mean over windows of ``log_every`` steps; parameters in ``dtype``."""

    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    width: int = 128
    depth: int = 2
    beta_floor: float = 0.1
    log_sigma_init: float = -3.0
    sigma_floor: float = 0.0
    clip_norm: Optional[float] = None
    adam_betas: Tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    log_every: int = 100
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("steps", "batch_size", "width", "depth", "log_every"):
            _set(self, name, v.positive_int(name, getattr(self, name)))
        for name in ("lr", "beta_floor", "adam_eps"):
            _set(self, name, v.positive_float(name, getattr(self, name)))
        _set(self, "log_sigma_init", v.finite_float("log_sigma_init", self.log_sigma_init))
        _set(self, "sigma_floor", v.nonneg_float("sigma_floor", self.sigma_floor))
        if self.clip_norm is not None:
            _set(self, "clip_norm", v.positive_float("clip_norm", self.clip_norm))
        betas = tuple(self.adam_betas) if isinstance(self.adam_betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            v.fail("adam_betas", "be two numbers in [0, 1)", v.shown(self.adam_betas))
        _set(self, "adam_betas", (float(betas[0]), float(betas[1])))
        _set(self, "dtype", str(v.float_dtype("dtype", self.dtype)).replace("torch.", ""))

    @property
    def torch_dtype(self) -> torch.dtype:
        return v.float_dtype("dtype", self.dtype)


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation: ELBO over every point with ``elbo_samples`` samples each (in batches
    of ``elbo_batch`` points); IWAE with ``iwae_k`` importance samples on the first
    ``iwae_points`` points; at most ``chunk`` (point, sample) pairs per seed per pass."""

    iwae_k: int = 1000
    iwae_points: int = 100
    chunk: int = 256
    elbo_samples: int = 1
    elbo_batch: int = 256

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _set(self, f.name, v.positive_int(f.name, getattr(self, f.name)))


@dataclass(frozen=True)
class WaeConfig:
    """The WAE-MMD embedding learner (paper section 2.2): ``restarts`` runs of ``steps`` Adam steps
    (learning rate ``lr``, cosine decay to lr/20) on batches of ``batch_size`` points of the
    ``manifold``, MMD weight ``lam``, MLPs of ``depth`` hidden layers of ``width`` (SiLU);
    ``seed`` seeds every run."""

    manifold: str = "circle"
    steps: int = 2000
    batch_size: int = 128
    lam: float = 1.0
    width: int = 64
    depth: int = 2
    lr: float = 1e-2
    restarts: int = 3
    seed: int = 0

    def __post_init__(self):
        v.one_of("manifold", self.manifold, MANIFOLDS)
        for name in ("steps", "width", "depth", "restarts"):
            _set(self, name, v.positive_int(name, getattr(self, name)))
        _set(self, "batch_size", v.positive_int("batch_size", self.batch_size))
        if self.batch_size < 2:
            v.fail("batch_size", "be at least 2 (the unbiased MMD needs 2 points)", self.batch_size)
        _set(self, "lam", v.nonneg_float("lam", self.lam))
        _set(self, "lr", v.positive_float("lr", self.lr))
        _set(self, "seed", v.nonneg_int("seed", self.seed))
