"""Dense residual motion: what a landmark mesh misses between its vertices (pure functions).

A mesh warp moves skin exactly at the landmarks and piecewise-affinely between them; real skin bends
(cheeks, jaw line, brows, the skin around the mouth) and a tracker drifts. Warping the driver's own
first frame by the mesh predicts the driver's frame t; optical flow from the real frame t to that
prediction is the part of the motion the mesh did not explain. It is measured on the driver only,
so it transfers to any portrait (cross-reenactment) like the landmarks do.
"""
from __future__ import annotations

import cv2
import numba
import numpy as np


def face_weight(size: tuple[int, int], outline: np.ndarray, ramp: float, holes: list[np.ndarray] = (),
                hole_ramp: float = 0.0) -> np.ndarray:
    """(h, w) float32 weight: 1 inside the ``outline`` polygon, falling to 0 over ``ramp`` pixels
    towards its edge and over ``hole_ramp`` pixels towards each hole polygon (an open mouth);
    0 outside the outline and inside the holes. ``size`` is (w, h).
    """
    w, h = size
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(outline).astype(np.int32)], 1)
    weight = np.clip(cv2.distanceTransform(inside, cv2.DIST_L2, 3) / max(ramp, 1e-6), 0.0, 1.0)
    if len(holes):
        away = np.ones((h, w), np.uint8)
        cv2.fillPoly(away, [np.round(hole).astype(np.int32) for hole in holes], 0)
        weight *= np.clip(cv2.distanceTransform(away, cv2.DIST_L2, 3) / max(hole_ramp, 1e-6), 0.0, 1.0)
    return weight.astype(np.float32)


def smooth_flow(flow: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Weighted Gaussian low-pass of a (h, w, 2) flow: blur(w * flow) / blur(w) (normalised convolution).

    Only where ``weight`` > 0 does the flow count, so a zero-weight region (background, an eye, the mouth)
    neither drags its neighbours' flow towards zero nor lends them its own; where no weight is near,
    the result is zero. ``sigma`` in pixels; 0 returns ``flow`` unchanged.
    """
    if sigma <= 0:
        return flow
    w = np.ascontiguousarray(weight, np.float32)
    num = cv2.GaussianBlur(flow * w[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    return (num / np.maximum(den, 1e-3)[..., None]).astype(np.float32)


def residual_flow(dis: cv2.DISOpticalFlow, predicted: np.ndarray, real: np.ndarray) -> np.ndarray:
    """(h, w, 2) offsets r with real(p) ~ predicted(p + r(p)), for two uint8 grayscale images.

    Composing a map that produced ``predicted`` with ``p + r(p)`` therefore reproduces ``real``.
    """
    return dis.calc(real, predicted, None)


@numba.njit(cache=True, nogil=True)
def _bilinear(img, u, v):
    h, w = img.shape[:2]
    x0, y0 = int(u), int(v)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = u - x0, v - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


@numba.njit(cache=True, nogil=True)
def _transfer(flow, weight, m, limit, out):
    h, w = weight.shape
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    det = a * d - b * c
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[y, x, 0] = 0.0
            out[y, x, 1] = 0.0
            u = a * x + b * y + m[0, 2]
            v = c * x + d * y + m[1, 2]
            if u < 0 or v < 0 or u > w - 1 or v > h - 1:
                continue
            k = _bilinear(weight, u, v)
            if k <= 0:
                continue
            fu = _bilinear(flow[:, :, 0], u, v)
            fv = _bilinear(flow[:, :, 1], u, v)
            mag = np.sqrt(fu * fu + fv * fv)
            if mag > limit:
                k *= limit / mag
            # Back through the linear part: A^-1 = [[d, -b], [-c, a]] / det.
            out[y, x, 0] = k * (d * fu - b * fv) / det
            out[y, x, 1] = k * (-c * fu + a * fv) / det


def transfer(flow: np.ndarray, weight: np.ndarray, to_flow: np.ndarray, size: tuple[int, int], limit: float) -> np.ndarray:
    """Move a flow field into another image's coordinates through an affine map, weighted and clamped.

    ``to_flow`` (2, 3) maps a point q of the target (w, h) = ``size`` to the flow's pixels,
    u = A q + t. The result at q is ``weight(u)`` times the flow at u, first shortened to ``limit``
    flow pixels (a flow error stays small), then taken back through A: A^-1 flow(u), in target
    units. Outside the flow field it is zero.
    """
    w, h = size
    out = np.empty((h, w, 2), np.float32)
    _transfer(np.ascontiguousarray(flow, np.float32), np.ascontiguousarray(weight, np.float32),
              np.asarray(to_flow, np.float64), float(limit), out)
    return out
