"""The one timing helper outside pytest-benchmark (er-fast bench, the GPU suite, the sweep and
floor scripts): torch.utils.benchmark's adaptive repeats, CUDA synchronised, one warm-up call
(torch.compile / KeOps compilation) outside the timing.

Timer runs with the caller's torch thread count (torch.utils.benchmark's own default is ONE
thread). ``cpu_time=True`` reads the process's CPU time instead of the wall clock: with one
thread, what an idle core would take whatever else shares the machine (no CUDA sync then)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils import benchmark as tb


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per call
    iqr: float
    min: float  # the fastest block, per call
    calls: int


def time_call(fn: Callable[[], object], min_run_time: float = 0.5, *, cpu_time: bool = False) -> Timing:
    fn()  # warm-up: compilation and first-touch allocations stay out of the timing
    kw = {"timer": time.process_time} if cpu_time else {}
    timer = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), **kw)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return Timing(median=m.median, iqr=m.iqr, min=min(m.times), calls=len(m.times) * m.number_per_run)
