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
import time

import torch

from ..vae import train_embedding
from . import dist
from .outputs import environment, write_outputs
from .progress import Progress
from .protocol import Protocol
from .rundir import RunDir, UsageError, atomic_write_json, load_tensors, read_json, save_tensors
from .units import run_units


def learn_embedding(rundir: RunDir, p: Protocol, rank: int, prog: Progress) -> None:
    """Learn f once (rank 0) and leave it in DIR/embedding.safetensors on every rank."""
    state = None
    if rank == 0:
        if os.path.exists(rundir.embedding):
            prog.log(f"embedding: {rundir.embedding} exists, reused")
        else:
            prog.set_description("WAE embedding")
            f, quality = train_embedding(p.wae_config(), device=p.device, dtype=p.train_config().torch_dtype,
                                         progress=lambda _s: prog.update(1))
            atomic_write_json(rundir.path("embedding_quality.json"), quality)
            save_tensors(rundir.embedding, f.state_dict())  # written last: its presence marks it done
            prog.log(f"embedding: trained; quality {json.dumps(quality)}")
        state = load_tensors(rundir.embedding)
    # Other ranks get the tensors (no shared file system needed) and keep their own copy.
    state = dist.broadcast(state)
    if rank != 0 and not os.path.exists(rundir.embedding):
        save_tensors(rundir.embedding, state)


def run(p: Protocol, out: str, workers: int | None, show_progress: bool = True) -> int:
    if p.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA GPU is visible")
    if workers is None:
        workers = (os.cpu_count() or 1) if p.device == "cpu" else 1
    if workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {workers}")
    rank, world = dist.init(p.device)
    if world > 1:
        workers = 1  # torchrun's processes are the parallelism
    rundir = RunDir(out)
    err = None
    if rank == 0:
        try:
            rundir.prepare(p.to_dict(), environment(p.device))
        except UsageError as e:
            err = str(e)
    err = dist.broadcast(err)
    if err is not None:
        raise UsageError(err)
    if p.device == "cpu":
        # One thread per process, always: results then do not depend on --workers or world size.
        torch.set_num_threads(1)

    t0 = time.time()
    units = p.units()
    mine = units[rank::world]
    todo = [u for u in mine if not rundir.unit_done(*u)]
    f_todo = p.needs_embedding and rank == 0 and not os.path.exists(rundir.embedding)
    total = (p.wae_steps * p.wae_restarts if f_todo else 0) + p.steps * len(todo)
    prog = Progress(total, "table1", enabled=show_progress)
    prefix = f"[rank {rank}/{world}] " if world > 1 else ""
    if len(todo) < len(mine):
        prog.log(f"{prefix}resuming: {len(mine) - len(todo)} of {len(mine)} units done earlier")
    if p.needs_embedding:
        learn_embedding(rundir, p, rank, prog)
    run_units(rundir, p, todo, workers, prog, prefix)
    prog.close()

    dist.barrier()
    mine_results = {rundir.unit_name(m, s): read_json(rundir.unit(m, s) + ".json") for m, s in mine}
    merged = {}
    for part in dist.gather(mine_results):
        merged.update(part)
    if rank == 0:
        write_outputs(rundir, p, [merged[rundir.unit_name(m, s)] for m, s in units], time.time() - t0)
        if show_progress:
            print(open(rundir.path("table.md")).read())
    dist.barrier()
    dist.shutdown()
    return 0
