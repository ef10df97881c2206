"""The timing half of the GPU suite: every er_fast op, forward + backward, against what a user would
otherwise run (eager PyTorch, the same under torch.compile, KeOps if importable), all in ONE run.

    python benchmarks/gpu_suite.py [--device cuda|cpu] [--quick] [--out DIR] [--table1]

Every time is the median per call of er_fast.util.timing.time_call (torch.utils.benchmark,
CUDA-synchronised, compilation in the warm-up call outside the timing). Each row's ratio is its
time over the er_fast time of the same case, measured in the same run. Throughput conventions:

  MMD   pairs/s, counting per batch element the distinct pairs a symmetric kernel evaluates,
        n(n-1)/2 + m(m-1)/2 + n*m (one call = forward + backward w.r.t. x; y, the prior sample,
        needs no gradient), once per call, not once per pass.
  beta  samples/s (one call = rsample + backward to alpha and beta).
  circle_embed / so2_rotate   elements/s, and GB/s of the op's minimum traffic (forward + backward
        bytes that er_fast's kernels must read and write, below) against a device copy_ measured
        in this run: "% of copy" is how close the row gets to that memory floor.

Switches of the C++ read from the environment (ER_FAST_MMD_CUDA_KERNEL on CUDA, ER_FAST_CPU_ISA on
the CPU) are timed too when the name appears in csrc/: each value in a child process with the
variable set, its er_fast rows added to the table beside the default.

Writes DIR/gpu_suite.json (environment, every row) and DIR/gpu_suite.md (the printed table).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

import er_fast
from er_fast.app import baselines
from er_fast.util.timing import time_call

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Env switches of the C++ worth timing: name -> (device, case group, values beside the default).
SWITCHES = {"ER_FAST_MMD_CUDA_KERNEL": ("cuda", "mmd", ["tiled"]), "ER_FAST_CPU_ISA": ("cpu", "mmd", ["avx2"])}

# Minimum elements read + written per point, forward + backward (the memory floor): circle_embed
# reads z, θ, writes 2 (fwd), reads grad 2 + out 2, writes grad_z, grad_θ (bwd); so2_rotate reads
# p 2, θ, writes 2 (fwd), reads grad 2, out 2, θ, writes grad_p 2, grad_θ (bwd).
FLOOR_ELEMS = {"circle": 4 + 6, "so2": 5 + 8}


@dataclass
class Case:
    group: str  # mmd | beta | circle | so2
    title: str
    make: Callable[[], tuple]  # -> (inputs, indices of inputs to differentiate, grad_output)
    impls: dict  # name -> forward function of the inputs
    work: float  # units per call
    unit: str
    bytes: Optional[float] = None  # minimum bytes per call (memory floor), elementwise ops
    check: bool = True  # compare gradients with er_fast's (not for random samples)
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------
def _compiled(fn):
    return torch.compile(fn, dynamic=False)


def _mmd_pairs(B, n, m):
    return B * (n * (n - 1) / 2 + m * (m - 1) / 2 + n * m)


def _er_mmd(x, y):
    return er_fast.mmd_imq(x, y, scales=baselines.SCALES)


def mmd_case(device, B, n, d, dtype=torch.float32, peers=True, note=""):
    def make():
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(B, n, d, device=device, dtype=dtype, generator=g).requires_grad_()
        y = torch.rand(B, n, d, device=device, dtype=dtype, generator=g)
        return (x, y), (0,), torch.ones(B, device=device, dtype=dtype)

    impls = {"er_fast": _er_mmd}
    if peers:
        impls["eager"] = baselines.mmd_plain
        impls["compiled"] = _compiled(baselines.mmd_plain)
    keops = baselines.make_keops_mmd()
    if keops is not None:
        impls["keops"] = keops
    dt = "" if dtype == torch.float32 else f" {str(dtype)[6:]}"
    title = f"MMD B{B} n{n} d{d}{dt}{note}"
    return Case("mmd", title, make, impls, _mmd_pairs(B, n, n), "pairs",
                extra=dict(B=B, n=n, m=n, d=d, dtype=str(dtype)[6:]))


def beta_case(device, N, dtype):
    def make():
        g = torch.Generator(device=device).manual_seed(0)
        a = (torch.rand(N, device=device, dtype=dtype, generator=g) * 4.9 + 0.1).requires_grad_()
        b = (torch.rand(N, device=device, dtype=dtype, generator=g) * 4.9 + 0.1).requires_grad_()
        return (a, b), (0, 1), torch.rand(N, device=device, dtype=dtype, generator=g)

    impls = {"er_fast": er_fast.beta_rsample, "torch.distributions.Beta": baselines.beta_rsample_torch}
    return Case("beta", f"beta_rsample {N:.0e} {str(dtype)[6:]}", make, impls, N, "samples", check=False,
                extra=dict(N=N, dtype=str(dtype)[6:]))


def circle_case(device, N, dtype):
    def make():
        g = torch.Generator(device=device).manual_seed(0)
        z = torch.rand(N, 1, device=device, dtype=dtype, generator=g).requires_grad_()
        th = (torch.rand(N, 1, device=device, dtype=dtype, generator=g) * 2 * math.pi).requires_grad_()
        return (z, th), (0, 1), torch.randn(N, 1, 2, device=device, dtype=dtype, generator=g)

    impls = {"er_fast": er_fast.circle_embed, "eager": baselines.circle_rotate_eager,
             "compiled": _compiled(baselines.circle_rotate_eager)}
    es = torch.finfo(dtype).bits // 8
    return Case("circle", f"circle_embed(z, θ) {N:.0e} {str(dtype)[6:]}", make, impls, N, "elements",
                bytes=FLOOR_ELEMS["circle"] * es * N, extra=dict(N=N, dtype=str(dtype)[6:]))


def so2_case(device, N, dtype):
    def make():
        g = torch.Generator(device=device).manual_seed(0)
        p = torch.randn(N, 2, device=device, dtype=dtype, generator=g).requires_grad_()
        th = (torch.rand(N, device=device, dtype=dtype, generator=g) * 2 * math.pi).requires_grad_()
        return (p, th), (0, 1), torch.randn(N, 2, device=device, dtype=dtype, generator=g)

    impls = {"er_fast": er_fast.so2_rotate, "eager": baselines.rotate_eager,
             "compiled": _compiled(baselines.rotate_eager)}
    es = torch.finfo(dtype).bits // 8
    return Case("so2", f"so2_rotate(p, θ) {N:.0e} {str(dtype)[6:]}", make, impls, N, "elements",
                bytes=FLOOR_ELEMS["so2"] * es * N, extra=dict(N=N, dtype=str(dtype)[6:]))


def cases(device: str, quick: bool) -> list[Case]:
    f32, f64 = torch.float32, torch.float64
    if device == "cuda":
        big, huge, n_elem = 8192, 65536, 10**7
        mmd = [(16, 1024, 8), (100, 128, 1), (1, 128, 1)]
        wae = [(1, 128, 2), (64, 128, 2)]
    elif not quick:  # the same table on a CPU, smaller where the CPU would take seconds a call
        big, huge, n_elem = 4096, 16384, 10**6
        mmd = [(16, 1024, 8), (100, 128, 1), (1, 128, 1)]
        wae = [(1, 128, 2), (64, 128, 2)]
    else:  # CI-sized
        big, huge, n_elem = 1024, 4096, 10**5
        mmd = [(4, 256, 8), (100, 128, 1), (1, 128, 1)]
        wae = [(1, 128, 2)]
    out = [mmd_case(device, B, n, d) for B, n, d in mmd]
    out.append(mmd_case(device, 1, big, 8))
    out.append(mmd_case(device, 1, huge, 8, peers=False, note=" (er_fast only)"))
    out += [mmd_case(device, B, n, d, note=" (WAE)") for B, n, d in wae]
    out.append(mmd_case(device, *mmd[0], dtype=f64))
    out += [beta_case(device, n_elem, f32), beta_case(device, n_elem, f64)]
    out += [circle_case(device, n_elem, f32), so2_case(device, n_elem, f32)]
    return out


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
def _step(fn, inputs, wrt, gout):
    targets = [inputs[i] for i in wrt]
    return lambda: torch.autograd.grad(fn(*inputs), targets, gout)


def _rel_diff(got, ref) -> float:
    return max(((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()
               for a, b in zip(got, ref, strict=True))


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _free(device):
    if device == "cuda":
        torch.cuda.empty_cache()


def time_case(case: Case, device: str, min_run_time: float, timed=None) -> list[dict]:
    """One row per implementation in ``timed`` (default: all): median time, first-call (compile)
    time, and the gradients' relative difference from the first implementation computed, er_fast,
    or eager when er_fast is not computed here (variant runs)."""
    inputs, wrt, gout = case.make()
    timed = list(case.impls) if timed is None else [k for k in case.impls if k in timed]
    names = list(timed)
    if case.check and "eager" in case.impls and "eager" not in names:
        names.insert(0, "eager")  # the reference of the agreement check, computed once, not timed
    rows, ref = [], None
    for name in names:
        row = dict(case=case.title, group=case.group, impl=name)
        try:
            step = _step(case.impls[name], inputs, wrt, gout)
            t0 = time.perf_counter()
            grads = step()  # first call: compilation, and the result for the agreement check
            _sync(device)
            row["first_call_s"] = time.perf_counter() - t0
            if case.check:
                if ref is None:
                    ref = (name, grads)
                else:
                    row["rel_diff"] = dict(vs=ref[0], value=_rel_diff(grads, ref[1]))
            del grads
            if name not in timed:
                continue
            t = time_call(step, min_run_time)
            row.update(median_s=t.median, iqr_s=t.iqr, min_s=t.min, calls=t.calls)
            if device == "cuda":
                row["peak_mem_bytes"] = torch.cuda.max_memory_allocated()
        except Exception as e:  # noqa: BLE001 - an OOM or a compile failure is a result, not a crash
            msg = str(e).strip().splitlines()
            row["error"] = f"{type(e).__name__}: {msg[0][:200] if msg else ''}"
        rows.append(row)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _free(device)
    del inputs, gout, ref
    _free(device)
    return rows


def copy_bandwidth(device: str, min_run_time: float) -> dict:
    mib = 1024 if device == "cuda" else 64
    src = torch.randn((mib << 20) // 4, device=device)
    dst = torch.empty_like(src)
    t = time_call(lambda: dst.copy_(src), min_run_time)
    return dict(mib=mib, median_s=t.median, gb_per_s=2 * (mib << 20) / t.median / 1e9)


def derive(rows: list[dict], cases_: list[Case], bw: dict) -> None:
    """Throughput, GB/s against the copy floor and every ratio, from the times of one run."""
    by = {c.title: c for c in cases_}
    for c in cases_:
        group = [r for r in rows if r["case"] == c.title and "median_s" in r]
        er = next((r["median_s"] for r in group if r["impl"] == "er_fast"), None)
        for r in group:
            t = r["median_s"]
            r["throughput"] = by[c.title].work / t
            r["unit"] = c.unit + "/s"
            r["work_per_call"] = c.work
            if c.bytes is not None:
                r["min_bytes_per_call"] = c.bytes
                r["gb_per_s"] = c.bytes / t / 1e9
                r["pct_of_copy_bw"] = 100 * r["gb_per_s"] / bw["gb_per_s"]
                r["floor_s"] = c.bytes / (bw["gb_per_s"] * 1e9)
            if er is not None:
                r["time_over_er_fast"] = t / er
            r["speedup_vs"] = {o["impl"]: o["median_s"] / t for o in group if o is not r}


# ---------------------------------------------------------------------------------------------
# environment, switches, Table 1
# ---------------------------------------------------------------------------------------------
def env_switches() -> dict:
    """ER_FAST_* names the C++ sources hold as string literals (read from the environment)."""
    found: dict = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*"), recursive=True)):
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                for name in set(re.findall(r'"(ER_FAST_[A-Z0-9_]+)"', f.read())):
                    found.setdefault(name, []).append(os.path.relpath(path, ROOT))
    return found


def environment(device: str) -> dict:
    env = dict(
        device=device, torch=torch.__version__, cuda=torch.version.cuda, er_fast=er_fast.__version__,
        er_fast_path=os.path.dirname(er_fast.__file__), backend_info=er_fast.backend_info(),
        python=platform.python_version(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
        env={k: v for k, v in os.environ.items()
             if k.startswith(("ER_FAST_", "TORCH_CUDA_ARCH", "OMP_NUM", "CUDA_VISIBLE"))},
    )
    try:
        env["git_commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True,
                                           timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(device_name=p.name, capability=list(torch.cuda.get_device_capability(0)),
                   sm_count=p.multi_processor_count, memory_bytes=p.total_memory)
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        name = None
        if os.path.exists("/proc/cpuinfo"):
            with open("/proc/cpuinfo") as f:
                name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
        env["device_name"] = name or platform.processor()
    return env


def run_variant(args, name: str, value: str, group: str) -> list[dict]:
    """The er_fast rows of ``group`` in a child process with ``name=value`` in its environment
    (the C++ may read it once), with its gradients' agreement with eager where eager runs."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--device", args.device, "--min-run-time", str(args.min_run_time),
           "--child-group", group, "--child-out", path, "--threads", str(torch.get_num_threads())]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--no-compile"] if args.no_compile else []
    out = subprocess.run(cmd, env={**os.environ, name: value}, capture_output=True, text=True)
    try:
        if out.returncode != 0:
            return [dict(case="*", group=group, impl=f"er_fast [{name}={value}]",
                         error=f"child exited {out.returncode}: " + " | ".join(out.stderr.strip().splitlines()[-3:]))]
        with open(path) as f:
            rows = json.load(f)
    finally:
        os.unlink(path)
    for r in rows:
        r["impl"] = f"er_fast [{name}={value}]"
        r["env"] = {name: value}
    return rows


