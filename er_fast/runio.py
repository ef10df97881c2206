"""Crash-safe files for long runs: every write goes to a temp file that is fsynced and renamed
over the target, so a run killed at any moment leaves either the old file or the new one."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # Persist the rename itself (power loss after replace() could otherwise lose it).
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def save_tensors(path: str, tensors: Dict[str, torch.Tensor]) -> None:
    """safetensors file (no pickled code can ever run on load), written atomically."""
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def load_tensors(path: str, device: str = "cpu") -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path, device=device)
