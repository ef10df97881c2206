"""The Table 1 protocol: every setting that defines the numbers of `er-fast table1`, validated
once, before anything is written.

Two named protocols (docs/table1.md): ``paper`` — the paper's noise-free data — and ``noisy`` —
the same task with observation noise σ0, so that the likelihood is bounded and the true
log-likelihood is a known ceiling. A run directory pins its Protocol (protocol.json); resuming
with other settings is refused, except that ``seeds`` and ``models`` may grow (extending a run).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..util import validation as v
from ..vae import DataConfig, EvalConfig, ToyData, TrainConfig, WaeConfig
from ..vae.specs import REGISTRY, get_spec
from .files import canonical_json, sha256_bytes

# The noise of the `noisy` protocol (docs/table1.md explains the choice).
NOISY_SIGMA = 0.03
NAMED = {"paper": 0.0, "noisy": NOISY_SIGMA}
# What --quick changes: every model and both protocols, 10 seeds, short training, small evaluation.
QUICK = dict(seeds=10, steps=1000, iwae_k=500, eval_points=32, wae_steps=600, chunk=5)
# Seeds per protocol when --seeds is not given: 50 on CPU (both protocols in 8.5-12 minutes on 2
# cores, measured), 1000 on a GPU.
DEFAULT_SEEDS = {"cpu": 50, "cuda": 1000}
# Settings that may change between invocations on one directory (the run grows).
EXTENDABLE = ("seeds", "models")
# Settings that steer how the work is split, not its numbers (pinned, but not in the units' hash).
LAYOUT = ("chunk",)
MAX_SEED = 2**63 - 1


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Protocol:
    name: str = "paper"
    seeds: int = 100
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    width: int = 64
    iwae_k: int = 1000
    eval_points: int = 100
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

    def __post_init__(self):
        set_ = lambda k, x: object.__setattr__(self, k, x)  # noqa: E731 - normalising a frozen dataclass
        bounded = dict(seeds=10**7, steps=10**9, batch_size=10**6, width=16384, iwae_k=10**7, eval_points=10**7,
                       wae_steps=10**9, wae_batch=10**6, wae_width=16384, wae_restarts=1000, chunk=10**7)
        for k, hi in bounded.items():
            x = v.positive_int(flag(k), getattr(self, k))
            if x > hi:
                v.fail(flag(k), f"be at most {hi}", x)
            set_(k, x)
        if self.wae_batch < 2:
            v.fail("--wae-batch", "be at least 2 (the unbiased MMD needs 2 points)", self.wae_batch)
        for k in ("map_seed", "test_seed", "wae_seed"):
            x = v.nonneg_int(flag(k), getattr(self, k))
            if x > MAX_SEED:
                v.fail(flag(k), "be at most 2^63 - 1", x)
            set_(k, x)
        set_("lr", v.positive_float("--lr", self.lr))
        set_("noise_std", v.nonneg_float("--noise-std", self.noise_std))
        set_("wae_lambda", v.nonneg_float("--wae-lambda", self.wae_lambda))
        v.one_of("--dtype", self.dtype, ("float32", "float64"))
        v.one_of("--device", self.device, ("cpu", "cuda"))
        if not isinstance(self.name, str) or not self.name.isidentifier():
            v.fail("protocol name", "be an identifier", v.shown(self.name))
        models = tuple(self.models)
        if not models:
            v.fail("--models", "name at least one model id", "''")
        for m in models:
            v.one_of("every id in --models", m, REGISTRY)
        if len(set(models)) != len(models):
            v.fail("--models", "list each id once", ",".join(models))
        set_("models", models)

    # -- (de)serialisation and identity ---------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["models"] = list(self.models)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        return cls(**{**d, "models": tuple(d["models"])})

    def settings_sha256(self) -> str:
        """The hash every unit of this protocol carries: all settings that define a unit's numbers
        (not the seed count, the model list or the split into units)."""
        d = {k: x for k, x in self.to_dict().items() if k not in EXTENDABLE + LAYOUT + ("name",)}
        return sha256_bytes(canonical_json(d).encode())

    def wae_sha256(self) -> str:
        return sha256_bytes(canonical_json({"wae": dataclasses.asdict(self.wae_config()), "dtype": self.dtype,
                                            "device": self.device}).encode())

    # -- what the science layer gets ---------------------------------------------------------------
    def data_config(self) -> DataConfig:
        return DataConfig(map_seed=self.map_seed, noise_std=self.noise_std, test_size=self.eval_points,
                          test_seed=self.test_seed)

    def data(self) -> ToyData:
        """The protocol's data set exactly as the units train and evaluate on it. Its device and
        dtype are part of its identity: they decide how the generator's draws become the test
        points, so the ceiling and the plots must take their points from here too."""
        return ToyData(self.data_config(), device=self.device, dtype=self.train_config().torch_dtype)

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, width=self.width,
                           log_every=max(1, self.steps // 50), dtype=self.dtype)

    def eval_config(self) -> EvalConfig:
        return EvalConfig(iwae_k=self.iwae_k, iwae_points=self.eval_points)

    def wae_config(self) -> WaeConfig:
        return WaeConfig(steps=self.wae_steps, batch_size=self.wae_batch, lam=self.wae_lambda, width=self.wae_width,
                         restarts=self.wae_restarts, seed=self.wae_seed)

    # -- the work ------------------------------------------------------------------------------------
    @property
    def needs_embedding(self) -> bool:
        return any(get_spec(m).embed == "learned" for m in self.models)

    def units(self) -> List[Tuple[str, List[int]]]:
        """(model, seeds) work units: every model × consecutive chunks of ``chunk`` seeds. Chunk k
        always holds seeds [k·chunk, (k+1)·chunk), so a run extended with more seeds keeps its units."""
        out = []
        for m in self.models:
            for a in range(0, self.seeds, self.chunk):
                out.append((m, list(range(a, min(a + self.chunk, self.seeds)))))
        return out


def build_protocols(names: List[str], quick: bool = False, **settings) -> List[Protocol]:
    """One Protocol per name in ``names`` ('paper', 'noisy'): the defaults, --quick's changes, then
    ``settings`` (None = default). ``noise_std`` may be given only for a single protocol."""
    if not names:
        v.fail("--protocols", "name at least one of " + ", ".join(NAMED), "''")
    for n in names:
        v.one_of("every name in --protocols", n, NAMED)
    if len(set(names)) != len(names):
        v.fail("--protocols", "list each name once", ",".join(names))
    if settings.get("noise_std") is not None and len(names) > 1:
        v.fail("--noise-std", "be used with a single protocol (it replaces that protocol's noise)",
               ",".join(names))
    base: Dict[str, object] = dict(QUICK) if quick else {}
    base.update({k: x for k, x in settings.items() if x is not None})
    base.setdefault("seeds", DEFAULT_SEEDS.get(base.get("device", "cpu"), 50))
    out = []
    for n in names:
        cfg = dict(base)
        cfg.setdefault("noise_std", NAMED[n])
        out.append(Protocol(name=n, **cfg))
    return out


def parse_list(s: Optional[str]) -> Optional[Tuple[str, ...]]:
    """"a,b" -> ("a", "b") (blanks dropped: "" gives ()); None stays None (the default)."""
    return None if s is None else tuple(m.strip() for m in s.split(",") if m.strip())
