"""Per-seed random streams. Seed s owns four independent streams, ``init`` (parameter
initialisation), ``data`` (its training batches), ``noise`` (its reparameterisation noise) and
``eval`` (evaluation), each seeded from numpy's SeedSequence([seed, stream id])."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..util.validation import one_of

STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3}


def seed_generators(seeds: Sequence[int], stream: str, device="cpu") -> list[torch.Generator]:
    """One torch.Generator per seed for ``stream`` ('init', 'data', 'noise', 'eval')."""
    one_of("stream", stream, STREAMS)
    out = []
    for s in seeds:
        state = np.random.SeedSequence([int(s), STREAMS[stream]]).generate_state(2, np.uint32)
        g = torch.Generator(device=device)
        g.manual_seed((int(state[0]) << 31) ^ int(state[1]))
        out.append(g)
    return out
