"""`er-fast table1`: the paper's Table 1 over many seeds, for one or more protocols; resumable,
extendable, stoppable, shardable with torchrun.

DIR/<protocol>/ is one run directory per protocol (rundir.py); DIR/table.md and DIR/summary.json
put the protocols side by side. Work is split into units (model × chunk of seeds), each trained
from scratch and written atomically; a run killed at any moment and started again skips every
finished unit that passes verification. A seed's numbers do not depend on which seeds share its
unit, so the results equal an uninterrupted run's, and a sharded run's.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import List, Optional

import torch

from ..util.malloc import keep_freed_memory
from . import dist
from .files import load_tensors, read_json, save_tensors
from .interrupt import Interrupts, Stopped
from .outputs import environment, write_outputs, write_summary
from .progress import Progress
from .protocol import EXTENDABLE, Protocol
from .rundir import RunDir, UsageError
from .plan import auto_seed_chunk
from .units import Job, run_jobs, share_embeddings, unit_identity, wae_seed_steps


def _check_device(p: Protocol) -> None:
    if p.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA GPU is visible")


def _verify_units(rd: RunDir, p: Protocol, units, emb_sha: Optional[str], prog: Progress, prefix: str):
    """Split ``units`` into (results of verified finished units, units to (re)train)."""
    done, todo = {}, []
    for m, s in units:
        res, why = rd.read_unit(m, s, unit_identity(p, m, emb_sha))
        if res is not None:
            done[RunDir.unit_name(m, s)] = res
            continue
        if why != "missing":
            prog.log(f"{prefix}unit {RunDir.unit_name(m, s)}: {why}, retraining")
            rd.clear_unit(m, s)
        todo.append((m, s))
    return done, todo


def _embedding(rd: RunDir, p: Protocol, rank: int, prog: Progress, prefix: str) -> Optional[str]:
    """f's sha256 if a valid f is on disk (rank 0 decides; other ranks get its tensors), else None."""
    sha = None
    if rank == 0:
        sha, why = rd.embedding_sha256(p.wae_sha256())
        if sha is None and why != "missing":
            prog.log(f"{prefix}embedding: {why}, retraining")
    return sha


def _share_embedding(rd: RunDir, p: Protocol, rank: int, sha: Optional[str]) -> Optional[str]:
    """Under torchrun: rank 0's f to every rank (no shared file system needed)."""
    state = load_tensors(rd.embedding, sha256=sha) if rank == 0 else None
    state = dist.broadcast(state)
    sha = dist.broadcast(sha)
    if rank != 0:
        have, _ = rd.embedding_sha256(p.wae_sha256())
        if have != sha:
            rd.write_embedding_record(p.wae_sha256(), save_tensors(rd.embedding, state))
    return sha


def _resolve_chunk(top: RunDir, p: Protocol, chunk_given: bool, world: int) -> Protocol:
    """Without --seed-chunk: the chunk pinned by an earlier invocation, else the automatic one."""
    if chunk_given:
        return p
    pinned = RunDir(top.path(p.name)).protocol
    try:
        chunk = read_json(pinned)["settings"]["chunk"]
    except (OSError, ValueError, KeyError, TypeError):
        chunk = auto_seed_chunk(p, world)
    return dataclasses.replace(p, chunk=chunk) if isinstance(chunk, int) and chunk > 0 else p


