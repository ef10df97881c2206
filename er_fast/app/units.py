"""The work of `er-fast table1`: units (a chunk of seeds of one model, trained from scratch as one
stacked batch and evaluated), the learned embedding, and the processes that run them.

Each unit's files are written atomically, checkpoint first and its JSON (result + identity) last,
so a unit is either finished and verifiable or absent. Worker processes run one thread each, ignore
Ctrl-C (the parent decides how to stop) and die with the parent."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import queue
import traceback
from typing import Callable, Dict, List, Optional, Tuple

import torch

from ..util.malloc import huge_pages_for_children, keep_freed_memory
from ..vae import ToyData, evaluate, load_embedding, train_embedding, train_seeds
from ..vae.specs import get_spec
from .files import atomic_write_json, load_tensors, read_json, save_tensors
from .interrupt import Interrupts, die_with_parent
from .progress import Progress
from .protocol import Protocol
from .rundir import RunDir

Unit = Tuple[str, List[int]]


def unit_identity(p: Protocol, model_id: str, embedding_sha256: Optional[str]) -> dict:
    """What a finished unit must carry to be reused: the settings hash, and for learned-f models
    the checksum of the embedding it was trained with."""
    ident = {"settings_sha256": p.settings_sha256()}
    if get_spec(model_id).embed == "learned":
        ident["embedding_sha256"] = embedding_sha256
    return ident


class UnitRunner:
    """Trains and evaluates units of one run in this process; builds the data set and loads the
    learned f once for all the units it runs. ``tick(k)`` is called with k seed-steps done."""

    def __init__(self, rundir: RunDir, protocol: Protocol, tick: Callable[[int], None]):
        self.rundir, self.p, self.tick = rundir, protocol, tick
        self.dtype = protocol.train_config().torch_dtype
        self._data: Optional[ToyData] = None
        self._f = None

    @property
    def data(self) -> ToyData:
        if self._data is None:
            self._data = self.p.data()
        return self._data

    def embedding(self, sha256: str):
        if self._f is None:
            self._f = load_embedding(load_tensors(self.rundir.embedding, sha256=sha256)).to(self.p.device, self.dtype)
        return self._f

    def learn_embedding(self) -> str:
        """Train f (WAE-MMD), write it and its record; returns its sha256."""
        p = self.p
        f, quality = train_embedding(p.wae_config(), device=p.device, dtype=self.dtype,
                                     progress=lambda _s: self.tick(1))
        atomic_write_json(self.rundir.path("embedding_quality.json"), quality)
        sha = save_tensors(self.rundir.embedding, f.state_dict())
        self.rundir.write_embedding_record(p.wae_sha256(), sha)  # last: marks f done
        return sha

    def run(self, model_id: str, seeds: List[int], embedding_sha256: Optional[str]) -> dict:
        """Train and evaluate one unit, write its files (checkpoint, then its JSON), return its result."""
        p, data = self.p, self.data
        learned = get_spec(model_id).embed == "learned"
        embedding = self.embedding(embedding_sha256) if learned else None
        S = len(seeds)
        trained = train_seeds(model_id, seeds, data, p.train_config(), embedding=embedding, device=p.device,
                              progress=lambda _s: self.tick(S))
        ev = evaluate(trained, data.x_test[: p.eval_points], p.eval_config())
        model = trained.model
        with torch.no_grad():  # reconstructions of 4 held-out points by the unit's first seed
            x4 = data.x_test[:4].to(p.device, self.dtype).unsqueeze(0).expand(model.S, -1, -1)
            post = model.encode(x4)
            recon = model.decoder(model.decoder_input(model.posterior_mean(post), post["theta"]))[0]
        result = {
            "elbo": ev["elbo_iwae_points"].tolist(),  # ELBO and IWAE on the same points and samples
            "iwae": ev["iwae"].tolist(),
            "active_units": ev["active_units"].tolist(),
            "sigma": ev["sigma"].tolist(),
            "curve_steps": trained.curves["step"].tolist(),
            "curve_elbo": trained.curves["elbo"].T.tolist(),  # (S, L)
            "recon_first_seed": recon.cpu().double().tolist(),
            "train_seconds": trained.train_seconds,
        }
        sha = save_tensors(self.rundir.unit(model_id, seeds) + ".safetensors", model.state_dict())
        self.rundir.write_unit(model_id, seeds, unit_identity(p, model_id, embedding_sha256), sha, result)
        return result


# ------------------------------------------------------------------------------------------------
# the work of one invocation: jobs (one per protocol), run in this process or in one pool
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Job:
    """One protocol's share of the work: its run directory, the units left to train, whether f
    must be learned first (else ``embedding_sha`` names the f on disk, or None: no learned-f rows)."""
    rundir: RunDir
    protocol: Protocol
    todo: List[Unit]
    need_embedding: bool
    embedding_sha: Optional[str]
    prefix: str = ""

    @property
    def wae_sha(self) -> str:
        return self.protocol.wae_sha256()

    def split(self) -> Tuple[List[Unit], List[Unit]]:
        """(units that need no f, units that need f)."""
        learned = [u for u in self.todo if get_spec(u[0]).embed == "learned"]
        return [u for u in self.todo if get_spec(u[0]).embed != "learned"], learned


def copy_embedding(src: RunDir, dst: RunDir, wae_sha: str, sha: str) -> str:
    """Give dst the f that src holds (same WAE settings: the same f, bit for bit, whichever
    protocol's directory trained it) with its record; returns its sha256."""
    out = save_tensors(dst.embedding, load_tensors(src.embedding, sha256=sha))
    try:
        atomic_write_json(dst.path("embedding_quality.json"), read_json(src.path("embedding_quality.json")))
    except (OSError, ValueError):
        pass  # the record of how f was trained is informative only
    dst.write_embedding_record(wae_sha, out)  # last: marks f done
    return out


def share_embeddings(jobs: List[Job]) -> List[Job]:
    """Jobs that need f while another job has the same WAE settings and its f on disk take a copy
    (the default run's two protocols share one f: it is learned once). Returns the jobs served."""
    have = {j.wae_sha: j for j in jobs if j.embedding_sha is not None}
    served = [j for j in jobs if j.need_embedding and j.wae_sha in have]
    for j in served:
        src = have[j.wae_sha]
        j.embedding_sha = copy_embedding(src.rundir, j.rundir, j.wae_sha, src.embedding_sha)
        j.need_embedding = False
    return served


def _worker_main(tasks, results, counter, jobs: List[Tuple[str, dict]]) -> None:
    die_with_parent()
    torch.set_num_threads(1)
    keep_freed_memory()

    def tick(k: int) -> None:
        with counter.get_lock():
            counter.value += k

    runners: Dict[int, UnitRunner] = {}

    def runner(i: int) -> UnitRunner:
        if i not in runners:
            root, protocol = jobs[i]
            runners[i] = UnitRunner(RunDir(root), Protocol.from_dict(protocol), tick)
        return runners[i]

    while True:
        task = tasks.get()
        if task is None:
            return
        kind, payload = task
        try:
            if kind == "embedding":
                results.put(("embedding", payload, runner(payload).learn_embedding()))
            else:
                i, model_id, seeds, emb_sha = payload
                runner(i).run(model_id, seeds, emb_sha)
                results.put(("unit", (i, model_id, seeds), None))
        except BaseException:  # noqa: BLE001 - reported to the parent, which stops the run
            results.put(("error", payload, traceback.format_exc()))
            return


class WorkerPool:
    """``n`` spawned worker processes fed through a queue; the parent can kill them at any time.
    ``jobs``: (run directory, protocol settings) per job; tasks name a job by its index."""

    def __init__(self, n: int, jobs: List[Tuple[str, dict]]):
        ctx = mp.get_context("spawn")
        self.tasks, self.results, self.counter = ctx.Queue(), ctx.Queue(), ctx.Value("q", 0)
        os.environ["ER_FAST_PARENT_PID"] = str(os.getpid())
        huge_pages_for_children()  # the workers start with it (this process cannot turn it on)
        self.procs = [ctx.Process(target=_worker_main, daemon=True,
                                  args=(self.tasks, self.results, self.counter, jobs))
                      for _ in range(n)]
        for pr in self.procs:
            pr.start()

    def submit(self, kind: str, payload) -> None:
        self.tasks.put((kind, payload))

    def get(self, timeout: float):
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            return None

    def dead_worker(self) -> Optional[int]:
        for pr in self.procs:
            if pr.exitcode is not None:
                return pr.exitcode
        return None

    def close(self, kill: bool = False) -> None:
        if not kill:
            for _ in self.procs:
                self.tasks.put(None)
        for pr in self.procs:
            if kill:
                pr.kill()
            pr.join(timeout=10)
            if pr.is_alive():
                pr.kill()
                pr.join()


def wae_seed_steps(jobs: List[Job]) -> int:
    """The WAE steps run_jobs will take: one f per distinct WAE setting that some job must learn."""
    need = {j.wae_sha: j.protocol.wae_steps * j.protocol.wae_restarts for j in jobs if j.need_embedding}
    return sum(need.values())


def run_jobs(jobs: List[Job], workers: int, prog: Progress, stop: Interrupts) -> None:
    """Learn each f the jobs need (once per distinct WAE setting; the jobs sharing it get a copy)
    and run every job's units, in this process (workers = 1) or in ONE pool for all the jobs, so
    that no worker waits at the boundary between two protocols. Units that need f start once it
    exists; the others start at once, beside the WAE. Each job's ``embedding_sha`` is set on
    return. Raises Stopped when a stop is requested (finished units stay on disk)."""
    share_embeddings(jobs)
    if workers <= 1:
        def tick(k):
            prog.update(k)
            stop.check()

        for job in jobs:
            runner = UnitRunner(job.rundir, job.protocol, tick)
            if job.need_embedding:
                prog.set_description(f"{job.prefix}WAE embedding")
                job.embedding_sha, job.need_embedding = runner.learn_embedding(), False
                share_embeddings(jobs)  # the later jobs with these WAE settings
            plain, learned = job.split()
            for model_id, seeds in plain + learned:
                stop.check()
                prog.set_description(f"{job.prefix}{model_id} seeds {seeds[0]}-{seeds[-1]}")
                runner.run(model_id, seeds, job.embedding_sha)
        return

    pool = WorkerPool(workers, [(j.rundir.root, j.protocol.to_dict()) for j in jobs])
    pending: Dict[str, object] = {}

    def submit_units(i: int, units: List[Unit]) -> None:
        for m, seeds in units:
            pool.submit("unit", (i, m, seeds, jobs[i].embedding_sha))
            pending[json.dumps([i, m, seeds])] = True

    try:
        learning = set()  # WAE settings whose f one job's directory is learning
        held: Dict[int, List[Unit]] = {}  # learned-f units waiting for their f
        for i, job in enumerate(jobs):
            if job.need_embedding and job.wae_sha not in learning:
                learning.add(job.wae_sha)
                pool.submit("embedding", i)
                pending[f"embedding {i}"] = True
        for i, job in enumerate(jobs):
            plain, learned = job.split()
            submit_units(i, plain)
            if job.need_embedding:
                held[i] = learned
            else:
                submit_units(i, learned)
        n_units = sum(len(j.todo) for j in jobs)
        prog.set_description(f"{n_units} units on {workers} worker processes")
        seen = 0
        while pending:
            msg = pool.get(timeout=0.25)
            now = pool.counter.value
            prog.update(now - seen)
            seen = now
            stop.check()
            if msg is None:
                code = pool.dead_worker()
                if code is not None:
                    raise RuntimeError(f"a worker process died (exit code {code})")
                continue
            kind, key, value = msg
            if kind == "error":
                raise RuntimeError(f"a worker failed on {key}:\n{value}")
            if kind == "embedding":
                del pending[f"embedding {key}"]
                src = jobs[key]
                src.embedding_sha, src.need_embedding = value, False
                prog.log(f"{src.prefix}embedding: trained")
                src_name = src.prefix.strip() or f"job {key}"
                for job in share_embeddings(jobs):
                    prog.log(f"{job.prefix}embedding: the same WAE settings as {src_name}, copied")
                for i in [i for i in held if not jobs[i].need_embedding]:
                    submit_units(i, held.pop(i))
            else:
                i, m, seeds = key
                del pending[json.dumps([i, m, seeds])]
                prog.log(f"{jobs[i].prefix}{m} seeds {seeds[0]}-{seeds[-1]} done")
        pool.close()
    except BaseException:
        pool.close(kill=True)  # abandon running units: their files are written atomically or not at all
        raise
