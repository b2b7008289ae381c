"""MediaPipe face mesh (478 points with irises). Its models ship inside the mediapipe 0.10.14 wheel,
so this backend works on a fresh machine with no network."""
from __future__ import annotations

import threading
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..topology import MEDIAPIPE
from .base import FaceFollower, FaceLandmarks, Place, place_of, register_backend

LAYOUT = "mediapipe478"
# Detection runs on a copy no larger than this; the face mesh then runs on a crop around each face,
# so small faces in big paintings are found at a useful resolution.
_DETECT_SIDE = 1024
_MESH_CROP = 384
# An iris centre nearer an eye's corner than this (a share of the eye's width) is either a hard sideways
# glance or a fit that put the eye's corner on the iris (Van Gogh's far eye from the default crop: 0.06 of the
# way). The fit is then taken again from crops a fifth smaller and larger: a glance comes out the same from
# all three, and a misfit from one crop is outvoted by the other two (each point's median).
_IRIS_FROM_CORNER = 0.15
_REFIT_SCALES = (0.8, 1.2)


import warnings as _warnings

# protobuf 4 warns on every FaceMesh.process() call inside mediapipe 0.10.14; it is noise, not ours.
_warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype")


def _import_mp():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mediapipe as mp
    return mp


def _square(cx, cy, side, w, h):
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, y0, x0 + int(round(side)), y0 + int(round(side))


def _crop_padded(rgb, box):
    """Crop box (may extend past the image) with edge padding, so the face stays centred."""
    x0, y0, x1, y1 = box
    h, w = rgb.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return rgb[y0 + pad:y1 + pad, x0 + pad:x1 + pad]


def _others_hidden(crop: np.ndarray, crop_box, others: list[Place], own: tuple[float, float, float, float]) -> np.ndarray:
    """``crop`` with the other faces the follower knows painted over in its median colour, outside the followed
    face's own box: the video mesh takes whichever face it finds in its square, and a second face beside the
    followed one (two visitors cheek to cheek) was followed from the first frame or drifted to within a second."""
    x0, y0 = crop_box[:2]
    ox0, oy0, ox1, oy1 = own
    m = 0.1 * max(ox1 - ox0, oy1 - oy0)
    keep = (int(ox0 - m - x0), int(oy0 - m - y0), int(np.ceil(ox1 + m - x0)), int(np.ceil(oy1 + m - y0)))
    painted = None
    for cx, cy, size in others:
        half = 0.6 * size
        bx0, by0 = max(int(cx - half - x0), 0), max(int(cy - half - y0), 0)
        bx1, by1 = min(int(np.ceil(cx + half - x0)), crop.shape[1]), min(int(np.ceil(cy + half - y0)), crop.shape[0])
        if bx1 <= bx0 or by1 <= by0:
            continue  # not in the square
        if painted is None:
            painted = crop.copy()
            colour = np.median(crop[::8, ::8].reshape(-1, 3), axis=0).astype(crop.dtype)  # (every 8th pixel: 0.1 ms, not 9)
        patch = np.ones((by1 - by0, bx1 - bx0), bool)
        # (never over the followed face itself)
        ky0, ky1 = np.clip([keep[1] - by0, keep[3] - by0], 0, by1 - by0)
        kx0, kx1 = np.clip([keep[0] - bx0, keep[2] - bx0], 0, bx1 - bx0)
        patch[ky0:ky1, kx0:kx1] = False
        painted[by0:by1, bx0:bx1][patch] = colour
    return crop if painted is None else painted


def irises_fit(points: np.ndarray) -> bool:
    """Whether each iris centre lies well inside its eye, as an iris does (see ``_IRIS_FROM_CORNER``)."""
    for (upper, _), iris in zip(MEDIAPIPE.eyes, MEDIAPIPE.iris_centres):
        a, b = upper[0], upper[-1]  # (an eye's lids run from corner to corner)
        along = points[b, :2] - points[a, :2]
        u = float((points[iris, :2] - points[a, :2]) @ along) / max(float(along @ along), 1e-9)
        if not _IRIS_FROM_CORNER <= u <= 1 - _IRIS_FROM_CORNER:
            return False
    return True


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


