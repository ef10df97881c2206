"""Stopping a run cleanly: the first SIGINT (Ctrl-C) or SIGTERM asks the run to stop — no new
unit starts, running units are abandoned within seconds, finished units are kept and a partial
table is written —; a second one stops the process at once."""
from __future__ import annotations

import os
import signal
import sys


class Stopped(Exception):
    """Raised inside the run when a stop was requested."""


class Interrupts:
    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)  # 130 for Ctrl-C, 143 for SIGTERM

    def install(self) -> "Interrupts":
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            print("er-fast: stopped at once", file=sys.stderr, flush=True)
            os._exit(self.exit_code)  # worker processes die with this one (PR_SET_PDEATHSIG)
        self.signum = signum
        print(f"\ner-fast: {signal.Signals(signum).name} received: stopping (finished units are kept); "
              "press Ctrl-C again to stop at once", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.requested:
            raise Stopped()


def die_with_parent() -> None:
    """In a worker process: be killed when the parent dies, however it dies (Linux
    PR_SET_PDEATHSIG; elsewhere the pool's daemon flag covers normal exits), and leave SIGINT to
    the parent, which decides how the run stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.environ.get("ER_FAST_PARENT_PID")
    if parent is not None and os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)
