"""Self-reenactment quality metrics (the FOMM / TPSMM protocol).

In self-reenactment a portrait is animated with a clip *of the same person*, so every generated
frame has a ground-truth frame to compare against. We report, per frame and then averaged:

* ``l1``   mean absolute error on a 0-1 scale (uint8 difference / 255), as FOMM reports it;
* ``psnr`` in dB, peak 255, capped at 100 dB so identical frames do not produce ``inf``;
* ``ssim`` Wang et al. 2004 SSIM (see :func:`ssim` for the exact variant);
* ``akd``  average keypoint distance: mean landmark error normalised by the inter-ocular
  distance of the real frame.

The pixel metrics are taken on a face crop, because a portrait's background is copied almost
unchanged by every engine and would otherwise dominate (and flatter) the numbers. The crop box
comes from the *real* frame and is shared by both frames, so an engine cannot improve its score
by moving the face.

AKD is measured with dlib's 68-point predictor (:class:`Dlib68`) and never with mediapipe:
the engines are driven by mediapipe landmarks, and scoring them with the same detector would
reward reproducing that detector's errors rather than the face.

dlib needs the PyPI packages ``dlib-bin`` (prebuilt dlib with the HOG detector) and
``face-recognition-models`` (ships ``shape_predictor_68_face_landmarks.dat``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from .errors import EngineUnavailableError

Box = Tuple[int, int, int, int]  # (x0, y0, x1, y1), pixel coordinates, x1/y1 exclusive

PSNR_CAP_DB = 100.0

# iBUG-68 indices of the two eyes (36-41: the subject's right eye, 42-47: the left eye).
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)


# --------------------------------------------------------------------------- pixel metrics


def _check_pair(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        # The 0-1 scale of l1 and the 255 peak of psnr/ssim are only meaningful for uint8.
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB images, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("images are empty")
    return a, b


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute error of two uint8 RGB images on a 0-1 scale."""
    a, b = _check_pair(a, b)
    # int16 because uint8 subtraction would wrap around.
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16)))) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 255), capped at ``PSNR_CAP_DB``.

    The cap keeps identical frames finite so that per-clip means stay usable.
    """
    a, b = _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two uint8 RGB images.

    Variant: Wang et al. 2004 as in their reference code — 11x11 Gaussian window with
    sigma 1.5, K1=0.01, K2=0.03, population (not sample) covariance, data_range 255,
    computed per RGB channel and averaged over channels (skimage's
    ``structural_similarity(..., channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``). skimage's defaults (7x7 uniform window,
    sample covariance) give noticeably different numbers, so they are not used.
    Images must be at least 11 px on each side.
    """
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 px, got {a.shape[:2]}")
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            a,
            b,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
    )


# --------------------------------------------------------------------------- crops


def face_crop_box(landmarks: np.ndarray, image_shape: Sequence[int], scale: float = 1.3) -> Box:
    """Square box around ``landmarks`` (N x 2, x/y), ``scale`` times their larger extent.

    The box is kept square by sliding it back inside the image rather than clipping it, so
    crops from frames near the border keep the same aspect ratio; only a box larger than the
    image itself is shrunk to the image's shorter side.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] == 0 or not np.all(np.isfinite(pts)):
        raise ValueError("landmarks must be a non-empty array of finite (x, y) points")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    h, w = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"bad image shape {tuple(image_shape)}")

    (xmin, ymin), (xmax, ymax) = pts.min(axis=0), pts.max(axis=0)
    cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
    side = int(round(max(xmax - xmin, ymax - ymin) * scale))
    side = max(1, min(side, h, w))

    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x0 = min(max(x0, 0), w - side)
    y0 = min(max(y0, 0), h - side)
    return (x0, y0, x0 + side, y0 + side)


def crop(img: np.ndarray, box: Box) -> np.ndarray:
    """``img[y0:y1, x0:x1]`` for a box from :func:`face_crop_box` (a view, not a copy)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = img.shape[:2]
    x0, x1 = max(0, x0), min(w, x1)
    y0, y1 = max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {tuple(box)} does not overlap an image of size {w}x{h}")
    return img[y0:y1, x0:x1]