def run_table1(args, out_dir: str) -> dict:
    """`er-fast table1 --device D --seeds N --out <fresh dir>` with a wall-clock limit. A fresh
    directory: table1 resumes a run directory that holds the same run, which would skip work."""
    work = args.table1_out or tempfile.mkdtemp(prefix="er_fast_table1_")
    cmd = [sys.executable, "-m", "er_fast", "table1", "--device", args.device, "--seeds", str(args.table1_seeds),
           "--out", work, "--no-progress"]
    res = dict(command=" ".join(cmd), limit_s=args.table1_timeout, out=work)
    t0 = time.perf_counter()
    # its own session, so that a timeout ends its worker processes too
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=args.table1_timeout)
        res.update(rc=p.returncode, timed_out=False)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        res.update(rc=None, timed_out=True)
    res["wall_s"] = time.perf_counter() - t0
    res["output_tail"] = (out or "")[-3000:]
    table = os.path.join(work, "table.md")
    if os.path.exists(table):
        shutil.copy(table, os.path.join(out_dir, "table1_table.md"))
        res["table_md"] = "table1_table.md"
    return res


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _t(s):
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def _rate(r):
    v, u = r["throughput"], r["unit"]
    for p, k in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= p:
            return f"{v / p:.3g} {k}{u}"
    return f"{v:.3g} {u}"


