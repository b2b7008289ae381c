"""Load a portrait image safely: size limits before decoding, any mode to RGB, EXIF upright, colours in sRGB."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_FILE_BYTES = 50 * 1024 * 1024
# Pixels are checked from the header, before any decoding, so a decompression bomb costs nothing.
MAX_PIXELS = 40_000_000
MIN_SIDE = 64
# The animation is rendered at the portrait's own resolution up to this long side; larger
# scans are scaled down so a 100-megapixel museum file does not make a 2 GB video.
DEFAULT_MAX_SIDE = 2048


def _open(source: str | os.PathLike | bytes) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_FILE_BYTES:
            raise ImageError(_too_big_file(len(source)), reason="image_too_big")
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"The portrait file {path.name!r} does not exist; check the path.")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"The portrait file {path.name!r} is empty; choose a JPEG or PNG image.", reason="empty")
    if size > MAX_FILE_BYTES:
        raise ImageError(_too_big_file(size), reason="image_too_big")
    return Image.open(path)


def _too_big_file(n: int) -> str:
    mib = 1024 * 1024
    return (f"The image file is {n / mib:.1f} MB, over the {MAX_FILE_BYTES / mib:.0f} MB limit; "
            "save it as a JPEG or scale it down and try again.")


def load_image(source: str | os.PathLike | bytes | np.ndarray, *, max_side: int | None = DEFAULT_MAX_SIDE) -> np.ndarray:
    """Return the portrait as an upright RGB uint8 array, or raise ImageError saying what to do."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, max_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open(source)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"The image is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f} "
                    "megapixel limit); scale it down (e.g. to 2048 pixels on the long side) and try again.",
                    reason="image_too_big")
            if min(w, h) < MIN_SIDE:
                raise ImageError(f"The image is only {w}x{h} pixels; use a portrait at least {MIN_SIDE} pixels on each side.",
                                 reason="image_too_small", min_side=MIN_SIDE)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF/WebP: the first frame is the portrait
            # The size it will have, from the header (a JPEG decoded smaller is a pixel larger where it is odd).
            size = fit_within(w, h, max_side)
            _decode_smaller(img, size)
            img.load()
            if img.getexif().get(_ORIENTATION) in _TURNED:
                size = size[::-1]
            img = _shrunk(_in_srgb(ImageOps.exif_transpose(img), size), size)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"The image has more than {MAX_PIXELS / 1e6:.0f} megapixels; scale it down "
                         "(e.g. to 2048 pixels on the long side) and try again.", reason="image_too_big") from None
    except UnidentifiedImageError:
        raise ImageError("This file is not an image we can read; choose a JPEG, PNG or WebP portrait.",
                         reason="not_image") from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated/corrupt data as OSError("image file is truncated ...") or similar.
        raise ImageError("The image file is damaged or incomplete; export it again as a JPEG or PNG and retry.",
                         reason="image_damaged") from e
    return _array_to_rgb(_to_rgb(img), max_side)


# The modes an embedded profile is applied to (LittleCMS through Pillow): colour and grey scans, print files.
_PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "L": "RGB"}


