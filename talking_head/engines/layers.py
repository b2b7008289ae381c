"""meshwarp's two layers: the sitter, which the mesh warps, and the background plate, which stays still
and shows, filled in, where the head moves away from it (see :mod:`talking_head.segmentation`).

Made once per portrait: remembered in the process and kept in the engine's source store, so a new process
(a teacher's CLI call, a kiosk restarted) finds them.
"""
from __future__ import annotations

import hashlib
import threading
import zlib
from collections import OrderedDict

import cv2
import numpy as np

from ..cache import source_digest
from ..segmentation import background_plate, person_mask
from ..warp import coverage_mask
from .base import SourceStore

# Two layers: the sitter (person mask) is warped, the background stays still and is shown, filled in,
# where the head moves away from it. The face itself always counts as sitter, whatever the mask says.
_LAYER_FACE_GROW = 1.08  # face outline scaled about its centre before it is forced into the mask
_LAYER_MIN_BACKGROUND = 0.02  # below this share of background in the crop, one layer is enough
# Mask values below this are the segmenter's haze over the background, not sitter: cut to zero, so
# the background there stays the painting's own pixels.
_LAYER_CUT = 0.05
# The mask is grown by this share of the crop's long side: segmenters cut close, and a painted line
# right at a head's edge must move with it. Grown further (2 %), a band of background travelled with the
# head and self-reenactment lost most of what the layers gained (SSIM gain +0.068 vs +0.073 at 0.5 %).
_LAYER_GROW = 0.005
# Layers are made once per portrait and process: a kiosk renders the same paintings all day.
_MEMO: OrderedDict = OrderedDict()
_MEMO_SIZE = 8
_LOCK = threading.Lock()


def sitter_and_plate(crop: np.ndarray, oval: np.ndarray, store: SourceStore | None = None):
    """(sitter, plate) for a two-layer warp of ``crop`` (``oval``: the face's outline in it), or two Nones
    where one layer will do: the sitter RGBA and premultiplied (see :func:`_make_layers`), the plate RGB.

    Remembered for the last few portraits of this process (the arrays are never written to), and kept
    in ``store``, so a new process (a teacher's CLI call, a kiosk restarted) neither starts the segmenter
    (importing MediaPipe and starting its graph take ~1.2 s on 2 cores) nor makes the background plate
    again (0.1-0.6 s) for a portrait it has seen.
    """
    crop_digest = hashlib.blake2b(crop.tobytes(), digest_size=16).hexdigest()
    oval_bytes = np.ascontiguousarray(oval, np.float64).tobytes()
    key = (crop_digest, oval_bytes)
    with _LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    # Under the code's digest too: the plate is still being tuned, and a change that does not bump the
    # settings key must not serve the layers the code before it made.
    name = f"layers-{source_digest()[:16]}-{crop_digest}-{hashlib.blake2b(oval_bytes, digest_size=8).hexdigest()}"
    blob = store.get(name) if store is not None else None
    layers = _decode_layers(blob, crop) if blob is not None else None
    if layers is None:  # not stored, or unreadable: made again (and stored over it)
        layers = _make_layers(crop, oval, _stored_person_mask(crop, crop_digest, store))
        data = _encode_layers(*layers) if store is not None and layers[1] is not None else None
        if data is not None:
            store.put(name, data)
    for a in layers:
        if a is not None:
            a.setflags(write=False)
    with _LOCK:
        _MEMO[key] = layers
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return layers


def _stored_person_mask(crop: np.ndarray, crop_digest: str, store: SourceStore | None) -> np.ndarray | None:
    """``person_mask(crop)`` in 1/255 steps (uint8): from ``store`` (under ``crop_digest``, the crop's
    hash) when it has it, else computed and put there. Always quantised, so a render is the same
    whether the mask was stored or not."""
    h, w = crop.shape[:2]
    name = f"person-mask-{crop_digest}"
    blob = store.get(name) if store is not None else None
    if blob is not None:
        try:
            return np.frombuffer(zlib.decompress(blob), np.uint8).reshape(h, w)
        except (zlib.error, ValueError):
            pass  # unreadable or another size: computed again and stored over it
    mask = person_mask(crop)
    if mask is None:
        return None
    mask = np.round(mask * 255).astype(np.uint8)
    if store is not None:
        store.put(name, zlib.compress(mask.tobytes(), 6))
    return mask