def markdown(env: dict, rows: list[dict], bw: dict, switches: dict, table1: Optional[dict]) -> str:
    ln = [f"# er_fast GPU suite: {env['device_name']} ({env['device']})", "",
          f"torch {env['torch']} (CUDA {env['cuda']}), er_fast {env['er_fast']}, {env['torch_threads']} torch threads, "
          f"commit {(env.get('git_commit') or '?')[:10]}; copy_ bandwidth {bw['gb_per_s']:.1f} GB/s "
          f"(read + write, {bw['mib']} MiB float32).",
          "Every call is forward + backward; median per call; 'time / er_fast' is the row's time over the er_fast "
          "time of the same case in this run (> 1: er_fast is faster). MMD pairs: n(n-1)/2 + m(m-1)/2 + nm per batch "
          "element; GB/s: the op's minimum forward + backward traffic.", "",
          "| case | impl | median | throughput | GB/s (% of copy) | time / er_fast | grad rel. diff | first call |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            ln.append(f"| {r['case']} | {r['impl']} | error: {r['error']} | | | | | |")
            continue
        gb = f"{r['gb_per_s']:.3g} ({r['pct_of_copy_bw']:.0f}%)" if "gb_per_s" in r else ""
        ratio = f"{r['time_over_er_fast']:.2f}×" if "time_over_er_fast" in r else ""
        diff = f"{r['rel_diff']['value']:.1e} (vs {r['rel_diff']['vs']})" if "rel_diff" in r else ""
        ln.append(f"| {r['case']} | {r['impl']} | {_t(r['median_s'])} | {_rate(r)} | {gb} | {ratio} | {diff} "
                  f"| {_t(r['first_call_s'])} |")
    found = ", ".join(f"{k} ({', '.join(v)})" for k, v in switches.items())
    ln += ["", "Env switches found in csrc/: " + (found or "none")]
    if table1:
        state = "timed out" if table1["timed_out"] else f"exit {table1['rc']}"
        ln += ["", f"Table 1: `{table1['command']}`: {table1['wall_s']:.0f} s wall ({state}, "
                   f"limit {table1['limit_s']} s)"]
    return "\n".join(ln) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--quick", action="store_true", help="CI-sized: smaller CPU shapes, shorter timing")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_suite_out",
                    help="results folder (default $OUT, else ./gpu_suite_out)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's; child runs inherit)")
    ap.add_argument("--min-run-time", type=float, default=None,
                    help="seconds of timed calls per row (default 0.3, quick 0.1)")
    ap.add_argument("--budget-s", type=float, default=300.0,
                    help="cases not started within this many seconds are skipped")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--no-switches", action="store_true", help="do not time the env-switch variants")
    ap.add_argument("--table1", action="store_true", help="also time `er-fast table1 --seeds N` (default protocol)")
    ap.add_argument("--table1-seeds", type=int, default=1000)
    ap.add_argument("--table1-timeout", type=float, default=360.0, help="wall-clock limit of the Table 1 run (s)")
    ap.add_argument("--table1-out", default=None, help="run directory for Table 1 (default: a fresh temporary one)")
    ap.add_argument("--child-group", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.min_run_time is None:
        args.min_run_time = 0.1 if args.quick else 0.3
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: --device cuda but no CUDA GPU is visible (use --device cpu)", file=sys.stderr)
        return 2
    if hasattr(torch, "_dynamo"):  # one compiled function per shape: more recompiles than the default allows
        for knob in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 64)
    all_cases = cases(args.device, args.quick)
    if args.no_compile:
        for c in all_cases:
            c.impls.pop("compiled", None)

    if args.child_group:  # a variant run: er_fast rows only
        rows = []
        for c in all_cases:
            if c.group == args.child_group:
                rows += time_case(c, args.device, args.min_run_time, timed=["er_fast"])
        with open(args.child_out, "w") as f:
            json.dump(rows, f)
        return 0

    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    env = environment(args.device)
    print(f"gpu_suite: {env['device_name']}, torch {env['torch']}, er_fast {env['er_fast']} ({env['er_fast_path']})",
          flush=True)
    bw = copy_bandwidth(args.device, args.min_run_time)
    print(f"copy_ bandwidth {bw['gb_per_s']:.1f} GB/s", flush=True)
    rows, skipped = [], []
    for c in all_cases:
        if time.perf_counter() - t_start > args.budget_s:
            skipped.append(c.title)
            rows.append(dict(case=c.title, group=c.group, impl="*",
                             error=f"skipped: past the {args.budget_s:.0f} s budget"))
            continue
        for r in time_case(c, args.device, args.min_run_time):
            rows.append(r)
            shown = _t(r["median_s"]) if "median_s" in r else r.get("error", "")
            print(f"{c.title:60s} {r['impl']:26s} {shown}", flush=True)

    switches = env_switches()
    variants = []
    for name, (dev, group, values) in SWITCHES.items():
        if name in switches and dev == args.device and not args.no_switches:
            for value in values:
                print(f"timing {group} with {name}={value} (child process)", flush=True)
                vrows = run_variant(args, name, value, group)
                variants.append(dict(name=name, value=value, rows=len(vrows)))
                for vr in vrows:  # place each after the er_fast row of its case
                    idx = max((i for i, r in enumerate(rows) if r["case"] == vr["case"]), default=len(rows) - 1)
                    rows.insert(idx + 1, vr)
    derive(rows, all_cases, bw)

    table1 = run_table1(args, args.out) if args.table1 else None
    result = dict(environment=env, copy_bandwidth=bw, min_run_time_s=args.min_run_time, quick=args.quick,
                  conventions=dict(mmd="pairs = B*(n(n-1)/2 + m(m-1)/2 + n*m) per call (fwd + bwd w.r.t. x)",
                                   beta="samples per call (rsample + backward to alpha, beta)",
                                   elementwise="min_bytes_per_call = forward + backward bytes er_fast's kernels "
                                               "must move",
                                   ratio="time_over_er_fast = row median / er_fast median of the same case, same run"),
                  cases=[dict(title=c.title, group=c.group, impls=list(c.impls), work_per_call=c.work, unit=c.unit,
                              min_bytes_per_call=c.bytes, **c.extra) for c in all_cases],
                  env_switches_in_csrc=switches, variants_timed=variants, skipped=skipped, rows=rows, table1=table1,
                  wall_s=time.perf_counter() - t_start)
    text = markdown(env, rows, bw, switches, table1)
    with open(os.path.join(args.out, "gpu_suite.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(os.path.join(args.out, "gpu_suite.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    print(f"wrote {os.path.join(args.out, 'gpu_suite.json')} and gpu_suite.md ({result['wall_s']:.0f} s)")
    # a peer's failure (eager out of memory, a compile error) is a result; er_fast's is a failure
    errors = [r for r in rows if "error" in r and r["impl"].startswith("er_fast")]
    return 1 if errors or (table1 and (table1["timed_out"] or table1["rc"] != 0)) else 0


if __name__ == "__main__":
    sys.exit(main())
