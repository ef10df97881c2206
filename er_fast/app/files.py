"""Crash-safe, symlink-safe files for long runs.

Every write goes to a fresh temporary file created in the target's directory (mkstemp: O_EXCL,
never an existing path, so never through a symlink someone planted), is fsynced, and is renamed
over the target with os.replace (which replaces a symlink at the target instead of following it).
A run killed at any moment leaves either the old file or the new one. Directories are created
only as real directories: a symlink where a directory should be is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from typing import Any, Dict

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


class UnsafePath(OSError):
    """A path component that is a symlink (or not a directory) where er_fast would write."""


def make_dirs(path: str) -> None:
    """os.makedirs that refuses to create or enter a symlinked directory on the way."""
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    cur = os.sep
    for part in parts[1:]:
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur)
            continue
        if stat.S_ISLNK(st.st_mode) and cur.startswith(_protected_root(path)):
            raise UnsafePath(f"{cur} is a symlink; er_fast does not write through symlinks")
        if not stat.S_ISDIR(os.stat(cur).st_mode):
            raise UnsafePath(f"{cur} exists and is not a directory")


_ROOTS: list[str] = []


def protect(root: str) -> None:
    """Refuse symlinks inside ``root`` (a run directory) from now on; symlinks above it (e.g. /tmp
    on some systems) are the user's business."""
    _ROOTS.append(os.path.abspath(root))


def _protected_root(path: str) -> str:
    for r in _ROOTS:
        if path == r or path.startswith(r + os.sep):
            return r
    return "\0"  # nothing protected: never a prefix


def atomic_write_bytes(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    make_dirs(d)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        remove_entry(path, only_if_not_regular=True)  # a directory planted at the path
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    # Persist the rename itself (power loss after replace() could otherwise lose it).
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_entry(path: str, only_if_not_regular: bool = False) -> None:
    """Remove whatever sits at ``path`` (file, symlink — not its target — or directory tree)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path)
    elif not only_if_not_regular or not stat.S_ISREG(st.st_mode):
        os.unlink(path)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_regular(path: str) -> bytes:
    """The bytes of a regular file, opened without following a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def read_json(path: str) -> Any:
    return json.loads(read_regular(path))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    return sha256_bytes(read_regular(path))


def tensors_bytes(tensors: Dict[str, torch.Tensor]) -> bytes:
    """safetensors serialisation (no pickled code can ever run on load)."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def save_tensors(path: str, tensors: Dict[str, torch.Tensor]) -> str:
    """Write a safetensors file atomically; returns its sha256."""
    data = tensors_bytes(tensors)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_tensors(path: str, device: str = "cpu", sha256: str | None = None) -> Dict[str, torch.Tensor]:
    """Read a safetensors file; with ``sha256``, refuse content that does not match it."""
    from safetensors.torch import load

    data = read_regular(path)
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise ValueError(f"{path}: checksum mismatch")
    return {k: v.to(device) for k, v in load(data).items()}
