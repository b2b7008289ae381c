"""A portrait's colours are the ones a browser shows: embedded ICC profiles are applied on loading.

The expected colours come from outside the code under test: the Display P3 -> sRGB conversion is
computed here from the two colour spaces' published matrices, and the CMYK and grey profiles are
written byte by byte (tests/icc.py) so that ignoring them gives visibly different numbers.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SHARED
from icc import cmyk_profile, grey_profile
from PIL import Image, ImageCms, ImageOps

from talking_head.images import load_image

# La Velata's file as the museum's scan made it: its pixels are Display P3 numbers.
P3_PAINTING = SHARED / "gallery-src" / "paintings" / "raphael_la_velata.jpg"

# Linear Display P3 (D65) -> XYZ, and XYZ -> linear sRGB (D65).
_P3_TO_XYZ = np.array([[0.4865709, 0.2656677, 0.1982173], [0.2289746, 0.6917385, 0.0792869], [0.0, 0.0451134, 1.0439444]])
_XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                         [0.0556434, -0.2040259, 1.0572252]])  # fmt: skip


def _decode(v):  # the sRGB transfer curve, which Display P3 shares
    v = np.asarray(v, np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _encode(lin):
    lin = np.clip(lin, 0, 1)
    return 255 * np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def _p3_in_srgb(rgb) -> np.ndarray:
    return _encode(_XYZ_TO_SRGB @ (_P3_TO_XYZ @ _decode(rgb)))


def _patches(colours, size=64) -> Image.Image:
    """Flat squares side by side, one per colour."""
    a = np.concatenate([np.full((size, size, len(c)), c, np.uint8) for c in colours], axis=1)
    return Image.fromarray(a.squeeze())


def _saved(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _centres(a: np.ndarray, n: int, size=64) -> np.ndarray:
    return np.array([a[size // 2, i * size + size // 2] for i in range(n)], np.float64)


# In the sRGB gamut once converted: a terracotta, a sky blue, grey, a light skin tone, a dark brown.
P3_COLOURS = [(200, 100, 50), (60, 120, 180), (128, 128, 128), (230, 200, 170), (90, 60, 40)]


@pytest.fixture(scope="module")
def p3_profile() -> bytes:
    icc = Image.open(P3_PAINTING).info["icc_profile"]
    assert "Display P3" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    return icc


def test_a_display_p3_picture_is_converted_to_srgb(p3_profile):
    got = _centres(load_image(_saved(_patches(P3_COLOURS), "PNG", icc_profile=p3_profile)), len(P3_COLOURS))
    want = np.array([_p3_in_srgb(c) for c in P3_COLOURS])
    assert np.abs(got - want).max() <= 2.0
    assert np.abs(got - np.array(P3_COLOURS)).max() >= 15  # (read as sRGB numbers, the terracotta was this far off)


def test_the_same_numbers_without_a_profile_are_taken_as_srgb(p3_profile):
    got = _centres(load_image(_saved(_patches(P3_COLOURS), "PNG")), len(P3_COLOURS))
    assert np.array_equal(got, np.array(P3_COLOURS, np.float64))


def test_an_srgb_profile_leaves_the_numbers_as_they_are():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    got = _centres(load_image(_saved(_patches(P3_COLOURS), "PNG", icc_profile=srgb)), len(P3_COLOURS))
    assert np.array_equal(got, np.array(P3_COLOURS, np.float64))


def test_a_p3_painting_from_the_gallery_is_more_saturated_than_its_numbers():
    def saturation(a):
        a = a.astype(np.float64)
        return float(((a.max(-1) - a.min(-1)) / (a.max(-1) + 1e-6)).mean())

    raw = np.asarray(Image.open(P3_PAINTING).convert("RGB"))
    assert saturation(load_image(P3_PAINTING)) > 1.05 * saturation(raw)


def test_transparency_is_kept_through_the_conversion(p3_profile):
    rgba = np.zeros((64, 128, 4), np.uint8)
    rgba[:, :64] = (200, 100, 50, 255)
    rgba[:, 64:] = (200, 100, 50, 0)  # see-through: the museum-wall grey shows instead
    got = load_image(_saved(Image.fromarray(rgba), "PNG", icc_profile=p3_profile))
    assert np.abs(got[32, 32] - _p3_in_srgb((200, 100, 50))).max() <= 2.0
    assert tuple(got[32, 96]) == (200, 200, 196)


def test_a_cmyk_print_file_is_read_through_its_profile():
    """The profile says cyan ink prints red, magenta green and yellow blue: read through it, the patches are
    those colours; a reading that ignores the profile gives cyan, magenta and yellow."""
    icc = cmyk_profile({(0, 0, 0, 0): (100, 0, 0), (1, 0, 0, 0): (54, 80, 67), (0, 1, 0, 0): (88, -86, 83),
                        (0, 0, 1, 0): (32, 79, -107)})  # fmt: skip
    inks = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]
    got = _centres(load_image(_saved(_cmyk_patches(inks), "JPEG", icc_profile=icc, quality=95)), len(inks))
    white, red, green, blue, black = got
    assert white.min() >= 245 and black.max() <= 10
    assert red[0] >= 220 and red[1:].max() <= 40
    assert green[1] >= 220 and green[[0, 2]].max() <= 40
    assert blue[2] >= 220 and blue[1] <= 40
    blind = _centres(load_image(_saved(_cmyk_patches(inks), "JPEG", quality=95)), len(inks))
    assert blind[1][0] <= 40 and blind[1][1:].min() >= 215  # without the profile: cyan


def _cmyk_patches(inks, size=64) -> Image.Image:
    a = np.concatenate([np.full((size, size, 4), c, np.uint8) for c in inks], axis=1)
    return Image.frombytes("CMYK", (a.shape[1], a.shape[0]), a.tobytes())


def test_a_grey_scan_is_read_through_its_curve():
    """A grey profile with a linear curve: 128 is half the light, which sRGB writes as 188."""
    grey = Image.fromarray(np.full((64, 64), 128, np.uint8))
    got = load_image(_saved(grey, "JPEG", icc_profile=grey_profile(1.0), quality=95))
    assert np.abs(got[32, 32].astype(int) - 188).max() <= 2
    assert np.abs(load_image(_saved(grey, "JPEG", quality=95))[32, 32].astype(int) - 128).max() <= 1


def test_a_damaged_profile_leaves_the_picture_as_it_is(p3_profile):
    broken = p3_profile[:60] + bytes(len(p3_profile) - 60)
    got = _centres(load_image(_saved(_patches(P3_COLOURS), "PNG", icc_profile=broken)), len(P3_COLOURS))
    assert np.array_equal(got, np.array(P3_COLOURS, np.float64))


def test_a_colour_marked_see_through_stays_see_through(p3_profile):
    """A PNG whose transparency is one colour marked see-through (tRNS, as PNG optimisers write binary alpha)
    lost it in the conversion: the key colour showed instead of the wall grey."""
    rgb = np.zeros((64, 128, 3), np.uint8)
    rgb[:, :64] = (200, 100, 50)
    rgb[:, 64:] = (0, 255, 0)
    got = load_image(_saved(Image.fromarray(rgb), "PNG", icc_profile=p3_profile, transparency=(0, 255, 0)))
    assert np.abs(got[32, 32] - _p3_in_srgb((200, 100, 50))).max() <= 2.0
    assert tuple(got[32, 96]) == (200, 200, 196)


def test_grey_with_alpha_and_a_palette_picture_are_converted_too(p3_profile):
    la = np.zeros((64, 128, 2), np.uint8)
    la[:, :, 0], la[:, :64, 1] = 128, 255
    got = load_image(_saved(Image.merge("LA", [Image.fromarray(la[..., 0]),
                     Image.fromarray(la[..., 1])]), "PNG", icc_profile=grey_profile(1.0)))  # fmt: skip
    assert np.abs(got[32, 32].astype(int) - 188).max() <= 2 and tuple(got[32, 96]) == (200, 200, 196)
    palette = _patches(P3_COLOURS).quantize(len(P3_COLOURS))
    got = _centres(load_image(_saved(palette, "PNG", icc_profile=p3_profile)), len(P3_COLOURS))
    assert np.abs(got - np.array([_p3_in_srgb(c) for c in P3_COLOURS])).max() <= 2.0


# -- a big scan or a phone photo, scaled down on loading ---------------------------------------------
def _detailed(w: int, h: int) -> Image.Image:
    """A painting's detail at ``w`` x ``h``, with a red block in its top-left corner to tell its orientation."""
    img = Image.open(SHARED / "gallery-src" / "paintings" / "mona_lisa.jpg").convert("RGB").resize((w, h), Image.BICUBIC)
    img.paste((255, 0, 0), (0, 0, w // 8, h // 8))
    return img


def _fair(img: Image.Image, size) -> np.ndarray:
    """Lanczos from the whole decoded picture: what the loader's shortcuts must stay close to."""
    return np.asarray(img.resize(size, Image.LANCZOS), np.float64)


def _psnr(a, b) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((np.asarray(a, np.float64) - b) ** 2), 1e-9)))


