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

from .images import fit_within

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


# The plate is filled in two bands. The coarse band (colour, light, the landscape's large shapes) is the
# background continued smoothly: a normalised Gaussian average of the background around each hidden pixel,
# about half its depth wide, between these shares of the image's longer side, worked out at
# 1/_SHRINK of the size at most (it is smooth). Everything finer than half the narrowest of them (brush
# strokes, craquelure, foliage) is the detail band; what lies between is left smooth.
_COARSE_SIGMAS = (0.015, 0.04, 0.12)
_COARSE_DEPTH_SHARE = 0.5
# Pixels: narrower, the average beside the region's edge would still hold the texture of the stretch next to it.
_MIN_SIGMA = 8.0
_SHRINK = 4
# A normalised average counts fully only where at least this share of its Gaussian's weight lies on
# background; with less it hands over gradually to the next wider one (the division would amplify the
# kernel's far tail, or divide zero by zero).
_REACHED = 0.1
# The detail band is copied, unbent, from the background beside the region: each hidden pixel takes the
# detail _STEP (a share of the side) or a multiple of it away, in whichever of _DIRECTIONS points most
# nearly to the region's nearest edge, and the first multiple that lands far enough out on background
# (_CLEAR, _OUTWARD). Where the chosen direction changes, the copies cross-fade over about _SEAM of the
# side. Towards _REACH of the side from the edge (where a moving head never uncovers anything) the detail
# fades out and the coarse band is left.
# Four directions, along the image's axes: a diagonal shift puts a regular pattern (stripes, a weave, a
# chair's cane) out of step with itself, and every extra direction is another seam.
_DIRECTIONS = 4
_STEP = 0.04
_MIN_STEP = 16  # pixels: on a small crop a shorter shift would cross-fade most of the band it fills
_SEAM = 0.008
_REACH = 0.24
# Copies come from at least this far outside the region (a share of the side): right at its edge lie the
# wisps of hair or beard the person mask left out, and repeated they would show as a pattern.
_CLEAR = 0.015
# A copy that has only just landed on background fades into the next multiple's over this share of the shift.
_TILE_FADE = 0.3
# How much further out (in shifts) each multiple of the shift must land than the one before it. A whole
# shift would make the bands disjoint, but copies from that far stepped at the image's edge and faded the
# grain (the smooth-background test saw 7-level steps; the grain fell to 0.84x).
_OUTWARD = 0.5


# Larger images are filled at this long side and the fill enlarged: the fill's time grows faster than the
# pixels (4096 px: 11 s, 2.5 GB transient; 8192 px: minutes and over 12 GB), and only the band a head
# uncovers shows it, softer by the same factor.
_MAX_SIDE = 2048


