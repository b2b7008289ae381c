"""Landmark images: 68 iBUG points drawn as coloured polylines, one colour per facial part.

The generator's only input and half of the embedder's. Colours and line width follow the authors'
lab code (black canvas, 2 px at 256 x 256): jaw white, right brow red, left brow green, nose blue,
right eye magenta, left eye cyan, lips yellow. MediaPipe's 478-point mesh is first reduced to the 68
iBUG points (``MEDIAPIPE_TO_IBUG68``), so either landmark backend of the project can feed the model.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..topology import MEDIAPIPE_TO_IBUG68, to_ibug68  # noqa: F401  (re-exported)

# (first, last inclusive, closed, RGB colour) per part of the iBUG 68-point layout.
PARTS: tuple[tuple[int, int, bool, tuple[int, int, int]], ...] = (
    (0, 16, False, (255, 255, 255)),   # jaw
    (17, 21, False, (255, 0, 0)),      # right brow (image left)
    (22, 26, False, (0, 255, 0)),      # left brow
    (27, 30, False, (0, 0, 255)),      # nose bridge
    (31, 35, False, (0, 0, 255)),      # nostrils
    (36, 41, True, (255, 0, 255)),     # right eye
    (42, 47, True, (0, 255, 255)),     # left eye
    (48, 59, True, (255, 255, 0)),     # outer lip
    (60, 67, True, (255, 255, 0)),     # inner lip
)

def crop_box(points68: np.ndarray, scale: float = 1.8, shift: float = 0.12) -> tuple[float, float, float]:
    """(x0, y0, side) of the square crop the model sees around a face: ``scale`` times the landmark box."""
    xy = np.asarray(points68)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    side = float(scale * max(hi - lo))
    cx, cy = (lo + hi) / 2
    cy -= shift * side
    return float(cx - side / 2), float(cy - side / 2), side


def to_crop(points68: np.ndarray, box: tuple[float, float, float], resolution: int) -> np.ndarray:
    """Points in image pixels -> pixels of the ``resolution``-sized crop ``box``."""
    x0, y0, side = box
    out = np.asarray(points68, dtype=np.float32)[:, :2].copy()
    out -= (x0, y0)
    out *= resolution / side
    return out


def crop_image(image: np.ndarray, box: tuple[float, float, float], resolution: int) -> np.ndarray:
    """The square ``box`` of ``image`` resampled to ``resolution``; outside the image, edge pixels repeat."""
    x0, y0, side = box
    k = resolution / side
    m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]], dtype=np.float64)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:  # warpAffine has no area filter: shrink first, then place
        small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        m = np.array([[1, 0, -x0 * k], [0, 1, -y0 * k]], dtype=np.float64)
        return cv2.warpAffine(small, m, (resolution, resolution), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(image, m, (resolution, resolution), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def rasterize(points68: np.ndarray, resolution: int, thickness: float = 2.0) -> np.ndarray:
    """(resolution, resolution, 3) uint8 RGB landmark image; ``points68`` in that image's pixels.

    ``thickness`` is the width at 256 px and scales with the resolution (at least 1 px).
    """
    canvas = np.zeros((resolution, resolution, 3), np.uint8)
    width = max(1, round(thickness * resolution / 256))
    shift = 4  # sub-pixel precision: cv2 takes fixed-point coordinates with this many fractional bits
    pts = np.round(np.asarray(points68, dtype=np.float64)[:, :2] * (1 << shift)).astype(np.int32)
    for first, last, closed, colour in PARTS:
        cv2.polylines(canvas, [pts[first:last + 1].reshape(-1, 1, 2)], closed, colour, width, cv2.LINE_8, shift)
    return canvas
