"""`er-fast table1`: the paper's Table 1 over many seeds, resumable and shardable with torchrun.

Work is split into units, (model, chunk of seeds), trained from scratch as one stacked batch and
evaluated; each finished unit is written atomically to DIR/units/. A run killed at any moment and
started again with the same arguments skips finished units. Because a seed's result does not
depend on which seeds share its batch, the final results equal those of an uninterrupted run,
and of a run sharded over any number of torchrun processes.
"""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Dict, List

import numpy as np
import torch

from . import dist, plots, report
from .progress import Progress
from .runio import atomic_write_json, atomic_write_text, load_tensors, read_json, save_tensors

# Settings that define the results; a DIR made with other values is refused.
DEFAULTS = dict(
    seeds=100,
    steps=3000,
    batch_size=128,
    lr=1e-3,
    width=64,
    iwae_k=1000,
    iwae_points=100,
    test_points=1000,
    noise_std=0.0,
    map_seed=0,
    test_seed=12345,
    wae_steps=2000,
    wae_lambda=1.0,
    wae_batch=128,
    wae_width=64,
    wae_restarts=3,
    wae_seed=0,
    chunk=50,
    dtype="float32",
)
QUICK = dict(seeds=3, steps=1000, iwae_k=1000, iwae_points=32, test_points=256, wae_steps=600, chunk=3)


class UsageError(ValueError):
    """Bad arguments, reported before any training."""


def build_protocol(args) -> dict:
    p = dict(DEFAULTS)
    if args.quick:
        p.update(QUICK)
    for k in DEFAULTS:
        v = getattr(args, k, None)
        if v is not None:
            p[k] = v
    from .models import REGISTRY as MODELS

    p["models"] = list(args.models) if args.models else list(MODELS)
    p["device"] = args.device
    p["quick"] = bool(args.quick)
    return p


def validate(p: dict) -> None:
    from .models import REGISTRY as MODELS

    for k in ("seeds", "steps", "batch_size", "width", "iwae_k", "iwae_points", "test_points", "wae_steps",
              "wae_batch", "wae_width", "wae_restarts", "chunk"):
        if not isinstance(p[k], int) or p[k] <= 0:
            raise UsageError(f"--{k.replace('_', '-')} must be a positive integer, got {p[k]}")
    if not p["lr"] > 0:
        raise UsageError(f"--lr must be positive, got {p['lr']}")
    if p["noise_std"] < 0 or p["wae_lambda"] < 0:
        raise UsageError("--noise-std and --wae-lambda must be non-negative")
    if p["iwae_points"] > p["test_points"]:
        raise UsageError("--iwae-points cannot exceed --test-points")
    unknown = [m for m in p["models"] if m not in MODELS]
    if unknown:
        raise UsageError(f"unknown model id(s) {unknown}; known: {', '.join(MODELS)}")
    if len(set(p["models"])) != len(p["models"]):
        raise UsageError("a model id is listed twice in --models")
    if p["device"] == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA GPU is visible")
    if p["dtype"] not in ("float32", "float64"):
        raise UsageError("--dtype must be float32 or float64")


def prepare_dir(out: str, protocol: dict) -> None:
    """Create DIR (or check it) and pin the protocol; refuses a DIR made with other settings."""
    try:
        os.makedirs(os.path.join(out, "units"), exist_ok=True)
        probe = os.path.join(out, ".write-probe")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"cannot write to --out {out!r}: {e}") from None
    path = os.path.join(out, "protocol.json")
    if os.path.exists(path):
        old = read_json(path)["settings"]
        if old != protocol:
            diff = {k: (old.get(k), protocol.get(k)) for k in sorted(set(old) | set(protocol)) if old.get(k) != protocol.get(k)}
            raise UsageError(
                f"{out} holds a run made with other settings (was, now): {diff}. "
                "Use a new --out directory, or the same arguments to resume."
            )
    else:
        atomic_write_json(path, {"settings": protocol, "environment": environment(protocol["device"])})


