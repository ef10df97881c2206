"""Bytes-per-element floor of the circle_embed / so2_rotate kernels vs the measured copy_ bandwidth.

Run: python benchmarks/floor_circle.py [threads] [--n N]
Times each compiled op (the forward op and the backward op directly, 10^6 elements; fastest block
of er_fast.util.timing.time_call) and a 16 MiB / 64 MiB torch copy_; prints GB/s and the floor time
at the 16 MiB copy bandwidth (the working set of the 10^6-element ops is 16-64 MB).
"""
import argparse

import torch

import er_fast
from er_fast.util.timing import time_call

# Bytes read + written per element, in units of the element size: forward reads z, θ and writes
# the 2-vector; backward reads grad (2) and out (2) and writes grad_z, grad_θ (so2: also reads θ).
ELEMS = dict(circ_fwd=4, circ_bwd=6, so2_fwd=5, so2_bwd=8)


def floor(dt, N: int, min_run_time: float) -> None:
    es = torch.finfo(dt).bits // 8
    z, th, g = torch.rand(N, 1, dtype=dt), torch.randn(N, 1, dtype=dt), torch.randn(N, 1, 2, dtype=dt)
    o = er_fast.circle_embed(z, th)
    p, t1, g2 = torch.randn(N, 2, dtype=dt), torch.randn(N, dtype=dt), torch.randn(N, 2, dtype=dt)
    o2 = er_fast.so2_rotate(p, t1)
    s16 = torch.randn((16 << 20) // es, dtype=dt)
    s64 = torch.randn((64 << 20) // es, dtype=dt)
    d16, d64 = torch.empty_like(s16), torch.empty_like(s64)
    fns = dict(circ_fwd=lambda: er_fast.circle_embed(z, th),
               circ_bwd=lambda: torch.ops.er_fast.circle_embed_backward(g, o, True, True),
               so2_fwd=lambda: er_fast.so2_rotate(p, t1),
               so2_bwd=lambda: torch.ops.er_fast.so2_rotate_backward(g2, o2, t1, True, True),
               copy16=lambda: d16.copy_(s16), copy64=lambda: d64.copy_(s64))
    b = {k: time_call(f, min_run_time).min for k, f in fns.items()}
    bw16, bw64 = 2 * 16 * 2**20 / b["copy16"] / 1e9, 2 * 64 * 2**20 / b["copy64"] / 1e9
    print(f"{dt} copy bandwidth GB/s: 16MiB {bw16:.1f}, 64MiB {bw64:.1f}")
    for k, e in ELEMS.items():
        gbs = e * es * N / b[k] / 1e9
        print(f"  {k} {b[k] * 1e3:.3f} ms, {e * es} B/elem -> {gbs:.1f} GB/s = {100 * gbs / bw16:.0f}% of "
              f"16MiB-copy bw, floor {e * es * N / bw16 / 1e6:.3f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("threads", type=int, nargs="?", default=torch.get_num_threads())
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--min-run-time", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.n} elements, {torch.get_num_threads()} threads")
    for dt in (torch.float32, torch.float64):
        floor(dt, args.n, args.min_run_time)


if __name__ == "__main__":
    main()
