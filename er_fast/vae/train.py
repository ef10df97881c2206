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

import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..util.threads import check_threads, intra_op_threads
from ..util.validation import fail, positive_int, seed_list
from .config import TrainConfig, with_overrides
from .data import ToyData
from .model import StackedVAE
from .seeds import seed_generators
from .specs import get_spec
from .trained import TrainedModels


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


class Trainer:
    """The stacked training loop, one step at a time (train_seeds wraps it; benchmarks time .step()).

    ``Trainer(model_id, seeds, data, config=None, *, embedding=None, device="cpu", threads=None,
    **fields)``: ``config`` a TrainConfig (keyword overrides of its fields allowed); ``embedding``
    the frozen learned f of the 'learned' models (shared by all seeds); ``threads`` torch's
    intra-op threads while running (restored after; None leaves them). ``step()`` takes one Adam
    step of every seed, ``run(steps)`` several with logging, ``result()`` returns the
    TrainedModels.
    """

    def __init__(self, model_id: str, seeds: Sequence[int], data: ToyData, config: Optional[TrainConfig] = None, *,
                 embedding: Optional[nn.Module] = None, device="cpu", threads: Optional[int] = None, **fields):
        spec = get_spec(model_id)
        seeds = seed_list("seeds", seeds)
        if not isinstance(data, ToyData):
            fail("data", "be an er_fast.ToyData", type(data).__name__)
        cfg = with_overrides(TrainConfig, config, fields)
        self.config, self.device, self.dtype = cfg, torch.device(device), cfg.torch_dtype
        self.seeds, self.data = seeds, data
        self.threads = check_threads(threads)
        S = len(seeds)
        self.model = StackedVAE(spec, S, cfg, data_dim=data.dim_x, init_generators=seed_generators(seeds, "init"),
                                embedding=embedding, device=self.device)
        self.data_gens = seed_generators(seeds, "data", data.device)
        self.noise_gens = seed_generators(seeds, "noise", self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = make_optimizer(self.params, cfg.lr, cfg.adam_betas, cfg.adam_eps)
        self.steps_done = 0
        self.train_seconds = 0.0
        self._log_steps: list[int] = []
        self._log_elbo: list[torch.Tensor] = []
        self._acc = torch.zeros(S, dtype=torch.float64, device=self.device)
        self._since = 0

    def step(self) -> torch.Tensor:
        """One Adam step for every seed; returns the per-seed batch ELBO (S,), detached."""
        x = self.data.sample_seeds(self.config.batch_size, self.data_gens)
        if x.device != self.device or x.dtype != self.dtype:
            x = x.to(self.device, self.dtype)
        rec, kl, _ = self.model.elbo_terms(x, self.noise_gens)
        elbo = (rec - kl).mean(1)  # (S,)
        loss = -elbo.sum()  # seed s's gradient is its own
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip_norm is not None:
            clip_grad_norm_per_seed_(self.params, self.config.clip_norm)
        self.opt.step()
        self.steps_done += 1
        return elbo.detach()

    def run(self, steps: Optional[int] = None, progress: Optional[Callable[[int], None]] = None) -> None:
        """``steps`` more steps (default: config.steps), logging the window-mean batch ELBO every
        log_every steps (and at the end); ``progress(step)`` after each step."""
        steps = self.config.steps if steps is None else positive_int("steps", steps)
        with intra_op_threads(self.threads):
            self._run(steps, progress)

    def _run(self, steps: int, progress) -> None:
        t0 = time.perf_counter()
        end = self.steps_done + steps
        log_every = self.config.log_every
        while self.steps_done < end:
            self._acc += self.step()
            self._since += 1
            if self.steps_done % log_every == 0 or self.steps_done == end:
                self._log_steps.append(self.steps_done)
                self._log_elbo.append((self._acc / self._since).cpu())
                self._acc.zero_()
                self._since = 0
            if progress is not None:
                progress(self.steps_done)
        self.train_seconds += time.perf_counter() - t0

    def result(self) -> TrainedModels:
        S = len(self.seeds)
        elbo = torch.stack(self._log_elbo).numpy() if self._log_elbo else np.zeros((0, S))
        curves = {"step": np.asarray(self._log_steps, dtype=np.int64), "elbo": elbo}
        config = with_overrides(TrainConfig, self.config, {"steps": max(self.steps_done, 1)})
        return TrainedModels(self.model, list(self.seeds), config, curves, self.data.config, self.train_seconds)


def train_seeds(model_id: str, seeds: Sequence[int], data: ToyData, config: Optional[TrainConfig] = None, *,
                embedding: Optional[nn.Module] = None, device="cpu", progress: Optional[Callable[[int], None]] = None,
                threads: Optional[int] = None, **fields) -> TrainedModels:
    """Train len(seeds) independent seeds of ``model_id`` on ``data`` as one stacked model, for
    ``config.steps`` steps (arguments as Trainer's; ``progress(step)`` after each step).

    Each step: every seed draws its own batch of ``batch_size`` points (its 'data' stream), its
    own latent noise ('noise' stream), and takes one Adam step on its own one-sample negative
    ELBO (mean over its batch). Returns a TrainedModels (stacked model, per-seed training curves,
    config).
    """
    tr = Trainer(model_id, seeds, data, config, embedding=embedding, device=device, threads=threads, **fields)
    tr.run(progress=progress)
    return tr.result()
