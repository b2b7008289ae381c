"""Cross-reenactment measures: how closely a portrait follows another person's clip, and whether it stays itself.

A painting driven by someone else has no ground truth, so DESIGN.md's protocol judges it by eye and by
two numbers:

* **following**: what a viewer follows in a face (the mouth opening, the eyes closing, the brows rising,
  the head tilting, turning and nodding) is measured per frame on the driver and on the result, with dlib's
  68 points (never the MediaPipe points that drive the engine), in units that do not depend on the face's
  size or place. Each signal's Pearson correlation between the two says how faithfully the portrait
  performs the clip: 1 is every movement in time, 0 is none.
* **identity**: dlib's face descriptor (128 numbers; two photographs of one person usually lie within
  0.6 of each other) of each result frame against the portrait's own. It stays small when the painting
  keeps its face, and grows toward the driver's distance from it if the result takes on the driver's.

Both are only as good as dlib's view of the painting. It cannot see lips inside a full beard (Walt
Whitman's mouth opens wide in ``mouth_open`` while dlib's lip gap stays flat: correlation 0.09), the
Mona Lisa has no brows to find, and on a face painted at three quarters dlib's ``turn`` moves about as
much from frame to frame as the driver's small turns do. Read a low number beside the frames.
"""
from __future__ import annotations

import threading

import numpy as np

from .metrics import Detection, dlib_model, dlib_model_path

# iBUG-68 indices: the inner lips' three upper and three lower points, paired top to bottom; each eye's
# two upper and two lower lid points, paired; each eye's two corners; the brows; the nose tip and the middle
# of its base; the face outline's ends.
_INNER_LIPS = ((61, 67), (62, 66), (63, 65))
_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))
_RIGHT_CORNERS, _LEFT_CORNERS = (36, 39), (42, 45)
_RIGHT_BROW, _LEFT_BROW = slice(17, 22), slice(22, 27)
_NOSE_TIP, _NOSE_BASE, _OUTLINE_RIGHT, _OUTLINE_LEFT = 30, 33, 0, 16

SIGNALS = ("mouth", "eyes", "brows", "tilt", "turn", "nod")

# Below these spreads (standard deviation over the clip) the driver hardly makes that movement, and a
# correlation would measure the detector's noise: eye distances for the mouth, eyes and brows, degrees for
# the tilt, shares of the face's width for the turn, and the nod's ratio.
MIN_SPREAD = {"mouth": 0.02, "eyes": 0.01, "brows": 0.01, "tilt": 1.0, "turn": 0.02, "nod": 0.01}


def expression_signals(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame of ``landmarks`` ((T, 68, 2), dlib's points), each of SIGNALS:

    ``mouth`` the inner lips' gap, ``eyes`` the lids' gap (both eyes' mean; a wink halves it), ``brows``
    the brows' height above the eyes, all in eye distances; ``tilt`` the eye line's angle in degrees;
    ``turn`` where the nose tip lies across the face's outline (0 in the middle, -0.5 / 0.5 at its ends);
    ``nod`` the nose tip's height below the eye line over the nose base's: the tip stands out from the face,
    so a head tipping forward lowers it past the base, and a head tipping back raises it.
    Lengths across and along the face are taken in the face's own frame: the line through the eyes'
    corners as x, which a blink or a wink does not move, so a tilted head opens its mouth by the same
    number as an upright one and a closing eye does not raise the brows. ``nod`` is measured on the nose
    alone: to the chin it read an opening jaw, and in eye distances a turning head (the eyes draw together).
    """
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise ValueError(f"expected (T, 68, 2) landmarks, got {pts.shape}")
    right = pts[:, list(_RIGHT_CORNERS)].mean(axis=1)
    left = pts[:, list(_LEFT_CORNERS)].mean(axis=1)
    across = left - right
    iod = np.linalg.norm(across, axis=1)
    if not np.all(iod > 0):
        raise ValueError("a frame's landmarks have zero inter-ocular distance")
    ux = across / iod[:, None]                      # along the eye line
    uy = np.stack([-ux[:, 1], ux[:, 0]], axis=1)    # down the face
    rel = pts - ((right + left) / 2)[:, None]       # the eye line's middle as origin: the eyes at y = 0
    x = np.einsum("tpc,tc->tp", rel, ux)
    y = np.einsum("tpc,tc->tp", rel, uy)

    def gap(pairs):
        return np.mean([y[:, b] - y[:, a] for a, b in pairs], axis=0) / iod

    width = x[:, _OUTLINE_LEFT] - x[:, _OUTLINE_RIGHT]
    return {
        "mouth": gap(_INNER_LIPS),
        "eyes": gap(_LIDS),
        "brows": -(y[:, _RIGHT_BROW].mean(axis=1) + y[:, _LEFT_BROW].mean(axis=1)) / 2 / iod,
        "tilt": np.degrees(np.arctan2(across[:, 1], across[:, 0])),
        "turn": (x[:, _NOSE_TIP] - x[:, _OUTLINE_RIGHT]) / np.where(np.abs(width) > 0, width, 1) - 0.5,
        "nod": y[:, _NOSE_TIP] / np.maximum(y[:, _NOSE_BASE], 1e-6 * iod),
    }


def following(driver: dict[str, np.ndarray], result: dict[str, np.ndarray]) -> dict[str, float]:
    """Per signal, the Pearson correlation of the result's series with the driver's (same frames, same
    order). NaN where the driver's spread is below MIN_SPREAD (it hardly makes that movement); 0 where
    the driver makes it and the result stays still (a result that does not move does not follow)."""
    out = {}
    for name in SIGNALS:
        d, r = np.asarray(driver[name], np.float64), np.asarray(result[name], np.float64)
        if d.shape != r.shape:
            raise ValueError(f"{name}: {d.shape} frames of the driver against {r.shape} of the result")
        if len(d) < 3 or d.std() < MIN_SPREAD[name]:
            out[name] = float("nan")
        elif r.std() < 1e-6 * MIN_SPREAD[name]:
            out[name] = 0.0
        else:
            out[name] = float(np.corrcoef(d, r)[0, 1])
    return out


# One descriptor at a time: dlib's network works in buffers of its own.
_DESCRIBE_LOCK = threading.Lock()


class FaceDescriptor:
    """dlib's face recognition network (``face-recognition-models``; for measurement only):
    ``describe(rgb, detection)`` gives 128 numbers for the face at ``detection`` (a :class:`Detection`
    from :class:`~talking_head.metrics.Dlib68` on the same image)."""

    def describe(self, rgb: np.ndarray, detection: Detection) -> np.ndarray:
        network = dlib_model("face descriptor", lambda dlib: dlib.face_recognition_model_v1(
            dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")))
        import dlib  # (there: dlib_model has loaded it, or said how to install it)

        x0, y0, x1, y1 = (round(v) for v in detection.box)
        shape = dlib.full_object_detection(
            dlib.rectangle(x0, y0, x1, y1), [dlib.point(round(px), round(py)) for px, py in detection.landmarks])
        with _DESCRIBE_LOCK:
            return np.asarray(network.compute_face_descriptor(np.ascontiguousarray(rgb), shape), np.float64)


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two face descriptors (dlib: below about 0.6, the same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