def _make_layers(crop: np.ndarray, oval: np.ndarray, person: np.ndarray | None):
    """The layers themselves (see :func:`sitter_and_plate`), from ``person``, the uint8 person mask (None: one layer).

    ``crop = sitter + (1 - alpha) * plate``: the sitter is stored premultiplied, so a still frame
    recomposes to the painting itself (to rounding), and the soft rim of hair or veil moves with the
    head instead of leaving its ghost on the background.
    """
    if person is None:
        return None, None
    mask = person.astype(np.float32) / 255
    c = oval.mean(axis=0)
    h, w = crop.shape[:2]
    mask = np.maximum(mask, coverage_mask(w, h, c + _LAYER_FACE_GROW * (oval - c), feather=1.0))
    if float(np.mean(mask < 0.5)) < _LAYER_MIN_BACKGROUND:
        return None, None
    alpha = np.round(np.clip((mask - _LAYER_CUT) / (1 - _LAYER_CUT), 0, 1) * 255).astype(np.uint8)
    r = max(1, round(_LAYER_GROW * max(h, w)))
    alpha = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    alpha = cv2.GaussianBlur(alpha, (0, 0), r / 2)
    plate = background_plate(crop, alpha > 0)
    clear = _clear(alpha)
    # Where the rim is darker than the plate's share of it, the plate is darkened to that share (the
    # premultiplied sitter cannot be negative).
    most = np.floor(crop.astype(np.float32) * 255 / np.maximum(clear, 1)).clip(0, 255).astype(np.uint8)
    plate = np.where(clear > 0, np.minimum(plate, most), plate)
    return _sitter(crop, plate, alpha), plate


def _sitter(crop: np.ndarray, plate: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The sitter layer, RGBA, premultiplied: what ``crop`` holds over ``plate`` where ``alpha`` covers it."""
    clear = _clear(alpha)
    return cv2.merge([cv2.subtract(crop, cv2.multiply(plate, clear, scale=1 / 255)), alpha])


def _clear(alpha: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): how much of the plate shows through where the sitter's ``alpha`` covers it."""
    return cv2.merge([cv2.bitwise_not(alpha)] * 3)


def _encode_layers(sitter: np.ndarray, plate: np.ndarray) -> bytes | None:
    """The layers as one PNG: the plate, with the sitter's alpha as its alpha (the sitter itself follows
    from them and the crop). Lossless, so a render is the same whether its layers were stored or made;
    1.3 MB and 70 ms for Newton's 1280x1248 crop, 30 ms to read back."""
    bgra = cv2.cvtColor(plate, cv2.COLOR_RGB2BGRA)
    bgra[..., 3] = sitter[..., 3]
    ok, png = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return png.tobytes() if ok else None


def _decode_layers(blob: bytes, crop: np.ndarray):
    """(sitter, plate) from :func:`_encode_layers`'s bytes, or None where they are not a PNG of the crop's size."""
    bgra = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgra is None or bgra.shape != crop.shape[:2] + (4,) or bgra.dtype != np.uint8:
        return None
    plate = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)
    return _sitter(crop, plate, np.ascontiguousarray(bgra[..., 3])), plate


def over_background(sitter: np.ndarray, plate: np.ndarray, table: np.ndarray, interpolation: int) -> np.ndarray:
    """The sitter, warped by the remap ``table``, over the still background plate; the mask travels with
    the sitter's pixels."""
    # One four-channel remap: OpenCV's vectorised path makes it about as cheap as the mask alone.
    moved = cv2.remap(sitter, table, None, interpolation=interpolation, borderMode=cv2.BORDER_REFLECT)
    clear = _clear(moved[..., 3])
    return cv2.add(cv2.cvtColor(moved, cv2.COLOR_RGBA2RGB), cv2.multiply(plate, clear, scale=1 / 255))
