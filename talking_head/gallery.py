"""The curated gallery: portraits and driving clips shipped in ``gallery/`` with one manifest.

Face landmarks of each portrait and the motion of each clip are found once, when a work is added,
so the gallery needs no detector at run time.
"""
from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GalleryError
from .files import copy_file, replace_file

GALLERY_DIR = Path(os.environ.get("LIVING_PORTRAITS_GALLERY", Path(__file__).resolve().parent.parent / "gallery"))
_MANIFESTS: dict[tuple, dict] = {}
_ID = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
# Manifest fields that come from a work's file (a replaced work's are found again from its new one).
_FROM_FILE = frozenset({"file", "original_file", "size", "face", "faces_found", "motion", "duration", "fps", "n_frames",
                        "has_audio"})


def check_id(item_id: str) -> str:
    """Gallery ids are plain names; anything that could reach outside the gallery is refused."""
    if not isinstance(item_id, str) or not _ID.fullmatch(item_id):
        raise GalleryError(f"{item_id!r} is not a gallery id; use 1 to 64 lower-case letters, digits and "
                           "underscores, starting with a letter or a digit (see `python -m talking_head gallery "
                           "list`).")
    return item_id


@dataclass
class Gallery:
    root: Path

    @classmethod
    def default(cls) -> "Gallery":
        return cls(GALLERY_DIR)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        """The parsed manifest; re-read only when the file changes (it holds every face's landmarks)."""
        try:
            st = self.manifest_path.stat()
        except FileNotFoundError:
            return {"portraits": {}, "clips": {}}
        stamp = (str(self.manifest_path), st.st_mtime_ns, st.st_size)
        cached = _MANIFESTS.get(stamp)
        if cached is None:
            cached = self._read()
            _MANIFESTS.clear()
            _MANIFESTS[stamp] = cached
        return cached

    def _read(self) -> dict:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"portraits": {}, "clips": {}}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            where = f" (line {e.lineno}, column {e.colno}: {e.msg})" if isinstance(e, json.JSONDecodeError) else ""
            raise GalleryError(f"The gallery's list of works, {self.manifest_path}, cannot be read{where}; undo the "
                               "last change made to it by hand, or put back the copy that came with the release.",
                               reason="manifest_unreadable") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer of the gallery at a time, across processes: two curators adding at once each read the
        manifest, added their work and wrote it back, and only the last one's work stayed listed."""
        if not self.root.is_dir():
            self.root.mkdir(parents=True)
        fd = os.open(self.root, os.O_RDONLY)  # the folder itself is the lock: nothing left in it, even read-only
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # (releases the lock)

    def _write(self, manifest: dict) -> None:
        text = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
        replace_file(self.manifest_path, text, ".manifest.")

    # -- lookups --------------------------------------------------------------------------------
    def portrait(self, item_id: str) -> dict:
        return self._entry("portraits", item_id, "portrait")

    def clip(self, item_id: str) -> dict:
        return self._entry("clips", item_id, "clip")

    def _entry(self, kind: str, item_id: str, noun: str) -> dict:
        check_id(item_id)
        entries = self.manifest()[kind]
        if item_id not in entries:
            raise GalleryError(f"There is no gallery {noun} {item_id!r}; choose one of: {', '.join(sorted(entries))}.")
        return {"id": item_id, **entries[item_id]}

    def portrait_path(self, item_id: str) -> Path:
        return self._file("portraits", item_id, self.portrait(item_id))

    def clip_path(self, item_id: str) -> Path:
        return self._file("clips", item_id, self.clip(item_id))

    def _file(self, kind: str, item_id: str, entry: dict) -> Path:
        path = self.root / kind / entry["file"]
        if not path.is_file():
            noun = _noun(kind)
            raise GalleryError(f"The gallery lists the {noun} {item_id!r}, but its file {path} is not there; put the "
                               f"file back, or take {item_id!r} out of the gallery (README, \"Removing a work\").",
                               reason="file_missing", id=item_id)
        return path

    def motion_path(self, item_id: str) -> Path:
        return self.root / "motion" / f"{check_id(item_id)}.npz"

    def portrait_face(self, item_id: str):
        from .faces import FaceLandmarks
        face = self.portrait(item_id)["face"]
        return FaceLandmarks(np.asarray(face["points"], dtype=np.float32), face["layout"])

    # -- adding works -------------------------------------------------------------------------
    def add_portrait(self, src: Path, item_id: str, info: dict, *, backend: str = "auto", face_index: int | None = None,
                     replace: bool = False) -> dict:
        """Copy an image in, find its face once, and record it in the manifest (an id already there only with
        ``replace``)."""
        from .faces import choose_face, get_backend
        from .images import load_image
        check_id(item_id)
        self._may_add("portraits", item_id, replace)
        img = load_image(src)
        faces = get_backend(backend).detect(img)
        face = choose_face(faces, face_index)
        name = f"{item_id}{Path(src).suffix.lower()}"
        entry = {**self._kept("portraits", item_id, info, replace), "file": name,
                 "size": [int(img.shape[1]), int(img.shape[0])], "faces_found": len(faces),
                 "face": {"layout": face.layout, "box": [round(v, 1) for v in face.box],
                          "points": np.round(face.points.astype(np.float64), 2).tolist()}}
        return self._record("portraits", item_id, entry, [(self.root / "portraits" / name, _copy_from(src))], replace)

    def add_clip(self, src: Path, item_id: str, info: dict, *, backend: str = "auto", max_duration: float | None = None,
                 replace: bool = False) -> dict:
        """Copy a clip in, extract its motion once, and record it in the manifest (an id already there only with
        ``replace``)."""
        from .pipeline import extract_motion
        from .video import probe
        check_id(item_id)
        self._may_add("clips", item_id, replace)
        clip = probe(src, max_duration=max_duration)
        track = extract_motion(Path(src), clip, backend=backend)
        name = f"{item_id}{Path(src).suffix.lower()}"
        entry = {**self._kept("clips", item_id, info, replace), "file": name, **_clip_fields(clip, track),
                 "motion": f"motion/{item_id}.npz"}
        return self._record("clips", item_id, entry, [(self.root / "clips" / name, _copy_from(src)),
                                                      (self.motion_path(item_id), track.save)], replace)

    def retrack_clip(self, item_id: str, *, backend: str = "auto") -> dict:
        """Extract a shipped clip's motion again (after the tracking or the decoding has changed) and record
        it with what the clip's probe says now."""
        from .pipeline import extract_motion
        from .video import probe
        path = self.clip_path(item_id)  # an unknown id is a clear error here
        clip = probe(path)
        track = extract_motion(path, clip, backend=backend)
        entry = {**self.manifest()["clips"][item_id], **_clip_fields(clip, track)}
        return self._record("clips", item_id, entry, [(self.motion_path(item_id), track.save)], True)

    def remove(self, kind: str, item_id: str) -> dict:
        """Take a work (``kind``: "portraits" or "clips") out of the gallery: its manifest entry first, then its
        files, so the gallery never lists a file that is gone. Returns the entry removed."""
        check_id(item_id)
        noun = _noun(kind)
        with self._locked():
            m = copy.deepcopy(self._read())
            entry = m.get(kind, {}).pop(item_id, None)
            if entry is None:
                raise GalleryError(f"There is no gallery {noun} {item_id!r}; choose one of: "
                                   f"{', '.join(sorted(m.get(kind, {})))}.", reason="no_such_work", id=item_id)
            try:
                self._write(m)
            except OSError as e:
                raise GalleryError(f"Could not write to the gallery in {self.root} ({e.strerror or e}), so {item_id!r} "
                                   "is still in it. Check that the folder is writable, and run the command "
                                   "again.") from None
        files = [self.root / kind / entry["file"]] if entry.get("file") else []
        if kind == "clips":
            files.append(self.motion_path(item_id))
        for p in files:
            _quietly(p.unlink, missing_ok=True)
        return entry

    def _kept(self, kind: str, item_id: str, info: dict, replace: bool) -> dict:
        """``info`` over what a replaced work's entry says that its new file does not change (its French
        title, its holding museum...): `--replace` with a better scan wiped every field not given again."""
        old = self.manifest().get(kind, {}).get(item_id) if replace else None
        kept = {k: v for k, v in (old or {}).items() if k not in _FROM_FILE}
        return {**kept, **{k: v for k, v in info.items() if v != "" or k not in kept}}

    def _may_add(self, kind: str, item_id: str, replace: bool, manifest: dict | None = None) -> None:
        """Refuses an id the gallery has already, unless the work is to be replaced (a curator's slip would
        have put another picture under a work's title without a word)."""
        old = (manifest or self.manifest()).get(kind, {}).get(item_id)
        if old is not None and not replace:
            noun = _noun(kind)
            raise GalleryError(f"The gallery already has a {noun} {item_id!r} ({old.get('title', 'untitled')}); "
                               "choose another --id, or add --replace to replace it.", reason="id_taken", id=item_id)

    def _record(self, kind: str, item_id: str, entry: dict, files: list[tuple[Path, Callable[[Path], None]]],
                replace: bool) -> dict:
        """Write a work's files (each through its writer) and then its manifest entry.

        Each file and the manifest are replaced whole, by one process at a time. If anything stops it (a full
        disk, a read-only folder, Ctrl-C), the files this call created are removed again, the files it
        replaced are put back and the manifest is left as it was, so the gallery holds what it lists.
        """
        created: list[Path] = []
        kept: list[tuple[Path, Path]] = []  # (file replaced, its previous content kept beside it)
        try:
            with self._locked():
                m = copy.deepcopy(self._read())  # as it is on disk now, not as this process last saw it
                if not replace:
                    self._may_add(kind, item_id, False, m)  # (another curator may have taken the id meanwhile)
                for dest, write in files:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if dest.exists():
                        previous = dest.with_name(f".{dest.name}.previous")
                        previous.unlink(missing_ok=True)
                        try:
                            os.link(dest, previous)  # the old content stays under the second name when dest is replaced
                        except OSError:
                            shutil.copy2(dest, previous)  # (a file system without hard links)
                        kept.append((dest, previous))
                    else:
                        created.append(dest)
                    write(dest)
                replaced = m.setdefault(kind, {}).get(item_id)
                m[kind][item_id] = entry
                self._write(m)
        except BaseException as e:
            _undo(created, kept)
            if isinstance(e, OSError):
                raise GalleryError(f"Could not write to the gallery in {self.root} ({e.strerror or e}), so {item_id!r} "
                                   "was not added or updated. Free some disk space, or check that the folder is "
                                   "writable, and run the command again.") from None
            raise
        for _, previous in kept:
            _quietly(previous.unlink, missing_ok=True)
        if replaced and replaced.get("file") and replaced["file"] != entry.get("file"):
            # the work replaced, in another format
            _quietly((self.root / kind / replaced["file"]).unlink, missing_ok=True)
        return entry


