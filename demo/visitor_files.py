"""The only place a visitor's files live: one temporary folder per browser session.

Uploads (Gradio writes them under ``GRADIO_TEMP_DIR``, which the app points inside this area) and
the results rendered from them go here, never into the shared cache. A session's folder, and every
upload the session rendered from, is deleted when the visitor leaves the page, and a sweeper deletes
anything older than the time limit, so a closed laptop lid or a crashed browser cannot keep a file
alive. Nothing here is logged.

Gradio serves a result from a copy in its upload folder (named after the copy's content); the app
makes that copy itself and remembers it with the session's uploads, so that it goes too.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from pathlib import Path

DEFAULT_TTL_S = 3600
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_root() -> Path:
    return Path(os.environ.get("LIVING_PORTRAITS_TMP") or Path(tempfile.gettempdir()) / "living-portraits-visitors")


def _files_below(root: Path) -> list[Path]:
    """The files below ``root``. Folders go while they are walked (a session ends, the sweeper runs):
    os.walk skips what has gone, where Path.rglob raised FileNotFoundError in a test's teardown."""
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


_LIGATURES = str.maketrans({"œ": "oe", "Œ": "Oe", "æ": "ae", "Æ": "Ae", "ß": "ss"})  # no NFKD decomposition


def download_name(*titles: str | None) -> str:
    """A name a visitor can keep a result under: ``living-portrait_mona-lisa_glances-and-a-big-smile.mp4``
    (plain ASCII, so every browser and file system takes it; titles that are None are left out)."""
    parts = ["living-portrait"]
    for title in titles:
        ascii_ = unicodedata.normalize("NFKD", (title or "").translate(_LIGATURES)).encode("ascii", "ignore").decode()
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")[:60].rstrip("-")
        if slug:
            parts.append(slug)
    return "_".join(parts) + ".mp4"


class VisitorFiles:
    def __init__(self, root: os.PathLike | str | None = None, ttl_s: float = DEFAULT_TTL_S):
        self.root = Path(root) if root else default_root()
        self.ttl_s = ttl_s
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sessions_root = self.root / "sessions"
        self.uploads_root = self.gradio_dir
        self._uploads: dict[str, set[Path]] = {}
        self._kept: set[str] = set()  # the page's own files in Gradio's folder (thumbnails): never swept
        self._ended: dict[str, float] = {}  # sessions ended (name -> when), until they upload again
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def gradio_dir(self) -> Path:
        """Where Gradio should keep uploads (set as GRADIO_TEMP_DIR before gradio is imported)."""
        return self.root / "gradio"

    def bind_gradio(self, upload_folder: os.PathLike | str) -> None:
        """Use the folder Gradio really uploads to (``GRADIO_TEMP_DIR`` may have been set elsewhere)."""
        self.uploads_root = Path(upload_folder).resolve()

    def keep_current_uploads(self) -> None:
        """Mark what is in Gradio's folder now (the page's own images, copied there when it was built)
        as not a visitor's: the sweeper leaves it alone, however old its files are."""
        if self.uploads_root.is_dir():
            self._kept = {e.name for e in self.uploads_root.iterdir()}

    def visitor_files(self) -> list[Path]:
        """Every file a visitor left here (results and uploads), for checks and reports."""
        found = _files_below(self.sessions_root)
        if self.uploads_root.is_dir():
            for entry in self.uploads_root.iterdir():
                if entry.name in self._kept:
                    continue
                found += [entry] if entry.is_file() else _files_below(entry)
        return found

    @staticmethod
    def _name(session_id: str | None) -> str:
        return (_SAFE.sub("", session_id or "") or "anonymous")[:64]

    def session_dir(self, session_id: str | None) -> Path:
        d = self.sessions_root / self._name(session_id)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    def remember_upload(self, session_id: str | None, path: os.PathLike | str) -> None:
        """Note a file Gradio holds for this session (an upload, a result's copy), to delete it when the
        session ends."""
        p = Path(path).resolve()
        with self._lock:
            self._ended.pop(self._name(session_id), None)  # (a kiosk page whose reload failed: the next visitor)
            if p.is_relative_to(self.uploads_root) and p != self.uploads_root:
                self._uploads.setdefault(self._name(session_id), set()).add(p)

    def ended(self, session_id: str | None) -> bool:
        """Whether the session has ended (and not uploaded since): work still running for it must not
        write its folder back."""
        with self._lock:
            return self._name(session_id) in self._ended

    def new_result_path(self, session_id: str | None) -> Path:
        fd, path = tempfile.mkstemp(dir=self.session_dir(session_id), prefix="portrait-", suffix=".mp4")
        os.close(fd)
        os.unlink(path)  # the encoder writes it atomically; only the unique name is wanted
        return Path(path)

    def keepsake(self, session_id: str | None, result: os.PathLike | str, name: str) -> Path:
        """``result`` under ``name`` in the session's folder, for the download button (the browser saves a
        download under its file's name): a hard link where the file system allows it, else a copy."""
        dest = self.session_dir(session_id) / Path(name).name
        dest.unlink(missing_ok=True)  # the same pair rendered again in this session
        try:
            os.link(result, dest)
        except OSError:
            shutil.copyfile(result, dest)
        return dest

    def end_session(self, session_id: str | None) -> None:
        name = self._name(session_id)
        with self._lock:
            self._ended[name] = time.time()
        shutil.rmtree(self.sessions_root / name, ignore_errors=True)
        with self._lock:
            uploads = self._uploads.pop(name, set())
        with self._lock:
            shared = set().union(*self._uploads.values()) if self._uploads else set()
        for p in uploads - shared:  # the same bytes uploaded by a session still open stay for it
            p.unlink(missing_ok=True)
            try:  # Gradio keeps each upload in a folder of its own
                if p.parent != self.uploads_root:
                    p.parent.rmdir()
            except OSError:
                pass  # not empty: another session uploaded the same bytes
        self._drop_stray_upload_temps()

    def _drop_stray_upload_temps(self, min_age_s: float = 5.0) -> None:
        """Gradio 6's upload parser leaves an empty ``tmpXXXXXXXX`` file beside every upload it keeps.

        They hold nothing of anybody, but they pile up: remove those that stayed empty for a while
        (an upload being received fills its file within milliseconds).
        """
        if not self.uploads_root.is_dir():
            return
        now = time.time()
        for entry in self.uploads_root.glob("tmp*"):
            try:
                st = entry.stat()
                if entry.is_file() and st.st_size == 0 and now - st.st_mtime > min_age_s:
                    entry.unlink()
            except OSError:
                pass

    def sweep(self, now: float | None = None) -> int:
        """Delete files and folders older than the time limit; returns how many entries went."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            self._ended = {k: when for k, when in self._ended.items() if now - when <= self.ttl_s}
        for top in (self.sessions_root, self.uploads_root):
            if not top.is_dir():
                continue
            for entry in top.iterdir():
                if entry.name in self._kept:
                    continue
                try:
                    # ctime too: Gradio copies files with their original mtime, which may be days old.
                    newest = max(max(st.st_mtime, st.st_ctime) for st in
                                 [entry.stat()] + [p.stat() for p in entry.rglob("*")])
                except OSError:
                    continue
                if now - newest > self.ttl_s:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
        self._drop_stray_upload_temps()
        return removed

    def start_sweeper(self, every_s: float = 300) -> None:
        def loop():
            while not self._stop.wait(every_s):
                self.sweep()
        threading.Thread(target=loop, name="visitor-files-sweeper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
