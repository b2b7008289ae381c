"""Finished gallery renders kept on disk, so a gallery portrait x gallery clip answers instantly.

Only gallery works are stored here (never a visitor's upload). A result's key is a hash of
everything that changes it: the portrait, clip and motion files' contents, the engine and its
settings, the animation settings, the label and the code (a hash of the package's source). A stale result is therefore
never served: after any change it is simply not found, and the next request renders it again.
Results are written to a temporary name and renamed, with a small JSON record beside them.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__
from .cache import DiskCache, default_dir, file_digest, source_digest
from .engines import Engine, create_engine
from .errors import TalkingHeadError
from .files import replace_file
from .gallery import Gallery
from .pipeline import AnimateSettings, ProgressFn, animate

_DIGESTS: dict[tuple, str] = {}


class ResultStoreError(TalkingHeadError):
    """A finished render could not be kept in the store (disk full or read-only)."""


def _digest(path: Path) -> str:
    """File digest, remembered while the file's size and mtime stay the same."""
    st = path.stat()
    stamp = (str(path), st.st_size, st.st_mtime_ns)
    if stamp not in _DIGESTS:
        _DIGESTS[stamp] = file_digest(path)
    return _DIGESTS[stamp]


@dataclass(frozen=True)
class StoredResult:
    path: Path
    portrait: str
    clip: str
    engine: str
    settings: dict
    cached: bool          # True when served from the store without rendering
    notes: list[str] = field(default_factory=list)   # what the render had to say (e.g. a fallback)


