"""The outputs of a Table 1 run: results.json / results.csv / table.md and the plots."""
from __future__ import annotations

import platform
from typing import List

import numpy as np
import torch

from .. import __version__, ops
from ..vae import ToyData, load_embedding
from ..vae.specs import get_spec
from . import plots, report
from .protocol import Protocol
from .rundir import RunDir, atomic_write_json, atomic_write_text, load_tensors


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


def write_outputs(rundir: RunDir, p: Protocol, unit_results: List[dict], wall_s: float) -> None:
    rows, curves, recon = [], {}, {}
    for m in p.models:
        parts = [u for u in unit_results if u["model"] == m]
        per_seed = {k: [x for u in parts for x in u[k]] for k in ("elbo", "iwae", "active_units", "sigma")}
        per_seed["seed"] = [s for u in parts for s in u["seeds"]]
        rows.append(report.summarize(m, get_spec(m).description, per_seed))
        curves[m] = np.array([c for u in parts for c in u["curve_elbo"]])
        recon[m] = np.array(parts[0]["recon_first_seed"])
    env = environment(p.device)
    env["wall_seconds_this_invocation"] = wall_s
    settings = p.to_dict()
    atomic_write_json(rundir.path("results.json"), {"protocol": settings, "environment": env, "rows": rows})
    atomic_write_text(rundir.path("results.csv"), report.results_csv(rows))
    atomic_write_text(rundir.path("table.md"), report.table_md(rows, settings))
    plots.elbo_per_model(rows, rundir.path("elbo_per_model.png"))
    steps = np.array(unit_results[0]["curve_steps"])
    plots.training_curves(curves, steps, rundir.path("training_curves.png"))
    data = ToyData(p.data_config())
    plots.reconstructions(data.x_test[:4].double().numpy(), recon, rundir.path("reconstructions.png"))
    if p.needs_embedding:
        f = load_embedding(load_tensors(rundir.embedding)).double()
        t = torch.linspace(0, 1, 501, dtype=torch.float64)[:, None]
        with torch.no_grad():
            plots.embedding(t[:, 0].numpy(), f(t).numpy(), rundir.path("embedding.png"), "learned f (WAE-MMD)")
