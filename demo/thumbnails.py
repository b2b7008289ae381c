"""Small JPEG thumbnails of gallery portraits and clip posters (a clip's first frame), made once.

A kiosk grid of 14 full-resolution paintings would make the page slow to open; these are a few
tens of kB each, stored in the shared cache keyed by the source file's digest.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from talking_head import video
from talking_head.cache import default_dir, file_digest
from talking_head.files import replace_file
from talking_head.gallery import Gallery
from talking_head.images import load_image

THUMB_SIDE = 480
# In the name, so a kiosk's older thumbnails are made again when what they show changes
# (srgb: a portrait's embedded colour profile applied, an HDR clip's poster mapped to SDR, as in the render).
_VERSION = "srgb2"


def _thumb(source: Path, out_dir: Path, first_frame: bool) -> Path:
    digest = file_digest(source)[:24]
    out = out_dir / f"{digest}-{_VERSION}.jpg"
    if out.is_file():
        return out
    if first_frame:
        frames = video.read_frames(source, video.probe(source), max_side=THUMB_SIDE)
        try:
            rgb = next(frames)
        finally:
            frames.close()
    else:
        rgb = load_image(source, max_side=THUMB_SIDE)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=88)
    replace_file(out, jpeg.getvalue())
    for older in out_dir.glob(f"{digest}-*.jpg"):  # made under an older _VERSION: never shown again
        if older != out:
            older.unlink(missing_ok=True)
    return out


def thumbs_dir() -> Path:
    """Where the gallery's thumbnails and posters are kept (the app lets Gradio serve files from here)."""
    return default_dir() / "thumbs"


def portrait_thumbs(gallery: Gallery, out_dir: Path | None = None) -> dict[str, Path]:
    out_dir = out_dir or thumbs_dir()
    return {pid: _thumb(gallery.portrait_path(pid), out_dir, False) for pid in gallery.manifest()["portraits"]}


def clip_posters(gallery: Gallery, out_dir: Path | None = None) -> dict[str, Path]:
    out_dir = out_dir or thumbs_dir()
    return {cid: _thumb(gallery.clip_path(cid), out_dir, True) for cid in gallery.manifest()["clips"]}