# --------------------------------------------------------------------------- dlib landmarks


@dataclass(frozen=True)
class Detection:
    """One face found by :class:`Dlib68`."""

    landmarks: np.ndarray  # (68, 2) float64, x/y in pixels
    box: Box  # the rectangle the shape predictor was run on
    hinted: bool  # True when ``box`` came from the caller's hint, not the HOG detector


def dlib_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> str:
    """Path of one of dlib's model files in ``face-recognition-models`` (by default the 68-point predictor)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailableError(
            "The dlib models are missing; run 'pip install face-recognition-models' to measure AKD or cross-reenactment."
        )
    # Found without importing the package: face-recognition-models 0.3.0's __init__ imports
    # pkg_resources, which warns about its own deprecation and which setuptools >= 82 no longer ships.
    path = os.path.join(next(iter(spec.submodule_search_locations)), "models", name)
    if not os.path.isfile(path):
        raise EngineUnavailableError(
            f"The dlib model is not at {path}; reinstall 'face-recognition-models'."
        )
    return path


_MODEL_LOCK = threading.Lock()
_MODELS: dict = {}


def dlib_model(key, build):
    """A dlib model, made by ``build(dlib)`` the first time ``key`` is asked for and shared by every caller in
    the process after that: dlib's model files take about a second to parse (the predictor is ~100 MB)."""
    with _MODEL_LOCK:
        if key not in _MODELS:
            try:
                import dlib
            except ImportError:
                raise EngineUnavailableError(
                    "dlib is not installed; run 'pip install dlib-bin' to measure AKD or cross-reenactment."
                ) from None
            _MODELS[key] = build(dlib)
        return _MODELS[key]


def _load_dlib(model_path: Optional[str]):
    """(detector, predictor): the HOG face detector and the 68-point predictor at ``model_path`` (default:
    face-recognition-models' own)."""
    return dlib_model(("68 points", model_path or ""), lambda dlib: (
        dlib.get_frontal_face_detector(), dlib.shape_predictor(model_path or dlib_model_path())))


class Dlib68:
    """dlib HOG face detector + 68-point (iBUG) shape predictor, for measurement only.

    ``detector(rgb)`` returns a (68, 2) float array for the largest face, or ``None``.
    The model is loaded on first use, not at construction, so building a scorer is cheap
    when AKD ends up not being needed.
    """

    def __init__(self, model_path: Optional[str] = None, max_upsample: int = 1):
        self.model_path = model_path
        self.max_upsample = int(max_upsample)

    def __call__(self, rgb: np.ndarray, hint_box: Optional[Box] = None) -> Optional[np.ndarray]:
        det = self.detect(rgb, hint_box=hint_box)
        return None if det is None else det.landmarks

    def detect(self, rgb: np.ndarray, hint_box: Optional[Box] = None) -> Optional[Detection]:
        """Landmarks of the largest face, with the rectangle they were predicted from.

        ``hint_box`` is used only when the HOG detector finds nothing: generated frames can
        carry artefacts that defeat HOG while the face is still where the real frame's was,
        and the shape predictor copes with a roughly placed box.
        """
        import dlib

        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.shape} {img.dtype}")
        img = np.ascontiguousarray(img)  # dlib rejects strided views such as crops
        detector, predictor = _load_dlib(self.model_path)

        rects = []
        # Upsampling quadruples the cost (~16 ms -> ~67 ms at 512x512), and at the sizes we
        # score faces are large enough without it; only small faces need the second pass.
        for upsample in range(self.max_upsample + 1):
            rects = list(detector(img, upsample))
            if rects:
                break

        hinted = False
        if rects:
            rect = max(rects, key=lambda r: r.width() * r.height())
        elif hint_box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in hint_box)
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"empty hint_box {tuple(hint_box)}")
            rect = dlib.rectangle(x0, y0, x1, y1)
            hinted = True
        else:
            return None

        shape = predictor(img, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        return Detection(landmarks=pts, box=box, hinted=hinted)


# --------------------------------------------------------------------------- AKD


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the centres of the two eyes of a 68-point (iBUG) landmark set."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {pts.shape}")
    return float(np.linalg.norm(pts[RIGHT_EYE].mean(axis=0) - pts[LEFT_EYE].mean(axis=0)))