def test_a_big_rotated_p3_jpeg_is_loaded_upright_in_srgb_and_close_to_a_full_decode(p3_profile):
    upright = _detailed(3000, 4000)
    # Stored lying on its side with an EXIF orientation of 6 (turn 90 degrees clockwise to view), as phones do.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _saved(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, icc_profile=p3_profile,
                  exif=exif.tobytes())
    got = load_image(data, max_side=1280)
    assert got.shape == (1280, 960, 3)
    top_left = got[:100, :100].reshape(-1, 3).mean(0)
    assert top_left[0] > 200 and top_left[1] < 60, f"the picture is not upright: top-left corner {top_left}"

    decoded = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    srgb = ImageCms.profileToProfile(decoded, ImageCms.ImageCmsProfile(io.BytesIO(p3_profile)),
                                     ImageCms.createProfile("sRGB"))
    fair = _fair(srgb, (960, 1280))
    assert _psnr(got, fair) > 45
    assert np.abs(got - fair).mean() < 0.6


def test_a_big_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    """A 24-megapixel scan is not decoded whole only to be scaled to 1280: that held 300 MB more per render."""
    from PIL import JpegImagePlugin

    decoded_at = []
    load = JpegImagePlugin.JpegImageFile.load

    def spy(self):
        decoded_at.append(self.size)
        return load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    got = load_image(_saved(_detailed(4000, 6000), "JPEG", quality=90), max_side=1280)
    assert got.shape == (1280, 853, 3)
    assert decoded_at and max(decoded_at[-1]) <= 2 * 1280 * 1.2, f"decoded at {decoded_at[-1]}"


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK"])
def test_a_big_picture_in_another_mode_is_scaled_down_like_a_full_decode(mode):
    src = _detailed(2400, 3200)
    if mode == "RGBA":  # the right half half see-through: shown over the loader's museum-wall grey
        alpha = np.full((3200, 2400), 255, np.uint8)
        alpha[:, 1200:] = 128
        src.putalpha(Image.fromarray(alpha))
        shown = Image.alpha_composite(Image.new("RGBA", src.size, (200, 200, 196, 255)), src).convert("RGB")
        data = _saved(src, "PNG")
    else:
        src = src.convert(mode)
        data = _saved(src, "TIFF" if mode == "CMYK" else "PNG")
        shown = src.convert("RGB")
    got = load_image(data, max_side=1000)
    assert got.shape == (1000, 750, 3)
    assert _psnr(got, _fair(shown, (750, 1000))) > 45


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_jpeg_decoded_smaller_has_the_size_its_header_gives(orientation):
    """5120x3413 decoded at a quarter is 1280x854 (a pixel rounded up), which came out 1280x854 instead of
    the 1280x853 every other path (and the gallery's stored face) takes for that picture."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _saved(Image.new("RGB", (5120, 3413), (120, 80, 60)), "JPEG", exif=exif.tobytes())
    want = (853, 1280, 3) if orientation == 1 else (1280, 853, 3)
    assert load_image(data, max_side=1280).shape == want
