"""The Table 1 protocol: every setting that defines the results of `er-fast table1`, validated once.

A run directory pins its Protocol (protocol.json); resuming with another one is refused. Where
the paper is silent the defaults are our choices (docs/table1.md explains each).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..util import validation as v
from ..vae import DataConfig, EvalConfig, TrainConfig, WaeConfig
from ..vae.specs import REGISTRY, get_spec

# What --quick changes: every model, 3 seeds, short training, a small evaluation.
QUICK = dict(seeds=3, steps=1000, iwae_k=1000, iwae_points=32, test_points=256, wae_steps=600, chunk=3)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Protocol:
    seeds: int = 100
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    width: int = 64
    iwae_k: int = 1000
    iwae_points: int = 100
    test_points: int = 1000
    noise_std: float = 0.0
    map_seed: int = 0
    test_seed: int = 12345
    wae_steps: int = 2000
    wae_lambda: float = 1.0
    wae_batch: int = 128
    wae_width: int = 64
    wae_restarts: int = 3
    wae_seed: int = 0
    chunk: int = 50
    dtype: str = "float32"
    models: Tuple[str, ...] = tuple(REGISTRY)
    device: str = "cpu"
    quick: bool = False

    def __post_init__(self):
        set_ = lambda k, x: object.__setattr__(self, k, x)  # noqa: E731 - normalising a frozen dataclass
        for k in ("seeds", "steps", "batch_size", "width", "iwae_k", "iwae_points", "test_points", "wae_steps",
                  "wae_batch", "wae_width", "wae_restarts", "chunk"):
            set_(k, v.positive_int(flag(k), getattr(self, k)))
        for k in ("map_seed", "test_seed", "wae_seed"):
            set_(k, v.nonneg_int(flag(k), getattr(self, k)))
        set_("lr", v.positive_float("--lr", self.lr))
        set_("noise_std", v.nonneg_float("--noise-std", self.noise_std))
        set_("wae_lambda", v.nonneg_float("--wae-lambda", self.wae_lambda))
        v.one_of("--dtype", self.dtype, ("float32", "float64"))
        v.one_of("--device", self.device, ("cpu", "cuda"))
        if self.iwae_points > self.test_points:
            v.fail("--iwae-points", f"be at most --test-points ({self.test_points})", self.iwae_points)
        models = tuple(self.models)
        if not models:
            v.fail("--models", "name at least one model id", "''")
        for m in models:
            v.one_of("every id in --models", m, REGISTRY)
        if len(set(models)) != len(models):
            v.fail("--models", "list each id once", ",".join(models))
        set_("models", models)

    @classmethod
    def build(cls, quick: bool = False, **settings) -> "Protocol":
        """The defaults (with --quick's changes when ``quick``), then ``settings`` (None = default)."""
        base = dict(QUICK) if quick else {}
        base.update({k: x for k, x in settings.items() if x is not None})
        return cls(quick=quick, **base)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["models"] = list(self.models)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        return cls(**{**d, "models": tuple(d["models"])})

    # -- what the science layer gets ---------------------------------------------------------------
    def data_config(self) -> DataConfig:
        return DataConfig(map_seed=self.map_seed, noise_std=self.noise_std, test_size=self.test_points,
                          test_seed=self.test_seed)

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, width=self.width,
                           log_every=max(1, self.steps // 50), dtype=self.dtype)

    def eval_config(self) -> EvalConfig:
        return EvalConfig(iwae_k=self.iwae_k, iwae_points=self.iwae_points)

    def wae_config(self) -> WaeConfig:
        return WaeConfig(steps=self.wae_steps, batch_size=self.wae_batch, lam=self.wae_lambda, width=self.wae_width,
                         restarts=self.wae_restarts, seed=self.wae_seed)

    # -- the work -----------------------------------------------------------------------------------
    @property
    def needs_embedding(self) -> bool:
        return any(get_spec(m).embed == "learned" for m in self.models)

    def units(self) -> List[Tuple[str, List[int]]]:
        """(model, seeds) work units: every model × consecutive chunks of ``chunk`` seeds."""
        seeds = list(range(self.seeds))
        return [(m, seeds[a:a + self.chunk]) for m in self.models for a in range(0, len(seeds), self.chunk)]


def parse_models(s: Optional[str]) -> Optional[Tuple[str, ...]]:
    """--models "a,b" -> ("a", "b"); None stays None (the default: every model)."""
    return None if s is None else tuple(m.strip() for m in s.split(",") if m.strip())
