"""mmd_imq sweep over n at B=1 (m = n, d = 8, 7 scales, float32): forward + backward w.r.t. x,
time and peak memory, one fresh subprocess per point so that ru_maxrss is that point's peak.

Run:  python benchmarks/mmd_sweep.py [--impls er_fast,keops,plain] [--ns 256,1024,...]
Prints a markdown table. "peak RSS" is the child's ru_maxrss; "baseline" is the same child's
RSS after imports and input creation, before the op runs (so peak - baseline is what the
computation itself needed). The plain PyTorch formulation builds three n x n matrices and is
only run while that fits comfortably (n <= 4096 by default). Times: median per call of
er_fast.util.timing.time_call (after one warm-up call, which holds KeOps' compilation).
"""
import argparse
import json
import subprocess
import sys
import time


def child(impl: str, n: int, d: int, min_run_time: float) -> None:
    """One point, in this (fresh) process: prints one JSON line."""
    import resource

    import torch

    import er_fast
    from er_fast.app.baselines import SCALES, make_keops_mmd, mmd_plain
    from er_fast.util.timing import time_call

    fn = {"er_fast": lambda x, y: er_fast.mmd_imq(x, y, scales=SCALES), "plain": mmd_plain}.get(impl)
    if impl == "keops":
        fn = make_keops_mmd()
        if fn is None:
            raise SystemExit("pykeops not importable")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, n, d, generator=g).requires_grad_()
    y = torch.rand(1, n, d, generator=g)

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    base = rss_mb()
    t = time_call(lambda: torch.autograd.grad(fn(x, y).sum(), x)[0], min_run_time)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(impl=impl, n=n, time=t.median, calls=t.calls, base=base, peak=peak)))


def run_point(impl, n, d, min_run_time):
    cmd = [sys.executable, __file__, "--child", impl, str(n), "--d", str(d), "--min-run-time", str(min_run_time)]
    out = subprocess.run(cmd, capture_output=True, text=True)
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
    ap.add_argument("--min-run-time", type=float, default=0.5,
                    help="seconds of timed calls per point (at least one call)")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.d, args.min_run_time)
    rows = []
    for n in [int(v) for v in args.ns.split(",")]:
        for impl in args.impls.split(","):
            if impl == "plain" and n > args.plain_max or impl == "keops" and n > args.keops_max:
                continue
            t = time.time()
            r = run_point(impl, n, args.d, args.min_run_time)
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
        print(f"| {r['n']} | {r['impl']} | {ts} | {r['peak']:.0f} MB | {r['base']:.0f} MB "
              f"| {r['peak'] - r['base']:.0f} MB |")


if __name__ == "__main__":
    main()
