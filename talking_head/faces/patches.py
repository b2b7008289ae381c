"""Landmarks pinned to the skin they sit on: a tracker's points corrected by following image patches.

A face-mesh tracker fits a shape model, and a shape model keeps faces near its average: MediaPipe's
cheeks rise about half as far as the real cheeks in a smile, and its outline lags the jaw. Each point's
patch of skin in the clip's first frame (where the face is neutral) can be found again in frame t by
Lucas-Kanade, starting from where the tracker put the point: the tracker gets the point near, the patch
puts it on the same skin. Eyes and lips are left as tracked (their patches change: a blink, teeth), and
a correction longer than ``MAX_SHIFT`` inter-ocular distances is taken for a lost patch and dropped.

Only the driving clip is corrected, so the better motion transfers to any portrait like the landmarks do.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..motion import face_size
from ..topology import Layout, get_layout
from .base import FaceFollower, LandmarkBackend

# Patches are compared at this many pixels between the eye centres (a 60-120 px range scored the same).
EYE_GAP_PX = 70.0
# The first frame's crop reaches this many inter-ocular distances beyond the landmarks' box.
MARGIN = 0.9
WINDOW = 11          # Lucas-Kanade window, pixels at EYE_GAP_PX
LEVELS = 2           # pyramid levels above the base: the tracker's guess is already within a few pixels
ITERATIONS = 10
MAX_SHIFT = 0.15     # inter-ocular distances
# Corrections are averaged over neighbours (Gaussian, this many inter-ocular distances), so skin moves as
# a sheet and eyes and lips ride on the skin around them instead of staying where the skin slid from.
SMOOTH = 0.06
# A patch whose shift differs from its neighbours' by more than this (inter-ocular distances) is dropped.
OUTLIER = 0.05
# Points within these polygons, grown about their centres by these factors, are not corrected.
LIP_GROWTH = 1.35
EYE_GROWTH = 1.6


def _inside(points: np.ndarray, loop: np.ndarray, growth: float) -> np.ndarray:
    centre = loop.mean(axis=0)
    poly = (centre + (loop - centre) * growth).astype(np.float32)
    return np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in points])


def patch_points(layout: Layout, xy: np.ndarray) -> np.ndarray:
    """Indices of the points whose patches are followed: all but those on or near the eyes and lips."""
    skip = _inside(xy, xy[list(layout.outer_lip)], LIP_GROWTH)
    for upper, lower in layout.eyes:
        skip |= _inside(xy, xy[list(upper) + list(lower[::-1])], EYE_GROWTH)
    return np.flatnonzero(~skip)


def _crop(gray: np.ndarray, xy: np.ndarray, scale: float, size: tuple[int, int], margin: float):
    """``size`` pixels around the landmarks' box at ``scale``: (crop, its top-left in frame pixels)."""
    lo, hi = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    origin = (lo + hi) / 2 - np.array(size) / (2 * scale)
    m = np.float32([[scale, 0, -scale * origin[0]], [0, scale, -scale * origin[1]]])
    return cv2.warpAffine(gray, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), origin


@dataclass
class _Reference:
    """What the first frame leaves for the later ones."""

    crop: np.ndarray     # its grey crop
    points: np.ndarray   # (M, 2) the followed points in the crop
    followed: np.ndarray  # (M,) their indices
    scale: float         # crop pixels per frame pixel
    size: tuple[int, int]
    gap: float           # inter-ocular distance, frame pixels
    weights: np.ndarray  # (N, M) how much each followed point's shift counts for each point
    full: float          # a followed point's total weight with every neighbour kept


class PatchCorrector:
    """Corrects one clip's landmarks frame by frame against the first frame it is given (its reference)."""

    def __init__(self, layout: str):
        self.layout = get_layout(layout)
        self._ref: _Reference | None = None

    def __call__(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``points`` (N, 3) of the face in ``rgb``, with the followed points moved onto their skin."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        xy = points[:, :2]
        if self._ref is None:
            gap = face_size(points, self.layout)
            scale, margin = EYE_GAP_PX / max(gap, 1.0), MARGIN * gap
            w, h = (xy.max(axis=0) - xy.min(axis=0) + 2 * margin) * scale
            size = (int(np.ceil(w)), int(np.ceil(h)))
            crop, origin = _crop(gray, xy, scale, size, margin)
            idx = patch_points(self.layout, xy)
            dist = np.linalg.norm(xy[:, None] - xy[None, idx], axis=2) / gap
            weights = np.exp(-0.5 * (dist / SMOOTH) ** 2).astype(np.float32)
            self._ref = _Reference(crop, ((xy[idx] - origin) * scale).astype(np.float32), idx, scale, size, gap,
                                   weights, float(np.median(weights[idx].sum(axis=1))))
            return points
        ref = self._ref
        crop, origin = _crop(gray, xy, ref.scale, ref.size, MARGIN * ref.gap)
        guess = ((xy[ref.followed] - origin) * ref.scale).astype(np.float32)
        found, status, _ = cv2.calcOpticalFlowPyrLK(
            ref.crop, crop, ref.points, guess.copy(), winSize=(WINDOW, WINDOW), maxLevel=LEVELS,
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ITERATIONS, 0.03),
            flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        shift = (found.reshape(-1, 2) - guess) / np.float32(ref.scale)
        keep = (status.ravel() > 0) & (np.linalg.norm(shift, axis=1) < MAX_SHIFT * ref.gap)
        field = _smoothed(ref.weights, shift, keep, ref.full)
        keep &= np.linalg.norm(shift - field[ref.followed], axis=1) < OUTLIER * ref.gap
        out = points.copy()
        out[:, :2] += _smoothed(ref.weights, shift, keep, ref.full)
        return out


def _smoothed(weights: np.ndarray, shift: np.ndarray, keep: np.ndarray, full: float) -> np.ndarray:
    """Every point's weighted mean of the kept shifts, faded towards 0 where few are near."""
    kept = keep.astype(weights.dtype)
    total = weights @ kept
    mean = (weights @ (shift * kept[:, None])) / np.maximum(total, 1e-9)[:, None]
    return mean * np.minimum(total / full, 1.0)[:, None]


def track_on_skin(backend: LandmarkBackend, frames: Iterable[np.ndarray],
                  follower: FaceFollower | None = None) -> Iterator[np.ndarray | None]:
    """``backend.track`` over ``frames`` (following the face ``follower`` picks), each face's points (N, 3)
    corrected by ``PatchCorrector`` (None where the face is lost). The first frame with a face is the reference."""
    pending: deque[np.ndarray] = deque()

    def feed() -> Iterator[np.ndarray]:
        for frame in frames:
            pending.append(frame)
            yield frame

    corrector = PatchCorrector(backend.layout)
    for face in backend.track(feed(), follower=follower):
        frame = pending.popleft()
        yield None if face is None else corrector(frame, face.points)
