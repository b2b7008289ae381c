"""A small content-addressed disk cache for prepared faces and clip motion.

Keys are hashes of the input bytes plus everything that changes the result (backend, engine,
settings, code version), so a stale entry is never returned: it simply is not found. Entries are
written to a temporary name and renamed, and each carries its own checksum, so a torn or corrupted
file is detected, deleted and recomputed.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import __version__
from .files import replace_file

_MAGIC = b"LPC1"


def default_dir() -> Path:
    env = os.environ.get("LIVING_PORTRAITS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "living-portraits"


def file_digest(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DiskCache:
    def __init__(self, root: os.PathLike | str | None = None, enabled: bool = True):
        self.root = Path(root) if root else default_dir()
        self.enabled = enabled

    def key(self, kind: str, *parts: str) -> str:
        return hashlib.sha256("\x1f".join((kind, __version__) + parts).encode()).hexdigest()[:40]

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.bin"

    def get(self, kind: str, key: str) -> bytes | None:
        if not self.enabled:
            return None
        p = self._path(kind, key)
        try:
            blob = p.read_bytes()
        except OSError:
            return None
        if blob[:4] == _MAGIC and len(blob) > 36:
            digest, data = blob[4:36], blob[36:]
            if hashlib.sha256(data).digest() == digest:
                return data
        p.unlink(missing_ok=True)  # torn or tampered: recompute rather than trust it
        return None

    def put(self, kind: str, key: str, data: bytes) -> None:
        if not self.enabled:
            return
        p = self._path(kind, key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            replace_file(p, _MAGIC + hashlib.sha256(data).digest() + data, ".")
        except OSError:
            pass  # a full or read-only disk must not fail a render: the cache is an optimisation
