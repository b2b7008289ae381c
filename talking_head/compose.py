"""Putting rendered crops back into the canvas, the visible AI label, the side-by-side layout."""
from __future__ import annotations

import functools

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_TEXT = "AI-generated"


class PasteMask:
    """A feather mask (0..1) with its complement precomputed, reused for every frame of a clip.

    Where the mask is exactly 1 (the crop's interior) pasting is a plain copy; only the feathered
    rim is blended. ``inner`` is that all-ones rectangle (x0, y0, x1, y1) in crop pixels, or None.
    """

    def __init__(self, mask: np.ndarray):
        self.mask = np.ascontiguousarray(mask, dtype=np.float32)
        self.inverse = 1.0 - self.mask
        self.inner = _ones_box(self.mask)
        self.rim = [(box, np.ascontiguousarray(self.mask[box[1]:box[3], box[0]:box[2]]),
                     np.ascontiguousarray(self.inverse[box[1]:box[3], box[0]:box[2]]))
                    for box in _rim_boxes(self.mask.shape, self.inner)]


def _ones_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The rectangle spanned by the rows and columns that hold a 1, if the mask is 1 all over it."""
    ones = mask == 1.0
    rows, cols = np.flatnonzero(ones.any(axis=1)), np.flatnonzero(ones.any(axis=0))
    if not len(rows):
        return None
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return box if ones[box[1]:box[3], box[0]:box[2]].all() else None


def _rim_boxes(shape, inner) -> list[tuple[int, int, int, int]]:
    """Non-empty boxes (top, bottom, left, right) that cover ``shape`` outside ``inner``."""
    h, w = shape
    if inner is None:
        return [(0, 0, w, h)]
    x0, y0, x1, y1 = inner
    boxes = [(0, 0, w, y0), (0, y1, w, h), (0, y0, x0, y1), (x1, y0, w, y1)]
    return [b for b in boxes if b[2] > b[0] and b[3] > b[1]]


def paste_back(canvas: np.ndarray, crop: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray | PasteMask,
               out: np.ndarray | None = None) -> np.ndarray:
    """Blend ``crop`` into ``canvas`` at ``box`` through the feather ``mask`` (0..1).

    Writes into ``out`` when given (a frame buffer reused across a clip), else into a copy.
    """
    pm = mask if isinstance(mask, PasteMask) else PasteMask(mask)
    if out is None:
        out = canvas.copy()
    x0, y0 = box[:2]
    if pm.inner is not None:
        ix0, iy0, ix1, iy1 = pm.inner
        out[y0 + iy0:y0 + iy1, x0 + ix0:x0 + ix1] = crop[iy0:iy1, ix0:ix1]
    # cv2.blendLinear is one vectorised pass; numpy's float blend costs 10x more.
    for (bx0, by0, bx1, by1), m, inv in pm.rim:
        under = canvas[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1]
        out[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1] = cv2.blendLinear(
            np.ascontiguousarray(crop[by0:by1, bx0:bx1]), np.ascontiguousarray(under), m, inv)
    return out


def _label_basis(w: int, h: int, video_w: int | None) -> int:
    """The length the badge is sized to: how large the video is seen. A player fits the whole frame (with
    a side-by-side panel, ``video_w``) to its box, so the badge follows the whole frame's width, or 3/4 of
    its height for a tall portrait fitted by its height; never so large that it overflows the part it marks."""
    return min(max(video_w or w, int(0.75 * h)), 4 * w)


@functools.lru_cache(maxsize=16)
def _label_overlay(basis: int, text: str) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of a rounded dark badge with white text, sized to ``basis`` (see _label_basis)."""
    size = max(12, int(basis * 0.028))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    l, t, r, b = probe.textbbox((0, 0), text, font=font)
    pad = max(4, size // 3)
    w, h = r - l + 2 * pad, b - t + 2 * pad
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad, fill=(20, 20, 20, 170))
    d.text((pad - l, pad - t), text, font=font, fill=(255, 255, 255, 255))
    a = np.asarray(img, dtype=np.float32)
    return a[..., :3], a[..., 3:] / 255.0


def _badge(frame_shape, text: str, video_w: int | None) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The badge for a frame (RGB, alpha) and where it goes, (x0, y0, x1, y1) in the bottom-right corner. A long
    custom text that would not fit at the video's size is sized to the frame it marks, where it always fits."""
    h, w = frame_shape[:2]
    margin = max(4, int(0.015 * w))
    rgb, alpha = _label_overlay(_label_basis(w, h, video_w), text)
    if rgb.shape[1] > w - 2 * margin:
        rgb, alpha = _label_overlay(w, text)
    return rgb, alpha, (w - rgb.shape[1] - margin, h - rgb.shape[0] - margin, w - margin, h - margin)


def draw_label(frame: np.ndarray, text: str = LABEL_TEXT, video_w: int | None = None) -> np.ndarray:
    """Draw the visible label in the bottom-right corner, in place. ``video_w``: the width of the whole
    video frame this one is shown in (beside a side-by-side panel), when wider than the frame."""
    rgb, alpha, (x0, y0, x1, y1) = _badge(frame.shape, text, video_w)
    if y0 < 0 or x0 < 0:
        return frame
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (region * (1 - alpha) + rgb * alpha).astype(np.uint8)
    return frame