@register_backend("mediapipe")
class MediaPipeBackend:
    name = "mediapipe"
    layout = LAYOUT

    @staticmethod
    def unavailable_reason() -> str | None:
        try:
            mp = _import_mp()
            mp.solutions.face_mesh  # noqa: B018  (0.10.31+ have no solutions and no bundled models)
        except Exception as e:  # pragma: no cover - depends on the install
            return f"mediapipe 0.10.14 is not installed ({e}); run pip install -r requirements.txt"
        return None

    def __init__(self, video_mode: bool = False):
        # Video mode smooths landmarks inside mediapipe's graph, which lags behind fast expressions;
        # per-frame (static) meshing on a crop that follows the face costs the same here and measured
        # better in self-reenactment (BENCHMARKS.md). Our own zero-lag smoothing removes the jitter.
        self.video_mode = video_mode
        mp = _import_mp()
        self._mp = mp
        self._lock = threading.Lock()
        self._mesh_still = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3)
        # Full range (faces up to 5 m away) and short range (within 2 m): stills ask both; a clip's look around
        # for other faces one in turn.
        self._detectors = [mp.solutions.face_detection.FaceDetection(model_selection=m, min_detection_confidence=0.4)
                           for m in (1, 0)]

    # -- stills -------------------------------------------------------------------------------
    def _face_boxes(self, rgb, detectors=None) -> list[tuple[float, float, float, float]]:
        h, w = rgb.shape[:2]
        s = min(1.0, _DETECT_SIDE / max(h, w))
        small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb
        boxes = []
        for det in detectors or self._detectors:
            res = det.process(small)
            for d in res.detections or []:
                b = d.location_data.relative_bounding_box
                box = (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)
                if all(_iou(box, o) < 0.4 for o in boxes):
                    boxes.append(box)
        return boxes

    def _mesh_in_box(self, rgb, box, scale=2.2) -> FaceLandmarks | None:
        face = self._mesh_once(rgb, box, scale)
        if face is None or irises_fit(face.points):
            return face
        # The mesh's eye and its iris disagree: the fit from this crop may be the odd one out (BENCHMARKS.md,
        # eighteenth session), so it is taken from two other crops too.
        refits = [f for k in _REFIT_SCALES if (f := self._mesh_once(rgb, box, scale * k)) is not None]
        if len(refits) == 2:
            median = FaceLandmarks(np.median(np.stack([face.points] + [f.points for f in refits]), axis=0)
                                   .astype(np.float32), LAYOUT)
            if irises_fit(median.points):
                return median
        # (Three fits that all disagree mix into a shape none of them had: one of them is kept whole.)
        return next((f for f in refits if irises_fit(f.points)), face)

    def _mesh_once(self, rgb, box, scale) -> FaceLandmarks | None:
        h, w = rgb.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * scale
        crop_box = _square(cx, cy, side, w, h)
        crop = _crop_padded(rgb, crop_box)
        k = _MESH_CROP / crop.shape[0]
        crop = cv2.resize(crop, (_MESH_CROP, _MESH_CROP), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        res = self._mesh_still.process(crop)
        if not res.multi_face_landmarks:
            return None
        return self._to_landmarks(res.multi_face_landmarks[0], crop_box, _MESH_CROP)

    @staticmethod
    def _to_landmarks(lms, crop_box, crop_px) -> FaceLandmarks:
        x0, y0, x1, _ = crop_box
        k = (x1 - x0) / crop_px
        pts = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float32) * crop_px
        pts *= k
        pts[:, 0] += x0
        pts[:, 1] += y0
        return FaceLandmarks(pts, LAYOUT)

    def detect(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        with self._lock:
            faces: list[FaceLandmarks] = []
            candidates = self._face_boxes(rgb)
            h, w = rgb.shape[:2]
            # Stylised faces (brush strokes, sepia photographs) can escape the detectors but not the
            # mesh's own search on a centred square, so try the image itself last.
            side = min(h, w)
            candidates.append(((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2))
            for i, box in enumerate(candidates):
                scale = 2.2 if i < len(candidates) - 1 else 1.0
                face = self._mesh_in_box(rgb, box, scale)
                if face is None and i < len(candidates) - 1:
                    face = self._mesh_in_box(rgb, box, 1.5)
                if face is not None and all(_iou(face.box, f.box) < 0.3 for f in faces):
                    faces.append(face)
            return faces

    # -- video --------------------------------------------------------------------------------
    def track(self, frames: Iterable[np.ndarray], first: FaceLandmarks | None = None,
              follower: FaceFollower | None = None) -> Iterator[FaceLandmarks | None]:
        """Follow the largest face (or ``first``) through a clip, and the same person after a loss (``FaceFollower``).

        The mesh runs in video mode on a fixed square around the face, so small or off-centre faces
        in large or vertical frames are tracked at a useful resolution; the square is re-centred when
        the face drifts towards its edge or is lost.
        """
        mesh = None
        crop_box = None
        prev = first
        follower = follower or FaceFollower()
        try:
            for index, rgb in enumerate(frames):
                h, w = rgb.shape[:2]
                if crop_box is None:
                    if prev is None:
                        prev = follower.pick(self.detect(rgb))
                    if prev is None:
                        yield None
                        continue
                    crop_box = self._track_box(prev, w, h)
                    if mesh is not None:
                        mesh.close()
                    mesh = self._video_mesh()
                crop = _crop_padded(rgb, crop_box)
                lately = follower.seen_lately()
                if lately and prev is not None:
                    crop = _others_hidden(crop, crop_box, lately, prev.box)
                side = crop.shape[0]
                px = min(side, 512)
                if px != side:
                    # Down to half size bilinear costs a fifth of area averaging, and the mesh resamples
                    # the crop again anyway: self-reenactment with re-tracked motion scored the same.
                    interp = cv2.INTER_LINEAR if side <= 2 * px else cv2.INTER_AREA
                    crop = cv2.resize(crop, (px, px), interpolation=interp)
                res = mesh.process(np.ascontiguousarray(crop))
                if not res.multi_face_landmarks:
                    crop_box, prev = None, None
                    yield None
                    continue
                face = self._to_landmarks(res.multi_face_landmarks[0], crop_box, px)
                x0, y0, x1, y1 = face.box
                cx0, cy0, cx1, cy1 = crop_box
                margin = 0.08 * (cx1 - cx0)
                if x0 < cx0 + margin or y0 < cy0 + margin or x1 > cx1 - margin or y1 > cy1 - margin:
                    crop_box = self._track_box(face, w, h)  # re-centre before the face leaves the square
                    mesh.close()
                    mesh = self._video_mesh()
                prev = follower.seen(face)
                if index % follower.CENSUS_EVERY == 0:
                    follower.census(self._others_beside(rgb, follower, index))
                yield face
        finally:
            if mesh is not None:
                mesh.close()

    def _others_beside(self, rgb: np.ndarray, follower: FaceFollower, index: int) -> list[Place]:
        """Where the faces other than the followed one are in ``rgb``, as face-mesh boxes (the places the follower
        compares; a mesh also keeps a pattern from being a face). One detector a look, in turn: the short-range
        one (1.7 ms at 480 px) and the full-range one (5.9 ms), which finds faces under ~55 px."""
        detector = self._detectors[(index // follower.CENSUS_EVERY) % len(self._detectors)]
        with self._lock:
            places = []
            for box in self._face_boxes(rgb, [detector]):
                if follower.is_followed(place_of(box)):
                    continue
                face = self._mesh_in_box(rgb, box)
                if face is not None and not follower.is_followed(place_of(face.box)):
                    places.append(place_of(face.box))
            return places

    def _video_mesh(self):
        return self._mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not self.video_mode, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=0.3, min_tracking_confidence=0.3)

    @staticmethod
    def _track_box(face: FaceLandmarks, w: int, h: int):
        x0, y0, x1, y1 = face.box
        side = max(x1 - x0, y1 - y0) * 2.4
        return _square((x0 + x1) / 2, (y0 + y1) / 2, side, w, h)
