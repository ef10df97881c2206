"""Keep freed memory in the process instead of returning it to the OS after every step."""
from __future__ import annotations

import ctypes
import sys


def keep_freed_memory() -> bool:
    """glibc only: raise the mmap and trim thresholds, so the training step's tensors (a few MB,
    allocated and freed every step) are reused from the heap instead of being mapped and unmapped
    each time. Measured (er-proj-1d, 50 seeds, width 64, 200 steps, one thread): 232 000 page
    faults and 0.30 s of system time (8 % of the step) without, none with. Returns whether it
    applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok &= libc.mallopt(M_TOP_PAD, 256 << 20) == 1
    return bool(ok)
