"""The only place a visitor's files live: one temporary folder per browser session.

Uploads (Gradio writes them under ``GRADIO_TEMP_DIR``, which the app points inside this area) and
the results rendered from them go here, never into the shared cache. A session's folder is deleted
when the visitor leaves the page, and a sweeper deletes anything older than the time limit, so a
closed laptop lid or a crashed browser cannot keep a file alive. Nothing here is logged.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_TTL_S = 3600
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_root() -> Path:
    return Path(os.environ.get("LIVING_PORTRAITS_TMP") or Path(tempfile.gettempdir()) / "living-portraits-visitors")


class VisitorFiles:
    def __init__(self, root: os.PathLike | str | None = None, ttl_s: float = DEFAULT_TTL_S):
        self.root = Path(root) if root else default_root()
        self.ttl_s = ttl_s
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._stop = threading.Event()

    @property
    def gradio_dir(self) -> Path:
        """Where Gradio keeps uploads (set as GRADIO_TEMP_DIR before gradio is imported)."""
        return self.root / "gradio"

    def session_dir(self, session_id: str | None) -> Path:
        name = _SAFE.sub("", session_id or "") or "anonymous"
        d = self.root / "sessions" / name[:64]
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    def new_result_path(self, session_id: str | None) -> Path:
        fd, path = tempfile.mkstemp(dir=self.session_dir(session_id), prefix="portrait-", suffix=".mp4")
        os.close(fd)
        os.unlink(path)  # the encoder writes it atomically; only the unique name is wanted
        return Path(path)

    def end_session(self, session_id: str | None) -> None:
        shutil.rmtree(self.session_dir(session_id), ignore_errors=True)

    def sweep(self, now: float | None = None) -> int:
        """Delete files and folders older than the time limit; returns how many entries went."""
        now = time.time() if now is None else now
        removed = 0
        for top in (self.root / "sessions", self.gradio_dir):
            if not top.is_dir():
                continue
            for entry in top.iterdir():
                try:
                    newest = max([entry.stat().st_mtime] + [p.stat().st_mtime for p in entry.rglob("*")])
                except OSError:
                    continue
                if now - newest > self.ttl_s:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
        return removed

    def start_sweeper(self, every_s: float = 300) -> None:
        def loop():
            while not self._stop.wait(every_s):
                self.sweep()
        threading.Thread(target=loop, name="visitor-files-sweeper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
