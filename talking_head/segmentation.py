"""The sitter and what lies behind: a person mask, and the background with the sitter taken out.

Engines that warp a portrait use them to keep the background still while the head moves over it (a
Mona Lisa turning her head must not bend the landscape behind her), and to show the background where
the head moves away from it. MediaPipe's selfie segmentation model ships inside the mediapipe wheel,
so this works offline; without it :func:`person_mask` returns None and callers warp as one layer.
"""
from __future__ import annotations

import threading

import cv2
import numpy as np

# The model takes 256x256 (the general model); larger inputs are scaled down, the mask scaled up.
_MODEL_SIDE = 256

_lock = threading.Lock()
_segmenter = None


def _get_segmenter():
    global _segmenter
    if _segmenter is None:
        from .faces.mediapipe_backend import _import_mp
        mp = _import_mp()
        _segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    return _segmenter


def person_mask(rgb: np.ndarray) -> np.ndarray | None:
    """float32 (H, W) in 0..1: how much each pixel belongs to a person. None when no segmenter is installed."""
    h, w = rgb.shape[:2]
    try:
        with _lock:
            seg = _get_segmenter()
            s = min(1.0, 2 * _MODEL_SIDE / max(h, w))
            small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else rgb
            m = seg.process(np.ascontiguousarray(small)).segmentation_mask
    except (ImportError, AttributeError):  # pragma: no cover - depends on the install
        return None
    m = np.clip(np.asarray(m, np.float32), 0.0, 1.0)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return m


def background_plate(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``image`` with ``region`` (a boolean mask, the sitter) filled from the background around it;
    pixels outside the region are unchanged.

    Each filled pixel takes the background mirrored across the region's nearest edge, so the thin band
    a moving head uncovers continues the background's own texture (brush strokes, foliage) instead of
    showing a smooth smear; deep inside the region, which a moving head never uncovers, it is arbitrary.
    """
    h, w = image.shape[:2]
    hole = np.asarray(region, bool).astype(np.uint8)
    if not hole.any() or hole.all():
        return image.copy()
    # For every pixel, the nearest background pixel (labels index the background pixels one by one).
    _, labels = cv2.distanceTransformWithLabels(hole, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(hole == 0)
    lut = np.zeros((int(labels.max()) + 1, 2), np.float32)
    lut[labels[ys, xs]] = np.stack([xs, ys], 1)
    nearest = lut[labels]                                   # (h, w, 2) x, y
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    mirrored = 2 * nearest - grid
    mirrored[..., 0] = np.clip(mirrored[..., 0], 0, w - 1)
    mirrored[..., 1] = np.clip(mirrored[..., 1], 0, h - 1)
    # Where the mirror lands inside the region again (a concave edge), the edge pixel itself is used.
    inside = hole[mirrored[..., 1].astype(np.int32), mirrored[..., 0].astype(np.int32)] > 0
    mirrored[inside] = nearest[inside]
    filled = cv2.remap(image, mirrored, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = image.copy()
    out[hole > 0] = filled[hole > 0]
    return out


def warm_up() -> threading.Thread:
    """Start the segmenter in the background (its graph takes ~0.6 s to start), so a server's first
    visitor does not wait for it. Returns the daemon thread."""
    t = threading.Thread(target=lambda: person_mask(np.zeros((64, 64, 3), np.uint8)), name="segmenter-warm-up",
                         daemon=True)
    t.start()
    return t
