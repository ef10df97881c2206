"""Seed-steps per second: S stacked seeds (er_fast.vae.Trainer) against a loop of plain eager
PyTorch models, one per seed (nn.Linear MLPs, torch.optim.Adam with its defaults, one per seed), the
same model (er-proj-1d: Beta posterior, circle_embed, Gaussian likelihood), the same data, the same
er_fast ops, encoder/decoder width 128 (2 hidden layers), batch 128.

    python -m pytest benchmarks/bench_train.py --benchmark-only -q        # S = 64, ratio per group
    python benchmarks/bench_train.py [--threads N] [--S 100] [--models all] [--widths 128,64]
                                                                         # S = 100 table + FLOP floor

Each benchmark round is STEPS steps of all S seeds, so the two rows of a group do the same work and
their time ratio is the speed-up. The CPU is shared: rerun if the numbers look disturbed.
"""
from __future__ import annotations

import argparse
import math
import os
import warnings

import pytest
import torch
from torch import nn

warnings.filterwarnings("ignore", message="er_fast: compiled extension")
import er_fast  # noqa: E402
from er_fast.util.timing import time_call  # noqa: E402
from er_fast.vae import Embedding, ToyData, Trainer, get_spec, list_models  # noqa: E402
from er_fast.vae.densities import kl_beta_uniform  # noqa: E402

S_BENCH, WIDTH, BATCH, STEPS = 64, 128, 128, 3


