"""The one timing helper outside pytest-benchmark (er-fast bench, the GPU suite, the sweep and
floor scripts): torch.utils.benchmark's adaptive repeats, CUDA synchronised, one warm-up call
(torch.compile / KeOps compilation) outside the timing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch.utils import benchmark as tb


@dataclass(frozen=True)
class Timing:
    median: float  # seconds per call
    iqr: float
    calls: int


def time_call(fn: Callable[[], object], min_run_time: float = 0.5) -> Timing:
    fn()  # warm-up: compilation and first-touch allocations stay out of the timing
    m = tb.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time)
    return Timing(median=m.median, iqr=m.iqr, calls=len(m.times) * m.number_per_run)
