"""The run directory of `er-fast table1`: its layout, its lock, and what a resume verifies.

Layout of DIR (one run of one protocol):
  protocol.json          the pinned settings and the environment that started the run
  .lock                  held (fcntl.flock) while a run uses the directory
  embedding.safetensors  the learned f, with embedding.json (its identity: WAE settings hash and
                         the file's sha256) and embedding_quality.json
  units/<model>/seeds-AAAAA-BBBBB.safetensors   one finished unit's stacked model
  units/<model>/seeds-AAAAA-BBBBB.json          its result and identity, written last (the mark)
  results.json, results.csv, table.md, *.png    the outputs

Every unit JSON carries its own identity — format, model, seeds, the hash of every setting that
defines its numbers, the sha256 of the embedding it used — a sha256 of its own content, and the
sha256 of the checkpoint it names. A resume re-reads every unit and re-trains any that fails a
check (reported, never merged). See docs/table1.md, "The run directory".
"""
from __future__ import annotations

import fcntl
import os
from typing import Optional, Tuple

from .files import (
    UnsafePath, atomic_write_json, canonical_json, make_dirs, protect, read_json, remove_entry, sha256_bytes,
    sha256_file,
)

UNIT_FORMAT = "er_fast.table1.unit/2"
EMBEDDING_FORMAT = "er_fast.table1.embedding/1"


class UsageError(ValueError):
    """A problem with the command line or the run directory, reported before any training (exit 2)."""


