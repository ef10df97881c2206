"""Loads the compiled extension er_fast._C and decides, per op and device, who computes it.

The extension is optional: if it is missing or fails to load, er_fast warns once and every op
runs its pure-PyTorch version from er_fast.ops.reference. ER_FAST_FORCE_REFERENCE=1 (or
``use_reference()``) forces the reference path even when the extension is there.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import warnings

import torch

# Every op with a compiled kernel (the backward ops of circle_embed / so2_rotate ride with them).
OPS = ("mmd_imq", "beta_rsample", "beta_rsample_grad", "circle_embed", "so2_rotate", "philox_uniform",
       "philox_normal", "adam_")

LOAD_ERROR: str | None = None
try:
    importlib.import_module("er_fast._C")  # registers torch.ops.er_fast.*
except Exception as e:  # ImportError, or an undefined symbol from a torch ABI mismatch
    LOAD_ERROR = f"{type(e).__name__}: {e}"
    warnings.warn(
        f"er_fast: compiled extension not available ({LOAD_ERROR}); every op falls back to its "
        "pure-PyTorch reference. Build it with `pip install --no-build-isolation .`.",
        RuntimeWarning,
        stacklevel=2,
    )

LOADED = LOAD_ERROR is None
_state = {"force_reference": os.environ.get("ER_FAST_FORCE_REFERENCE", "0").lower() in ("1", "true", "yes")}


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether er_fast::op has a kernel for dispatch_key ('CPU', 'CUDA') in the loaded extension."""
    if not LOADED or not hasattr(torch.ops.er_fast, op):
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"er_fast::{op}", dispatch_key)


# Computed once at import: dynamo then sees plain constants, not dispatcher queries.
_KERNELS = {(op, key): has_kernel(op, key) for op in OPS for key in ("CPU", "CUDA")}


def defined(op: str) -> bool:
    """Whether the schema er_fast::op exists (so fake/autograd kernels can be registered)."""
    return LOADED and hasattr(torch.ops.er_fast, op)


def compiled(op: str, *tensors: torch.Tensor) -> bool:
    """True when the compiled kernel of ``op`` should run for these tensors' device."""
    if _state["force_reference"]:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(tensors[0].device.type)
    return key is not None and _KERNELS.get((op, key), False)


@contextlib.contextmanager
def use_reference(enabled: bool = True):
    """Context manager forcing (or un-forcing) the pure-PyTorch reference path for every op."""
    old, _state["force_reference"] = _state["force_reference"], enabled
    try:
        yield
    finally:
        _state["force_reference"] = old


def cpu_isa() -> str | None:
    """The instruction set the CPU kernels run with ('avx512', 'avx2', 'baseline'; None without
    the extension). ER_FAST_CPU_ISA=avx2|baseline, set before the first call, forces a lower one."""
    return torch.ops.er_fast.cpu_isa() if defined("cpu_isa") else None


def backend_info() -> dict:
    """Which backend each op uses on each device, and why; plus 'cpu_isa'."""
    info: dict = {}
    for op in OPS:
        row = {}
        for dev, key in (("cpu", "CPU"), ("cuda", "CUDA")):
            if _state["force_reference"]:
                row[dev] = ("reference", "forced (ER_FAST_FORCE_REFERENCE / use_reference)")
            elif not LOADED:
                row[dev] = ("reference", f"extension not loaded: {LOAD_ERROR}")
            elif _KERNELS[(op, key)]:
                row[dev] = (f"compiled {key}", "kernel registered")
            elif not hasattr(torch.ops.er_fast, op):
                row[dev] = ("reference", "op not in this build of the extension")
            else:
                row[dev] = ("reference", f"extension built without {key} kernels")
        info[op] = row
    info["cpu_isa"] = cpu_isa()
    return info