def environment(device: str) -> dict:
    import er_fast

    env = {
        "er_fast": er_fast.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "backends": {op: v[device][0] for op, v in er_fast.backend_info().items()},
        "torch_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def _dtype(p: dict) -> torch.dtype:
    return torch.float32 if p["dtype"] == "float32" else torch.float64


def _units(p: dict) -> List[tuple]:
    seeds = list(range(p["seeds"]))
    return [(m, seeds[a:a + p["chunk"]]) for m in p["models"] for a in range(0, len(seeds), p["chunk"])]


def _unit_name(model: str, seeds: List[int]) -> str:
    return os.path.join("units", model, f"seeds-{seeds[0]:05d}-{seeds[-1]:05d}")


def _embedding_state(out: str, p: dict, rank: int, prog: Progress) -> None:
    """Learn f once (rank 0) and leave it in DIR/embedding.safetensors on every rank."""
    from .wae import train_embedding

    path = os.path.join(out, "embedding.safetensors")
    state = None
    if rank == 0:
        if os.path.exists(path):
            prog.log(f"embedding: {path} exists, reused")
        else:
            prog.set_description("WAE embedding")
            f, quality = train_embedding(
                "circle", steps=p["wae_steps"], batch_size=p["wae_batch"], lam=p["wae_lambda"],
                width=p["wae_width"], restarts=p["wae_restarts"], seed=p["wae_seed"], device=p["device"], dtype=_dtype(p),
                progress=lambda _s: prog.update(1),
            )
            atomic_write_json(os.path.join(out, "embedding_quality.json"), quality)
            save_tensors(path, f.state_dict())  # written last: its presence marks the unit done
            prog.log(f"embedding: trained; quality {json.dumps(quality)}")
        state = load_tensors(path)
    # Other ranks get the tensors (no shared file system needed) and keep their own copy.
    state = dist.broadcast(state)
    if rank != 0 and not os.path.exists(path):
        save_tensors(path, state)


# Per-process caches: a worker process builds the data set and loads f once for all its units.
_CACHE: Dict[str, object] = {}


def _worker_init(counter) -> None:
    """Pool worker: one thread, and training steps counted in a counter the parent shows."""
    torch.set_num_threads(1)

    def tick():
        with counter.get_lock():
            counter.value += 1

    _CACHE["tick"] = tick


def _do_unit(out: str, p: dict, model_id: str, seeds: List[int]) -> dict:
    """Train and evaluate one unit, write its files atomically, return its result."""
    from .data import ToyData
    from .evaluate import evaluate
    from .models import get_spec
    from .train import train_seeds
    from .wae import load_embedding

    if "data" not in _CACHE:
        _CACHE["data"] = ToyData("circle", map_seed=p["map_seed"], noise_std=p["noise_std"],
                                 test_size=p["test_points"], test_seed=p["test_seed"], device=p["device"],
                                 dtype=_dtype(p))
    data = _CACHE["data"]
    embedding = None
    if get_spec(model_id).embed == "learned":
        if "f" not in _CACHE:
            f = load_embedding(load_tensors(os.path.join(out, "embedding.safetensors")))
            _CACHE["f"] = f.to(p["device"], _dtype(p))
        embedding = _CACHE["f"]
    trained = train_seeds(
        model_id, seeds, data, steps=p["steps"], batch_size=p["batch_size"], lr=p["lr"], width=p["width"],
        embedding=embedding, device=p["device"], dtype=_dtype(p),
        log_every=max(1, p["steps"] // 50), progress=lambda _s: _CACHE["tick"](),
    )
    ev = evaluate(trained, data.x_test[: p["test_points"]], iwae_k=p["iwae_k"], iwae_points=p["iwae_points"])
    model = trained.model
    with torch.no_grad():  # reconstructions of 4 held-out points by the unit's first seed
        x4 = data.x_test[:4].to(p["device"], _dtype(p)).unsqueeze(0).expand(model.S, -1, -1)
        post = model.encode(x4)
        recon = model.decoder(model.decoder_input(model.posterior_mean(post), post["theta"]))[0]
    res = {
        "model": model_id,
        "seeds": seeds,
        "elbo": ev["elbo"].tolist(),
        "iwae": ev["iwae"].tolist(),
        "active_units": ev["active_units"].tolist(),
        "sigma": ev["sigma"].tolist(),
        "curve_steps": trained.curves["step"].tolist(),
        "curve_elbo": trained.curves["elbo"].T.tolist(),  # (S, L)
        "recon_first_seed": recon.cpu().double().tolist(),
        "train_seconds": trained.train_seconds,
    }
    name = os.path.join(out, _unit_name(model_id, seeds))
    save_tensors(name + ".safetensors", model.state_dict())
    atomic_write_json(name + ".json", res)  # last: marks the unit done
    return res


def _run_units(out: str, p: dict, todo: List[tuple], workers: int, prog: Progress, prefix: str) -> None:
    if workers <= 1:
        _CACHE["tick"] = lambda: prog.update(1)
        for model_id, seeds in todo:
            prog.set_description(f"{prefix}{model_id} seeds {seeds[0]}-{seeds[-1]}")
            _do_unit(out, p, model_id, seeds)
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    seen = 0
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(counter,)) as pool:
        futs = {pool.submit(_do_unit, out, p, m, s): (m, s) for m, s in todo}
        pending = set(futs)
        prog.set_description(f"{prefix}{len(todo)} units on {workers} worker processes")
        while pending:
            done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            now = counter.value
            prog.update(now - seen)
            seen = now
            for fut in done:
                m, s = futs[fut]
                fut.result()  # re-raise a worker's error
                prog.log(f"{prefix}{m} seeds {s[0]}-{s[-1]} done")


def run(args) -> int:
    p = build_protocol(args)
    validate(p)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1) if p["device"] == "cpu" else 1
    if workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {workers}")
    rank, world = dist.init(p["device"])
    if world > 1:
        workers = 1  # torchrun's processes are the parallelism
    out = os.path.abspath(args.out)
    err = None
    if rank == 0:
        try:
            prepare_dir(out, p)
        except UsageError as e:
            err = str(e)
    err = dist.broadcast(err)
    if err is not None:
        raise UsageError(err)
    if p["device"] == "cpu":
        # One thread per process, always: results then do not depend on --workers or world size.
        torch.set_num_threads(1)

    from .models import get_spec

    t0 = time.time()
    units = _units(p)
    mine = units[rank::world]
    needs_f = any(get_spec(m).embed == "learned" for m in p["models"])
    todo = [u for u in mine if not os.path.exists(os.path.join(out, _unit_name(*u) + ".json"))]
    f_todo = needs_f and rank == 0 and not os.path.exists(os.path.join(out, "embedding.safetensors"))
    total = (p["wae_steps"] * p["wae_restarts"] if f_todo else 0) + p["steps"] * len(todo)
    prog = Progress(total, "table1", enabled=not args.no_progress)
    prefix = f"[rank {rank}/{world}] " if world > 1 else ""
    if len(todo) < len(mine):
        prog.log(f"{prefix}resuming: {len(mine) - len(todo)} of {len(mine)} units done earlier")
    if needs_f:
        _embedding_state(out, p, rank, prog)
    _run_units(out, p, todo, workers, prog, prefix)
    prog.close()

    dist.barrier()
    mine_results = {_unit_name(m, s): read_json(os.path.join(out, _unit_name(m, s) + ".json")) for m, s in mine}
    merged = {}
    for part in dist.gather(mine_results):
        merged.update(part)
    if rank == 0:
        write_outputs(out, p, [merged[_unit_name(m, s)] for m, s in units], time.time() - t0)
        if not args.no_progress:
            print(open(os.path.join(out, "table.md")).read())
    dist.barrier()
    dist.shutdown()
    return 0


