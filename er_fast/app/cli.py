"""The `er-fast` command line (also `python -m er_fast`). Every argument is validated before
anything is written; a bad one stops with one line and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .. import __version__
from ..vae.specs import REGISTRY
from .protocol import DEFAULT_SEEDS, NAMED, QUICK, Protocol, build_protocols, parse_list

D = Protocol()  # the defaults, quoted in --help


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line and exit 2, like ours
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="er-fast", description="er_fast: Table 1 of the ER paper over many seeds, and kernel "
                 "benchmarks.")
    ap.add_argument("--version", action="version", version=f"er-fast {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "table1",
        help="reproduce the paper's Table 1 over many seeds (resumable, extendable; shard with torchrun)",
        description="Learn the embedding, train every model for every seed, evaluate ELBO and IWAE on held-out "
        "data, and write DIR/<protocol>/{results.json,results.csv,table.md,*.png} and DIR/table.md. Re-running "
        "with the same arguments resumes; --seeds larger than before extends the run; other settings are refused. "
        f"--quick uses {QUICK}. Ctrl-C stops cleanly (partial table, exit 130); twice stops at once.",
    )
    t.add_argument("--out", required=True, help="output directory (created; resumed if it holds the same run)")
    t.add_argument("--protocols", type=parse_list,
                   help=f"comma-separated protocols among {', '.join(NAMED)} (default: paper,noisy)")
    t.add_argument("--seeds", type=int, help="seeds per model and protocol, 0..N-1 (default: "
                   f"{DEFAULT_SEEDS['cpu']} on CPU, {DEFAULT_SEEDS['cuda']} with --device cuda)")
    t.add_argument("--models", type=parse_list, help="comma-separated model ids (default: all; `er-fast models`)")
    t.add_argument("--steps", type=int, help=f"Adam steps per model (default {D.steps})")
    t.add_argument("--batch-size", type=int, help=f"training batch size (default {D.batch_size})")
    t.add_argument("--lr", type=float, help=f"Adam learning rate (default {D.lr})")
    t.add_argument("--width", type=int, help=f"hidden width of encoder and decoder MLPs (default {D.width})")
    t.add_argument("--iwae-k", type=int, help=f"importance samples per held-out point (default {D.iwae_k})")
    t.add_argument("--eval-points", type=int, help=f"held-out points for ELBO and IWAE (default {D.eval_points})")
    t.add_argument("--noise-std", type=float, help="observation noise of the data, for a single protocol "
                   f"(defaults: paper {NAMED['paper']:g}, noisy {NAMED['noisy']:g})")
    t.add_argument("--map-seed", type=int, help=f"seed of the fixed random map R^2 -> R^100 (default {D.map_seed})")
    t.add_argument("--wae-steps", type=int, help=f"WAE-MMD steps to learn f (default {D.wae_steps})")
    t.add_argument("--wae-lambda", type=float, help=f"MMD penalty weight of the WAE (default {D.wae_lambda})")
    t.add_argument("--seed-chunk", dest="chunk", type=int, help="seeds trained together as one unit (default: "
                   "50 on CPU; on CUDA as many as fit in a quarter of the free memory)")
    t.add_argument("--dtype", choices=["float32", "float64"], help=f"training dtype (default {D.dtype})")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    t.add_argument("--workers", type=int, help="worker processes on CPU, one thread each (default: number of CPUs; "
                   "1 under torchrun). Results do not depend on it")
    t.add_argument("--quick", action="store_true", help="10 seeds and short training: every row of both "
                   "protocols in about a minute on 2 cores")
    t.add_argument("--dry-run", action="store_true", help="print the protocol, the units and estimates of time and "
                   "memory (from a few measured steps), then exit without writing anything")
    t.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")

    w = sub.add_parser("sweep", help="Table 1 at several training budgets (steps × 1, 3, 10): do rows and "
                       "orderings move with training time?", parents=[], add_help=True)
    for a in t._actions:  # the table1 options, plus the multipliers
        if a.dest not in ("help", "dry_run"):
            w._add_action(a)
    w.add_argument("--multipliers", type=parse_list, default=("1", "3", "10"),
                   help="budgets as multiples of --steps (default 1,3,10)")

    sub.add_parser("models", help="list the model ids")

    b = sub.add_parser("bench", help="kernel throughput table (er_fast vs plain PyTorch vs KeOps) and scaling plot")
    b.add_argument("--out", default="bench", help="directory for bench.md and the scaling plot (default ./bench)")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    return ap


def flag_of(setting: str) -> str:
    """The command-line flag of a Protocol setting."""
    return "--seed-chunk" if setting == "chunk" else "--" + setting.replace("_", "-")


# The table1 options that are Protocol settings (the rest steer the run: --out, --workers, ...).
SETTINGS = ("seeds", "models", "steps", "batch_size", "lr", "width", "iwae_k", "eval_points", "noise_std",
            "map_seed", "wae_steps", "wae_lambda", "chunk", "dtype", "device")


def table1_protocols(args) -> List[Protocol]:
    """Every check of the table1 arguments, before anything is written (ValueError on a bad one)."""
    names = list(args.protocols) if args.protocols is not None else ["paper", "noisy"]
    settings = {k: getattr(args, k) for k in SETTINGS}
    protocols = build_protocols(names, args.quick, **settings)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    if not args.out.strip():
        raise ValueError("--out must be a directory path, got ''")
    return protocols


def _table1(args) -> int:
    protocols = table1_protocols(args)
    if args.dry_run:
        from .plan import describe

        workers = args.workers or ((os.cpu_count() or 1) if protocols[0].device == "cpu" else 1)
        print(describe(protocols, args.out, workers))
        return 0
    from .table1 import run

    return run(protocols, args.out, args.workers, show_progress=not args.no_progress,
               chunk_given=args.chunk is not None)


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "models":
        for k, spec in REGISTRY.items():
            print(f"{k:22s} {spec.description}")
        return 0
    if args.command == "table1":
        try:
            return _table1(args)
        except ValueError as e:  # a UsageError, or a setting out of range: nothing was trained
            print(f"er-fast table1: error: {e}", file=sys.stderr)
            return 2
    if args.command == "sweep":
        try:
            protocols = table1_protocols(args)
            mult = [int(x) if x.isdigit() else 0 for x in args.multipliers]
            if not mult or any(k < 1 for k in mult):
                raise ValueError(f"--multipliers must be positive integers, got {','.join(args.multipliers)}")
            from .sweep import run as run_sweep

            return run_sweep(protocols, mult, args.out, args.workers, not args.no_progress)
        except ValueError as e:
            print(f"er-fast sweep: error: {e}", file=sys.stderr)
            return 2
    if args.command == "bench":
        from .bench import run as run_bench
        from .rundir import UsageError

        try:
            return run_bench(args)
        except UsageError as e:  # a bad --out, found before any timing
            print(f"er-fast bench: error: {e}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
