"""The random streams of S seeds, counter-based (Philox4x32-10, er_fast.ops.random).

Seed s owns four streams, ``init`` (parameter initialisation), ``data`` (its training batches),
``noise`` (its reparameterisation noise) and ``eval`` (evaluation). Every draw fills (S, ...) in
ONE op whose slice s is a function of (seed s, stream, the stream's counter) only, so:
  * a training step dispatches the same ops for 1 seed or 10,000 (no Python loop over seeds);
  * seed s among S others draws exactly what seed s alone draws;
  * the whole random state is one int64 counter per stream, kept on the seeds' device (advanced
    in place, so a CUDA graph can capture it) and saved in checkpoints (``state_dict``).
Because the data stream of seed s does not depend on the model, every model trained with seed s
sees the same batches (common random numbers across the rows of the table).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from ..ops.random import philox_normal, philox_uniform
from ..util.validation import fail, one_of, seed_list

STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3}
_BETA_SALT = 0x42455441 << 32  # "BETA": beta_rsample's Philox keys apart from philox_uniform's


class Streams:
    """Counter-based random streams of ``seeds`` on ``device``."""

    def __init__(self, seeds: Sequence[int], device="cpu", counters: Optional[Dict[str, int]] = None):
        seeds = seed_list("seeds", seeds)
        self.device = torch.device(device)
        self.seeds = torch.tensor(seeds, dtype=torch.int64, device=self.device)
        self.counters = {k: torch.zeros((), dtype=torch.int64, device=self.device) for k in STREAMS}
        if counters is not None:
            self.load_state_dict(counters)

    @property
    def S(self) -> int:
        return self.seeds.shape[0]

    def _next(self, stream: str) -> torch.Tensor:
        one_of("stream", stream, STREAMS)
        return self.counters[stream]

    def uniform(self, stream: str, size: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(S, *size) uniforms on (0, 1) from the stream's next counter value."""
        c = self._next(stream)
        out = philox_uniform(self.seeds, c, STREAMS[stream], size, dtype)
        c.add_(1)
        return out

    def normal(self, stream: str, size: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(S, *size) standard normals from the stream's next counter value."""
        c = self._next(stream)
        out = philox_normal(self.seeds, c, STREAMS[stream], size, dtype)
        c.add_(1)
        return out

    def beta_key(self, stream: str) -> torch.Tensor:
        """(S, 2) int64 keys for er_fast.beta_rsample (one stream per slice) from the stream's next
        counter value: key 0 the salted seed, key 1 the stream id and counter."""
        c = self._next(stream)
        k1 = (c + (STREAMS[stream] << 48)).expand(self.S)
        key = torch.stack((self.seeds ^ _BETA_SALT, k1), dim=1)
        c.add_(1)
        return key

    def state_dict(self) -> Dict[str, int]:
        """The counters (reads them on the host: for checkpoints, not inside a step)."""
        return {k: int(c) for k, c in self.counters.items()}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        for k, v in state.items():
            one_of("stream", k, STREAMS)
            if not isinstance(v, int) or v < 0:
                fail(f"counter of stream {k!r}", "be a non-negative integer", v)
            self.counters[k].fill_(v)

    def select(self, index: Sequence[int]) -> "Streams":
        """The streams of a subset of the seeds (same counters)."""
        out = Streams([int(s) for s in self.seeds[list(index)].tolist()], self.device)
        out.load_state_dict(self.state_dict())
        return out