def label_box(frame_shape, text: str = LABEL_TEXT, video_w: int | None = None) -> tuple[int, int, int, int]:
    """Where ``draw_label`` puts the badge (x0, y0, x1, y1); tests look there."""
    return _badge(frame_shape, text, video_w)[2]


def _bt709_matrix() -> np.ndarray:
    """cv2.transform matrix RGB -> (Y, Cb, Cr): BT.709, limited ("TV") range."""
    kr, kb = 0.2126, 0.0722
    luma = np.array([kr, 1 - kr - kb, kb])
    cb = (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - kr))
    return np.stack([np.append(luma * 219 / 255, 16.0), np.append(cb * 224 / 255, 128.0),
                     np.append(cr * 224 / 255, 128.0)])


# Three output channels: OpenCV has a fixed-point SIMD path for 3 -> 3 channel uint8 transforms only.
_RGB_TO_YCC = _bt709_matrix()


class I420Frame:
    """A frame in the encoder's own layout (planar Y, then Cb and Cr at half size: yuv420p).

    Kept between frames and updated only where the picture changed, so the encoder neither receives
    nor converts the still part of the canvas again. BT.709 limited range, as the writer tags it;
    chroma is the mean of each 2x2 block.
    """

    def __init__(self, width: int, height: int):
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even sides, got {width}x{height}")
        self.width, self.height = width, height
        n = width * height
        self.data = np.zeros(n * 3 // 2, np.uint8)  # flat: with odd half-heights the planes are not whole rows
        self.y = self.data[:n].reshape(height, width)
        self.cb = self.data[n:n + n // 4].reshape(height // 2, width // 2)
        self.cr = self.data[n + n // 4:].reshape(height // 2, width // 2)

    def update(self, rgb: np.ndarray, box: tuple[int, int, int, int] | None = None, x_offset: int = 0) -> np.ndarray:
        """Convert ``rgb`` inside ``box`` (all of it when None); returns ``data``. ``rgb`` is the frame
        from column ``x_offset`` (even) on, the right part of a side-by-side frame, say; ``box`` is in
        ``rgb``'s coordinates.

        The box is widened to even coordinates, since each chroma sample covers 2x2 pixels.
        """
        x0, y0, x1, y1 = box or (0, 0, rgb.shape[1], rgb.shape[0])
        x0, y0 = max(0, x0 - x0 % 2), max(0, y0 - y0 % 2)
        x1, y1 = min(self.width - x_offset, x1 + x1 % 2), min(self.height, y1 + y1 % 2)
        if x1 <= x0 or y1 <= y0:
            return self.data
        ycc = cv2.transform(rgb[y0:y1, x0:x1], _RGB_TO_YCC)
        ox0, ox1 = x0 + x_offset, x1 + x_offset
        self.y[y0:y1, ox0:ox1] = ycc[..., 0]
        half = cv2.resize(ycc, ((x1 - x0) // 2, (y1 - y0) // 2), interpolation=cv2.INTER_AREA)
        self.cb[y0 // 2:y1 // 2, ox0 // 2:ox1 // 2] = half[..., 1]
        self.cr[y0 // 2:y1 // 2, ox0 // 2:ox1 // 2] = half[..., 2]
        return self.data

    def update_scaled(self, rgb: np.ndarray, width: int) -> np.ndarray:
        """Put ``rgb`` (a smaller or larger picture, e.g. a driving frame) at the left edge, scaled to
        ``width`` (even) x the frame's height as :func:`side_by_side` scales it; returns ``data``.

        Converted at its own size and scaled plane by plane: a 480-px clip beside a 1280-px painting is
        converted at a seventh of the pixels, and only the luma is scaled to the full size.
        """
        h = rgb.shape[0]
        ycc = cv2.transform(rgb, _RGB_TO_YCC)
        self.y[:, :width] = cv2.resize(np.ascontiguousarray(ycc[..., 0]), (width, self.height),
                                       interpolation=_scaler(h, self.height))
        half = cv2.resize(ycc, (width // 2, self.height // 2), interpolation=_scaler(h, self.height // 2))
        self.cb[:, : width // 2] = half[..., 1]
        self.cr[:, : width // 2] = half[..., 2]
        return self.data


def _scaler(src_h: int, dst_h: int) -> int:
    """OpenCV's interpolation for scaling a picture from ``src_h`` to ``dst_h`` rows: area when shrinking."""
    return cv2.INTER_AREA if src_h > dst_h else cv2.INTER_LINEAR


def side_by_side(driving: np.ndarray, result: np.ndarray, width: int | None = None) -> np.ndarray:
    """Driving clip scaled to the result's height on the left, the result on the right.

    ``width``: the left panel's width; by default the driving frame's width at the result's height.
    A video's frames must all be one size, so a caller that has settled the panel's width passes it.
    """
    h = result.shape[0]
    dh, dw = driving.shape[:2]
    w = width if width is not None else max(2, round(dw * h / dh))
    left = cv2.resize(driving, (w, h), interpolation=_scaler(dh, h))
    return np.concatenate([left, result], axis=1)


def even_size(w: int, h: int) -> tuple[int, int]:
    """H.264 in yuv420p needs even sides."""
    return w - w % 2, h - h % 2
