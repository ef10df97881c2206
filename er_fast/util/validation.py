"""Argument checks for every layer of er_fast, in one message style:

    "<what> must <rule>, got <value>"      e.g. "steps must be a positive integer, got 0"

``what`` names the argument as the caller sees it ("steps", "--steps", "er_fast.mmd_imq: x"),
``rule`` starts with its verb ("be a positive integer", "have shape (..., 2)"). The C++ entry
points word their TORCH_CHECKs the same way (csrc/common/checks.h).
A wrong value raises ValueError, a wrong type TypeError (torch's convention). Each check returns
the value normalised (a Python int or float, a list of seeds, a torch dtype).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import torch

__all__ = [
    "fail", "shown", "positive_int", "nonneg_int", "positive_float", "nonneg_float", "finite_float",
    "one_of", "float_dtype", "seed_list", "tensor",
]


def fail(what: str, rule: str, got: Any, exc: type = ValueError):
    """Raise ``exc("<what> must <rule>, got <got>")``; ``got`` is shown with str() (pass
    ``shown(value)`` for a user's value, so a string arrives quoted)."""
    raise exc(f"{what} must {rule}, got {got}")


def shown(v) -> str:
    """How a user's value appears in a message: strings quoted, everything else str()."""
    return repr(v) if isinstance(v, (str, bytes)) else str(v)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def positive_int(what: str, v) -> int:
    if not _is_int(v) or v < 1:
        fail(what, "be a positive integer", shown(v))
    return int(v)


def nonneg_int(what: str, v) -> int:
    if not _is_int(v) or v < 0:
        fail(what, "be a non-negative integer", shown(v))
    return int(v)


def finite_float(what: str, v) -> float:
    if not _is_real(v) or not math.isfinite(float(v)):
        fail(what, "be a finite number", shown(v))
    return float(v)


def positive_float(what: str, v) -> float:
    if not _is_real(v) or not math.isfinite(float(v)) or v <= 0:
        fail(what, "be a positive finite number", shown(v))
    return float(v)


def nonneg_float(what: str, v) -> float:
    if not _is_real(v) or not math.isfinite(float(v)) or v < 0:
        fail(what, "be a finite number >= 0", shown(v))
    return float(v)


def one_of(what: str, v, choices: Iterable):
    choices = list(choices)
    if v not in choices:
        fail(what, "be one of " + ", ".join(repr(c) for c in choices), shown(v))
    return v


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def float_dtype(what: str, v) -> torch.dtype:
    """torch.float32 / torch.float64, given as a dtype or as its name."""
    if isinstance(v, str) and v in _DTYPES:
        return _DTYPES[v]
    if v in (torch.float32, torch.float64):
        return v
    fail(what, "be torch.float32 or torch.float64", shown(v))


def seed_list(what: str, v) -> list[int]:
    """A non-empty sequence of distinct non-negative integers."""
    if isinstance(v, (str, bytes, numbers.Number)) or not hasattr(v, "__iter__"):
        fail(what, "be a list of non-negative integers", shown(v))
    seeds = list(v)
    if not seeds:
        fail(what, "be a non-empty list of non-negative integers", seeds)
    for s in seeds:
        if not _is_int(s) or s < 0:
            fail(f"every item of {what}", "be a non-negative integer", shown(s))
    if len(set(int(s) for s in seeds)) != len(seeds):
        fail(what, "be distinct", seeds)
    return [int(s) for s in seeds]


def tensor(what: str, t, *, floating: bool = False) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        fail(what, "be a torch.Tensor", type(t).__name__, TypeError)
    if floating and not t.is_floating_point():
        fail(what, "be a floating-point tensor", t.dtype, TypeError)
    return t