def _sealed(record: dict) -> dict:
    """record plus "sha256": the hash of its canonical JSON (without that field)."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return dict(body, sha256=sha256_bytes(canonical_json(body).encode()))


def _seal_ok(record: dict) -> bool:
    return isinstance(record, dict) and record.get("sha256") == _sealed(record)["sha256"]


class RunDir:
    """One run directory (see the module docstring)."""

    def __init__(self, root: str):
        if not isinstance(root, str) or not root.strip():
            raise UsageError(f"--out must be a directory path, got {root!r}")
        self.root = os.path.abspath(root)
        self._lock_fd: Optional[int] = None

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def protocol(self) -> str:
        return self.path("protocol.json")

    @property
    def embedding(self) -> str:
        return self.path("embedding.safetensors")

    # -- creating, locking, pinning -------------------------------------------------------------
    def create(self, units: bool = True) -> None:
        """Create DIR (and DIR/units) as real directories (no symlinks inside DIR are followed)."""
        protect(self.root)
        try:
            make_dirs(self.path("units") if units else self.root)
        except OSError as e:
            raise UsageError(f"cannot write to --out {self.root!r}: {e}") from None
        if not os.access(self.root, os.W_OK):
            raise UsageError(f"cannot write to --out {self.root!r}: permission denied")

    def lock(self) -> None:
        """Hold an exclusive lock on DIR/.lock; a second run on the same directory stops."""
        fd = os.open(self.path(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"{self.root} is in use by another er-fast run (it holds {self.path('.lock')}); "
                             "wait for it to finish or use another --out") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def pin(self, settings: dict, environment: dict, extendable: Tuple[str, ...] = ()) -> dict:
        """Pin ``settings`` in protocol.json, or check them against the pinned ones. Settings named
        in ``extendable`` may change (a run grown with more seeds); any other difference is refused
        with the differences listed. Returns the pinned settings (updated for extensions)."""
        if os.path.lexists(self.protocol):
            try:
                old = read_json(self.protocol)["settings"]
                if not isinstance(old, dict):
                    raise ValueError("settings is not an object")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise UsageError(
                    f"{self.protocol} is unreadable ({type(e).__name__}: {e}). Every unit carries its own "
                    f"settings and is verified on resume, so the pin can be re-made from this command: "
                    f"rm {self.protocol!r} and run it again") from None
            diff = {k: (old.get(k), settings.get(k)) for k in sorted(set(old) | set(settings))
                    if old.get(k) != settings.get(k) and k not in extendable}
            if diff:
                raise UsageError(
                    f"{self.root} holds a run made with other settings (was, now): {diff}. Use a new --out "
                    f"directory, or the same arguments to resume" + (f" (only {', '.join(extendable)} may change)"
                                                                    if extendable else "") + ".")
            if all(old.get(k) == settings.get(k) for k in extendable):
                return old
        atomic_write_json(self.protocol, {"settings": settings, "environment": environment})
        return settings

    # -- units ------------------------------------------------------------------------------------
    @staticmethod
    def unit_name(model: str, seeds) -> str:
        """The unit's name: its path inside the directory, without extension."""
        return os.path.join("units", model, f"seeds-{seeds[0]:05d}-{seeds[-1]:05d}")

    def unit(self, model: str, seeds) -> str:
        """The unit's path without extension (.json: result and identity; .safetensors)."""
        return self.path(self.unit_name(model, seeds))

    def write_unit(self, model: str, seeds, identity: dict, checkpoint_sha256: str, result: dict) -> None:
        """The unit's JSON, written last (after its checkpoint): the mark that it is done."""
        base = self.unit(model, seeds)
        record = dict(identity, format=UNIT_FORMAT, model=model, seeds=list(seeds),
                      checkpoint={"file": os.path.basename(base) + ".safetensors", "sha256": checkpoint_sha256},
                      result=result)
        atomic_write_json(base + ".json", _sealed(record))

    def read_unit(self, model: str, seeds, identity: dict) -> Tuple[Optional[dict], str]:
        """(result, "") for a finished unit that passes every check, else (None, why): "missing"
        when it was never written, otherwise the reason to retrain it."""
        base = self.unit(model, seeds)
        if not os.path.lexists(base + ".json"):
            return None, "missing"
        try:
            rec = read_json(base + ".json")
        except (OSError, ValueError) as e:
            return None, f"unreadable ({type(e).__name__})"
        if not isinstance(rec, dict) or rec.get("format") != UNIT_FORMAT:
            return None, "not a unit file of this er_fast version"
        if not _seal_ok(rec):
            return None, "checksum mismatch (edited or damaged)"
        if rec.get("model") != model or rec.get("seeds") != list(seeds):
            return None, f"belongs to {rec.get('model')} seeds {rec.get('seeds')}, not to this unit"
        for k, v in identity.items():
            if rec.get(k) != v:
                return None, f"made with other settings ({k} differs)"
        ck = rec.get("checkpoint") or {}
        try:
            if sha256_file(self.unit(model, seeds) + ".safetensors") != ck.get("sha256"):
                return None, "its checkpoint does not match its checksum"
        except OSError as e:
            return None, f"its checkpoint is missing or unreadable ({type(e).__name__})"
        return rec["result"], ""

    def clear_unit(self, model: str, seeds) -> None:
        base = self.unit(model, seeds)
        remove_entry(base + ".json")
        remove_entry(base + ".safetensors")

    # -- the learned embedding ---------------------------------------------------------------------
    def write_embedding_record(self, settings_sha256: str, file_sha256: str) -> None:
        atomic_write_json(self.path("embedding.json"), _sealed(
            {"format": EMBEDDING_FORMAT, "settings_sha256": settings_sha256, "file_sha256": file_sha256}))

    def embedding_sha256(self, settings_sha256: str) -> Tuple[Optional[str], str]:
        """(sha256 of a valid embedding file made with these settings, "") or (None, why)."""
        if not os.path.lexists(self.embedding):
            return None, "missing"
        try:
            rec = read_json(self.path("embedding.json"))
            if not (isinstance(rec, dict) and rec.get("format") == EMBEDDING_FORMAT and _seal_ok(rec)):
                raise ValueError("not a valid embedding record")
        except (OSError, ValueError) as e:
            return None, f"its record embedding.json is missing or damaged ({type(e).__name__})"
        if rec["settings_sha256"] != settings_sha256:
            return None, "made with other WAE settings"
        try:
            if sha256_file(self.embedding) != rec["file_sha256"]:
                return None, "checksum mismatch"
        except OSError as e:
            return None, f"unreadable ({type(e).__name__})"
        return rec["file_sha256"], ""


__all__ = ["RunDir", "UsageError", "UnsafePath"]
