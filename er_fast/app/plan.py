"""What a Table 1 run will do, before it does it: the units per protocol (and how many a resume
would skip), the seed chunk, and estimates of time and memory (`er-fast table1 --dry-run`)."""
from __future__ import annotations

import os
import time
from typing import List

import torch

from ..vae import Trainer
from ..vae.embedding import Embedding
from ..vae.specs import get_spec
from .protocol import Protocol
from .rundir import RunDir
from .units import unit_identity


def params_per_seed(p: Protocol, model_id: str) -> int:
    spec, w, D = get_spec(model_id), p.width, 100
    n = spec.n
    enc_out = 2 * n + (2 if spec.group else 0)
    dec_in = {None: n, "proj": 2 * n, "learned": 2}[spec.embed]
    enc = D * w + w + w * w + w + w * enc_out + enc_out
    dec = dec_in * w + w + w * w + w + w * D + D
    return enc + dec + 1


def bytes_per_seed(p: Protocol, model_id: str) -> int:
    """Parameters, gradients and two Adam moments, plus the activations of a training step
    (inputs of each layer and their gradients, about 12 (batch, width) tensors) and of an
    evaluation chunk (256 rows through the decoder); float32 or float64."""
    item = 4 if p.dtype == "float32" else 8
    train_act = 12 * p.batch_size * max(p.width, 100)
    eval_act = 8 * 256 * max(p.width, 100)
    return item * (4 * params_per_seed(p, model_id) + max(train_act, eval_act))


def auto_seed_chunk(p: Protocol, world: int = 1) -> int:
    """Seeds per unit when --seed-chunk is not given. CPU: 50 (measured: per-seed step time is
    lowest around 30-50 stacked seeds at width 64, and 8 models × 2 chunks keep 2 workers busy).
    CUDA: as many seeds of the largest model as fit in a quarter of the free GPU memory, at most
    the seeds of one rank."""
    if p.device == "cpu":
        return min(50, p.seeds)
    free, _ = torch.cuda.mem_get_info()
    per = max(bytes_per_seed(p, m) for m in p.models)
    per_rank = -(-p.seeds // world)
    return max(1, min(per_rank, int(0.25 * free // per)))


def _rate(p: Protocol, model_id: str, S: int) -> float:
    """Measured seed-steps/s of one model: 3 steps at S seeds after one warm-up step."""
    data = p.data()
    emb = Embedding(1, 2, p.wae_width, 2).requires_grad_(False) if get_spec(model_id).embed == "learned" else None
    tr = Trainer(model_id, list(range(S)), data, p.train_config(), embedding=emb, device=p.device, threads=1)
    tr.step()
    if p.device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(3):
        tr.step()
    if p.device == "cuda":
        torch.cuda.synchronize()
    return 3 * S / (time.perf_counter() - t)


def _wae_rate(p: Protocol) -> float:
    """Measured WAE steps/s: 20 steps of one restart."""
    from ..vae import train_embedding

    t = time.perf_counter()
    train_embedding(p.wae_config(), steps=20, restarts=1, device=p.device)
    return 20 / (time.perf_counter() - t)


def describe(protocols: List[Protocol], out: str, workers: int, measure: bool = True) -> str:
    lines = []
    total_s = 0.0
    for p in protocols:
        rd = RunDir(os.path.join(os.path.abspath(out), p.name))
        units = p.units()
        done = 0
        if os.path.isdir(rd.root):
            emb, _ = rd.embedding_sha256(p.wae_sha256()) if p.needs_embedding else (None, "")
            done = sum(rd.read_unit(m, s, unit_identity(p, m, emb))[0] is not None for m, s in units)
        lines.append(f"protocol {p.name}: noise_std={p.noise_std:g}, {p.seeds} seeds × {len(p.models)} models, "
                     f"{p.steps} steps, width {p.width}, seed chunk {p.chunk}; {len(units)} units, {done} already "
                     f"finished in {rd.root}")
        settings = ", ".join(f"{k}={v}" for k, v in p.to_dict().items() if k not in ("models", "name"))
        lines.append(f"  settings: {settings}")
        lines.append(f"  models: {', '.join(p.models)}")
        mem = max(bytes_per_seed(p, m) for m in p.models) * p.chunk
        lines.append(f"  memory: about {mem / 2**20:.0f} MiB per unit of {p.chunk} seeds (parameters, Adam state, "
                     f"activations), per worker process")
        if measure:
            todo = units[done:] if done else units
            S = min(p.chunk, 16)
            rates = {m: _rate(p, m, S) for m in p.models}
            secs = sum(p.steps * len(s) / rates[m] for m, s in todo) / max(1, workers)
            if p.needs_embedding:
                secs += p.wae_steps * p.wae_restarts / _wae_rate(p)
            total_s += secs
            lines.append(f"  time: about {secs / 60:.1f} min of training on {workers} worker(s) "
                         f"(measured {min(rates.values()):.0f}-{max(rates.values()):.0f} seed-steps/s per worker at "
                         f"{S} seeds), plus evaluation")
    if measure:
        lines.append(f"estimated total: {total_s / 60:.1f} min (an estimate from 3 measured steps per model)")
    return "\n".join(lines)
