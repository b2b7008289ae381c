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


# The plate's fill samples the background at an offset that varies smoothly from pixel to pixel: near the
# region's edge it is the mirror image across that edge, deeper in it is the mirror's offset averaged over a
# wider neighbourhood. Each pixel averages over a Gaussian of about half its depth, between these shares of
# the image's longer side; the averaged offsets are worked out at 1/_FIELD_SHRINK of the size (they are smooth).
_FIELD_SIGMAS = (0.005, 0.01, 0.02, 0.04, 0.08)
_FIELD_DEPTH_SHARE = 0.5
_FIELD_SHRINK = 4
# A sample that lands inside the region takes what an earlier pass put there; after this many passes the
# few pixels left (deep inside, where a moving head never uncovers anything) take the nearest filled pixel.
_FILL_PASSES = 4


def background_plate(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``image`` with ``region`` (a boolean mask, the sitter) filled from the background around it;
    pixels outside the region are unchanged.

    The band a moving head uncovers must continue the background's own texture (brush strokes, foliage,
    craquelure), not show a smooth smear, and must not break into blocks. Each filled pixel samples the
    background at an offset from itself: the mirror image across the region's nearest edge, averaged over
    neighbouring pixels more widely the deeper the pixel lies. Mirroring alone changes its source abruptly
    wherever the nearest edge changes (blocks of landscape beside a head, seams above it, streaks where
    the mirror leaves the image); the averaged offsets bend the texture there instead of cutting it.
    """
    h, w = image.shape[:2]
    hole = np.asarray(region, bool)
    if not hole.any() or hole.all():
        return image.copy()
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    source = grid + _smoothed_mirror_offsets(hole, grid)
    np.clip(source[..., 0], 0, w - 1, out=source[..., 0])
    np.clip(source[..., 1], 0, h - 1, out=source[..., 1])
    out = image.copy()
    known = ~hole
    for _ in range(_FILL_PASSES):
        # A sample counts once all four pixels it interpolates are background or already filled.
        lands = cv2.remap(known.astype(np.float32), source, None, interpolation=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE) >= 1 - 1e-5
        new = lands & ~known
        if not new.any():
            break
        sampled = cv2.remap(out, source, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[new] = sampled[new]
        known |= new
    if not known.all():
        nearest = _nearest(known)[~known]
        out[~known] = out[nearest[:, 1], nearest[:, 0]]
    return out


def _nearest(known: np.ndarray) -> np.ndarray:
    """int32 (H, W, 2): for every pixel, the x, y of the nearest pixel where ``known`` is True."""
    _, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(known)
    lut = np.zeros((int(labels.max()) + 1, 2), np.int32)
    lut[labels[ys, xs]] = np.stack([xs, ys], 1)
    return lut[labels]


def _smoothed_mirror_offsets(hole: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """float32 (H, W, 2): where each pixel of ``hole`` samples the background from, as an offset from its
    own position (``grid``: every pixel's x, y); zero outside.

    The mirror offset, twice the way to the nearest pixel outside the hole (zero outside it), counts where
    it lands on background inside the image. Averaged (normalised Gaussian convolution, so mirrors that fail are
    filled from their neighbours) at each of _FIELD_SIGMAS, and each pixel takes the average whose width is
    nearest to _FIELD_DEPTH_SHARE of its depth, blended between the two nearest on a log scale.
    """
    h, w = hole.shape
    offsets = 2 * (_nearest(~hole).astype(np.float32) - grid)
    mirrored = np.rint(grid + offsets).astype(np.int32)
    on_image = (mirrored[..., 0] >= 0) & (mirrored[..., 0] < w) & (mirrored[..., 1] >= 0) & (mirrored[..., 1] < h)
    tried = hole & on_image
    valid = ~hole
    valid[tried] = ~hole[mirrored[..., 1][tried], mirrored[..., 0][tried]]
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)

    q = _FIELD_SHRINK
    size = (max(1, round(w / q)), max(1, round(h / q)))
    weights = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    weighted = cv2.resize(offsets * valid[..., None], size, interpolation=cv2.INTER_AREA)
    small_depth = cv2.resize(depth, size, interpolation=cv2.INTER_AREA)
    sigmas = np.array([max(1.0, f * max(h, w)) for f in _FIELD_SIGMAS], np.float32)
    wanted = np.clip(_FIELD_DEPTH_SHARE * small_depth, sigmas[0], sigmas[-1])
    level = np.interp(np.log(wanted), np.log(sigmas), np.arange(len(sigmas)))
    field = np.zeros(weighted.shape, np.float32)
    for k, sigma in enumerate(sigmas):
        share = np.clip(1 - np.abs(level - k), 0, 1)
        if not share.any():
            continue
        num = cv2.GaussianBlur(weighted, (0, 0), sigma / q)
        den = cv2.GaussianBlur(weights, (0, 0), sigma / q)
        field += (share / np.maximum(den, 1e-6))[..., None] * num
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    field[~hole] = 0
    return field


def warm_up() -> threading.Thread:
    """Start the segmenter in the background (its graph takes ~0.6 s to start), so a server's first
    visitor does not wait for it. Returns the daemon thread."""
    t = threading.Thread(target=lambda: person_mask(np.zeros((64, 64, 3), np.uint8)), name="segmenter-warm-up",
                         daemon=True)
    t.start()
    return t
