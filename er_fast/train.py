"""Train S independent seeds of one model in ONE process, as stacked parameters.

Seed s owns three torch.Generators, derived from (seed, stream) by numpy's SeedSequence:
``init`` (CPU: parameter initialisation), ``data`` (its stream of training batches) and ``noise``
(its reparameterisation noise); evaluation uses a fourth, ``eval``. Every op in the step is either
per-slice (baddbmm, elementwise, per-seed reductions) or draws slice s from generator s alone, and the
loss is the SUM over seeds of each seed's mean negative ELBO, so seed s's gradient is exactly its
gradient when trained alone. Adam is elementwise (hence per seed); the optional gradient clipping
is per seed (each seed's own global norm). So seed s trained inside a batch of S ends where seed s
trained alone ends (up to float rounding; tested).

Because the data stream of seed s does not depend on the model, every model trained with seed s
sees the same batches (common random numbers across the rows of the table).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ._util import check_threads, intra_op_threads
from .data import ToyData
from .models import StackedVAE, get_spec
from .wae import load_embedding

STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3}
CHECKPOINT_FORMAT = "er_fast.TrainedModels/1"


def seed_generators(seeds: Sequence[int], stream: str, device="cpu") -> list[torch.Generator]:
    """One torch.Generator per seed for ``stream`` ('init', 'data', 'noise', 'eval'), each seeded from
    SeedSequence([seed, stream id]) so the streams of one seed, and the seeds, are independent."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; one of {sorted(STREAMS)}")
    out = []
    for s in seeds:
        state = np.random.SeedSequence([int(s), STREAMS[stream]]).generate_state(2, np.uint32)
        g = torch.Generator(device=device)
        g.manual_seed((int(state[0]) << 31) ^ int(state[1]))
        out.append(g)
    return out


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)) or not hasattr(seeds, "__len__"):
        raise ValueError(f"seeds must be a list of integers, got {seeds!r}")
    seeds = list(seeds)
    if len(seeds) == 0:
        raise ValueError("seeds must not be empty")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"every seed must be a non-negative integer, got {s!r}")
    if len(set(int(s) for s in seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    return [int(s) for s in seeds]


def _pos_int(name, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _pos_float(name, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


def make_optimizer(params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam on the stacked tensors. Adam is elementwise, hence independent per seed. The fused
    kernel (one call for all tensors) is used where torch has it, else foreach."""
    params = [p for p in params if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, foreach=True)


@torch.no_grad()
def clip_grad_norm_per_seed_(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each seed's gradients (leading dim S) so that seed's global norm is <= max_norm.
    Returns the per-seed norms before clipping, (S,)."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = sum(g.reshape(g.shape[0], -1).double().square().sum(1) for g in grads)
    norm = sq.sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype).view(-1, *([1] * (g.dim() - 1))))
    return norm


@dataclass
class TrainedModels:
    """S trained seeds of one model.

    model: the StackedVAE (parameters with leading dim S). seeds: the S seeds, in slice order.
    curves: {'step': (L,) int64 array, 'elbo': (L, S) float64 array} — the training-batch ELBO
    (nats per point) averaged over each window of ``log_every`` steps ending at 'step'.
    config: every hyper-parameter (plain Python), enough to rebuild the model.
    """

    model: StackedVAE
    seeds: list
    curves: dict
    config: dict
    train_seconds: float = 0.0
    data_config: dict = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.config["model_id"]

    @property
    def S(self) -> int:
        return len(self.seeds)

    def state_dict(self) -> dict:
        """A checkpoint of plain containers and tensors: ``torch.save`` it and reload with
        ``torch.load(path, weights_only=True)`` then ``TrainedModels.load(...)``. The learned
        embedding (if any) is inside the model's state (keys 'embedding.*')."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": dict(self.config),
            "data_config": dict(self.data_config),
            "seeds": list(self.seeds),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "curves": {k: torch.as_tensor(v) for k, v in self.curves.items()},
            "train_seconds": float(self.train_seconds),
        }

    @classmethod
    def load(cls, state: dict, *, device="cpu", dtype: Optional[torch.dtype] = None) -> "TrainedModels":
        """Rebuild from ``state_dict()``'s output."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint")
        cfg, sd = state["config"], state["model"]
        emb = None
        esd = {k[len("embedding."):]: v for k, v in sd.items() if k.startswith("embedding.")}
        if esd:
            emb = load_embedding(esd)
        dtype = dtype or sd["log_sigma"].dtype
        model = StackedVAE(cfg["model_id"], len(state["seeds"]), data_dim=cfg["data_dim"], width=cfg["width"],
                           depth=cfg["depth"], embedding=emb, beta_floor=cfg["beta_floor"],
                           log_sigma_init=cfg["log_sigma_init"], sigma_floor=cfg["sigma_floor"],
                           device=device, dtype=dtype)
        model.load_state_dict(sd)
        curves = {k: v.numpy() for k, v in state["curves"].items()}
        return cls(model, list(state["seeds"]), curves, dict(cfg), float(state.get("train_seconds", 0.0)),
                   dict(state.get("data_config", {})))

    def evaluate(self, x_test: torch.Tensor, **kwargs) -> dict:
        """Shorthand for er_fast.evaluate.evaluate(self, x_test, **kwargs)."""
        from .evaluate import evaluate

        return evaluate(self, x_test, **kwargs)


class Trainer:
    """The stacked training loop, one step at a time (train_seeds wraps it; benchmarks time .step()).

    Takes the arguments of train_seeds except steps/progress; ``run(steps)`` trains, ``result()``
    returns the TrainedModels.
    """

    def __init__(
        self,
        model_id: str,
        seeds: Sequence[int],
        data: ToyData,
        *,
        batch_size: int = 128,
        lr: float = 1e-3,
        width: int = 128,
        depth: int = 2,
        embedding: Optional[nn.Module] = None,
        device="cpu",
        dtype: torch.dtype = torch.float32,
        log_every: int = 100,
        beta_floor: float = 0.1,
        log_sigma_init: float = -3.0,
        sigma_floor: float = 0.0,
        clip_norm: Optional[float] = None,
        adam_betas=(0.9, 0.999),
        adam_eps: float = 1e-8,
        threads: Optional[int] = None,
    ):
        spec = get_spec(model_id)
        seeds = _check_seeds(seeds)
        if not isinstance(data, ToyData):
            raise ValueError(f"data must be an er_fast.data.ToyData, got {type(data).__name__}")
        batch_size = _pos_int("batch_size", batch_size)
        width, depth, log_every = _pos_int("width", width), _pos_int("depth", depth), _pos_int("log_every", log_every)
        lr = _pos_float("lr", lr)
        if clip_norm is not None:
            clip_norm = _pos_float("clip_norm", clip_norm)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.device, self.dtype = torch.device(device), dtype
        self.seeds, self.data, self.batch_size = seeds, data, batch_size
        self.clip_norm, self.log_every = clip_norm, log_every
        self.threads = check_threads(threads)
        S = len(seeds)
        self.model = StackedVAE(spec, S, data_dim=data.dim_x, width=width, depth=depth,
                                init_generators=seed_generators(seeds, "init"), embedding=embedding,
                                beta_floor=beta_floor, log_sigma_init=log_sigma_init, sigma_floor=sigma_floor,
                                device=self.device, dtype=dtype)
        self.data_gens = seed_generators(seeds, "data", data.device)
        self.noise_gens = seed_generators(seeds, "noise", self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = make_optimizer(self.params, lr, adam_betas, adam_eps)
        self.config = self.model.config()
        self.config.update(batch_size=batch_size, lr=lr, log_every=log_every, clip_norm=clip_norm,
                           adam_betas=list(adam_betas), adam_eps=adam_eps, dtype=str(dtype).replace("torch.", ""))
        self.steps_done = 0
        self.train_seconds = 0.0
        self._log_steps: list[int] = []
        self._log_elbo: list[torch.Tensor] = []
        self._acc = torch.zeros(S, dtype=torch.float64, device=self.device)
        self._since = 0

    def step(self) -> torch.Tensor:
        """One Adam step for every seed; returns the per-seed batch ELBO (S,), detached."""
        x = self.data.sample_seeds(self.batch_size, self.data_gens)
        if x.device != self.device or x.dtype != self.dtype:
            x = x.to(self.device, self.dtype)
        rec, kl, _ = self.model.elbo_terms(x, self.noise_gens)
        elbo = (rec - kl).mean(1)  # (S,)
        loss = -elbo.sum()  # seed s's gradient is its own
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_norm is not None:
            clip_grad_norm_per_seed_(self.params, self.clip_norm)
        self.opt.step()
        self.steps_done += 1
        return elbo.detach()

    def run(self, steps: int, progress: Optional[Callable[[int], None]] = None) -> None:
        """``steps`` more steps, logging the window-mean batch ELBO every log_every steps (and at the
        end); ``progress(step)`` after each step; with ``threads`` intra-op threads if set."""
        steps = _pos_int("steps", steps)
        with intra_op_threads(self.threads):
            self._run(steps, progress)

    def _run(self, steps: int, progress) -> None:
        t0 = time.perf_counter()
        end = self.steps_done + steps
        while self.steps_done < end:
            self._acc += self.step()
            self._since += 1
            if self.steps_done % self.log_every == 0 or self.steps_done == end:
                self._log_steps.append(self.steps_done)
                self._log_elbo.append((self._acc / self._since).cpu())
                self._acc.zero_()
                self._since = 0
            if progress is not None:
                progress(self.steps_done)
        self.train_seconds += time.perf_counter() - t0

    def result(self) -> TrainedModels:
        config = dict(self.config, steps=self.steps_done)
        S = len(self.seeds)
        elbo = torch.stack(self._log_elbo).numpy() if self._log_elbo else np.zeros((0, S))
        curves = {"step": np.asarray(self._log_steps, dtype=np.int64), "elbo": elbo}
        return TrainedModels(self.model, list(self.seeds), curves, config, self.train_seconds, self.data.config())


def train_seeds(
    model_id: str,
    seeds: Sequence[int],
    data: ToyData,
    *,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    width: int = 128,
    depth: int = 2,
    embedding: Optional[nn.Module] = None,
    device="cpu",
    dtype: torch.dtype = torch.float32,
    log_every: int = 100,
    progress: Optional[Callable[[int], None]] = None,
    beta_floor: float = 0.1,
    log_sigma_init: float = -3.0,
    sigma_floor: float = 0.0,
    clip_norm: Optional[float] = None,
    adam_betas=(0.9, 0.999),
    adam_eps: float = 1e-8,
    threads: Optional[int] = None,
) -> TrainedModels:
    """Train len(seeds) independent seeds of ``model_id`` on ``data`` as one stacked model.

    Each step: every seed draws its own batch of ``batch_size`` points (its 'data' generator), its
    own latent noise ('noise' generator), and takes one Adam step on its own one-sample negative
    ELBO (mean over its batch). ``width``/``depth``: hidden width and number of hidden layers of
    encoder and decoder. ``embedding``: the frozen learned f for the 'learned' models (shared by
    all seeds). ``progress(step)`` is called after each step (1..steps). ``clip_norm``: optional
    per-seed gradient-norm clipping (off by default). ``threads``: torch intra-op threads while
    training (restored after; None = leave as is; on a shared machine 1 thread per process is
    the robust choice). Returns a TrainedModels (stacked model, per-seed training curves, config).
    """
    _pos_int("steps", steps)
    tr = Trainer(model_id, seeds, data, batch_size=batch_size, lr=lr, width=width, depth=depth, embedding=embedding,
                 device=device, dtype=dtype, log_every=log_every, beta_floor=beta_floor,
                 log_sigma_init=log_sigma_init, sigma_floor=sigma_floor, clip_norm=clip_norm,
                 adam_betas=adam_betas, adam_eps=adam_eps, threads=threads)
    tr.run(steps, progress)
    return tr.result()
