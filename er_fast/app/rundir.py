"""The run directory of `er-fast table1` and its crash-safe files.

Layout of DIR: protocol.json (the pinned Protocol and the environment that started the run),
embedding.safetensors (+ embedding_quality.json), units/<model>/seeds-AAAAA-BBBBB.{safetensors,json}
(one per finished unit, the JSON written last as its completion mark), then the outputs
(results.json, results.csv, table.md, *.png).

Every write goes to a temp file that is fsynced and renamed over the target, so a run killed at
any moment leaves either the old file or the new one."""
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


class UsageError(ValueError):
    """A problem with the command line or the run directory, reported before any training (exit 2)."""


class RunDir:
    """Paths of one run directory."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def protocol(self) -> str:
        return self.path("protocol.json")

    @property
    def embedding(self) -> str:
        return self.path("embedding.safetensors")

    @staticmethod
    def unit_name(model: str, seeds) -> str:
        """The unit's name: its path inside the directory, without extension."""
        return os.path.join("units", model, f"seeds-{seeds[0]:05d}-{seeds[-1]:05d}")

    def unit(self, model: str, seeds) -> str:
        """The unit's path without extension (.json: result and completion mark; .safetensors)."""
        return self.path(self.unit_name(model, seeds))

    def unit_done(self, model: str, seeds) -> bool:
        return os.path.exists(self.unit(model, seeds) + ".json")

    def prepare(self, settings: dict, environment: dict) -> None:
        """Create the directory (or check it) and pin ``settings``; refuses a directory made with other
        settings, listing the differences."""
        try:
            os.makedirs(self.path("units"), exist_ok=True)
            probe = self.path(".write-probe")
            with open(probe, "w") as f:
                f.write("ok")
            os.unlink(probe)
        except OSError as e:
            raise UsageError(f"cannot write to --out {self.root!r}: {e}") from None
        if os.path.exists(self.protocol):
            old = read_json(self.protocol)["settings"]
            if old != settings:
                diff = {k: (old.get(k), settings.get(k)) for k in sorted(set(old) | set(settings))
                        if old.get(k) != settings.get(k)}
                raise UsageError(
                    f"{self.root} holds a run made with other settings (was, now): {diff}. "
                    "Use a new --out directory, or the same arguments to resume."
                )
        else:
            atomic_write_json(self.protocol, {"settings": settings, "environment": environment})
