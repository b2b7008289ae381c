"""Files replaced whole: a reader sees the old file or the complete new one, never a torn one.

Everything is written to a temporary file beside its destination and renamed over it (a rename within
one directory is atomic), and a failed write removes its temporary file, so a full disk or a killed
process leaves neither half a file nor a stray temporary one.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _temporary(path: Path, prefix: str) -> tuple[int, Path]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.stem}.", suffix=path.suffix + ".tmp")
    return fd, Path(tmp)


def replace_file(path: str | os.PathLike, data: bytes | str, prefix: str = "") -> None:
    """Write ``data`` (text is written as UTF-8) to ``path`` through a temporary file beside it.

    ``prefix`` names the temporary file (default: a dot and the destination's stem), so a stray one
    can be told apart in a listing.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = _temporary(path, prefix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy ``src`` to ``dest`` through a temporary file beside ``dest``."""
    dest = Path(dest)
    fd, tmp = _temporary(dest, "")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
