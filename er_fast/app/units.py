"""One unit of `er-fast table1` work: train a chunk of seeds of one model as a stacked batch,
evaluate it, and write its files; and the pool of worker processes that runs units."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from typing import Callable, List, Optional, Tuple

import torch

from ..vae import ToyData, evaluate, load_embedding, train_seeds
from ..vae.specs import get_spec
from .progress import Progress
from .protocol import Protocol
from .rundir import RunDir, atomic_write_json, load_tensors, save_tensors

Unit = Tuple[str, List[int]]


class UnitRunner:
    """Trains and evaluates units of one run in this process; builds the data set and loads the
    learned f once, for all the units it runs."""

    def __init__(self, rundir: RunDir, protocol: Protocol, tick: Callable[[], None]):
        self.rundir, self.p, self.tick = rundir, protocol, tick
        self.dtype = protocol.train_config().torch_dtype
        self._data: Optional[ToyData] = None
        self._f = None

    @property
    def data(self) -> ToyData:
        if self._data is None:
            self._data = ToyData(self.p.data_config(), device=self.p.device, dtype=self.dtype)
        return self._data

    @property
    def embedding(self):
        if self._f is None:
            self._f = load_embedding(load_tensors(self.rundir.embedding)).to(self.p.device, self.dtype)
        return self._f

    def run(self, model_id: str, seeds: List[int]) -> dict:
        """Train and evaluate one unit, write its files atomically (the JSON last), return its result."""
        p, data = self.p, self.data
        embedding = self.embedding if get_spec(model_id).embed == "learned" else None
        trained = train_seeds(model_id, seeds, data, p.train_config(), embedding=embedding, device=p.device,
                              progress=lambda _s: self.tick())
        ev = evaluate(trained, data.x_test[: p.test_points], p.eval_config())
        model = trained.model
        with torch.no_grad():  # reconstructions of 4 held-out points by the unit's first seed
            x4 = data.x_test[:4].to(p.device, self.dtype).unsqueeze(0).expand(model.S, -1, -1)
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
        name = self.rundir.unit(model_id, seeds)
        save_tensors(name + ".safetensors", model.state_dict())
        atomic_write_json(name + ".json", res)  # last: marks the unit done
        return res


# A pool worker's runner (one per process, built by the initializer).
_worker: Optional[UnitRunner] = None


def _worker_init(root: str, protocol: dict, counter) -> None:
    """Pool worker: one thread, and training steps counted in a counter the parent shows."""
    global _worker
    torch.set_num_threads(1)

    def tick():
        with counter.get_lock():
            counter.value += 1

    _worker = UnitRunner(RunDir(root), Protocol.from_dict(protocol), tick)


def _worker_run(model_id: str, seeds: List[int]) -> dict:
    return _worker.run(model_id, seeds)


def run_units(rundir: RunDir, protocol: Protocol, todo: List[Unit], workers: int, prog: Progress, prefix: str) -> None:
    """Run the units in ``todo``: in this process (workers = 1) or in a pool of worker processes."""
    if workers <= 1:
        runner = UnitRunner(rundir, protocol, lambda: prog.update(1))
        for model_id, seeds in todo:
            prog.set_description(f"{prefix}{model_id} seeds {seeds[0]}-{seeds[-1]}")
            runner.run(model_id, seeds)
        return
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    seen = 0
    init_args = (rundir.root, protocol.to_dict(), counter)
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=init_args) as pool:
        futs = {pool.submit(_worker_run, m, s): (m, s) for m, s in todo}
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