def _in_srgb(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The picture's colours as a browser or an image viewer shows them.

    A scan in Adobe RGB or Display P3, a print file in CMYK or a grey scan with a dot-gain curve carries an
    ICC profile that says what its numbers mean; read as sRGB numbers they look duller, harsher or darker
    than the painting does anywhere else (La Velata's Display P3 file lost a tenth of its saturation). The
    profile's own rendering intent converts them to sRGB, the colour space of everything downstream (the
    H.264 output is tagged BT.709, sRGB's primaries). A picture without a profile is taken as sRGB already,
    as browsers do; a damaged or unusable profile leaves the numbers as they are. A picture larger than ``size``
    is scaled down first, as it would be after: a 24-megapixel scan's conversion cost 0.6 s at full size."""
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    if img.mode == "P" or (img.mode in ("RGB", "L") and "transparency" in img.info):
        # A palette, or one colour marked see-through (tRNS): made explicit first, as the conversion drops both.
        img = img.convert("RGBA" if img.mode != "L" else "LA")
    alpha = img.getchannel("A") if img.mode == "LA" else None  # grey with alpha: the grey converted, alpha kept
    base = img.convert("L") if alpha is not None else img
    if base.mode not in _PROFILED_MODES:
        return img
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out_mode = _PROFILED_MODES[base.mode]
        transform = ImageCms.buildTransform(profile, _srgb(), base.mode, out_mode, ImageCms.getDefaultIntent(profile))
        if base.mode in ("RGB", "RGBA") and _leaves_unchanged(transform):
            return img  # an sRGB profile, whatever it is called: converting would change nothing but the time
        out = ImageCms.applyTransform(_shrunk(base, size), transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img
    if alpha is not None:
        out.putalpha(_shrunk(alpha, size))
    return out


# Scaling a big scan down: Lanczos over the last factor of 2 and a cheap box reduction before it, as
# Pillow's own thumbnails do (within a level or two of Lanczos all the way, at a fraction of its time).
_REDUCING_GAP = 2.0
# The modes Pillow scales with a proper filter (it weights colour by alpha itself); a palette would be
# scaled by nearest neighbour and a colour keyed transparent (tRNS) blurred into its neighbours.
_SHRINKABLE = {"RGB", "RGBA", "L", "LA", "CMYK"}
# EXIF orientations that turn the picture a quarter (width and height swap places).
_ORIENTATION, _TURNED = 0x0112, {5, 6, 7, 8}


def _decode_smaller(img: Image.Image, size: tuple[int, int]) -> None:
    """Have a JPEG decoded at 1/2, 1/4 or 1/8 of its size where that is still twice the size it is scaled to.

    libjpeg scales in its inverse DCT for nearly nothing: a 24-megapixel scan's decode and scaling fell
    from 0.55 s to 0.12 s (BENCHMARKS, twenty-sixth session). Before ``load``; a no-op for other formats."""
    w, h = size
    if (w, h) != img.size and img.format == "JPEG":
        img.draft(None, (int(w * _REDUCING_GAP), int(h * _REDUCING_GAP)))


def _shrunk(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` scaled down to ``size``, while it is still a Pillow image (in the modes it can; else as it is).

    Before the pixels become arrays, so a big scan is not copied at full size two or three times more."""
    if size == img.size or img.mode not in _SHRINKABLE or "transparency" in img.info:
        return img
    return img.resize(size, Image.LANCZOS, reducing_gap=_REDUCING_GAP)


# Every 8th level of each channel, all combinations: 32768 colours, 1 ms through the transform.
_PROBE_COLOURS = np.stack(np.meshgrid(*[np.arange(0, 256, 8, dtype=np.uint8)] * 3, indexing="ij"), -1).reshape(256, 128, 3)


def _leaves_unchanged(transform: ImageCms.ImageCmsTransform) -> bool:
    """Whether ``transform`` (an RGB one) maps every colour to itself, to within a level."""
    probe = Image.fromarray(_PROBE_COLOURS)
    if transform.input_mode == "RGBA":
        probe = probe.convert("RGBA")
    got = np.asarray(ImageCms.applyTransform(probe, transform).convert("RGB"), np.int16)
    return int(np.abs(got - _PROBE_COLOURS).max()) <= 1


def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if mode == "F" and np.nanmax(a, initial=0.0) <= 1.0:
            hi = 1.0  # a floating-point image scaled 0..1 (scientific and HDR tools write these)
        else:
            hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.nan_to_num(a)
        g = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        # Transparent areas become a neutral museum-wall grey rather than black.
        bg = Image.new("RGBA", rgba.size, (200, 200, 196, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _array_to_rgb(a: np.ndarray, max_side: int | None) -> np.ndarray:
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageError("The portrait must be an RGB image.")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    a = np.ascontiguousarray(a[..., :3])
    size = fit_within(a.shape[1], a.shape[0], max_side)
    if size != (a.shape[1], a.shape[0]):
        a = np.asarray(Image.fromarray(a).resize(size, Image.LANCZOS))
    return a


def fit_within(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) with the long side at most ``max_side`` (None: no limit), the aspect kept."""
    if max_side is None or max(w, h) <= max_side:
        return w, h
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    s = max_side / max(w, h)
    return max(1, min(max_side, round(w * s))), max(1, min(max_side, round(h * s)))


# A bomb check must not depend on the global limit of whoever imported PIL first.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