def _noun(kind: str) -> str:
    """What one work of ``kind`` ("portraits", "clips") is called in a message."""
    return "portrait" if kind == "portraits" else "clip"


def _undo(created: list[Path], kept: list[tuple[Path, Path]]) -> None:
    """Remove what a failed :meth:`Gallery._record` created and put back what it replaced, as far as the
    folder lets it (a read-only one lets nothing be written, so nothing was)."""
    for p in created:
        _quietly(p.unlink, missing_ok=True)
    for dest, previous in kept:
        if not previous.exists():
            continue
        try:
            untouched = dest.exists() and os.path.samefile(dest, previous)
        except OSError:
            untouched = False
        if untouched:  # the write stopped before replacing dest: a rename between two links to one file does nothing
            _quietly(previous.unlink, missing_ok=True)
        else:
            _quietly(os.replace, previous, dest)


def _quietly(action: Callable, *args, **kwargs) -> None:
    try:
        action(*args, **kwargs)
    except OSError:
        pass


def _clip_fields(clip, track) -> dict:
    """A clip's manifest fields from its probe (:class:`~talking_head.video.ClipInfo`) and its motion."""
    return {"duration": round(clip.duration, 3), "fps": f"{clip.fps.numerator}/{clip.fps.denominator}",
            "n_frames": clip.n_frames, "size": [clip.width, clip.height], "has_audio": clip.has_audio,
            "faces_found": f"{int(track.found.sum())}/{len(track)}"}


def _copy_from(src: Path) -> Callable[[Path], None]:
    """A writer that copies ``src`` to its destination, or leaves it be when it is ``src`` itself."""
    def write(dest: Path) -> None:
        if Path(src).resolve() != dest.resolve():
            copy_file(src, dest)
    return write
