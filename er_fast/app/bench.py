"""`er-fast bench`: kernel throughput, er_fast vs plain PyTorch (vs KeOps for MMD), and an MMD scaling plot.

Timings by torch.utils.benchmark (median of adaptive repeats, CUDA synchronised); every row's
baseline runs in the same invocation, and the table reports ratios beside the times.
"""
from __future__ import annotations

import math
import os
import sys

import torch

from .. import ops
from ..util.timing import time_call
from . import baselines, plots
from .files import atomic_write_json, atomic_write_text
from .rundir import RunDir


def _time(fn, min_run_time: float) -> float:
    return time_call(fn, min_run_time).median


def _grad(fn, inputs):
    def run():
        out = fn(*inputs)
        return torch.autograd.grad(out.sum(), [t for t in inputs if t.requires_grad])

    return run


def _cases(device: str, quick: bool):
    dt = torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    B, n, d = (4, 512, 8) if quick else (16, 1024, 8)
    x = torch.randn(B, n, d, device=device, dtype=dt, generator=g).requires_grad_()
    y = torch.rand(B, n, d, device=device, dtype=dt, generator=g)
    mmd = {"er_fast": _grad(ops.mmd_imq, (x, y)), "plain PyTorch (cdist)": _grad(baselines.mmd_plain, (x, y))}
    keops = baselines.make_keops_mmd()
    if keops is not None:
        mmd["KeOps"] = _grad(keops, (x, y))
    N = 10**5 if quick else 10**6
    a = (torch.rand(N, device=device, dtype=dt, generator=g) * 4.9 + 0.1).requires_grad_()
    b = (torch.rand(N, device=device, dtype=dt, generator=g) * 4.9 + 0.1).requires_grad_()
    beta = {"er_fast": _grad(ops.beta_rsample, (a, b)), "torch.distributions.Beta": _grad(baselines.beta_rsample_torch, (a, b))}
    z = torch.rand(N, 1, device=device, dtype=dt, generator=g).requires_grad_()
    th = (torch.rand(N, 1, device=device, dtype=dt, generator=g) * 2 * math.pi).requires_grad_()
    circle = {"er_fast": _grad(ops.circle_embed, (z, th)), "eager cos/sin + rotation": _grad(baselines.circle_rotate_eager, (z, th))}
    return {
        f"mmd_imq fwd+bwd, B={B} n=m={n} d={d}": (mmd, B * (n * (n - 1) + n * n), "pairs"),
        f"beta_rsample fwd+bwd, {N} elements": (beta, N, "samples"),
        f"circle_embed(z, θ) fwd+bwd, {N} elements": (circle, N, "points"),
    }


def run(args) -> int:
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("er-fast bench: error: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    # Before any timing: a bad --out fails in a second (UsageError, exit 2), not after the benchmark.
    RunDir(args.out).create(units=False)
    min_t = 0.2 if args.quick else 1.0
    lines = [f"# er_fast kernel benchmark ({device}, torch {torch.__version__}, {torch.get_num_threads()} threads)", "",
             "| op | implementation | median time | throughput | er_fast speed-up |", "|---|---|---|---|---|"]
    table = {}
    for title, (impls, work, unit) in _cases(device, args.quick).items():
        times = {}
        for name, fn in impls.items():
            times[name] = _time(fn, min_t)
            print(f"{title:45s} {name:28s} {times[name] * 1e3:9.2f} ms", flush=True)
        for name, t in times.items():
            # the speed-up of er_fast over each baseline; er_fast's own row has none
            ratio = "—" if name == "er_fast" else f"{t / times['er_fast']:.1f}×"
            lines.append(f"| {title} | {name} | {t * 1e3:.2f} ms | {work / t:.3g} {unit}/s | {ratio} |")
        table[title] = times
    # scaling of mmd_imq with n (B = 1): er_fast against the plain version while it fits
    ns = [256, 1024, 4096] if args.quick else [256, 1024, 4096, 16384]
    scaling = {"er_fast": [], "plain PyTorch (cdist)": []}
    for n in ns:
        x = torch.randn(1, n, 8, device=device).requires_grad_()
        y = torch.rand(1, n, 8, device=device)
        scaling["er_fast"].append(_time(_grad(ops.mmd_imq, (x, y)), min_t))
        scaling["plain PyTorch (cdist)"].append(_time(_grad(baselines.mmd_plain, (x, y)), min_t) if n <= 4096 else float("nan"))
    plots.bench_scaling(ns, scaling, os.path.join(args.out, "mmd_scaling.png"))
    lines += ["", "mmd_imq fwd+bwd time (s) by n, B = 1, d = 8:", "", "| n | " + " | ".join(scaling) + " |",
              "|---|" + "---|" * len(scaling)]
    for i, n in enumerate(ns):
        lines.append(f"| {n} | " + " | ".join(f"{scaling[k][i]:.4g}" for k in scaling) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(args.out, "bench.md"), text)
    atomic_write_json(os.path.join(args.out, "bench.json"), {"device": device, "table": table, "scaling": {"n": ns, **scaling}})
    print(text)
    return 0