class ResultStore:
    """``root/<key>.mp4`` plus ``root/<key>.json`` for every finished gallery render."""

    def __init__(self, root: os.PathLike | str | None = None, gallery: Gallery | None = None):
        self.root = Path(root) if root else default_dir() / "results"
        self.gallery = gallery or Gallery.default()

    def key(self, portrait_id: str, clip_id: str, engine: Engine, settings: AnimateSettings,
            label: str | None = None) -> str:
        g = self.gallery
        works = self._works(portrait_id, clip_id)
        parts = [__version__, source_digest(), engine.settings_key(), json.dumps(asdict(settings), sort_keys=True), label or "",
                 works["portrait"], json.dumps(g.portrait(portrait_id), sort_keys=True), works["clip"]]
        motion = g.motion_path(clip_id)
        parts.append(_digest(motion) if motion.is_file() else "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]

    def lookup(self, key: str) -> StoredResult | None:
        """The stored result for ``key`` if its video is whole: same size and sha256 as its record.

        A torn, truncated or tampered entry is deleted (so it is rendered again, never served).
        """
        return self._whole(key)

    def _whole(self, key: str, meta: dict | None = None) -> StoredResult | None:
        """``lookup``, given the result's record where the caller has read it already."""
        video, record = self.root / f"{key}.mp4", self.root / f"{key}.json"
        if not (record.is_file() and video.is_file()):
            return None  # not stored (or being stored right now by another render)
        if meta is None:
            meta = self._meta(record)
        try:
            if video.stat().st_size != meta["bytes"]:
                raise ValueError("size differs from the record")
            if _digest(video) != meta["sha256"]:
                raise ValueError("sha256 differs from the record")
            found = StoredResult(video, meta["portrait"], meta["clip"], meta["engine"], meta["settings"], True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._discard(key)
            return None
        return found

    def _discard(self, key: str) -> None:
        for p in (self.root / f"{key}.json", self.root / f"{key}.mp4"):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass

    def get_or_render(self, portrait_id: str, clip_id: str, *, engine: str | Engine = "auto",
                      settings: AnimateSettings | None = None, progress: ProgressFn | None = None, cancel=None,
                      cache: DiskCache | None = None, label: str | None = None) -> StoredResult:
        """The stored result, or render it now through :func:`animate` and store it."""
        settings = settings or AnimateSettings()
        eng = engine if isinstance(engine, Engine) else create_engine(engine)
        key = self.key(portrait_id, clip_id, eng, settings, label)
        found = self.lookup(key)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".render-", suffix=".mp4")
        os.close(fd)
        try:
            done = animate(f"gallery:{portrait_id}", f"gallery:{clip_id}", tmp, engine=eng, settings=settings,
                           progress=progress, cancel=cancel, gallery=self.gallery, cache=cache, label=label)
            if done.engine != eng.name:
                # A fallback engine finished the render (e.g. the GPU ran out of memory): store it as its result.
                eng = create_engine(done.engine)
                key = self.key(portrait_id, clip_id, eng, settings, label)
            try:
                meta = {"portrait": portrait_id, "clip": clip_id, "engine": eng.name, "settings": asdict(settings),
                        "bytes": os.path.getsize(tmp), "sha256": file_digest(tmp), "version": __version__,
                        "code": source_digest(), "created": time.time(), "works": self._works(portrait_id, clip_id)}
                os.replace(tmp, self.root / f"{key}.mp4")
                replace_file(self.root / f"{key}.json", json.dumps(meta, indent=1))
            except OSError as e:
                # Rendered but not storable (disk full, read-only): keep nothing half-stored, and say so.
                self._discard(key)
                raise ResultStoreError("The finished video could not be stored (the disk may be full); nothing "
                                       "was kept, free some disk space and try again.") from e
        finally:
            Path(tmp).unlink(missing_ok=True)
        return StoredResult(self.root / f"{key}.mp4", portrait_id, clip_id, eng.name, asdict(settings), False,
                            notes=list(done.notes))

    def stored(self) -> list[StoredResult]:
        """Every valid result the present code stored (for the kiosk's attract loop), oldest first."""
        out = []
        for record in sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime):
            meta = self._meta(record)
            if meta.get("code") != source_digest():
                continue
            found = self._whole(record.stem, meta)
            if found is not None and self._works_unchanged(meta.get("works"), found):
                out.append(found)
        return out

    def _works(self, portrait_id: str, clip_id: str) -> dict[str, str]:
        """The digests of a render's portrait and clip files (a work replaced in the gallery has others)."""
        g = self.gallery
        return {"portrait": _digest(g.portrait_path(portrait_id)), "clip": _digest(g.clip_path(clip_id))}

    def _works_unchanged(self, works: dict | None, found: StoredResult) -> bool:
        """Whether the gallery still holds the files (``works``, from the result's record) the result was
        rendered from: after `gallery add-portrait --replace` the start screen went on playing the old picture.
        (Records from before this check say nothing about their files and stay.)"""
        try:
            return works is None or works == self._works(found.portrait, found.clip)
        except (OSError, TalkingHeadError):
            return False  # the work has left the gallery

    @staticmethod
    def _meta(record: Path) -> dict:
        """A result's record ({} where it cannot be read)."""
        try:
            meta = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def prune(self, stray_age_s: float = 3600.0) -> int:
        """Delete what will never be served: results stored by other code (before an update; their keys are
        no longer asked for) and renders a crash or power cut left half-done (``.render-*`` older than
        ``stray_age_s``). The number of files deleted."""
        gone = 0
        if not self.root.is_dir():
            return gone
        for record in self.root.glob("*.json"):
            if self._meta(record).get("code") != source_digest():
                for p in (record, record.with_suffix(".mp4")):
                    if p.is_file():
                        p.unlink(missing_ok=True)
                        gone += 1
        now = time.time()
        for stray in self.root.glob(".render-*"):
            try:
                if now - stray.stat().st_mtime > stray_age_s:
                    stray.unlink()
                    gone += 1
            except OSError:
                pass
        return gone

    def prerender(self, portraits: Iterable[str] | None = None, clips: Iterable[str] | None = None, *,
                  engine: str = "auto", settings: Iterable[AnimateSettings] = (AnimateSettings(),),
                  report: Callable[[int, int, StoredResult], None] | None = None) -> list[StoredResult]:
        """Render every portrait x clip x settings combination that is not stored yet (after deleting what
        older code stored: :meth:`prune`)."""
        self.prune()
        portraits = list(portraits or self.gallery.manifest()["portraits"])
        clips = list(clips or self.gallery.manifest()["clips"])
        eng = create_engine(engine)
        jobs = [(p, c, s) for p in portraits for c in clips for s in settings]
        done = []
        for i, (p, c, s) in enumerate(jobs):
            result = self.get_or_render(p, c, engine=eng, settings=s)
            done.append(result)
            if report:
                report(i + 1, len(jobs), result)
        return done

