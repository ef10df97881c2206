"""Progress reporting: a tqdm bar on a terminal, plain timestamped log lines otherwise. Work is
counted in seed-steps (one training step of one seed; a WAE step counts as one), so the rate
reads in seed-steps/s whatever the number of seeds trained together."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, desc: str, enabled: bool = True, log_every_s: float = 30.0):
        self.total, self.n, self.desc = total, 0, desc
        self.enabled = enabled
        self.t0 = self._last = time.time()
        self.log_every_s = log_every_s
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="seed-step", unit_scale=True, dynamic_ncols=True,
                             smoothing=0.05)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc)
        elif self.enabled:
            self.log(f"{desc} started")

    def update(self, k: int = 1) -> None:
        self.n += k
        if self._bar is not None:
            self._bar.update(k)
        elif self.enabled and time.time() - self._last >= self.log_every_s:
            self._last = time.time()
            rate = self.n / max(time.time() - self.t0, 1e-9)
            self.log(f"{self.desc}: {self.n}/{self.total} seed-steps, {rate:.0f} seed-steps/s, ETA {self._eta()}")

    def _eta(self) -> str:
        el = time.time() - self.t0
        if self.n == 0:
            return "?"
        s = int(el * (self.total - self.n) / self.n)
        return f"{s // 60}m{s % 60:02d}s"

    def log(self, msg: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
