"""Files replaced whole: a reader sees the old file or the complete new one, never a torn one.

Everything is written to a temporary file beside its destination and renamed over it (a rename within
one directory is atomic), and a failed write removes its temporary file, so a full disk or a killed
process leaves neither half a file nor a stray temporary one.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def _replacing(path: Path, prefix: str) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; renamed over ``path`` when the block ends, and
    removed instead if the block (or the rename) fails."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.stem}.", suffix=path.suffix + ".tmp")
    try:
        # mkstemp makes the file owner-only; the new file gets the old one's mode, or what the umask gives
        # a new file (an app running as another user must still read a manifest staff updated).
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # elsewhere: set and put back (for that instant stricter, never looser)
    os.umask(mask)
    return mask


def replace_file(path: str | os.PathLike, data: bytes | str, prefix: str = "") -> None:
    """Write ``data`` (text is written as UTF-8) to ``path`` through a temporary file beside it.

    ``prefix`` names the temporary file (default: a dot and the destination's stem), so a stray one
    can be told apart in a listing.
    """
    with _replacing(Path(path), prefix) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy ``src`` to ``dest`` through a temporary file beside ``dest``."""
    with _replacing(Path(dest), "") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)
