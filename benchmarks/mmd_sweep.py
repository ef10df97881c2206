"""mmd_imq sweep over n at B=1 (m = n, d = 8, 7 scales, float32): forward + backward w.r.t. x,
time and peak memory, one fresh subprocess per point so that ru_maxrss is that point's peak.

Run:  python benchmarks/mmd_sweep.py [--impls er_fast,keops,plain] [--ns 256,1024,...]
Prints a markdown table. "peak RSS" is the child's ru_maxrss; "baseline" is the same child's
RSS after imports and input creation, before the op runs (so peak - baseline is what the
computation itself needed). The plain PyTorch formulation builds three n x n matrices and is
only run while that fits comfortably (n <= 4096 by default).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
import torch
import bench_mmd as bm
impl, n, d, reps = {impl!r}, {n}, {d}, {reps}
fn = {{"er_fast": bm.er_fast_mmd, "plain": bm.mmd_plain, "keops": bm.make_keops()}}[impl]
g = torch.Generator().manual_seed(0)
x = torch.randn(1, n, d, generator=g).requires_grad_()
y = torch.rand(1, n, d, generator=g)
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
base = rss_mb()
run = lambda: torch.autograd.grad(fn(x, y).sum(), x)[0]
t0 = time.perf_counter(); run(); first = time.perf_counter() - t0  # includes KeOps' compile if any
times = []
for _ in range(reps):
    t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(impl=impl, n=n, time=min(times) if times else first, base=base, peak=peak)))
"""


def run_point(impl, n, d, reps):
    code = CHILD.format(root=ROOT, here=HERE, impl=impl, n=n, d=d, reps=reps)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return dict(impl=impl, n=n, error=(out.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impls", default="er_fast,keops,plain")
    ap.add_argument("--ns", default="256,1024,4096,16384,65536")
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--plain-max", type=int, default=4096)
    ap.add_argument("--keops-max", type=int, default=16384)
    args = ap.parse_args()
    rows = []
    for n in [int(v) for v in args.ns.split(",")]:
        for impl in args.impls.split(","):
            if impl == "plain" and n > args.plain_max or impl == "keops" and n > args.keops_max:
                continue
            reps = 3 if n <= 4096 else 1
            t = time.time()
            r = run_point(impl, n, args.d, reps)
            print(f"# {impl} n={n}: {r} ({time.time() - t:.0f} s)", file=sys.stderr, flush=True)
            rows.append(r)
    print(f"| n (B=1, d={args.d}) | impl | fwd+bwd time | peak RSS | baseline RSS | peak - baseline |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['n']} | {r['impl']} | error: {r['error']} | | | |")
            continue
        t = r["time"]
        ts = f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"
        print(f"| {r['n']} | {r['impl']} | {ts} | {r['peak']:.0f} MB | {r['base']:.0f} MB | {r['peak'] - r['base']:.0f} MB |")


if __name__ == "__main__":
    main()
