"""Where LivePortrait looks: the rotated square crop around a face, the driving crop, the paste mask.

Pure functions on numpy arrays (no networks, no files).  The source crop follows the reference's
``crop_image`` (liveportrait.md §4): a similarity that puts the eye-to-mouth axis upright, sized
``scale`` times the landmarks' extent and shifted by ``vy_ratio`` along that axis.  It is computed
from 68 iBUG points; MediaPipe's 478-point mesh is first reduced to the same 68 points.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from ...faces import FaceLandmarks
from ...topology import to_ibug68

SOURCE_SIZE = 512        # the crop the decoder paints (and the paste mask's size)
NET_SIZE = 256           # what the appearance and motion extractors see
SOURCE_SCALE, SOURCE_VY = 2.3, -0.125
DRIVING_SCALE, DRIVING_VY = 2.2, -0.1
FEATHER = 16             # the reference mask_template.png: a 16-pixel linear ramp at the crop's edge

def ibug68(face: FaceLandmarks | np.ndarray, layout: str | None = None) -> np.ndarray:
    """(68, 2) iBUG points of a face from either landmark layout."""
    if isinstance(face, FaceLandmarks):
        pts, layout = face.points, face.layout
    else:
        pts = np.asarray(face)
        layout = layout or ("mediapipe478" if len(pts) == 478 else "ibug68")
    return np.asarray(to_ibug68(pts, layout)[:, :2], np.float64)


def source_crop_matrix(pts68: np.ndarray, dsize: int = SOURCE_SIZE, scale: float = SOURCE_SCALE,
                       vy_ratio: float = SOURCE_VY) -> np.ndarray:
    """3x3 similarity from image pixels to the ``dsize`` crop (the reference's M_o2c, rotation on)."""
    pts = np.asarray(pts68, np.float64)[:, :2]
    eye = (pts[[36, 39]].mean(0) + pts[[42, 45]].mean(0)) / 2
    mouth = (pts[48] + pts[54]) / 2
    uy = mouth - eye
    uy /= max(np.linalg.norm(uy), 1e-9)
    ux = np.array([uy[1], -uy[0]])
    c0 = pts.mean(0)
    r = (pts - c0) @ np.stack([ux, uy]).T
    lo, hi = r.min(0), r.max(0)
    mid = (lo + hi) / 2
    size = float(max(hi - lo)) * scale
    c = c0 + ux * mid[0] + uy * mid[1] + uy * (vy_ratio * size)
    s = dsize / size
    co, si = ux  # cos and sin of the crop's rotation
    return np.array([[s * co, s * si, dsize / 2 - s * (co * c[0] + si * c[1])],
                     [-s * si, s * co, dsize / 2 - s * (-si * c[0] + co * c[1])],
                     [0.0, 0.0, 1.0]])


def driving_box(pts68: np.ndarray, scale: float = DRIVING_SCALE, vy_ratio: float = DRIVING_VY) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the upright square the reference crops a driving frame to."""
    pts = np.asarray(pts68, np.float64)[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    side = float(max(hi - lo)) * scale
    cx, cy = (lo + hi) / 2
    return float(cx), float(cy + vy_ratio * side), side


def box_matrix(cx: float, cy: float, side: float, dsize: int) -> np.ndarray:
    """3x3 map from image pixels to a ``dsize`` square showing the box (centre, side)."""
    s = dsize / side
    return np.array([[s, 0.0, dsize / 2 - s * cx], [0.0, s, dsize / 2 - s * cy], [0.0, 0.0, 1.0]])


def warp_crop(image: np.ndarray, m: np.ndarray, dsize: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The ``dsize`` square that ``m`` (image -> crop, 3x3) looks at; bilinear."""
    return cv2.warpAffine(image, np.asarray(m, np.float64)[:2], (dsize, dsize), flags=cv2.INTER_LINEAR,
                          borderMode=border)


def to_net_input(crop512: np.ndarray) -> np.ndarray:
    """The 512 crop at the extractors' 256 (INTER_AREA, as the reference)."""
    return cv2.resize(crop512, (NET_SIZE, NET_SIZE), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=4)
def paste_mask(size: int = SOURCE_SIZE, feather: int = FEATHER) -> np.ndarray:
    """uint8 (size, size): 255 inside, a linear ramp over ``feather`` pixels to 0 at the edge, corners
    rounded with radius ``feather`` — the reference's mask_template.png."""
    i = np.arange(size, dtype=np.float64)
    d = np.minimum(i, size - i)                     # distance to the nearest edge along one axis (as the template)
    dx, dy = np.meshgrid(d, d)
    edge = np.minimum(dx, dy)
    # in a corner square, the distance to the corner circle's centre counts instead
    cx, cy = np.maximum(feather - dx, 0), np.maximum(feather - dy, 0)
    corner = feather - np.sqrt(cx ** 2 + cy ** 2)
    dist = np.where((dx < feather) & (dy < feather), corner, edge)
    out = np.floor(255 * np.clip(dist, 0, feather) / feather).astype(np.uint8)
    out.setflags(write=False)
    return out


def placement(m_o2c: np.ndarray, image_shape: tuple[int, ...], dsize: int = SOURCE_SIZE) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The image box the crop covers (clipped to the image) and the crop -> box 2x3 affine."""
    h, w = image_shape[:2]
    m_c2o = np.linalg.inv(m_o2c)
    corners = np.array([[0, 0, 1], [dsize, 0, 1], [0, dsize, 1], [dsize, dsize, 1]], np.float64) @ m_c2o[:2].T
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the face crop lies outside the image")
    to_box = m_c2o.copy()
    to_box[0, 2] -= x0
    to_box[1, 2] -= y0
    return (x0, y0, x1, y1), to_box[:2]


def crop_to_box(crop: np.ndarray, to_box: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A rendered crop (or mask) warped back into the image box it came from; bilinear, zeros outside."""
    x0, y0, x1, y1 = box
    return cv2.warpAffine(crop, to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def eye_open_ratios(pts68: np.ndarray) -> tuple[float, float]:
    """Eyelid gap over eye width, per eye (68-point analogue of the reference's 203-point ratio)."""
    p = np.asarray(pts68, np.float64)

    def one(top, bottom, a, b):
        gap = np.linalg.norm(p[list(top)].mean(0) - p[list(bottom)].mean(0))
        return float(gap / (np.linalg.norm(p[a] - p[b]) + 1e-6))
    return one((37, 38), (41, 40), 36, 39), one((43, 44), (47, 46), 42, 45)


def lip_open_ratio(pts68: np.ndarray) -> float:
    """Inner-lip gap over mouth width."""
    p = np.asarray(pts68, np.float64)
    return float(np.linalg.norm(p[62] - p[66]) / (np.linalg.norm(p[48] - p[54]) + 1e-6))


def rotation_degrees(m: np.ndarray) -> float:
    """The in-plane rotation of a similarity crop, in degrees (for messages and tests)."""
    return math.degrees(math.atan2(m[0, 1], m[0, 0]))
