"""The gallery's thumbnails: made once, small, and an older version's files cleared away."""
from __future__ import annotations

from PIL import Image

from demo.thumbnails import THUMB_SIDE, portrait_thumbs
from talking_head.cache import file_digest
from talking_head.gallery import Gallery


def test_thumbnails_are_made_once_and_replace_the_ones_an_older_version_made(tmp_path):
    gallery = Gallery.default()
    mona = gallery.portrait_path("mona_lisa")
    older = tmp_path / f"{file_digest(mona)[:24]}-srgb.jpg"  # as the version before made it
    unrelated = tmp_path / "not-a-thumbnail-srgb.jpg"
    older.write_bytes(b"an old thumbnail")
    unrelated.write_bytes(b"someone else's")

    thumbs = portrait_thumbs(gallery, tmp_path)
    assert set(thumbs) == set(gallery.manifest()["portraits"])
    for pid, path in thumbs.items():
        with Image.open(path) as im:
            assert im.format == "JPEG" and max(im.size) == THUMB_SIDE, pid
    assert not older.exists() and unrelated.exists()
    assert sorted(tmp_path.iterdir()) == sorted([*thumbs.values(), unrelated])  # no temporary file left

    made = {pid: p.stat().st_mtime_ns for pid, p in thumbs.items()}
    assert portrait_thumbs(gallery, tmp_path) == thumbs  # the second time, only looked up
    assert {pid: p.stat().st_mtime_ns for pid, p in thumbs.items()} == made
