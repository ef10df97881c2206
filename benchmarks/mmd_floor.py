"""Floor of mmd_imq on this CPU: pair evaluations per second on ONE thread (CPU time, so other
processes on the machine do not distort it) against the vector-port bound.

Run: python benchmarks/mmd_floor.py [zmm_fma_per_ns] [--n N]
zmm_fma_per_ns: 512-bit FP operations per ns per core on this machine (measured with
benchmarks/mmd_ports.c: 8 independent FMA chains; default 5.24 = 2 ports x 2.62 GHz).

Pair evaluations with symmetry: n(n-1)/2 + m(m-1)/2 + n*m per batch element. Vector lane-ops
per pair (float32 rational path, d = 8, S <= 8 scales; one lane-op = one 512-bit op / 16):
  distance 2d; kernel t + Q(8) + P(7) + 1/Q + K = 18, with G: + R(14) + 3 = 35;
  kernel sum 1; own-row gradient 2d (difference, FMA); other side's gradient 2d (+ a store).
  xx (both sides' gradients) 16+35+1+16+16 = 84, xy (x gradient only) 68, yy (no gradient) 35.
"""
import argparse

import torch

import er_fast  # noqa: F401 (registers the ops)
from er_fast.app.baselines import SCALES
from er_fast.util.timing import time_call

S7 = list(SCALES)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zmm_fma_per_ns", type=float, nargs="?", default=5.24)
    ap.add_argument("--n", type=int, default=1024, help="points per sample (n = m; default 1024)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    zmm_per_ns = args.zmm_fma_per_ns
    B, n, d = 16, args.n, 8
    pairs = B * (n * (n - 1) / 2 * 2 + n * n)
    ops = {"fwd+bwd(x)": (0.25 * 84 + 0.25 * 35 + 0.5 * 68), "fwd": (16 + 18 + 1)}
    print(f"B={B} n=m={n} d={d}, 7 scales, one thread; {pairs / 1e6:.1f} M pair evaluations")
    print("| case | dtype | CPU time | pairs/s (1 core) | lane-ops/pair | port bound (1 core) | achieved |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dtype, lanes in ((torch.float32, 16), (torch.float64, 8)):
        x = torch.randn(B, n, d, dtype=dtype)
        y = torch.rand(B, n, d, dtype=dtype)
        for case, gx in (("fwd+bwd(x)", True), ("fwd", False)):
            def op(x=x, y=y, gx=gx):
                return torch.ops.er_fast.mmd_imq(x, y, 2.0 * d, S7, True, gx, False)

            t = time_call(op, 1.0, cpu_time=True).min  # fastest block, process CPU time (one thread)
            bound = zmm_per_ns * 1e9 * lanes / ops[case]  # pairs/s
            rate = pairs / t
            print(f"| {case} | {str(dtype)[6:]} | {t * 1e3:.1f} ms | {rate / 1e9:.2f} G | {ops[case]:.1f} "
                  f"| {bound / 1e9:.2f} G | {100 * rate / bound:.0f} % |")


if __name__ == "__main__":
    main()
