"""The outputs of a Table 1 run: per protocol results.json / results.csv / table.md and plots;
across protocols DIR/table.md and DIR/summary.json."""
from __future__ import annotations

import platform
from typing import Dict, List

import numpy as np
import torch

from .. import __version__, ops
from ..vae import ToyData, load_embedding
from ..vae.ceiling import true_log_likelihood
from ..vae.specs import get_spec
from . import plots, report, verdicts
from .paper import PAPER_TABLE1
from .files import atomic_write_json, atomic_write_text, load_tensors
from .protocol import Protocol
from .rundir import RunDir


def environment(device: str) -> dict:
    """What ran the numbers: versions, device, backends, threads."""
    info = ops.backend_info()
    env = {
        "er_fast": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "backends": {op: row[device][0] for op, row in info.items() if isinstance(row, dict)},
        "cpu_isa": info["cpu_isa"],
        "torch_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def _verdicts(rows: List[dict]) -> Dict[str, dict]:
    """Paired verdicts on the paper's orderings, for ELBO and IWAE, over the seeds every paper row
    has finished (a partial run compares what it has); {} with fewer than 2 such rows or seeds."""
    paper_rows = [r for r in rows if r["model"] in PAPER_TABLE1]
    if len(paper_rows) < 2:
        return {}
    common = set.intersection(*(set(r["per_seed"]["seed"]) for r in paper_rows))
    if len(common) < 2:
        return {}
    trimmed = []
    for r in paper_rows:
        keep = [i for i, s in enumerate(r["per_seed"]["seed"]) if s in common]
        trimmed.append({"model": r["model"], "per_seed": {k: [v[i] for i in keep] for k, v in r["per_seed"].items()}})
    present = [m for m in PAPER_TABLE1 if m in {r["model"] for r in trimmed}]
    seeds = {r["model"]: r["per_seed"]["seed"] for r in trimmed}
    return {m: verdicts.compare(seeds, {r["model"]: r["per_seed"][m] for r in trimmed}, metric=m, rows=present)
            for m in ("elbo", "iwae")}


def _ceiling(p: Protocol, data: ToyData) -> dict | None:
    """The true mean log-likelihood of the evaluation points (noisy data only), by quadrature."""
    if p.noise_std == 0:
        return None
    logp, info = true_log_likelihood(data, data.x_test[: p.eval_points])
    return {"mean": float(logp.mean()), "per_point": logp.tolist(),
            "info": {k: v for k, v in info.items() if k != "history"}, "history": info["history"]}


def write_outputs(rd: RunDir, p: Protocol, unit_results: List[dict], wall_s: float, partial: bool) -> dict:
    """One protocol's outputs from its finished units' results (each with "model" and "seeds").
    Returns {"rows", "verdicts", "ceiling"} for the summary."""
    rows, curves, recon = [], {}, {}
    for m in p.models:
        parts = [u for u in unit_results if u["model"] == m]
        if not parts:
            continue
        per_seed = {k: [x for u in parts for x in u[k]] for k in ("elbo", "iwae", "active_units", "sigma")}
        per_seed["seed"] = [s for u in parts for s in u["seeds"]]
        rows.append(report.summarize(m, get_spec(m).description, per_seed))
        curves[m] = np.array([c for u in parts for c in u["curve_elbo"]])
        recon[m] = np.array(parts[0]["recon_first_seed"])
    data = p.data()  # the evaluated points themselves (dtype and device decide the draws)
    ceiling = _ceiling(p, data)
    verdict = _verdicts(rows)
    env = environment(p.device)
    env["wall_seconds_this_invocation"] = wall_s
    settings = p.to_dict()
    n_units, n_done = len(p.units()), len(unit_results)
    atomic_write_json(rd.path("results.json"), {"protocol": settings, "environment": env, "rows": rows,
                                                "verdicts": verdict, "ceiling": ceiling, "partial": partial,
                                                "units_done": n_done, "units_total": n_units})
    atomic_write_text(rd.path("results.csv"), report.results_csv(rows))
    atomic_write_text(rd.path("table.md"), protocol_md(p, rows, verdict, ceiling, partial, n_done, n_units))
    out = {"rows": rows, "verdicts": verdict, "ceiling": ceiling, "partial": partial}
    if not rows:
        return out
    plots.elbo_per_model(rows, rd.path("elbo_per_model.png"))
    steps = np.array(unit_results[0]["curve_steps"])
    plots.training_curves(curves, steps, rd.path("training_curves.png"))
    clean = data.embed(data.points_test[:4]).double().cpu().numpy() if p.noise_std > 0 else None
    plots.reconstructions(data.x_test[:4].double().cpu().numpy(), recon, rd.path("reconstructions.png"), clean=clean)
    if verdict:
        plots.paired_differences([verdict["elbo"], verdict["iwae"]], rd.path("paired_differences.png"))
    if ceiling is not None:
        plots.ceiling_gap(rows, ceiling["mean"], rd.path("ceiling_gap.png"), noise_std=p.noise_std)
    sha, _ = rd.embedding_sha256(p.wae_sha256()) if p.needs_embedding else (None, "")
    if sha is not None:
        f = load_embedding(load_tensors(rd.embedding, sha256=sha)).double()
        t = torch.linspace(0, 1, 501, dtype=torch.float64)[:, None]
        with torch.no_grad():
            plots.embedding(t[:, 0].numpy(), f(t).numpy(), rd.path("embedding.png"), "learned f (WAE-MMD)")
    return out


def protocol_md(p: Protocol, rows, verdict, ceiling, partial: bool, n_done: int, n_units: int) -> str:
    """One protocol's table.md: the ceiling (noisy data), the rows beside the paper's, the verdicts."""
    parts = []
    if partial:
        parts.append(f"**PARTIAL: {n_done} of {n_units} units finished; resume the run to complete it.**\n")
    parts.append(report.table_md(rows, p.to_dict(), ceiling=None if ceiling is None else ceiling["mean"]))
    for m in ("elbo", "iwae"):
        if m in verdict:
            parts += [f"\n### Verdicts on the paper's orderings ({m.upper()})\n", report.verdicts_md(verdict[m])]
    return "\n".join(parts)


def _demote(md: str) -> str:
    """Markdown headings one level down (a protocol's table inside the summary)."""
    return "\n".join("#" + line if line.startswith("#") else line for line in md.split("\n"))


def write_summary(top: RunDir, protocols: List[Protocol], outs: Dict[str, dict], partial: bool) -> None:
    """DIR/table.md and DIR/summary.json: every protocol side by side, the verdict counts first."""
    parts = ["# Table 1 reproduction" + (" (PARTIAL: resume the run to complete it)" if partial else ""), ""]
    for p in protocols:
        v = outs[p.name]["verdicts"]
        if v:
            parts.append(f"- `{p.name}` (σ0 = {p.noise_std:g}): {v['elbo']['summary']}; IWAE: {v['iwae']['summary']}")
    for p in protocols:
        o = outs[p.name]
        parts += ["", _demote(protocol_md(p, o["rows"], o["verdicts"], o["ceiling"], False, 0, 0))]
    atomic_write_text(top.path("table.md"), "\n".join(parts) + "\n")
    atomic_write_json(top.path("summary.json"), {
        "partial": partial,
        "protocols": {p.name: {"settings": p.to_dict(),
                               "rows": [{k: r[k] for k in r if k != "per_seed"} for r in outs[p.name]["rows"]],
                               "verdicts": {m: {k: v for k, v in r.items() if k != "per_seed"}
                                            for m, r in outs[p.name]["verdicts"].items()},
                               "ceiling": None if outs[p.name]["ceiling"] is None
                               else outs[p.name]["ceiling"]["mean"]}
                      for p in protocols}})
