"""torch._check versions of the C++ entry checks (csrc/common/checks.h and the <op>_checks.h
headers), for the fake (meta) kernels: a bad call of torch.ops.er_fast.* then fails under
torch.compile / FakeTensor / meta tensors with the words eager gives, "er_fast.<op>: ...".

Values are printed the way c10 prints them: dtypes as ScalarType names ("Float"), shapes as
"[5, 3]", doubles as C++ streams do (%g). Only device TYPE checks are left to the real kernels
(which backend runs is the dispatcher's business, not an argument error).
"""
from __future__ import annotations

import torch

_SCALAR_TYPE = {
    torch.float32: "Float", torch.float64: "Double", torch.float16: "Half", torch.bfloat16: "BFloat16",
    torch.int64: "Long", torch.int32: "Int", torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
    torch.bool: "Bool", torch.complex64: "ComplexFloat", torch.complex128: "ComplexDouble",
}


def scalar_type(dtype: torch.dtype) -> str:
    return _SCALAR_TYPE.get(dtype, str(dtype))


def sizes(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def num(v: float) -> str:
    return f"{v:g}"


def check(cond, op: str, msg) -> None:
    """ER_FAST_CHECK: raise RuntimeError("er_fast.<op>: " + msg()) unless cond (a bool or SymBool)."""
    torch._check(cond, lambda: f"er_fast.{op}: {msg()}")


def check_float(t: torch.Tensor, op: str, name: str) -> None:
    check(t.dtype in (torch.float32, torch.float64), op,
          lambda: f"{name} must be float32 or float64, got {scalar_type(t.dtype)}")


def check_same_dtype(a: torch.Tensor, b: torch.Tensor, op: str, a_name: str, b_name: str) -> None:
    check(a.dtype == b.dtype, op,
          lambda: f"{b_name} must be of the dtype of {a_name} ({scalar_type(a.dtype)}), got {scalar_type(b.dtype)}")


def check_same_device(a: torch.Tensor, b: torch.Tensor, op: str, a_name: str, b_name: str) -> None:
    check(a.device == b.device, op, lambda: f"{b_name} must be on the device of {a_name} ({a.device}), got {b.device}")


def expandable(shape, target) -> bool:
    """at::is_expandable_to(shape, target)."""
    shape, target = tuple(shape), tuple(target)
    return len(shape) <= len(target) and all(s == 1 or s == t for s, t in zip(reversed(shape), reversed(target)))