def run(protocols: List[Protocol], out: str, workers: Optional[int], show_progress: bool = True,
        chunk_given: bool = True) -> int:
    for p in protocols:
        _check_device(p)
    if workers is None:
        workers = (os.cpu_count() or 1) if protocols[0].device == "cpu" else 1
    if workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {workers}")
    top = RunDir(out)
    rank, world = dist.init(protocols[0].device)
    protocols = [_resolve_chunk(top, p, chunk_given, world) for p in protocols]
    if world > 1:
        workers = 1  # torchrun's processes are the parallelism
    err = None
    if rank == 0:
        try:
            top.create(units=False)
            top.lock()
            for p in protocols:
                sub = RunDir(top.path(p.name))
                sub.create()
                sub.pin(p.to_dict(), environment(p.device), EXTENDABLE)
        except (UsageError, OSError) as e:
            err = str(e)
    err = dist.broadcast(err)
    if err is not None:
        raise UsageError(err)
    if protocols[0].device == "cpu":
        # One thread per process, always: results then do not depend on --workers or world size.
        torch.set_num_threads(1)
        keep_freed_memory()

    stop = Interrupts().install()
    t0 = time.time()
    prefix0 = f"[rank {rank}/{world}] " if world > 1 else ""
    finished = {}
    try:
        jobs = []
        prog = Progress(0, "table1", enabled=show_progress)
        for p in protocols:
            rd = RunDir(top.path(p.name))
            prefix = f"{prefix0}[{p.name}] " if len(protocols) > 1 else prefix0
            units = p.units()
            mine = units[rank::world]
            emb_sha = _embedding(rd, p, rank, prog, prefix) if p.needs_embedding else None
            need_f = p.needs_embedding and rank == 0 and emb_sha is None
            if world > 1 and p.needs_embedding:
                if need_f:  # learned (or copied from an earlier protocol's) before the ranks share it
                    job = Job(rd, p, [], True, None, prefix)
                    share_embeddings(jobs + [job])
                    if job.need_embedding:
                        run_jobs([job], 1, prog, stop)
                    emb_sha, need_f = job.embedding_sha, False
                emb_sha = _share_embedding(rd, p, rank, emb_sha)
            done, todo = _verify_units(rd, p, mine, emb_sha, prog, prefix)
            finished[p.name] = done
            if len(todo) < len(mine):
                prog.log(f"{prefix}resuming: {len(mine) - len(todo)} of {len(mine)} units done earlier")
            jobs.append(Job(rd, p, todo, need_f, emb_sha, prefix))
        # One pass over every protocol's units (one worker pool): no worker idles between
        # protocols, and protocols with the same WAE settings learn f once.
        share_embeddings(jobs)
        prog.set_total(wae_seed_steps(jobs) + sum(j.protocol.steps * sum(len(s) for _, s in j.todo) for j in jobs))
        run_jobs(jobs, workers, prog, stop)
        prog.close()
        for job in jobs:
            finished[job.protocol.name].update(
                _verify_units(job.rundir, job.protocol, job.todo, job.embedding_sha, prog, job.prefix)[0])
    except Stopped:
        if world > 1:
            print("er-fast table1: stopped; finished units are kept. Resume with the same command.", file=sys.stderr)
            return stop.exit_code
        for p in protocols:  # collect every finished unit, including those of protocols not reached
            rd = RunDir(top.path(p.name))
            emb_sha, _ = rd.embedding_sha256(p.wae_sha256()) if p.needs_embedding else (None, "")
            finished[p.name] = _verify_units(rd, p, p.units(), emb_sha, Progress(0, "", False), "")[0]
        _write(top, protocols, finished, time.time() - t0, partial=True)
        total = sum(len(p.units()) for p in protocols)
        ndone = sum(len(v) for v in finished.values())
        print(f"er-fast table1: stopped with {ndone} of {total} units finished; partial results in {top.root}. "
              f"Resume with the same command: er-fast {' '.join(sys.argv[1:]) if sys.argv[1:] else 'table1 ...'}",
              file=sys.stderr)
        return stop.exit_code
    finally:
        stop.restore()
        if rank == 0:
            top.unlock()

    dist.barrier()
    merged = {}
    for part in dist.gather(finished):
        for name, d in part.items():
            merged.setdefault(name, {}).update(d)
    if rank == 0:
        _write(top, protocols, merged, time.time() - t0, partial=False)
        if show_progress:
            print(open(top.path("table.md")).read())
    dist.barrier()
    dist.shutdown()
    return 0


def _write(top: RunDir, protocols: List[Protocol], finished: dict, wall_s: float, partial: bool) -> None:
    outs = {}
    for p in protocols:
        rd = RunDir(top.path(p.name))
        results = [dict(finished[p.name][RunDir.unit_name(m, s)], model=m, seeds=s) for m, s in p.units()
                   if RunDir.unit_name(m, s) in finished.get(p.name, {})]
        outs[p.name] = write_outputs(rd, p, results, wall_s, partial)
    write_summary(top, protocols, outs, partial)
