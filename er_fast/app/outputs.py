"""The outputs of a Table 1 run: per protocol results.json / results.csv / table.md and plots;
across protocols DIR/table.md and DIR/summary.json."""
from __future__ import annotations

import platform
from typing import Dict, List

import numpy as np
import torch

from .. import __version__, ops
from ..vae import ToyData, load_embedding
from ..vae.specs import get_spec
from . import plots, report
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


def write_outputs(rd: RunDir, p: Protocol, unit_results: List[dict], wall_s: float, partial: bool) -> List[dict]:
    """One protocol's outputs from its finished units' results (each with "model" and "seeds").
    Returns the summary rows."""
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
    env = environment(p.device)
    env["wall_seconds_this_invocation"] = wall_s
    settings = p.to_dict()
    n_units, n_done = len(p.units()), len(unit_results)
    atomic_write_json(rd.path("results.json"), {"protocol": settings, "environment": env, "rows": rows,
                                                "partial": partial, "units_done": n_done, "units_total": n_units})
    atomic_write_text(rd.path("results.csv"), report.results_csv(rows))
    table = report.table_md(rows, settings)
    if partial:
        table = f"**PARTIAL: {n_done} of {n_units} units finished; resume the run to complete it.**\n\n" + table
    atomic_write_text(rd.path("table.md"), table)
    if not rows:
        return rows
    plots.elbo_per_model(rows, rd.path("elbo_per_model.png"))
    steps = np.array(unit_results[0]["curve_steps"])
    plots.training_curves(curves, steps, rd.path("training_curves.png"))
    data = ToyData(p.data_config())
    plots.reconstructions(data.x_test[:4].double().numpy(), recon, rd.path("reconstructions.png"))
    sha, _ = rd.embedding_sha256(p.wae_sha256()) if p.needs_embedding else (None, "")
    if sha is not None:
        f = load_embedding(load_tensors(rd.embedding, sha256=sha)).double()
        t = torch.linspace(0, 1, 501, dtype=torch.float64)[:, None]
        with torch.no_grad():
            plots.embedding(t[:, 0].numpy(), f(t).numpy(), rd.path("embedding.png"), "learned f (WAE-MMD)")
    return rows


def write_summary(top: RunDir, protocols: List[Protocol], rows_by: Dict[str, List[dict]], partial: bool) -> None:
    """DIR/table.md and DIR/summary.json: every protocol's table side by side."""
    parts = ["# Table 1 reproduction" + (" (PARTIAL: resume the run to complete it)" if partial else ""), ""]
    for p in protocols:
        parts += [f"## Protocol `{p.name}` (noise σ0 = {p.noise_std:g})", "",
                  report.table_md(rows_by[p.name], p.to_dict()).split("\n", 2)[2]]
    atomic_write_text(top.path("table.md"), "\n".join(parts))
    atomic_write_json(top.path("summary.json"), {
        "partial": partial,
        "protocols": {p.name: {"settings": p.to_dict(), "rows": [{k: r[k] for k in r if k != "per_seed"}
                                                                 for r in rows_by[p.name]]} for p in protocols}})
