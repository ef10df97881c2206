"""`er-fast sweep`: the budget sweep — Table 1 at several training budgets (steps × 1, × 3, × 10 by
default), to show whether rows and the paper's orderings move with training time. Each budget is a
complete, resumable `er-fast table1` run in DIR/steps-N; DIR/sweep.md puts them side by side."""
from __future__ import annotations

import os
from typing import List

from .files import atomic_write_text, read_json
from .protocol import Protocol
from .rundir import RunDir
from .table1 import run as run_table1


def run(protocols: List[Protocol], multipliers: List[int], out: str, workers, show_progress: bool) -> int:
    budgets = [p.steps * k for k in multipliers for p in protocols[:1]]
    for steps in budgets:
        code = run_table1([Protocol.from_dict({**p.to_dict(), "steps": steps}) for p in protocols],
                          os.path.join(out, f"steps-{steps}"), workers, show_progress, chunk_given=True)
        if code != 0:
            return code
    lines = ["# Budget sweep", "",
             f"Table 1 at {', '.join(str(b) for b in budgets)} Adam steps ({protocols[0].seeds} seeds per row, "
             "otherwise the default protocol). Mean held-out ELBO and IWAE per row (nats per point) and the "
             "number of the paper's 10 orderings reproduced (95 % paired intervals).", ""]
    for p in protocols:
        lines += [f"## Protocol `{p.name}` (σ0 = {p.noise_std:g})", "",
                  "| model | " + " | ".join(f"ELBO @ {b}" for b in budgets) + " | "
                  + " | ".join(f"IWAE @ {b}" for b in budgets) + " |",
                  "|---|" + "---|" * (2 * len(budgets))]
        res = {b: read_json(RunDir(os.path.join(out, f"steps-{b}", p.name)).path("results.json")) for b in budgets}
        ceil = [res[b].get("ceiling") for b in budgets]
        if all(ceil):  # the same evaluation points at every budget: one ceiling, repeated per column
            lines.append("| **true log-likelihood (ceiling)** | " + " | ".join(f"{c['mean']:.1f}" for c in ceil + ceil) + " |")
        for m in p.models:
            def cell(b, key):
                row = next((r for r in res[b]["rows"] if r["model"] == m), None)
                return "—" if row is None else f"{row[key + '_mean']:.1f} ± {row[key + '_ci95']:.1f}"
            lines.append(f"| `{m}` | " + " | ".join(cell(b, "elbo") for b in budgets) + " | "
                         + " | ".join(cell(b, "iwae") for b in budgets) + " |")
        for key in ("elbo", "iwae"):
            counts = [res[b]["verdicts"].get(key, {}).get("summary", "—") for b in budgets]
            lines += ["", f"{key.upper()} verdicts:"] + [f"- {b} steps: {c}" for b, c in zip(budgets, counts)]
        lines.append("")
    atomic_write_text(os.path.join(out, "sweep.md"), "\n".join(lines) + "\n")
    if show_progress:
        print("\n".join(lines))
    return 0
