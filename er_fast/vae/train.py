"""Train S independent seeds of one model in ONE process, as stacked parameters.

Seed s owns counter-based random streams (er_fast.vae.seeds: ``init``, ``data``, ``noise``; ``eval``
for evaluation), each draw ONE op for all seeds. Every op in the step is per slice (baddbmm,
elementwise, per-seed reductions) or such a draw, and the loss is the SUM over seeds of each
seed's mean negative ELBO, so seed s's gradient is exactly its gradient when trained alone. Adam
is elementwise (hence per seed); the optional gradient clipping is per seed. So seed s trained
inside a batch of S ends where seed s trained alone ends — bitwise on the CPU with one thread
(tested for every model); other thread counts and GPUs may round differently.

A step dispatches the same ops for 1 seed or 10,000 (tested by counting them), never reads a
device value on the host, and so never waits for the GPU; the logged ELBO accumulates on the
device and is read every ``log_every`` steps.
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
from .optim import StackedAdam
from .seeds import Streams
from .specs import get_spec
from .trained import TrainedModels


def make_optimizer(params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """Adam on the stacked tensors: StackedAdam, one er_fast.adam_ call per step for all tensors,
    whose update of an element never depends on where it sits (torch's fused CPU Adam rounds
    a tensor's last elements differently, so seed s's bits would depend on S). ``capturable`` is
    accepted for compatibility and changes nothing: the step count always lives on the device."""
    del capturable
    return StackedAdam([p for p in params if p.requires_grad], lr=lr, betas=betas, eps=eps)


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
    cuda_graph=False, **fields)``: ``config`` a TrainConfig (keyword overrides of its fields
    allowed); ``data`` a ToyData on ``device``; ``embedding`` the frozen learned f of the 'learned'
    models (shared by all seeds); ``threads`` torch's intra-op threads while running (restored
    after; None leaves them); ``cuda_graph`` captures the step in a CUDA graph after 3 warm-up steps
    (CUDA only; not yet measured on a GPU, hence off by default). ``step()`` takes one Adam step of
    every seed, ``run(steps)`` several with logging, ``result()`` returns the TrainedModels;
    ``state_dict()`` / ``load_state_dict()`` checkpoint the whole loop (model, optimiser, random
    streams, log), so a resumed loop continues with the same numbers.
    """

    def __init__(self, model_id: str, seeds: Sequence[int], data: ToyData, config: Optional[TrainConfig] = None, *,
                 embedding: Optional[nn.Module] = None, device="cpu", threads: Optional[int] = None,
                 cuda_graph: bool = False, **fields):
        spec = get_spec(model_id)
        seeds = seed_list("seeds", seeds)
        if not isinstance(data, ToyData):
            fail("data", "be an er_fast.ToyData", type(data).__name__)
        cfg = with_overrides(TrainConfig, config, fields)
        self.config, self.device, self.dtype = cfg, torch.device(device), cfg.torch_dtype
        if data.device.type != self.device.type:
            fail("data", f"live on the training device ({self.device})", data.device)
        if cuda_graph and self.device.type != "cuda":
            fail("cuda_graph", "be used with device='cuda' only", self.device)
        self.seeds, self.data = seeds, data
        self.threads = check_threads(threads)
        S = len(seeds)
        self.streams = Streams(seeds, self.device)
        self.model = StackedVAE(spec, S, cfg, data_dim=data.dim_x, streams=self.streams, embedding=embedding,
                                device=self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = make_optimizer(self.params, cfg.lr, cfg.adam_betas, cfg.adam_eps, capturable=cuda_graph)
        self.steps_done = 0
        self.train_seconds = 0.0
        self._log_steps: list[int] = []
        self._log_elbo: list[torch.Tensor] = []
        self._acc = torch.zeros(S, dtype=torch.float64, device=self.device)
        self._since = 0
        self._graph = _GraphedStep(self._step) if cuda_graph else None

    def _step(self) -> torch.Tensor:
        x = self.data.sample_seeds(self.config.batch_size, self.streams)
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        rec, kl, _ = self.model.elbo_terms(x, self.streams)
        elbo = (rec - kl).mean(1)  # (S,)
        loss = -elbo.sum()  # seed s's gradient is its own
        self.opt.zero_grad(set_to_none=self._graph is None)
        loss.backward()
        if self.config.clip_norm is not None:
            clip_grad_norm_per_seed_(self.params, self.config.clip_norm)
        self.opt.step()
        self._acc += elbo.detach()
        return elbo.detach()

    def step(self) -> torch.Tensor:
        """One Adam step for every seed; returns the per-seed batch ELBO (S,), detached (on the
        device: reading it is the caller's sync, not the step's)."""
        elbo = self._graph() if self._graph is not None else self._step()
        self.steps_done += 1
        self._since += 1
        return elbo

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
            self.step()
            if self.steps_done % log_every == 0 or self.steps_done == end:
                self._log_steps.append(self.steps_done)
                self._log_elbo.append((self._acc / self._since).cpu())  # the one read, every log_every
                self._acc.zero_()
                self._since = 0
            if progress is not None:
                progress(self.steps_done)
        self.train_seconds += time.perf_counter() - t0

    def state_dict(self) -> dict:
        """The whole loop: parameters, optimiser state, the streams' counters, the log so far."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "streams": self.streams.state_dict(),
            "steps_done": self.steps_done,
            "log_steps": list(self._log_steps),
            "log_elbo": [t.clone() for t in self._log_elbo],
            "acc": self._acc.cpu(),
            "since": self._since,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.streams.load_state_dict(state["streams"])
        self.steps_done, self._since = int(state["steps_done"]), int(state["since"])
        self._log_steps, self._log_elbo = list(state["log_steps"]), list(state["log_elbo"])
        self._acc.copy_(state["acc"])

    def result(self) -> TrainedModels:
        S = len(self.seeds)
        elbo = torch.stack(self._log_elbo).numpy() if self._log_elbo else np.zeros((0, S))
        curves = {"step": np.asarray(self._log_steps, dtype=np.int64), "elbo": elbo}
        config = with_overrides(TrainConfig, self.config, {"steps": max(self.steps_done, 1)})
        return TrainedModels(self.model, list(self.seeds), config, curves, self.data.config, self.train_seconds,
                             self.streams.state_dict())


class _GraphedStep:
    """A training step replayed from a CUDA graph: 3 eager warm-up steps on a side stream, then one
    capture; every later call is one graph launch. The random streams' counters and Adam's step
    count live on the device and advance inside the graph, so replays draw new numbers."""

    def __init__(self, fn):
        self.fn, self.calls, self.graph, self.out = fn, 0, None, None

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        if self.calls <= 3:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn()
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self.fn()
            return self.out  # capturing also ran the step once
        self.graph.replay()
        return self.out


def train_seeds(model_id: str, seeds: Sequence[int], data: ToyData, config: Optional[TrainConfig] = None, *,
                embedding: Optional[nn.Module] = None, device="cpu", progress: Optional[Callable[[int], None]] = None,
                threads: Optional[int] = None, cuda_graph: bool = False, **fields) -> TrainedModels:
    """Train len(seeds) independent seeds of ``model_id`` on ``data`` as one stacked model, for
    ``config.steps`` steps (arguments as Trainer's; ``progress(step)`` after each step).

    Each step: every seed draws its own batch of ``batch_size`` points (its 'data' stream), its
    own latent noise ('noise' stream), and takes one Adam step on its own one-sample negative
    ELBO (mean over its batch). Returns a TrainedModels (stacked model, per-seed training curves,
    config).
    """
    tr = Trainer(model_id, seeds, data, config, embedding=embedding, device=device, threads=threads,
                 cuda_graph=cuda_graph, **fields)
    tr.run(progress=progress)
    return tr.result()