def akd(pred: np.ndarray, real: np.ndarray) -> float:
    """Mean landmark distance, in units of ``real``'s inter-ocular distance.

    Normalising makes the number independent of face size and resolution, so clips rendered
    at different sizes can be compared.
    """
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(real, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"landmark sets differ in shape: {p.shape} vs {r.shape}")
    iod = inter_ocular(r)
    if not iod > 0:
        raise ValueError("real landmarks have zero inter-ocular distance")
    return float(np.mean(np.linalg.norm(p - r, axis=1)) / iod)


# --------------------------------------------------------------------------- per frame


@dataclass
class FrameScores:
    l1: float
    psnr: float
    ssim: float
    akd: Optional[float]  # None when dlib finds no face in the real frame
    akd_hinted: bool = False  # the generated frame's landmarks came from the hint box


def score_frame(
    generated: np.ndarray,
    real: np.ndarray,
    real_landmarks_box: Optional[Box],
    detector: Optional[Dlib68],
) -> FrameScores:
    """Scores of one generated frame against its ground-truth frame.

    ``real_landmarks_box`` is the crop box for the pixel metrics, normally
    ``face_crop_box(landmarks_of_real, real.shape)``; it is applied to both frames. When it is
    ``None`` it is computed from dlib's landmarks on the real frame, and the whole frame is
    used if dlib finds no face there. ``detector=None`` skips AKD (``akd`` is ``None``).

    For AKD the real frame must be found by the HOG detector; the generated frame falls back
    to the real frame's face rectangle (see :meth:`Dlib68.detect`), which ``akd_hinted``
    records so a summary can tell how often that happened.
    """
    generated, real = _check_pair(generated, real)

    real_det = detector.detect(real) if detector is not None else None
    box = real_landmarks_box
    if box is None:
        if real_det is not None:
            box = face_crop_box(real_det.landmarks, real.shape)
        else:
            box = (0, 0, real.shape[1], real.shape[0])

    g, r = crop(generated, box), crop(real, box)
    scores = FrameScores(l1=l1(g, r), psnr=psnr(g, r), ssim=ssim(g, r), akd=None)

    if real_det is not None:
        gen_det = detector.detect(generated, hint_box=real_det.box)
        if gen_det is not None:
            scores.akd = akd(gen_det.landmarks, real_det.landmarks)
            scores.akd_hinted = gen_det.hinted
    return scores


def summarize(scores: Iterable[FrameScores]) -> dict:
    """Means over frames; AKD is averaged only over frames where it could be measured.

    Keys: ``frames``, ``l1``, ``psnr``, ``ssim``, ``akd`` (``None`` if no frame had one),
    ``akd_frames``, ``akd_missing``, ``akd_hinted``.
    """
    rows = list(scores)
    if not rows:
        raise ValueError("no frames to summarize")
    akds = [s.akd for s in rows if s.akd is not None]
    return {
        "frames": len(rows),
        "l1": float(np.mean([s.l1 for s in rows])),
        "psnr": float(np.mean([s.psnr for s in rows])),
        "ssim": float(np.mean([s.ssim for s in rows])),
        "akd": float(np.mean(akds)) if akds else None,
        "akd_frames": len(akds),
        "akd_missing": len(rows) - len(akds),
        "akd_hinted": sum(1 for s in rows if s.akd is not None and s.akd_hinted),
    }


__all__ = [
    "Box",
    "Detection",
    "Dlib68",
    "FrameScores",
    "PSNR_CAP_DB",
    "akd",
    "crop",
    "dlib_model",
    "dlib_model_path",
    "face_crop_box",
    "inter_ocular",
    "l1",
    "psnr",
    "score_frame",
    "ssim",
    "summarize",
]