def background_plate(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``image`` with ``region`` (a boolean mask, the sitter) filled from the background around it;
    pixels outside the region are unchanged.

    The band a moving head uncovers must continue the background's own texture (brush strokes, foliage,
    craquelure) and colour, without a smooth smear, blocks, seams or swirls. The coarse band continues
    the background's colours smoothly into the region; the detail band is the background's own detail,
    copied by a plain shift from beside the region (see _DIRECTIONS), so a painted stroke or a crack keeps
    its shape. (Mirroring the background across the nearest edge broke into blocks where that edge
    changed; averaging the mirror's offsets bent the texture into arcs and swirls around the head.)
    """
    h, w = image.shape[:2]
    hole = np.asarray(region, bool)
    if not hole.any() or hole.all():
        return image.copy()
    side = max(h, w)
    if side > _MAX_SIDE:
        size = fit_within(w, h, _MAX_SIDE)
        # A small pixel is region where any of the pixels it stands for is, so each hidden pixel's fill
        # comes from background alone.
        small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        if not small_hole.all():  # (all: the background lies in strips too thin to shrink; filled full size)
            filled = background_plate(cv2.resize(image, size, interpolation=cv2.INTER_AREA), small_hole)
            out = image.copy()
            out[hole] = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)[hole]
            return out
    known = ~hole
    q = _SHRINK  # the detail's width (half the narrowest, at least _MIN_SIGMA / 2) stays a pixel or more
    small = (max(1, round(w / q)), max(1, round(h / q)))
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    small_depth = cv2.resize(depth, small, interpolation=cv2.INTER_AREA)
    small_known = cv2.resize(known.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.float32), small, interpolation=cv2.INTER_AREA)  # (1 - small_known differs in the last bit)

    img = image.astype(np.float32)
    small_img = cv2.resize(img * known[..., None], small, interpolation=cv2.INTER_AREA)
    sigmas = [max(_MIN_SIGMA, f * side) for f in _COARSE_SIGMAS]
    # The detail is measured against half the narrowest width: the background's smooth changes (a painted
    # sky's gradient) then stay out of it, or copies of them from here and there would meet in seams.
    fine, *levels = _normalised_blurs(small_img, small_known, [sigmas[0] / 2 / q] + [s / q for s in sigmas])
    del small_img
    detail = img
    detail -= cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)
    coarse = cv2.resize(_by_depth(levels, sigmas, _COARSE_DEPTH_SHARE * small_depth), (w, h),
                        interpolation=cv2.INTER_LINEAR)
    del levels
    direction = _edge_direction(small_hole, small_depth, side)
    coarse += _shifted_detail(detail, hole, depth, side, direction)
    fill = coarse[hole]
    out = image.copy()
    out[hole] = np.rint(np.clip(fill, 0, 255)).astype(np.uint8)
    return out


def _normalised_blurs(values: np.ndarray, weights: np.ndarray, sigmas) -> list[np.ndarray]:
    """``values`` (H, W, C), already multiplied by ``weights`` (H, W), averaged with a Gaussian of each
    width in turn, counting each pixel by its weight. Where almost no weight lies within reach of a
    width (deep inside a large region), that width hands over gradually to the next wider one's average,
    and the widest to :func:`_pulled`'s."""
    out: list[np.ndarray] = []
    reached: list[np.ndarray] = []
    for sigma in sigmas:
        num = cv2.GaussianBlur(values, (0, 0), sigma)
        den = cv2.GaussianBlur(weights, (0, 0), sigma)
        out.append(num / np.maximum(den, 1e-6)[..., None])
        reached.append(np.clip(den / _REACHED, 0, 1)[..., None])
    wider = _pulled(values, weights) if (reached[-1] < 1).any() else out[-1]
    for k in range(len(out) - 1, -1, -1):
        # a gradual hand-over, or the level's edge would show as a step
        out[k] = reached[k] * out[k] + (1 - reached[k]) * wider
        wider = out[k]
    return out


def _pulled(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted average everywhere, from a pyramid: halved until every pixel has weight (or the level
    is a single pixel), then each level's gaps taken from the smaller one's average, enlarged."""
    pyramid = [(values, weights)]
    while not (pyramid[-1][1] > _REACHED).all() and max(pyramid[-1][1].shape) > 1:
        v, wt = pyramid[-1]
        size = (max(1, wt.shape[1] // 2), max(1, wt.shape[0] // 2))
        pyramid.append((cv2.resize(v, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1),
                        cv2.resize(wt, size, interpolation=cv2.INTER_AREA)))
    v, wt = pyramid[-1]
    avg = v / np.maximum(wt, 1e-6)[..., None]
    if not (wt > _REACHED).any():
        avg[:] = values.reshape(-1, values.shape[-1]).sum(0) / max(float(weights.sum()), 1e-6)
    for v, wt in reversed(pyramid[:-1]):
        up = cv2.resize(avg, (wt.shape[1], wt.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(v.shape)
        avg = np.where((wt > _REACHED)[..., None], v / np.maximum(wt, 1e-6)[..., None], up)
    return avg.astype(np.float32)


def _by_depth(levels: list[np.ndarray], sigmas, wanted: np.ndarray) -> np.ndarray:
    """Each pixel takes the level whose width is nearest ``wanted`` there, blended between the two nearest
    on a log scale (clamped to the first and last)."""
    wanted = np.clip(wanted, sigmas[0], sigmas[-1])
    level = np.interp(np.log(wanted), np.log(sigmas), np.arange(len(sigmas)))
    out = np.zeros(levels[0].shape, np.float32)
    for k, lv in enumerate(levels):
        share = np.clip(1 - np.abs(level - k), 0, 1)
        if share.any():
            out += share[..., None] * lv
    return out


def _shifted_detail(detail: np.ndarray, hole: np.ndarray, depth: np.ndarray, side: int,
                    direction: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3): the detail band for the pixels of ``hole`` (zero elsewhere), copied from the
    background by a shift in the direction of the region's nearest edge (``direction``, from
    :func:`_edge_direction`; see _DIRECTIONS)."""
    h, w = hole.shape
    clear = max(1.0, _CLEAR * side)
    outside = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 5)
    step = max(_MIN_STEP, round(_STEP * side))
    multiples = max(1, int(np.ceil(_REACH * side / step)) + 1)
    # Deeper into the region each multiple of the shift copies from further out: multiple m lands at
    # least (m - 1) * _OUTWARD shifts beyond the first one's band, or every multiple would copy the same
    # strip beside the region, and a tree top or a dust speck beside it would show once a shift, all the
    # way in. It also reaches further by an uneven amount (up to half a shift: squares of the golden
    # ratio's multiples), so that what overlapping bands share does not come back at one fixed interval.
    ms = np.arange(multiples + 2)
    outer = np.maximum(ms - 1, 0) * round(_OUTWARD * step)
    thresh = clear + outer
    further = np.zeros(multiples + 2, np.int64)
    for m in range(2, multiples + 2):
        further[m] = round(step * 0.5 * (((m - 1) ** 2 * 0.6180339887) % 1.0))
    reach = ms * step + outer + further
    # A shift that leaves the image lands nowhere (a row of edge pixels repeated would be a streak).
    pad = int(reach[-1]) + step + 1
    outside = np.pad(outside, pad, constant_values=-1.0)
    fade_width = max(1.0, _TILE_FADE * step)
    chosen = np.rint(direction / (2 * np.pi / _DIRECTIONS)).astype(np.int32) % _DIRECTIONS
    within = hole & (depth < _REACH * side)
    total = np.zeros((h, w, 3), np.float32)
    weight = np.zeros((h, w), np.float32)
    weight_sq = np.zeros((h, w), np.float32)
    for k in range(_DIRECTIONS):
        # This direction's share: its one-hot choice softened across the seams, worked out small.
        share = cv2.GaussianBlur((chosen == k).astype(np.float32), (0, 0), max(0.5, _SEAM * side / _SHRINK))
        share = cv2.resize(share, (w, h), interpolation=cv2.INTER_LINEAR) * within
        rows, cols = np.nonzero(share.max(axis=1) > 0.01)[0], np.nonzero(share.max(axis=0) > 0.01)[0]
        if len(rows) == 0:
            continue
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        angle = 2 * np.pi * k / _DIRECTIONS
        ax, ay = round(np.cos(angle)), round(np.sin(angle))  # one pixel along the shift
        # The first multiple of the shift that lands on background, 0 where none does.
        first = np.zeros((y1 - y0, x1 - x0), np.int32)
        for m in range(multiples, 0, -1):
            ty, tx = y0 + pad + int(reach[m]) * ay, x0 + pad + int(reach[m]) * ax
            np.copyto(first, m, where=outside[ty:ty + y1 - y0, tx:tx + x1 - x0] >= thresh[m])
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        # Where the first landing multiple changes from one pixel to the next, the copy would jump by a
        # whole shift: a copy that has only just landed fades into the next multiple's, which is what
        # its neighbour across the seam takes.
        reach_x = (reach * ax).astype(np.float32)
        reach_y = (reach * ay).astype(np.float32)
        sx, sy = gx + reach_x[first], gy + reach_y[first]
        nx_, ny_ = gx + reach_x[first + 1], gy + reach_y[first + 1]
        just = cv2.remap(outside, sx + pad, sy + pad, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=-1.0)
        own = np.clip((just - thresh[first]) / fade_width, 0, 1)
        nxt = cv2.remap(outside, nx_ + pad, ny_ + pad, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=-1.0) >= thresh[first + 1]
        own[~nxt] = 1.0
        sample = cv2.remap(detail, sx, sy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        beyond = cv2.remap(detail, nx_, ny_, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        base = share[y0:y1, x0:x1] * (first > 0)
        # sample * own + beyond * (1 - own), in place
        sample -= beyond
        sample *= own[..., None]
        sample += beyond
        sample *= base[..., None]
        total[y0:y1, x0:x1] += sample
        weight[y0:y1, x0:x1] += base
        weight_sq[y0:y1, x0:x1] += base * base * (own * own + (1 - own) * (1 - own))
    # Cross-faded copies are unrelated, so their blend is fainter than either: scale it back up, and fade
    # the detail out towards _REACH, where the shifts stop.
    gain = np.clip(weight / np.sqrt(np.maximum(weight_sq, 1e-12)), 1.0, 2.0)
    fade = np.clip((_REACH * side - depth) / (0.25 * _REACH * side), 0, 1)
    total *= (gain * fade / np.maximum(weight, 1e-6))[..., None]
    return total


def _edge_direction(inside: np.ndarray, small_depth: np.ndarray, side: int) -> np.ndarray:
    """float32, the shape of ``inside`` (how much of each pixel of the image shrunk by _SHRINK is region;
    ``small_depth``: the region's depth, shrunk alike): the angle (radians, image axes) from each pixel
    towards the region's nearest edge, smoothed over about half the pixel's depth so that it turns gently
    around a curved outline instead of jumping where the nearest stretch of edge changes. Worked out at the
    smaller size: it is smooth."""
    mostly = inside > 0.5
    if not mostly.any() or mostly.all():
        return np.zeros(inside.shape, np.float32)
    grid = np.dstack(np.meshgrid(np.arange(inside.shape[1], dtype=np.float32),
                                 np.arange(inside.shape[0], dtype=np.float32)))
    towards = (_nearest(~mostly).astype(np.float32) - grid) * mostly[..., None]
    # Unit vectors, so a deep pixel's direction counts no more than a shallow one's.
    unit = towards / np.maximum(np.linalg.norm(towards, axis=-1, keepdims=True), 1e-6) * inside[..., None]
    sigmas = [max(1.0, f * side) for f in (0.005, 0.02, 0.08)]
    levels = _normalised_blurs(unit, inside, [s / _SHRINK for s in sigmas])
    field = _by_depth(levels, sigmas, 0.5 * small_depth)
    return np.arctan2(field[..., 1], field[..., 0])


def _nearest(known: np.ndarray) -> np.ndarray:
    """int32 (H, W, 2): for every pixel, the x, y of the nearest pixel where ``known`` is True."""
    _, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(known)
    lut = np.zeros((int(labels.max()) + 1, 2), np.int32)
    lut[labels[ys, xs]] = np.stack([xs, ys], 1)
    return lut[labels]


def warm_up() -> threading.Thread:
    """Start the segmenter in the background (its graph takes ~0.6 s to start), so a server's first
    visitor does not wait for it. Returns the daemon thread."""
    t = threading.Thread(target=lambda: person_mask(np.zeros((64, 64, 3), np.uint8)), name="segmenter-warm-up",
                         daemon=True)
    t.start()
    return t