class PlainVAE(nn.Module):
    """One seed of er-proj-1d (or vae-gauss-1d) in plain eager PyTorch."""

    def __init__(self, model_id: str, D: int = 100, width: int = 128, depth: int = 2):
        super().__init__()
        self.gauss = get_spec(model_id).latent == "gauss"
        self.proj = get_spec(model_id).embed == "proj"
        dims = [D] + [width] * depth
        enc = []
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.enc = nn.Sequential(*enc, nn.Linear(width, 2))
        dims = [2 if self.proj else 1] + [width] * depth
        dec = []
        for a, b in zip(dims[:-1], dims[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.dec = nn.Sequential(*dec, nn.Linear(width, D))
        self.log_sigma = nn.Parameter(torch.tensor(-3.0))
        self.D = D

    def neg_elbo(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        h = self.enc(x)
        if self.gauss:
            mu, logvar = h[:, :1], h[:, 1:]
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
            kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)
            inp = z
        else:
            a = nn.functional.softplus(h[:, :1]) + 0.1
            b = nn.functional.softplus(h[:, 1:]) + 0.1
            z = er_fast.beta_rsample(a, b, generator=g)
            kl = kl_beta_uniform(a, b).sum(-1)
            inp = er_fast.circle_embed(z).flatten(-2) if self.proj else z
        mean = self.dec(inp)
        ls = self.log_sigma
        rec = -0.5 * (x - mean).square().sum(-1) * torch.exp(-2 * ls) - self.D * ls - 0.5 * self.D * math.log(2 * math.pi)
        return -(rec - kl).mean()


class PlainLoop:
    def __init__(self, model_id: str, seeds, data: ToyData, width: int, batch: int):
        self.data, self.batch = data, batch
        self.models, self.opts = [], []
        for s in seeds:
            torch.manual_seed(s)
            m = PlainVAE(model_id, data.dim_x, width)
            self.models.append(m)
            self.opts.append(torch.optim.Adam(m.parameters(), lr=1e-3))
        # One torch.Generator per seed and purpose, as a per-seed loop would hold them.
        self.data_gens = [torch.Generator().manual_seed(2 * s) for s in seeds]
        self.noise_gens = [torch.Generator().manual_seed(2 * s + 1) for s in seeds]

    def step(self):
        for m, opt, gd, gn in zip(self.models, self.opts, self.data_gens, self.noise_gens):
            x = self.data.sample(self.batch, gd)
            loss = m.neg_elbo(x, gn)
            opt.zero_grad()
            loss.backward()
            opt.step()


def _data():
    return ToyData(test_size=16)


@pytest.mark.parametrize("model_id", ["er-proj-1d", "vae-gauss-1d"])
@pytest.mark.parametrize("impl", ["stacked", "loop"])
def test_train_step(benchmark, impl, model_id):
    benchmark.group = f"train {model_id}: {STEPS} steps x S={S_BENCH}, width {WIDTH}, batch {BATCH}"
    data = _data()
    seeds = list(range(S_BENCH))
    runner = (Trainer(model_id, seeds, data, width=WIDTH, batch_size=BATCH) if impl == "stacked"
              else PlainLoop(model_id, seeds, data, WIDTH, BATCH))

    def run():
        for _ in range(STEPS):
            runner.step()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["seed_steps_per_s"] = S_BENCH * STEPS / benchmark.stats.stats.median


# ------------------------------------------------------------------------------------------------
# stand-alone: the S = 100 table and the FLOP floor
# ------------------------------------------------------------------------------------------------
def flops_per_seed_step(model_id: str, width: int, depth: int = 2, batch: int = 128, D: int = 100) -> int:
    """Matmul FLOPs of one seed-step: forward 2·B·in·out per layer; backward the weight gradient of
    every layer and the input gradient of every layer except the encoder's first (x needs none)."""
    spec = get_spec(model_id)
    enc = [D] + [width] * depth + [2 * spec.n + (2 if spec.group else 0)]
    dec_in = 2 * spec.n if spec.embed == "proj" else (2 if spec.embed == "learned" else spec.n)
    dec = [dec_in] + [width] * depth + [D]
    f = 0
    for sizes in (enc, dec):
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mm = 2 * batch * a * b
            f += mm + mm + (0 if (sizes is enc and i == 0) else mm)
    return f


def machine_gflops(n: int = 2048, min_run_time: float = 0.5) -> float:
    """float32 rate of a big matmul (fastest block); timed in process CPU time with one thread (an
    idle core's rate on a shared machine), in wall time otherwise."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = time_call(lambda: a @ b, min_run_time, cpu_time=torch.get_num_threads() == 1).min
    return 2 * n**3 / t / 1e9


def seed_steps_per_s(model_id: str, S: int, width: int, batch: int = 128, embedding=None, min_run_time: float = 0.5):
    """(wall, cpu) seed-steps per second of Trainer.step at S seeds (median per step). CPU time is
    the process's: with one thread it is what an idle core would take, whatever else shares the
    machine."""
    tr = Trainer(model_id, list(range(S)), _data(), width=width, batch_size=batch, embedding=embedding)
    wall = time_call(tr.step, min_run_time).median
    cpu = time_call(tr.step, min_run_time, cpu_time=True).median
    return S / wall, S / cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--S", type=int, default=100)
    ap.add_argument("--models", default="all")
    ap.add_argument("--widths", default="128,64")
    ap.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timed steps per row, wall and cpu each")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gf = machine_gflops()
    print(f"torch threads {torch.get_num_threads()}; big-matmul rate {gf:.0f} GFLOP/s (float32, 2048^3); "
          f"load average {os.getloadavg()[0]:.1f}")
    ids = [s.id for s in list_models()] if args.models == "all" else args.models.split(",")
    print("| model | width | S | seed-steps/s (wall) | seed-steps/s (cpu time) | matmul MFLOP/seed-step "
          "| matmul floor seed-steps/s | rate / floor (cpu time with 1 thread, else wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for width in [int(w) for w in args.widths.split(",")]:
        for mid in ids:
            emb = Embedding(1, 2, 64, 2).requires_grad_(False) if get_spec(mid).embed == "learned" else None
            wall, cpu = seed_steps_per_s(mid, args.S, width, embedding=emb, min_run_time=args.min_run_time)
            fl = flops_per_seed_step(mid, width)
            floor = gf * 1e9 / fl
            rate = cpu if torch.get_num_threads() == 1 else wall
            print(f"| {mid} | {width} | {args.S} | {wall:.0f} | {cpu:.0f} | {fl / 1e6:.1f} | {floor:.0f} "
                  f"| {100 * rate / floor:.0f}% |", flush=True)


if __name__ == "__main__":
    main()
