"""Memory settings of the training processes (er_fast.util.malloc)."""
import os
import subprocess
import sys

import pytest

from er_fast.app.units import WorkerPool
from er_fast.util.malloc import HUGE_PAGES_TUNABLE, huge_pages_for_children

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux only")


@linux
@pytest.mark.parametrize("before, after, asks", [
    (None, HUGE_PAGES_TUNABLE, True),
    ("", HUGE_PAGES_TUNABLE, True),
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:" + HUGE_PAGES_TUNABLE, True),
    (HUGE_PAGES_TUNABLE, HUGE_PAGES_TUNABLE, True),
    ("glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0", False),  # the user's choice is kept
    ("glibc.malloc.hugetlb=2:glibc.malloc.arena_max=2", "glibc.malloc.hugetlb=2:glibc.malloc.arena_max=2", False),
])
def test_tunable_added_once_and_user_setting_kept(before, after, asks):
    env = {} if before is None else {"GLIBC_TUNABLES": before}
    assert huge_pages_for_children(env) is asks
    assert env["GLIBC_TUNABLES"] == after
    assert huge_pages_for_children(env) is asks  # idempotent
    assert env["GLIBC_TUNABLES"] == after


@linux
def test_worker_processes_start_with_huge_pages(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setenv("ER_FAST_PARENT_PID", "")  # restored after the test, like GLIBC_TUNABLES
    pool = WorkerPool(1, [])
    try:
        with open(f"/proc/{pool.procs[0].pid}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    finally:
        pool.close()
    assert env[b"GLIBC_TUNABLES"] == HUGE_PAGES_TUNABLE.encode()


def _thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "never"


@linux
@pytest.mark.skipif(_thp_mode() == "never", reason="transparent huge pages are off in this kernel")
def test_a_process_started_with_the_tunable_gets_huge_pages():
    """The mechanism itself: a process started with the tunable, allocating as the training step
    does (freed memory kept on the heap), holds huge pages; one started without does not (under
    the kernel's 'madvise' mode) — so the test fails if glibc ignored the setting."""
    code = ("from er_fast.util.malloc import keep_freed_memory; keep_freed_memory(); "
            "b = bytearray(64 << 20); "
            "print(next(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('AnonHugePages')))")

    def huge_kb(with_tunable: bool) -> int:
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        if with_tunable:
            huge_pages_for_children(env)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    assert huge_kb(True) >= 32 << 10  # at least half of the 64 MB
    if _thp_mode() == "madvise":
        assert huge_kb(False) < 32 << 10
