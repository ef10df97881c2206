"""torch's intra-op thread count, set for the duration of a call."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

from .validation import positive_int


def check_threads(threads) -> Optional[int]:
    return None if threads is None else positive_int("threads", threads)


@contextlib.contextmanager
def intra_op_threads(n: Optional[int]):
    """Temporarily set torch's intra-op thread count (restored on exit); None leaves it alone.

    Why it matters here: on a loaded machine every OpenMP parallel region waits for a descheduled
    worker, so small ops run many times slower with 2 threads than with 1 (measured: a 1000-step
    WAE run, 5 s with 1 thread, 90 s with 2 under a load average of 4 on 2 cores)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
