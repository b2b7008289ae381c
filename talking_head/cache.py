"""A small content-addressed disk cache for prepared faces and clip motion.

Keys are hashes of the input bytes plus everything that changes the result (backend, engine,
settings, code version), so a stale entry is never returned: it simply is not found. Entries are
written to a temporary name and renamed, and each carries its own checksum, so a torn or corrupted
file is detected, deleted and recomputed.

The cache keeps itself under a size (:func:`size_limit`, 2 GiB unless ``LIVING_PORTRAITS_CACHE_MAX_MB``
says otherwise): a teacher's laptop that animates a new clip every week, or a new version whose keys
no longer find the old entries, would otherwise fill the disk. Past the limit, the entries used longest
ago go first. Prerendered gallery results (``results/``, see :mod:`talking_head.results`) are not
entries and are never removed here; nor are the few-shot training set's prepared clips (:data:`KEPT_KINDS`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .files import replace_file

_MAGIC = b"LPC1"
_LIMIT_ENV = "LIVING_PORTRAITS_CACHE_MAX_MB"
DEFAULT_LIMIT_MB = 2048
# Trimmed down to this share of the limit, so the next few entries do not each start a trim.
_TRIM_TO = 0.9
# A temporary file this old (seconds) belongs to a write that was killed: removed by a trim.
_STALE_TMP_S = 3600.0
# The least limit taken from the environment: below it every entry would remove the one before.
_LEAST_LIMIT_MB = 1.0
_log = logging.getLogger(__name__)
_WARNED: set[str] = set()
# Kinds a trim leaves alone: the few-shot training set's prepared clips. A training run reads its whole data
# set in the same order every epoch (and rank 0 prepares it for the other ranks), so a data set larger than
# the limit would never find an entry it stored; it is as large as its data set says (README, "Training").
KEPT_KINDS = frozenset({"fewshot-clip"})
_PACKAGE = Path(__file__).resolve().parent
_SOURCE_DIGESTS: dict[Path, str] = {}
# An entry's name (a key), or the temporary name it is written under (files.replace_file with prefix ".").
_OURS = re.compile(r"[0-9a-f]{40}\.bin|\.[A-Za-z0-9_]+\.bin\.tmp")


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


def source_digest(root: Path = _PACKAGE) -> str:
    """A hash of every Python file below ``root`` (names and contents): the code that renders.

    Part of the keys of what the code makes and is still being tuned (a stored result, meshwarp's stored
    layers), so that after an update it is made again, whichever module changed (the version number is
    not bumped for every fix).
    """
    root = root.resolve()
    if root not in _SOURCE_DIGESTS:
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
        _SOURCE_DIGESTS[root] = h.hexdigest()
    return _SOURCE_DIGESTS[root]


def size_limit() -> tuple[int, str | None]:
    """(the cache's size limit in bytes, a problem with ``LIVING_PORTRAITS_CACHE_MAX_MB`` or None).

    A value that is not a number of megabytes (at least 1) is not used (the default is, and the problem says
    why): a mistyped setting must not stop a kiosk from serving."""
    raw = os.environ.get(_LIMIT_ENV, "").strip()
    if raw:
        try:
            mb = float(raw)
        except ValueError:
            mb = -1.0
        if _LEAST_LIMIT_MB <= mb < float("inf"):
            return int(mb * 1024 * 1024), None
        return DEFAULT_LIMIT_MB << 20, (f"{_LIMIT_ENV}={raw!r} is not a number of megabytes of at least "
                                        f"{_LEAST_LIMIT_MB:g}; the default, {DEFAULT_LIMIT_MB} MB, is used")
    return DEFAULT_LIMIT_MB << 20, None


@dataclass
class Usage:
    """What the cache holds: entries per kind (count, bytes)."""

    kinds: dict[str, tuple[int, int]]

    @property
    def entries(self) -> int:
        return sum(n for n, _ in self.kinds.values())

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.kinds.values())


def _starts_with_magic(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


class DiskCache:
    def __init__(self, root: os.PathLike | str | None = None, enabled: bool = True, limit: int | None = None):
        """``limit``: the most bytes its entries may take (None: :func:`size_limit`)."""
        self.root = Path(root) if root else default_dir()
        self.enabled = enabled
        self._limit = limit
        self._written: int | None = None  # bytes put since the last trim (None: none yet in this process)

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit, problem = size_limit()
            if problem and problem not in _WARNED:  # once per process, not once per render
                _WARNED.add(problem)
                _log.warning(problem)
        return self._limit

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
                try:
                    os.utime(p)  # used now: the last to go when the cache is trimmed
                except OSError:
                    pass  # a read-only cache is still read
                return data
        try:
            p.unlink(missing_ok=True)  # torn or tampered: recompute rather than trust it
        except OSError:
            pass  # a cache that cannot be written is still read
        return None

    def put(self, kind: str, key: str, data: bytes) -> None:
        if not self.enabled:
            return
        if len(data) > self.limit * _TRIM_TO and kind not in KEPT_KINDS:
            return  # the trim after it would remove it at once
        p = self._path(kind, key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            replace_file(p, _MAGIC + hashlib.sha256(data).digest() + data, ".")
        except OSError:
            return  # a full or read-only disk must not fail a render: the cache is an optimisation
        # The first entry a process puts checks the size (a CLI call puts a few); after that, every
        # twentieth of the limit written.
        if self._written is None or self._written + len(data) > self.limit // 20:
            self.trim()
        else:
            self._written += len(data)

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        """Every entry and temporary file, with its stat (files that vanish meanwhile are left out). Only
        what this cache writes (named by :meth:`key`'s 40 hex digits and starting with its header, and the
        temporary names of its writes): a cache folder pointed at a folder of other files must never lose
        them."""
        found = []
        try:
            with os.scandir(self.root) as it:
                kinds = [d.path for d in it if d.is_dir()]
        except OSError:
            return found
        for kind in kinds:
            try:
                with os.scandir(kind) as it:
                    for e in it:
                        if _OURS.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                            try:
                                if e.name.endswith(".bin") and not _starts_with_magic(e.path):
                                    continue  # named like an entry, but someone else's file
                                found.append((Path(e.path), e.stat(follow_symlinks=False)))
                            except OSError:
                                pass
            except OSError:
                pass
        return found

    def usage(self) -> Usage:
        kinds: dict[str, tuple[int, int]] = {}
        for path, st in self._files():
            if path.suffix == ".bin":
                n, b = kinds.get(path.parent.name, (0, 0))
                kinds[path.parent.name] = (n + 1, b + st.st_size)
        return Usage(dict(sorted(kinds.items())))

    def trim(self, limit: int | None = None, *, kept: frozenset[str] = KEPT_KINDS) -> int:
        """Remove the entries used longest ago until the rest take at most 0.9 of ``limit`` (default: this
        cache's), once they take more than it; and temporary files a killed write left. Entries of the
        ``kept`` kinds are neither counted nor removed. Returns the bytes removed.

        Safe while other processes use the cache: an entry removed under a reader is computed again, as if
        it had never been stored. Each process writes up to a twentieth of the limit between its trims, so
        the cache can pass its limit by that much per process writing to it."""
        limit = self.limit if limit is None else limit
        self._written = 0
        now, freed, entries = time.time(), 0, []
        for path, st in self._files():
            if path.suffix == ".bin":
                if path.parent.name not in kept:
                    entries.append((st.st_mtime, st.st_size, path))
            elif now - st.st_mtime > _STALE_TMP_S:
                try:
                    path.unlink(missing_ok=True)
                    freed += st.st_size
                except OSError:
                    pass  # another user's, in a folder this process cannot write
        total = sum(size for _, size, _ in entries)
        if total <= limit:
            return freed
        entries.sort()
        for _, size, path in entries:
            if total <= limit * _TRIM_TO:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # another process trimmed it
            except OSError:
                continue
            total -= size
            freed += size
        return freed

    def clear(self) -> int:
        """Remove every entry, of every kind (not the prerendered results). Returns the bytes removed."""
        return self.trim(limit=0, kept=frozenset())
