"""The `er-fast` command line (also `python -m er_fast`)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .. import __version__
from ..vae.specs import REGISTRY
from .protocol import QUICK, Protocol, parse_models

D = Protocol()  # the defaults, quoted in --help


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="er-fast", description="er_fast: Table 1 of the ER paper over many seeds, "
                                 "and kernel benchmarks.")
    ap.add_argument("--version", action="version", version=f"er-fast {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "table1",
        help="reproduce the paper's Table 1 over many seeds (resumable; shard with torchrun)",
        description="Learn the embedding(s), train every model for every seed, evaluate ELBO and IWAE on "
        "held-out data, and write results.json, results.csv, table.md and plots into --out. "
        "Re-running with the same arguments resumes; other arguments into the same --out are refused. "
        f"--quick uses {QUICK}.",
    )
    t.add_argument("--out", required=True, help="output directory (created; resumed if it holds the same run)")
    t.add_argument("--seeds", type=int, help=f"number of seeds per model, 0..N-1 (default {D.seeds})")
    t.add_argument("--models", type=parse_models, help="comma-separated model ids (default: all; `er-fast models` lists them)")
    t.add_argument("--steps", type=int, help=f"Adam steps per model (default {D.steps})")
    t.add_argument("--batch-size", type=int, help=f"training batch size (default {D.batch_size})")
    t.add_argument("--lr", type=float, help=f"Adam learning rate (default {D.lr})")
    t.add_argument("--width", type=int, help=f"hidden width of encoder and decoder MLPs (default {D.width})")
    t.add_argument("--iwae-k", type=int, help=f"importance samples for the IWAE bound (default {D.iwae_k})")
    t.add_argument("--iwae-points", type=int, help=f"held-out points for the IWAE bound (default {D.iwae_points})")
    t.add_argument("--test-points", type=int, help=f"held-out points for the ELBO (default {D.test_points})")
    t.add_argument("--noise-std", type=float, help=f"Gaussian noise added to the data (default {D.noise_std})")
    t.add_argument("--map-seed", type=int, help=f"seed of the fixed random map R^2 -> R^100 (default {D.map_seed})")
    t.add_argument("--wae-steps", type=int, help=f"WAE-MMD steps to learn f (default {D.wae_steps})")
    t.add_argument("--wae-lambda", type=float, help=f"MMD penalty weight of the WAE (default {D.wae_lambda})")
    t.add_argument("--chunk", type=int, help=f"seeds trained together in one unit of work (default {D.chunk})")
    t.add_argument("--dtype", choices=["float32", "float64"], help=f"training dtype (default {D.dtype})")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    t.add_argument("--workers", type=int, help="worker processes on CPU, one thread each (default: number of CPUs; "
                   "1 under torchrun). Results do not depend on it")
    t.add_argument("--quick", action="store_true", help="a few seeds and short training: every row in about a minute")
    t.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")

    sub.add_parser("models", help="list the model ids")

    b = sub.add_parser("bench", help="kernel throughput table (er_fast vs plain PyTorch vs KeOps) and scaling plot")
    b.add_argument("--out", default="bench", help="directory for bench.md and the scaling plot (default ./bench)")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    return ap


# The table1 options that are Protocol settings (the rest steer the run: --out, --workers, ...).
SETTINGS = ("seeds", "models", "steps", "batch_size", "lr", "width", "iwae_k", "iwae_points", "test_points",
            "noise_std", "map_seed", "wae_steps", "wae_lambda", "chunk", "dtype", "device")


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "models":
        for k, spec in REGISTRY.items():
            print(f"{k:22s} {spec.description}")
        return 0
    if args.command == "table1":
        from .table1 import run

        try:
            protocol = Protocol.build(args.quick, **{k: getattr(args, k) for k in SETTINGS})
            return run(protocol, args.out, args.workers, show_progress=not args.no_progress)
        except ValueError as e:  # a UsageError, or a Protocol setting out of range: nothing was trained
            print(f"er-fast table1: error: {e}", file=sys.stderr)
            return 2
    if args.command == "bench":
        from .bench import run as run_bench

        return run_bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
