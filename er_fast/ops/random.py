"""er_fast.philox_uniform / philox_normal: counter-based random numbers for S seeds in one launch.

``philox_uniform(seeds, counter, stream, size)`` returns a (S, *size) tensor whose slice s is a
pure function of (seeds[s], stream, counter value, element index): the same numbers whatever S,
the other seeds, the thread count, the device (CPU and CUDA agree bit for bit) or the launch
configuration. The random state of a training loop is one int64 counter tensor, advanced by the
caller (in place, even inside a CUDA graph: the kernel reads it from memory). Layout, guarantees
and limits: docs/random.md.

The outputs are random numbers, not functions of differentiable inputs: they never require grad
(there is no autograd formula to register; seeds and counter are integer tensors).
"""
from __future__ import annotations

import numbers
from typing import Sequence, Union

import torch

from ..util.validation import fail, float_dtype, shown
from . import backend
from .reference import random as _ref

SizeArg = Union[int, Sequence[int], torch.Size]


def _args(fn: str, seeds, counter, stream, size, dtype):
    if not isinstance(seeds, torch.Tensor):
        fail(f"{fn}: seeds", "be a torch.Tensor", type(seeds).__name__, TypeError)
    if seeds.dtype != torch.int64:
        fail(f"{fn}: seeds", "be int64", seeds.dtype, TypeError)
    if seeds.dim() != 1:
        fail(f"{fn}: seeds", "have shape (S,)", tuple(seeds.shape))
    if not isinstance(counter, torch.Tensor):
        fail(f"{fn}: counter", "be a torch.Tensor (int64, 0-dim, on the seeds' device)", type(counter).__name__,
             TypeError)
    if counter.dtype != torch.int64:
        fail(f"{fn}: counter", "be int64", counter.dtype, TypeError)
    if counter.dim() != 0:
        fail(f"{fn}: counter", "be a 0-dim tensor", f"shape {tuple(counter.shape)}")
    if counter.device != seeds.device:
        fail(f"{fn}: counter", f"be on the device of seeds ({seeds.device})", counter.device)
    if not isinstance(stream, numbers.Integral) or isinstance(stream, bool) or not 0 <= stream < _ref.STREAM_LIMIT:
        fail(f"{fn}: stream", "be an integer in [0, 65536)", shown(stream))
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size,)
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, torch.Size)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in size):
        fail(f"{fn}: size", "be a sequence of integers", shown(size), TypeError)
    size = [int(d) for d in size]
    if any(d < 0 for d in size):
        fail(f"{fn}: size", "be non-negative", size)
    dtype = float_dtype(f"{fn}: dtype", dtype)
    if seeds.device.type == "cpu" and not torch.compiler.is_compiling():
        # CPU values can be read without a sync. On CUDA they are not read: the kernel writes NaN
        # for a negative seed (its slice) or a counter outside [0, 2^48) (everything).
        if seeds.numel() and int(seeds.min()) < 0:
            fail(f"{fn}: every seed", "be >= 0", int(seeds.min()))
        c = int(counter)
        if not 0 <= c < _ref.COUNTER_LIMIT:
            fail(f"{fn}: counter", "be in [0, 2^48)", c)
    return int(stream), size, dtype


def philox_uniform(seeds: torch.Tensor, counter: torch.Tensor, stream: int, size: SizeArg,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform numbers on the open interval (0, 1), shape (S, *size), on the seeds' device.

    seeds: int64 (S,), each >= 0. counter: int64 0-dim tensor on the seeds' device, in [0, 2^48).
    stream: an integer in [0, 65536) naming the use (init, data, noise, eval, ...). float32 values
    are the odd multiples of 2^-24, float64 values the odd multiples of 2^-53. Not differentiable.
    """
    stream, size, dtype = _args("er_fast.philox_uniform", seeds, counter, stream, size, dtype)
    if backend.compiled("philox_uniform", seeds):
        return torch.ops.er_fast.philox_uniform(seeds, counter, stream, size, dtype)
    return _ref.philox_uniform(seeds, counter, stream, size, dtype)


def philox_normal(seeds: torch.Tensor, counter: torch.Tensor, stream: int, size: SizeArg,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal numbers (Box-Muller, computed in float64), shape (S, *size), on the seeds'
    device; arguments as philox_uniform. Uses the same Philox words as philox_uniform with the same
    (seed, stream, counter): take another stream or counter for independent draws. Not
    differentiable."""
    stream, size, dtype = _args("er_fast.philox_normal", seeds, counter, stream, size, dtype)
    if backend.compiled("philox_normal", seeds):
        return torch.ops.er_fast.philox_normal(seeds, counter, stream, size, dtype)
    return _ref.philox_normal(seeds, counter, stream, size, dtype)


for _op in ("philox_uniform", "philox_normal"):
    if backend.defined(_op):

        def _fake(seeds, counter, stream, size, dtype):
            return seeds.new_empty((seeds.shape[0], *size), dtype=dtype)

        torch.library.register_fake(f"er_fast::{_op}", _fake)