def write_outputs(out: str, p: dict, unit_results: List[dict], wall_s: float) -> None:
    from .models import get_spec

    rows, curves, recon = [], {}, {}
    for m in p["models"]:
        parts = [u for u in unit_results if u["model"] == m]
        per_seed = {k: [v for u in parts for v in u[k]] for k in ("elbo", "iwae", "active_units", "sigma")}
        per_seed["seed"] = [s for u in parts for s in u["seeds"]]
        rows.append(report.summarize(m, get_spec(m).description, per_seed))
        curves[m] = np.array([c for u in parts for c in u["curve_elbo"]])
        recon[m] = np.array(parts[0]["recon_first_seed"])
    env = environment(p["device"])
    env["wall_seconds_this_invocation"] = wall_s
    atomic_write_json(os.path.join(out, "results.json"), {"protocol": p, "environment": env, "rows": rows})
    atomic_write_text(os.path.join(out, "results.csv"), report.results_csv(rows))
    atomic_write_text(os.path.join(out, "table.md"), report.table_md(rows, p))
    plots.elbo_per_model(rows, os.path.join(out, "elbo_per_model.png"))
    steps = np.array(unit_results[0]["curve_steps"])
    plots.training_curves(curves, steps, os.path.join(out, "training_curves.png"))
    from .data import ToyData

    data = ToyData("circle", map_seed=p["map_seed"], noise_std=p["noise_std"], test_size=p["test_points"],
                   test_seed=p["test_seed"])
    plots.reconstructions(data.x_test[:4].double().numpy(), recon, os.path.join(out, "reconstructions.png"))
    emb = os.path.join(out, "embedding.safetensors")
    if os.path.exists(emb):
        from .wae import load_embedding

        f = load_embedding(load_tensors(emb)).double()
        t = torch.linspace(0, 1, 501, dtype=torch.float64)[:, None]
        with torch.no_grad():
            plots.embedding(t[:, 0].numpy(), f(t).numpy(), os.path.join(out, "embedding.png"), "learned f (WAE-MMD)")
