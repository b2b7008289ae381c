"""Files replaced whole (talking_head/files.py): a reader sees the old file or the new one, and a failed
write leaves neither a torn file nor its temporary one."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from talking_head import files


def _disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_replace_file_writes_bytes_and_text_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "manifest.json"
    files.replace_file(target, "première\n")
    assert target.read_text(encoding="utf-8") == "première\n"
    files.replace_file(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize("what", ["replace_file", "copy_file"])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch, what):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    src = tmp_path / "src" / "new.mp4"
    src.parent.mkdir()
    src.write_bytes(b"new" * 1000)
    monkeypatch.setattr(files.os, "replace", _disk_full)  # the disk fills as the new file is put in place
    with pytest.raises(OSError):
        files.replace_file(target, b"new") if what == "replace_file" else files.copy_file(src, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "src"]


def test_copy_file_copies_through_a_temporary_file(tmp_path, monkeypatch):
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(300_000))
    seen = []
    real = os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (seen.append((os.path.basename(a), os.path.basename(b))), real(a, b)))
    files.copy_file(src, tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    assert len(seen) == 1 and seen[0][1] == "b.bin" and seen[0][0].startswith(".") and seen[0][0].endswith(".tmp")


def test_written_files_get_the_umask_s_mode_or_keep_their_own(tmp_path):
    """A new file is readable by whom the umask allows (not owner-only, as a temporary file starts), so an
    app running as another user can read a manifest that staff updated; a file replaced keeps its mode."""
    old = os.umask(0o022)
    try:
        files.replace_file(tmp_path / "manifest.json", "{}")
        files.copy_file(tmp_path / "manifest.json", tmp_path / "copy.json")
        assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "copy.json").stat().st_mode) == 0o644
        os.chmod(tmp_path / "manifest.json", 0o600)
        files.replace_file(tmp_path / "manifest.json", '{"kept": true}')
        assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o600
        os.umask(0o027)
        files.replace_file(tmp_path / "new.json", "{}")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640
    finally:
        os.umask(old)
