"""The work of `er-fast table1`: units (a chunk of seeds of one model, trained from scratch as one
stacked batch and evaluated), the learned embedding, and the processes that run them.

Each unit's files are written atomically, checkpoint first and its JSON (result + identity) last,
so a unit is either finished and verifiable or absent. Worker processes run one thread each, ignore
Ctrl-C (the parent decides how to stop) and die with the parent."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import traceback
from typing import Callable, Dict, List, Optional, Tuple

import torch

from ..util.malloc import keep_freed_memory
from ..vae import ToyData, evaluate, load_embedding, train_embedding, train_seeds
from ..vae.specs import get_spec
from .files import load_tensors, save_tensors
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
        from .files import atomic_write_json

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
# worker processes
# ------------------------------------------------------------------------------------------------
def _worker_main(tasks, results, counter, root: str, protocol: dict) -> None:
    die_with_parent()
    torch.set_num_threads(1)
    keep_freed_memory()

    def tick(k: int) -> None:
        with counter.get_lock():
            counter.value += k

    runner = UnitRunner(RunDir(root), Protocol.from_dict(protocol), tick)
    while True:
        task = tasks.get()
        if task is None:
            return
        kind, payload = task
        try:
            if kind == "embedding":
                results.put(("embedding", None, runner.learn_embedding()))
            else:
                model_id, seeds, emb_sha = payload
                runner.run(model_id, seeds, emb_sha)
                results.put(("unit", (model_id, seeds), None))
        except BaseException:  # noqa: BLE001 - reported to the parent, which stops the run
            results.put(("error", payload, traceback.format_exc()))
            return


class WorkerPool:
    """``n`` spawned worker processes fed through a queue; the parent can kill them at any time."""

    def __init__(self, n: int, rundir: RunDir, protocol: Protocol):
        ctx = mp.get_context("spawn")
        self.tasks, self.results, self.counter = ctx.Queue(), ctx.Queue(), ctx.Value("q", 0)
        os.environ["ER_FAST_PARENT_PID"] = str(os.getpid())
        self.procs = [ctx.Process(target=_worker_main, daemon=True,
                                  args=(self.tasks, self.results, self.counter, rundir.root, protocol.to_dict()))
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


def run_work(rundir: RunDir, p: Protocol, todo: List[Unit], need_embedding: bool, embedding_sha: Optional[str],
             workers: int, prog: Progress, stop: Interrupts, prefix: str = "") -> Optional[str]:
    """Learn f (if ``need_embedding``) and run the ``todo`` units, in this process (workers = 1) or
    in a pool. Units that need f start once it exists; the others start at once, beside the WAE.
    Raises Stopped when a stop is requested (finished units stay on disk). Returns f's sha256."""
    learned = [u for u in todo if get_spec(u[0]).embed == "learned"]
    plain = [u for u in todo if get_spec(u[0]).embed != "learned"]
    if workers <= 1:
        def tick(k):
            prog.update(k)
            stop.check()

        runner = UnitRunner(rundir, p, tick)
        if need_embedding:
            prog.set_description(f"{prefix}WAE embedding")
            embedding_sha = runner.learn_embedding()
        for model_id, seeds in plain + learned:
            stop.check()
            prog.set_description(f"{prefix}{model_id} seeds {seeds[0]}-{seeds[-1]}")
            runner.run(model_id, seeds, embedding_sha)
        return embedding_sha

    pool = WorkerPool(workers, rundir, p)
    pending: Dict[str, object] = {}
    try:
        if need_embedding:
            pool.submit("embedding", None)
            pending["embedding"] = True
        else:
            plain = plain + learned
            learned = []
        for u in plain:
            pool.submit("unit", (u[0], u[1], embedding_sha))
            pending[json.dumps(u)] = u
        prog.set_description(f"{prefix}{len(todo)} units on {workers} worker processes")
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
                embedding_sha = value
                del pending["embedding"]
                prog.log(f"{prefix}embedding: trained")
                for u in learned:
                    pool.submit("unit", (u[0], u[1], embedding_sha))
                    pending[json.dumps(u)] = u
            else:
                del pending[json.dumps([key[0], key[1]])]
                prog.log(f"{prefix}{key[0]} seeds {key[1][0]}-{key[1][-1]} done")
        pool.close()
    except BaseException:
        pool.close(kill=True)  # abandon running units: their files are written atomically or not at all
        raise
    return embedding_sha
