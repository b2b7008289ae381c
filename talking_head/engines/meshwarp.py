"""meshwarp: classical landmark-driven animation, no learned weights, CPU.

In the spirit of Averbuch-Elor et al., "Bringing Portraits to Life" (SIGGRAPH Asia 2017): the
portrait's dense face mesh follows the retargeted driving landmarks, rings of anchor points carry hair,
ears and neck with the head (with a falloff to a still canvas border), the mouth interior is filled
when the driver opens wider than the portrait, and the eyes close by their own lid triangles.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..faces import FaceLandmarks
from ..flow import face_weight, residual_flow, smooth_flow, transfer
from ..motion import face_size, umeyama
from ..topology import (
    Layout,
    delaunay,
    eye_centres,
    face_triangles,
    far_side,
    get_layout,
    hole_triangles,
    mouth_opening,
    turn,
)
from ..warp import MeshWarper, coverage_mask, soften_edges
from .base import DrivingFrame, Engine, Prepared, register_engine
from .layers import over_background, sitter_and_plate

# Rings around the face outline: (scale about the face centre, how much of the head's motion they take).
# The first ring is hair and ears, which move with the skull; the outer rings blend into a still canvas.
_RINGS = ((1.22, 1.0), (1.6, 0.55), (2.1, 0.18))
# How much of the face outline's own (non-rigid) motion each ring takes: a dropping jaw pulls the
# skin just outside it along, instead of squeezing it against a ring that only follows the skull.
_RING_FOLLOW = (0.4, 0.1, 0.0)
# How much of the head's travel across the picture each ring takes (at least its share of the whole head
# motion): a sitter's body sways with the head, and rings that took only their share of it (0.55, 0.18)
# squeezed hair and beard between the face and the still body when a driver moved about (talking_02 moves
# the face's centre by a median 0.57 and up to 1.35 eye distances; on Walt Whitman the face slid over his
# hair as an oval mask). The neck's lighter share (_NECK_DROP) is for turning, not for travel.
_RING_TRAVEL = (1.0, 0.9, 0.6)
_BORDER_REACH = 0.5  # the most of its way to the crop's still border a ring point goes (see vertices)
# How far behind the face's outline (its mean depth) a ring lies, in face heights per unit of ring scale
# beyond 1: hair and ears sit behind the face, so a nodding or turning head moves them less than the
# face, or the other way. (In self-reenactment flat rings dragged hair, ears and neck further than the
# real clips moved them; BENCHMARKS.md.) One depth for the whole ring: on a turned portrait its far
# silhouette is deep already, and a ring deeper still behind it stretched the cheek's rim out past the
# face as the head turned back (test_turned_faces).
_RING_DEPTH = 1.0
# A ring point's motion shorter than this (in face heights) is dropped, and a longer one shortened by it:
# that small, the head's pose is mostly the tracker's noise (MediaPipe reads a smile as the head
# shrinking by 1 %), and hair, ears and collar trembling with it scored worse than standing still
# (self-reenactment, SSIM outside the face; BENCHMARKS.md). The soft threshold starts motion smoothly.
_RING_STILL = 0.01
# Below the chin is neck and collar: a ring point there loses up to _NECK_DROP of its share of the
# head's motion, reached _NECK_SPAN face heights below the chin.
_NECK_DROP = 0.6
_NECK_SPAN = 0.6
# A turned face's hidden far cheek takes its pixels this far (in eye distances) inside the silhouette:
# right at the edge they are half background (and half transparent on the sitter layer).
_FOLD_INSET = 0.05
# How far behind the anchors the underlay lies, in face heights: behind any face point a turning head
# moves back (see prepare).
_UNDERLAY_DEPTH = 2.0
_CROP_SCALE = 2.6       # crop side / face outline size
_BORDER_POINTS = 8      # fixed anchors per crop edge
# Residual flow (see talking_head/flow.py), measured on a small grayscale crop of the driver's face
# with DIS at full crop resolution (its coarser default levels lose most of the gain).
_FLOW_SIDE = 128        # crop side in pixels
_FLOW_FACE = 0.8        # share of that side the driver's face outline spans in frame 0
_FLOW_RAMP = 0.15       # weight ramp inside the face outline, in inter-ocular distances
_FLOW_MOUTH_RAMP = 0.1  # the same at the mouth opening (the lips themselves need the flow)
# Skin the mesh missed moves little; long residuals were a driver's glasses or brows sliding under a
# head turn, and drew a streak across Lady Agnew's brow (talking_02) at 0.15.
_FLOW_LIMIT = 0.06      # longest residual kept, in inter-ocular distances
# On paintings the raw residual tore a 3/4 face's far eye when the driver rolled her eyes (the iris
# dragged the lid) and left blotches on cheeks whose shading changed (puffed cheeks read as motion):
# eyes are left out, and only the residual's low frequencies are kept, which DIS gets at half resolution.
_FLOW_FINEST = 1        # DIS finest pyramid level (0: full crop resolution, 1: half)
_FLOW_SMOOTH = 0.1      # Gaussian low-pass of the residual, in inter-ocular distances (0: none)
_FLOW_EYES = True       # leave the eyes out of the residual (an iris rolling is not skin motion)
_FLOW_EYE_SCALE = 1.3   # eye opening scaled about its centre to make the hole
_FLOW_TEMPORAL = 0.5    # weight of the newest frame in a running mean of the residual (1: none)
# Expression detail (``detail=True``): the driver's own shading change, frame t over its frame 0 moved to
# frame t's shape by the mesh, multiplies the portrait's skin (an expression ratio image: creases, folds,
# a lid's shadow that a warp cannot make). Measured on the same driver crop as the residual flow; its
# median over the face is divided out (a camera's exposure drifting is not expression) and it is
# clamped, so a glint or a shadow crossing the driver cannot blot the painting.
_DETAIL_SIGMA = 1.0       # Gaussian blur of both crops before the ratio, in crop pixels (DIS crop: _FLOW_SIDE)
_DETAIL_RANGE = (0.7, 1.4)
_DETAIL_OFFSET = 10.0     # added to both grey levels, so near-black pixels do not make huge ratios
# Where the driver's skin has texture (stubble, brows, hair), a pixel's misalignment reads as shading: a
# bearded driver (`expressive`) drew a grey moustache and chin on Lady Agnew. The ratio counts half where
# frame 0's gradient (grey levels per crop pixel) is this steep, less where steeper.
_DETAIL_TEXTURE = 2.0
# The driver's mouth is kept per frame as the engine's driving feature (cached with the clip, so a clip
# rendered before needs no decoding): a patch in a view that follows the driver's face, centred on the
# lips, eye line level, scaled by the eye distance. At 96 px per eye distance it keeps the detail of the
# gallery clips (their eye distances are 92-127 px); 1.5 x 1.3 eye distances hold the widest lips (1.12)
# and the widest yawn (0.97) seen in them.
_MOUTH_VIEW = "mouth-view-v2"  # v2: a frame where the face was lost has no view (DrivingFrame.seen)
_MOUTH_VIEW_PX = 96
_MOUTH_VIEW_SIZE = (144, 124)  # (width, height)


@dataclass
class _MeshState:
    layout: Layout
    rest: np.ndarray        # (V, 2) rest vertices in crop pixels (face points, anchors, the underlay's)
    rest_z: np.ndarray      # (V,) depth at rest
    n_face: int
    anchor_weight: np.ndarray  # (A,) per anchor: share of the head's rigid motion
    anchor_follow: np.ndarray  # (A,) per anchor: share of their outline point's non-rigid motion
    anchor_travel: np.ndarray  # (A,) per anchor: share of the head's travel (see _RING_TRAVEL)
    centre: np.ndarray         # (3,) the rest face's centre (its rigid points' mean, depth last): what travels
    anchor_source: np.ndarray  # (A,) per anchor: index of that outline point
    anchor_z: np.ndarray       # (A,) per anchor: depth at which the head's rigid motion moves them
    tris: np.ndarray
    mouth_tris: np.ndarray
    rest_opening: float
    iod: float
    ring_still: float          # crop pixels (see _RING_STILL)
    warper: MeshWarper
    # (V, 2) where each vertex takes its pixels from: ``rest``, except where a turned face's far cheek
    # folds behind its silhouette; those hidden points take the silhouette's skin (see ``_silhouette``).
    tex: np.ndarray
    underlay: np.ndarray       # (U,) the outline's face points, copied as the underlay's last U vertices
    driver: _DriverFlow | None = None  # the driving clip's frame 0, set when it arrives
    prev_disp: np.ndarray | None = None  # the last frame's residual on the remap grid
    mouth_warper: MeshWarper | None = None  # maps the driver's mouth interior; grows to the widest mouth
    grain: np.ndarray | None = None  # (h, w) float32: the painting's own fine texture, from a cheek (_grain)
    # Two layers (None: one layer). The sitter is (h, w, 4) uint8: the crop less the plate's share (the
    # sitter premultiplied by its mask) with the mask as its fourth channel, so one remap moves both.
    sitter: np.ndarray | None = None
    plate: np.ndarray | None = None   # (h, w, 3): the crop with the sitter filled in from the background
    flat: np.ndarray | None = None    # one layer: the crop as RGBA (opaque)

    @property
    def anchors_end(self) -> int:
        """Where the anchors end among the vertices (the underlay's copies follow them)."""
        return len(self.rest) - len(self.underlay)

    @property
    def alpha(self) -> np.ndarray | None:
        """(h, w) uint8: the sitter's mask on the crop, or None with one layer."""
        return None if self.sitter is None else self.sitter[..., 3]


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity taking 2-D points ``src`` to ``dst``."""
    r, k, t = umeyama(src.astype(np.float64), dst.astype(np.float64))
    return np.hstack([k * r, t[:, None]])


def _crop_square(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """image[y0:y0+side, x0:x0+side], edge pixels repeated where the square leaves the image."""
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((side, side) + image.shape[2:], image.dtype)
    return cv2.copyMakeBorder(image[cy0:cy1, cx0:cx1], cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1,
                              cv2.BORDER_REPLICATE)


class _DriverFlow:
    """The driver's frame 0 and, for each later frame, the motion the mesh misses (flow.py).

    Everything is measured on a ``_FLOW_SIDE`` crop that follows the driver's face at a fixed scale.
    """

    def __init__(self, layout: Layout, image: np.ndarray, landmarks: np.ndarray):
        self.layout = layout
        extent = float(np.max(np.ptp(landmarks[list(layout.oval), :2], axis=0)))
        self.side = max(8, round(extent / _FLOW_FACE))  # in driver pixels
        self.k = _FLOW_SIDE / self.side
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        self.ref = cv2.resize(gray, None, fx=self.k, fy=self.k, interpolation=cv2.INTER_AREA)
        self.ref_xy = (landmarks[:, :2] * self.k).astype(np.float32)
        self.tris = face_triangles(layout, self.ref_xy)
        self.warper = MeshWarper(_FLOW_SIDE, _FLOW_SIDE, 2)
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.dis.setFinestScale(_FLOW_FINEST)
        iod = face_size(self.ref_xy, layout)
        self.ramp, self.mouth_ramp, self.limit = _FLOW_RAMP * iod, _FLOW_MOUTH_RAMP * iod, _FLOW_LIMIT * iod
        self.smooth = _FLOW_SMOOTH * iod
        self.eye_loops = [list(upper) + list(reversed(lower[1:-1])) for upper, lower in layout.eyes] if _FLOW_EYES else []
        # The last frame aligned, and its crops: residual() and shading() of one frame share them.
        self._last: tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def _aligned(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(real, predicted, xy): frame t's crop, frame 0's crop moved to frame t's shape by the mesh, and
        the landmarks in crop pixels."""
        if self._last is not None and self._last[0] is image and self._last[1] is landmarks:
            return self._last[2]
        lay = self.layout
        centre = landmarks[list(lay.oval), :2].mean(axis=0)
        x0, y0 = np.round(centre - self.side / 2).astype(int)
        real = cv2.cvtColor(_crop_square(image, x0, y0, self.side), cv2.COLOR_RGB2GRAY)
        real = cv2.resize(real, (_FLOW_SIDE, _FLOW_SIDE), interpolation=cv2.INTER_AREA)
        xy = ((landmarks[:, :2] - (x0, y0)) * self.k).astype(np.float32)
        rigid = list(lay.rigid)
        table = self.warper.table(xy, self.ref_xy, landmarks[:, 2].astype(np.float32), self.tris,
                                  outside=_similarity(xy[rigid], self.ref_xy[rigid]))
        predicted = cv2.remap(self.ref, table, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._last = image, landmarks, (real, predicted, xy)
        return real, predicted, xy

    def residual(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flow, weight, xy): residual flow on the crop, where to keep it, the landmarks in crop pixels."""
        real, predicted, xy = self._aligned(image, landmarks)
        weight = self.weight(xy)
        return smooth_flow(residual_flow(self.dis, predicted, real), weight, self.smooth), weight, xy

    def shading(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ratio, weight, xy): the driver's shading at frame t over frame 0's at the same skin, on the crop."""
        real, predicted, xy = self._aligned(image, landmarks)
        real, predicted = (cv2.GaussianBlur(c.astype(np.float32), (0, 0), _DETAIL_SIGMA) + _DETAIL_OFFSET
                           for c in (real, predicted))
        ratio = real / predicted
        weight = self.weight(xy)
        gx, gy = (cv2.Sobel(predicted, cv2.CV_32F, *d, ksize=3) / 8 for d in ((1, 0), (0, 1)))
        texture = cv2.GaussianBlur(cv2.magnitude(gx, gy), (0, 0), 1.5)
        weight = weight / (1 + (texture / _DETAIL_TEXTURE) ** 2)
        face = weight > 0.5
        if face.any():
            ratio /= max(float(np.median(ratio[face])), 1e-3)
        return np.clip(ratio, *_DETAIL_RANGE), weight, xy

    def weight(self, xy: np.ndarray) -> np.ndarray:
        """Where on the crop a residual is kept, for a face whose landmarks sit at ``xy`` (crop pixels)."""
        lay = self.layout
        holes = [xy[list(lay.mouth_ring)]]
        for loop in self.eye_loops:
            eye = xy[loop]
            c = eye.mean(axis=0)
            holes.append(c + _FLOW_EYE_SCALE * (eye - c))
        return face_weight((_FLOW_SIDE, _FLOW_SIDE), xy[list(lay.oval)], self.ramp, holes, self.mouth_ramp)


def _auto_step(w: int, h: int) -> int:
    """Remap-table grid spacing: about 256 cells across the crop, so cost does not grow with resolution.

    The table is exactly piecewise affine at the cells and bilinear between them; at 256 cells a face
    triangle still spans several cells, and the image itself is resampled at full resolution.
    """
    return max(1, round(max(w, h) / 256))


def _crop_box(face: FaceLandmarks, layout: Layout, w: int, h: int) -> tuple[int, int, int, int]:
    oval = face.xy[list(layout.oval)]
    c = oval.mean(axis=0)
    side = _CROP_SCALE * float(np.max(oval.max(axis=0) - oval.min(axis=0)))
    cy = c[1] - 0.05 * side  # hair needs more room above than the neck below
    x0, y0 = int(max(0, np.floor(c[0] - side / 2))), int(max(0, np.floor(cy - side / 2)))
    x1, y1 = int(min(w, np.ceil(c[0] + side / 2))), int(min(h, np.ceil(cy + side / 2)))
    return x0, y0, x1, y1


def _silhouette(layout: Layout, xy: np.ndarray, z: np.ndarray, centre: np.ndarray,
                iod: float) -> tuple[np.ndarray, np.ndarray]:
    """(the face's visible outline as point indices, where each face point takes its pixels from).

    On a turned face the mesh's far cheek runs past the visible edge and folds behind the near skin
    (``topology.far_side``): its outline points sit inside the face, on the eye or the cheek. Rings
    built around them dragged that skin out past the face when the head turned back (a band of cheek
    beside the face), and the folded triangles, opening, showed the edge's background as a dark streak
    through the far eye (Vermeer x ``talking_02``). So the rings start at the silhouette instead, and the
    hidden points take their pixels from the silhouette point nearest them, a little inside it, where
    the skin is whole: opening, the far cheek stretches the edge's skin. A face seen from the front has
    no fold, and everything is as before.
    """
    oval = np.array(layout.oval)
    tex = xy.copy()
    sides = far_side(layout, xy, z)
    if sides is None or not sides[0].any():
        return oval, tex
    hidden, source = sides
    inward = centre - xy[source[hidden]]
    inward /= np.maximum(np.linalg.norm(inward, axis=1, keepdims=True), 1e-6)
    tex[hidden] = xy[source[hidden]] + _FOLD_INSET * iod * inward
    outline = source[oval]
    keep = outline != np.roll(outline, 1)  # hidden neighbours may share a silhouette point
    outline = outline[keep] if keep.any() else outline[:1]
    if len(outline) < 3 or not _simple(xy[outline]):
        return oval, tex  # a fold too odd to trace round: the rings stay on the mesh's own outline
    return outline, tex


def _unseen_at_rest(warper: MeshWarper, rest: np.ndarray, rest_z: np.ndarray, tris: np.ndarray,
                    tex: np.ndarray) -> np.ndarray:
    """``tex`` with every point put back at ``rest`` whose triangles show in the still painting.

    A hidden point's triangles lie behind the near skin at rest, so a still frame stays the painting
    exactly; where a sliver of one wins the depth test anyway, its points keep their own pixels.
    """
    still = None
    for _ in range(4):
        moved = tex != rest
        if not moved.any():
            return tex  # nothing hidden (a face seen from the front): no table to compare
        if still is None:
            still = warper.table(rest, rest, rest_z, tris)
        seen = np.argwhere(np.abs(warper.table(rest, tex, rest_z, tris) - still).max(axis=2) > 1e-3)[:, ::-1] + 0.5
        if not len(seen):
            return tex
        suspects = tris[moved[tris].any(axis=(1, 2))]
        a, b, c = (rest[suspects[:, k]][:, None, :] for k in range(3))
        p = seen[None, :, :].astype(np.float32)
        s1, s2, s3 = turn(a, b, p), turn(b, c, p), turn(c, a, p)
        inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
        shown = suspects[inside.any(axis=1)]
        if not len(shown):
            break
        tex = tex.copy()
        tex[shown.ravel()] = rest[shown.ravel()]
    return rest  # not settled: the fold is left as it was


def _simple(poly: np.ndarray) -> bool:
    """Whether a closed polygon's edges cross nowhere but at shared corners."""
    a = np.asarray(poly, np.float64)
    b = np.roll(a, -1, axis=0)
    ai, bi, aj, bj = a[:, None], b[:, None], a[None], b[None]
    crossing = (turn(ai, bi, aj) * turn(ai, bi, bj) < 0) & (turn(aj, bj, ai) * turn(aj, bj, bi) < 0)
    n = len(a)
    i, j = np.triu_indices(n, 2)
    apart = ~((i == 0) & (j == n - 1))  # the closing edge and the first share a corner
    return not crossing[i[apart], j[apart]].any()


def _paste_mask(box, w, h, feather_frac=0.06) -> np.ndarray:
    """1 inside, ramping to 0 at crop edges that lie inside the canvas (edges on the canvas border stay 1)."""
    x0, y0, x1, y1 = box
    cw, ch = x1 - x0, y1 - y0
    f = max(2, int(feather_frac * min(cw, ch)))
    ramp_x = np.ones(cw, np.float32)
    ramp_y = np.ones(ch, np.float32)
    r = (np.arange(f, dtype=np.float32) + 0.5) / f
    if x0 > 0:
        ramp_x[:f] = np.minimum(ramp_x[:f], r)
    if x1 < w:
        ramp_x[-f:] = np.minimum(ramp_x[-f:], r[::-1])
    if y0 > 0:
        ramp_y[:f] = np.minimum(ramp_y[:f], r)
    if y1 < h:
        ramp_y[-f:] = np.minimum(ramp_y[-f:], r[::-1])
    return np.outer(ramp_y, ramp_x)


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0 for x, y in pts])


@register_engine("meshwarp", priority=0, description="classical mesh warp, CPU, no weights")
class MeshWarpEngine(Engine):
    batch_size = 1

    def __init__(self, grid_step: int | None = None, fill_mouth: bool = True, sharp: bool = False, refine: bool = False,
                 layered: bool = True, detail: bool = False):
        self.grid_step = grid_step
        # Driving pixels: the mouth interior (kept as the driver's mouth view, so a clip's second render
        # decodes nothing), the residual flow and the expression detail (whole frames, every time).
        self.needs_driving_pixels = fill_mouth or refine or detail
        self.driving_features = _MOUTH_VIEW if fill_mouth and not (refine or detail) else None
        # The background stays still behind the moving sitter (see layers.py and segmentation.py).
        self.layered = layered
        self.fill_mouth = fill_mouth
        # Residual optical flow of the driver's skin between the mesh's vertices (needs driving pixels).
        # Off by default: on paintings driven by another person it showed no visible gain (frames of
        # largest difference look alike), a little more frame-to-frame texture change, and it costs
        # ~1.3 s of CPU per 12-s render; it scores better in self-reenactment (BENCHMARKS.md).
        self.refine = refine
        # The driver's expression detail (shading ratio, see _DETAIL_*; needs driving pixels every frame).
        # Off by default until it has been looked at on every painting and made cheaper (1.8 ms a frame): in
        # self-reenactment it brings the AKD ratio from 0.215 to 0.207, and to 0.187 without the texture
        # weight (_DETAIL_TEXTURE), which left a bearded driver's stubble on Lady Agnew (BENCHMARKS.md).
        self.detail = detail
        # Bicubic resampling: bilinear blurs every sub-pixel shift, which is most of a subtle motion.
        self.interpolation = cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR

    def settings_key(self) -> str:
        # v3: folds drawn at full resolution with softened edges, mouth colours matched in Lab; stored
        # gallery results of v2 showed a turning cheek's edge as a staircase and green teeth, so they
        # are rendered again rather than served. v4: the mouth interior comes from the driver's mouth view.
        # v5: a turned face's rings start at its silhouette (v4 dragged the far cheek out past the face),
        # and a turned portrait turns back toward the viewer only so far (motion._limit_turn_back).
        # v6: rings move with the head in depth (_RING_DEPTH) and stand still under the tracker's noise
        # (_RING_STILL), and the chin follows an opening mouth further (motion.JAW_SHORTFALL). v7: an underlay
        # fills the slivers between the face and the rings (v6 showed the background there as a streak). v8:
        # the rings take more of the head's travel (_RING_TRAVEL). v9: the mouth interior takes the painting's
        # grain (_GRAIN_GAIN) and a soft edge. v10: the background a moving head uncovers bends the painting's
        # texture instead of breaking it into mirrored blocks (segmentation.background_plate). v11: it continues
        # the texture by plain shifts over a smooth continuation of the colours (v10 bent it into arcs and swirls).
        return (f"meshwarp-v11-step{self.grid_step or 'auto'}-mouth{int(self.fill_mouth)}-interp{self.interpolation}"
                f"-refine{int(self.refine)}-layered{int(self.layered)}" + ("-detail1" if self.detail else ""))

    # -- preparation --------------------------------------------------------------------------
    def prepare(self, portrait: np.ndarray, face: FaceLandmarks) -> Prepared:
        layout = get_layout(face.layout)
        h, w = portrait.shape[:2]
        box = _crop_box(face, layout, w, h)
        x0, y0, x1, y1 = box
        cw, ch = x1 - x0, y1 - y0
        pts = face.points.astype(np.float64).copy()
        pts[:, 0] -= x0
        pts[:, 1] -= y0
        face_xy, face_z = pts[:, :2], pts[:, 2]
        oval = face_xy[list(layout.oval)]
        centre = oval.mean(axis=0)
        chin_y = face_xy[layout.chin, 1]
        face_h = float(oval[:, 1].max() - oval[:, 1].min())
        iod = face_size(face_xy, layout)
        outline, tex = _silhouette(layout, face_xy, face_z, centre, iod)
        edge = face_xy[outline]

        anchors, weights, follow, follow_idx, depth, travel = [], [], [], [], [], []
        outline_z = float(np.mean(face_z[outline]))
        for (scale, weight), fol, trav in zip(_RINGS, _RING_FOLLOW, _RING_TRAVEL):
            ring = centre + scale * (edge - centre)
            # Below the chin is neck and collar: it follows the head less than hair does.
            below = np.clip((ring[:, 1] - chin_y) / (_NECK_SPAN * face_h), 0, 1)
            wts = weight * (1 - _NECK_DROP * below)
            keep = (ring[:, 0] > 1) & (ring[:, 0] < cw - 2) & (ring[:, 1] > 1) & (ring[:, 1] < ch - 2)
            anchors.append(ring[keep])
            weights.append(wts[keep])
            follow.append(np.full(int(keep.sum()), fol))
            travel.append(np.maximum(wts[keep], trav))
            follow_idx.append(outline[keep])
            depth.append(np.full(int(keep.sum()), outline_z + _RING_DEPTH * (scale - 1) * face_h))
        t = np.linspace(0, 1, _BORDER_POINTS + 1)[:-1]
        border = np.concatenate([
            np.stack([t * (cw - 1), np.zeros_like(t)], 1), np.stack([np.full_like(t, cw - 1), t * (ch - 1)], 1),
            np.stack([(1 - t) * (cw - 1), np.full_like(t, ch - 1)], 1), np.stack([np.zeros_like(t), (1 - t) * (ch - 1)], 1)])
        anchors.append(border)
        weights.append(np.zeros(len(border)))
        follow.append(np.zeros(len(border)))
        travel.append(np.zeros(len(border)))
        follow_idx.append(np.zeros(len(border), dtype=int))
        depth.append(np.zeros(len(border)))  # (the border does not move)
        anchors = np.concatenate(anchors)
        weights = np.concatenate(weights)

        n = len(face_xy)
        # Vertices: the face's points, the anchors, then the underlay's copies of the outline (see below).
        rest = np.concatenate([face_xy, anchors, edge])
        # Anchors sit behind the face, so where the mesh folds the face is drawn on top; the underlay
        # lies behind everything.
        depth_behind = float(face_z.max() + 0.5 * face_h)
        rest_z = np.concatenate([face_z, np.full(len(anchors), depth_behind),
                                 np.full(len(edge), depth_behind + _UNDERLAY_DEPTH * face_h)])

        # The face keeps its own topology; the rings are triangulated around the outline only.
        ring_pts = np.concatenate([edge, anchors])
        ring_idx = np.concatenate([outline, n + np.arange(len(anchors))])
        dela = delaunay(ring_pts)
        centroids = ring_pts[dela].mean(axis=1)
        outer = ~_inside(edge, centroids)
        ring_tris = ring_idx[dela[outer]]
        # The rest of that triangulation, inside the outline, is the underlay: drawn behind the face, it
        # shows only where the face's own triangles leave a gap. Between two outline points the face's
        # edge need not run straight; where it bows inward (a turned face's lip corner) no triangle
        # covered the sliver between it and the rings, and the warp showed the still painting there:
        # the background, as a dark streak beside the Girl with a Pearl Earring's lips.
        under_idx = np.concatenate([n + len(anchors) + np.arange(len(edge)), n + np.arange(len(anchors))])
        tris = np.concatenate([face_triangles(layout, face_xy), ring_tris, under_idx[dela[~outer]]]).astype(np.int32)
        mouth_tris, _ = hole_triangles(layout)

        warper = MeshWarper(cw, ch, self.grid_step or _auto_step(cw, ch))
        rest, rest_z = rest.astype(np.float32), rest_z.astype(np.float32)
        tex = _unseen_at_rest(warper, rest, rest_z, tris, np.concatenate([tex, anchors, tex[outline]]).astype(np.float32))
        rigid = list(layout.rigid)
        state = _MeshState(
            layout=layout, rest=rest, rest_z=rest_z, n_face=n, anchor_weight=weights.astype(np.float32),
            anchor_follow=np.concatenate(follow).astype(np.float32),
            anchor_travel=np.concatenate(travel).astype(np.float32),
            centre=np.append(face_xy[rigid].mean(axis=0), face_z[rigid].mean()),
            anchor_source=np.concatenate(follow_idx).astype(np.int64), anchor_z=np.concatenate(depth).astype(np.float32),
            tris=tris, mouth_tris=mouth_tris.astype(np.int32), rest_opening=float(mouth_opening(layout, face_xy)),
            iod=iod, ring_still=_RING_STILL * face_h, warper=warper, tex=tex, underlay=outline.astype(np.int64))
        crop = np.ascontiguousarray(portrait[y0:y1, x0:x1])
        state.grain = _grain(crop, layout, face_xy, iod)
        if self.layered:
            state.sitter, state.plate = sitter_and_plate(crop, oval, self.source_store)
        if state.sitter is None:
            # One layer, in four channels all the same: OpenCV's 4-channel remap is the fast one.
            state.flat = cv2.cvtColor(crop, cv2.COLOR_RGB2RGBA)
        return Prepared(box, crop, _paste_mask(box, w, h), state)

    # -- rendering ----------------------------------------------------------------------------
    def vertices(self, prepared: Prepared, frame: DrivingFrame) -> tuple[np.ndarray, np.ndarray]:
        """Destination vertices (V, 2) and depths (V,) in crop pixels for one frame."""
        s: _MeshState = prepared.state
        x0, y0 = prepared.crop_box[:2]
        face = frame.target[:, :2] - (x0, y0)
        a, per_z = frame.head[:, :2], (frame.head[:, 2] if frame.head.shape[1] == 4 else np.zeros(2))
        b = frame.head[:, -1] + a @ (x0, y0) - (x0, y0)  # the head's motion, moved into crop pixels

        def rigid(xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
            """Where the head's rigid motion takes points at ``xy`` and ``depth``."""
            return xy @ a.T + depth[:, None] * per_z + b

        anchors = s.rest[s.n_face:s.anchors_end]
        moved = rigid(anchors, s.anchor_z)
        # The outline's motion beyond what the head's rigid motion explains (jaw, cheeks).
        src = s.anchor_source
        own = face[src] - rigid(s.rest[src], s.rest_z[src])
        step = s.anchor_weight[:, None] * (moved - anchors) + s.anchor_follow[:, None] * own
        # The rings' larger share of the head's travel: the motion of the face's centre.
        travel = rigid(s.centre[None, :2], s.centre[2:])[0] - s.centre[:2]
        step += (s.anchor_travel - s.anchor_weight)[:, None] * travel[None]
        length = np.sqrt((step ** 2).sum(axis=1, keepdims=True))
        step = step * np.clip(1 - s.ring_still / np.maximum(length, 1e-6), 0, 1)
        # No ring point goes more than _BORDER_REACH of its way to the crop's still border: one that crossed the
        # border's anchors folded the triangles between them (the outer ring's travel, below a sitter's chin).
        h, w = s.warper.height, s.warper.width
        step = np.clip(step, -_BORDER_REACH * anchors, _BORDER_REACH * ((w - 1, h - 1) - anchors))
        anchors = anchors + step
        z = np.concatenate([frame.target[:, 2], s.rest_z[s.n_face:]])
        return np.concatenate([face, anchors, face[s.underlay]]).astype(np.float32), z.astype(np.float32)

    def render(self, prepared: Prepared, frames: list[DrivingFrame]) -> list[np.ndarray]:
        s: _MeshState = prepared.state
        out = []
        for fr in frames:
            # Where the driver's face was lost the view would show what hid it (a black cut's mouth came out
            # blue-grey once matched to the painting), and the last mouth seen has another shape than the one
            # filled in across the gap: the drawn cavity fills those frames (no view).
            if self.fill_mouth and fr.features is None and fr.image is not None and fr.seen:
                fr.features = cv2.warpAffine(fr.image, _mouth_view(s.layout, fr.landmarks), _MOUTH_VIEW_SIZE,
                                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            dst, z = self.vertices(prepared, fr)
            if (self.refine or self.detail) and fr.image is not None and fr.index == 0:
                s.driver, s.prev_disp = _DriverFlow(s.layout, fr.image, fr.landmarks), None
            table = s.warper.table(dst, s.tex, z, s.tris, displace=self._displacement(s, dst, fr))
            if s.sitter is None:
                img = cv2.cvtColor(cv2.remap(s.flat, table, None, interpolation=self.interpolation,
                                             borderMode=cv2.BORDER_REFLECT), cv2.COLOR_RGBA2RGB)
            else:
                img = over_background(s.sitter, s.plate, table, self.interpolation)
            soften_edges(img, s.warper.fold_edges())
            if self.detail:
                self._apply_detail(img, s, dst, fr)
            if self.fill_mouth:
                self._fill_mouth(img, s, dst, fr, prepared.crop_box)
            out.append(img)
        return out

    def _displacement(self, s: _MeshState, dst: np.ndarray, fr: DrivingFrame) -> np.ndarray | None:
        """The driver's residual flow at frame ``fr``, on the portrait's remap grid; None without one."""
        if not self.refine or fr.image is None or fr.index == 0 or s.driver is None:
            return None
        flow, weight, xy = s.driver.residual(fr.image, fr.landmarks)
        rigid = list(s.layout.rigid)
        # Portrait output pixel -> driver crop pixel, then the same for the remap grid's cell indices.
        to_flow = _similarity(dst[rigid], xy[rigid])
        # Kept only where both faces have skin: a turned portrait's outline falls inside the driver's face.
        weight = weight * s.driver.weight(dst[: s.n_face] @ to_flow[:, :2].T + to_flow[:, 2])
        w = s.warper
        grid = np.float64([[w.step, 0, w.offset], [0, w.step, w.offset], [0, 0, 1]])
        gh, gw = w.cells.shape[:2]
        disp = transfer(flow, weight, to_flow @ grid, (gw, gh), s.driver.limit) * np.float32(w.step)
        # On the portrait's fixed grid, a running mean over frames: DIS's frame-to-frame noise made
        # nostrils and lips shimmer on a calm clip, while the skin motion it corrects is slow.
        if s.prev_disp is not None and _FLOW_TEMPORAL < 1:
            disp = _FLOW_TEMPORAL * disp + (1 - _FLOW_TEMPORAL) * s.prev_disp
        s.prev_disp = disp
        return disp

    @staticmethod
    def _apply_detail(img: np.ndarray, s: _MeshState, dst: np.ndarray, fr: DrivingFrame) -> None:
        """Multiply the rendered skin by the driver's shading ratio at frame ``fr`` (in place)."""
        if fr.image is None or fr.index == 0 or s.driver is None:
            return
        ratio, weight, xy = s.driver.shading(fr.image, fr.landmarks)
        rigid = list(s.layout.rigid)
        to_crop = _similarity(dst[rigid], xy[rigid])  # output pixel -> driver crop pixel
        # Only the portrait's face (its outline's box, a tenth larger on each side) is touched.
        oval = dst[list(s.layout.oval)]
        lo, hi = oval.min(axis=0), oval.max(axis=0)
        pad = 0.1 * (hi - lo)
        h, w = img.shape[:2]
        x0, y0 = np.clip(np.floor(lo - pad).astype(int), 0, (w, h))
        x1, y1 = np.clip(np.ceil(hi + pad).astype(int), 0, (w, h))
        if x1 <= x0 or y1 <= y0:
            return
        box = (to_crop @ np.float64([[1, 0, x0], [0, 1, y0], [0, 0, 1]]))[:2].astype(np.float32)
        flags, size = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, (int(x1 - x0), int(y1 - y0))
        gain = cv2.warpAffine(ratio, box, size, flags=flags, borderValue=1.0)
        weight = cv2.warpAffine(weight, box, size, flags=flags, borderValue=0.0)
        gain = 1 + weight * (gain - 1)
        region = img[y0:y1, x0:x1]
        region[:] = cv2.multiply(region, cv2.merge([gain, gain, gain]), dtype=cv2.CV_8U)

    def _fill_mouth(self, img: np.ndarray, s: _MeshState, dst: np.ndarray, fr: DrivingFrame, box) -> None:
        """Replace stretched lip texture in an opened mouth with a mouth interior.

        The driver's own interior (teeth, tongue, shadow) is mapped through the lip-gap triangles and
        colour-matched to the portrait's lips; without driving pixels a shaded cavity is drawn.
        """
        layout = s.layout
        face_dst = dst[: s.n_face]
        opening = float(mouth_opening(layout, face_dst))
        if opening <= s.rest_opening + 0.015 * s.iod:
            return
        ring = face_dst[list(layout.mouth_ring)]
        # The box leaves room for the mask's soft edge to reach zero inside it (3 sigma): at 2-3 px its edge
        # cut the fill off in a straight line beside the mouth.
        feather = max(1.0, 0.015 * s.iod)
        pad = int(np.ceil(3 * feather)) + 2
        bx0, by0 = np.floor(ring.min(0)).astype(int) - pad
        bx1, by1 = np.ceil(ring.max(0)).astype(int) + pad + 1
        h, w = img.shape[:2]
        bx0, by0, bx1, by1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
        if bx1 - bx0 < 3 or by1 - by0 < 3:
            return
        local = ring - (bx0, by0)
        # A soft mask: a fully hard edge would show a cut-out line along the lips.
        mask = coverage_mask(bx1 - bx0, by1 - by0, local, feather=feather)
        region = img[by0:by1, bx0:bx1]
        # Strength grows with the extra opening so the fill fades in instead of popping.
        k = float(np.clip((opening - s.rest_opening) / (0.06 * s.iod), 0, 1))
        view = _driver_mouth(s.layout, fr)
        if view is not None:
            drv_img, drv_lm = view
            patch = self._driver_interior(s, drv_img, drv_lm, face_dst - (bx0, by0), bx1 - bx0, by1 - by0)
            # (Just outside the lip gap the patch shows the driver's own inner lips, so the mask's soft edge
            # blends into lips rather than stopping at the last mapped pixel: that hard edge drew the hole
            # as a staircase of pixels.)
            m = mask * np.float32(k)
            patch = _match_colour(patch, drv_img, drv_lm, region, face_dst - (bx0, by0), layout)
            patch = _with_grain(patch, s.grain)
            # One vectorised pass over uint8 pixels; a numpy float blend costs several times more.
            region[:] = cv2.blendLinear(patch, np.ascontiguousarray(region), m, 1 - m)
            return
        patch = _cavity(region, local, layout, face_dst - (bx0, by0))
        m = (mask * k)[..., None]
        img[by0:by1, bx0:bx1] = (region * (1 - m) + patch * m).astype(np.uint8)

    @staticmethod
    def _driver_interior(s: _MeshState, drv_img: np.ndarray, drv_lm: np.ndarray, dst_local, w, h) -> np.ndarray:
        """uint8 patch: the driver's mouth interior (``drv_img`` with its landmarks ``drv_lm``) mapped onto a
        (w, h) box of the portrait through the lip-gap triangles, and around them by the similarity that
        takes the portrait's inner lips to the driver's."""
        # One warper for the clip, grown when a wider mouth needs it: its table is cut to (h, w).
        if s.mouth_warper is None or s.mouth_warper.width < w or s.mouth_warper.height < h:
            old = s.mouth_warper
            s.mouth_warper = MeshWarper(max(w, old.width if old else 0) + 8, max(h, old.height if old else 0) + 8, 1)
        warper = s.mouth_warper
        ring = list(s.layout.mouth_ring)
        m = warper.table(dst_local.astype(np.float32), drv_lm[:, :2].astype(np.float32),
                         np.zeros(len(dst_local), np.float32), s.mouth_tris,
                         outside=_similarity(dst_local[ring], drv_lm[ring, :2]))
        return cv2.remap(drv_img, np.ascontiguousarray(m[:h, :w]), None, interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)


def _mouth_view(layout: Layout, landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) affine from driver pixels into the driver's mouth view (see ``_MOUTH_VIEW``).

    Made from the landmarks alone, so it maps the landmarks into the view the same way whatever size
    the frames were decoded at.
    """
    xy = landmarks[:, :2].astype(np.float64)
    left, right = eye_centres(layout, xy)
    iod = max(float(np.hypot(*(right - left))), 1e-6)
    ux, uy = (right - left) / iod
    rot = _MOUTH_VIEW_PX / iod * np.array([[ux, uy], [-uy, ux]])  # x along the eye line, y down the face
    centre = xy[list(layout.outer_lip)].mean(axis=0)
    return np.hstack([rot, (np.array(_MOUTH_VIEW_SIZE) / 2 - rot @ centre)[:, None]])


def _driver_mouth(layout: Layout, fr: DrivingFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(the driver's mouth view, its landmarks in the view), or None without driving pixels."""
    if fr.features is None:
        return None
    a = _mouth_view(layout, fr.landmarks)
    return fr.features, fr.landmarks[:, :2] @ a[:, :2].T + a[:, 2]


# Lips whose channel means and spreads differ by at most this many levels are grey (a photograph in black
# and white); the mouth interior is then matched in grey.
_GREY_SPREAD = 3.0
# Driver lips whose mean (a, b) lies within this of grey give the colour mapping no direction.
_LAB_GREY = 4.0
# How much the colour mapping may scale saturation (a pale painted mouth must not turn grey or garish).
_CHROMA_GAIN = (0.25, 2.0)


# The driver's mouth is a camera's: smooth, with none of the painting's brushwork or craquelure, so on a
# painting it looked pasted in. The painting's own fine texture (its grey levels over their blur, on the
# cheek nearer the viewer, halfway between the eye and the mouth's corner: skin on nearly every sitter, where
# the chin below the lips is a beard on many, and put hair in Walt Whitman's mouth) is laid over it, tiled at
# the painting's scale. As a ratio: a crack or a stroke darkens skin by a share of its lightness, and a dark
# mouth by the same share, not to black.
_GRAIN_SIGMA = 0.03   # the blur taken away, in eye distances
_GRAIN_SIDE = 0.3     # the cheek's square, in eye distances
_GRAIN_OUT = 0.15     # how far it is moved out from halfway between eye and mouth corner, in eye distances
# A crack or a stroke changes the skin by a few tens of percent; what goes past that is an edge (a nostril, the
# cheek's outline), which tiling would repeat.
_GRAIN_RANGE = (0.8, 1.2)
_GRAIN_GAIN = 0.8


def _grain(crop: np.ndarray, layout: Layout, xy: np.ndarray, iod: float) -> np.ndarray | None:
    """(h, w) float32 fine texture of a cheek, as a ratio about 1 (see _GRAIN_GAIN), or None where there is none."""
    lips = xy[list(layout.outer_lip)]
    corners = lips[0], lips[len(lips) // 2]
    eyes = eye_centres(layout, xy)
    widths = [np.linalg.norm(xy[upper[0]] - xy[upper[-1]]) for upper, _ in layout.eyes]
    k = int(np.argmax(widths))  # the nearer eye is the wider one on a turned face
    corner = min(corners, key=lambda c: float(np.linalg.norm(c - eyes[k])))
    cx, cy = (eyes[k] + corner) / 2
    # Out on the cheek, away from the nose: a square over the nose's edge, tiled, drew its line as lobes.
    cx += _GRAIN_OUT * iod * np.sign(cx - xy[list(layout.oval), 0].mean())
    half = _GRAIN_SIDE * iod / 2
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, crop.shape[1])), int(min(cy + half, crop.shape[0]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    grey = cv2.cvtColor(crop[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    ratio = (grey + 10) / (cv2.GaussianBlur(grey, (0, 0), max(0.8, _GRAIN_SIGMA * iod)) + 10)
    return np.clip(1 + _GRAIN_GAIN * (ratio - 1), *_GRAIN_RANGE).astype(np.float32)


def _with_grain(patch: np.ndarray, grain: np.ndarray | None) -> np.ndarray:
    """``patch`` (uint8) with ``grain`` tiled over it (mirrored at its edges, so no seam shows)."""
    if grain is None:
        return patch
    h, w = patch.shape[:2]
    gh, gw = grain.shape
    tile = cv2.copyMakeBorder(grain, 0, max(h - gh, 0), 0, max(w - gw, 0), cv2.BORDER_REFLECT_101)[:h, :w]
    return cv2.multiply(patch, cv2.merge([tile, tile, tile]), dtype=cv2.CV_8U)


def _lip_band(xy: np.ndarray, layout: Layout, shape) -> np.ndarray:
    """uint8 mask (255 on the lips, 0 elsewhere) between the outer lip line and the mouth opening."""
    h, w = shape[:2]
    band = np.zeros((h, w), np.uint8)
    # Sub-pixel vertices (shift=2), no anti-aliasing: a pixel is in when its centre is inside.
    cv2.fillPoly(band, [np.round(xy[list(layout.outer_lip)] * 4).astype(np.int32)], 255, shift=2)
    cv2.fillPoly(band, [np.round(xy[list(layout.mouth_ring)] * 4).astype(np.int32)], 0, shift=2)
    return band


def _match_colour(patch: np.ndarray, drv_img, drv_lm, region, dst_local, layout) -> np.ndarray:
    """Map the driver's colours to the portrait's by matching lip statistics, in Lab.

    Lightness: the lips' mean and spread. Colour: the one rotation and scaling of the (a, b) plane that
    takes the driver's mean lip colour to the portrait's, so grey stays grey. Matching each RGB channel's
    mean instead shifted every colour by the lips' difference: teeth came out green wherever a
    painting's lips are less red than the driver's (Mona Lisa, Van Gogh, Gogol). ``patch`` and the
    result are uint8.
    """
    x0, y0 = np.floor(drv_lm[list(layout.outer_lip), :2].min(0)).astype(int) - 2
    x1, y1 = np.ceil(drv_lm[list(layout.outer_lip), :2].max(0)).astype(int) + 3
    hh, ww = drv_img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, ww), min(y1, hh)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return patch
    d_band = _lip_band(drv_lm[:, :2] - (x0, y0), layout, (y1 - y0, x1 - x0))
    p_band = _lip_band(dst_local, layout, region.shape)
    if cv2.countNonZero(d_band) < 10 or cv2.countNonZero(p_band) < 10:
        return patch
    d_img = np.ascontiguousarray(drv_img[y0:y1, x0:x1])
    p_mean, p_std = cv2.meanStdDev(np.ascontiguousarray(region), mask=p_band)
    if float(np.ptp(p_mean)) <= _GREY_SPREAD and float(np.ptp(p_std)) <= _GREY_SPREAD:
        # A black-and-white photograph or a grisaille: per-channel matching would tint the mouth with
        # the driver's colours (lips are red, so a blue mouth); it is matched in grey instead.
        d_mean, d_std = cv2.meanStdDev(cv2.cvtColor(d_img, cv2.COLOR_RGB2GRAY), mask=d_band)
        gain = float(np.clip((p_std.mean() + 1) / (d_std[0, 0] + 1), 0.5, 2.0))
        grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
        grey = cv2.addWeighted(grey, gain, grey, 0.0, float(p_mean.mean() - d_mean[0, 0] * gain))  # saturated to 0..255
        return cv2.merge([grey] * 3)
    p_mean, p_std = (v[:, 0] for v in cv2.meanStdDev(cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2Lab), mask=p_band))
    d_mean, d_std = (v[:, 0] for v in cv2.meanStdDev(cv2.cvtColor(d_img, cv2.COLOR_RGB2Lab), mask=d_band))
    gain = float(np.clip((p_std[0] + 1) / (d_std[0] + 1), 0.5, 2.0))
    # (a, b) as a complex number about grey (128 in 8-bit Lab): z turns and scales the driver's lip
    # colour onto the portrait's; nearly grey lips give no direction to turn, so colours are kept.
    d_lip, p_lip = complex(d_mean[1] - 128, d_mean[2] - 128), complex(p_mean[1] - 128, p_mean[2] - 128)
    z = p_lip / d_lip if abs(d_lip) > _LAB_GREY else 1 + 0j
    z *= float(np.clip(abs(z), _CHROMA_GAIN[0], _CHROMA_GAIN[1])) / max(abs(z), 1e-9)
    zr, zi = z.real, z.imag
    m = np.array([[gain, 0, 0, p_mean[0] - d_mean[0] * gain],
                  [0, zr, -zi, 128 * (1 - zr + zi)],
                  [0, zi, zr, 128 * (1 - zi - zr)]])
    return cv2.cvtColor(cv2.transform(cv2.cvtColor(patch, cv2.COLOR_RGB2Lab), m), cv2.COLOR_Lab2RGB)


def _cavity(region, ring_local, layout, face_local):
    """A shaded mouth interior in the portrait's own palette: dark throat, a hint of upper teeth.

    Drawn along the mouth's own axis (corner to corner) and its lips' curves, deepest between the lips and away
    from the corners; the teeth follow the upper lip. (Drawn row by row, a straight band of teeth crossed a
    smiling or tilted mouth, and the hole was a flat box.)"""
    h, w = region.shape[:2]
    band = _lip_band(face_local, layout, region.shape) > 0
    lip = region[band].mean(0) if band.sum() > 5 else region.reshape(-1, 3).mean(0)
    upper = face_local[list(layout.inner_lip_upper), :2].astype(np.float64)
    lower = face_local[list(layout.inner_lip_lower), :2].astype(np.float64)
    c0, c1 = upper[0], upper[-1]
    length = max(float(np.hypot(*(c1 - c0))), 1.0)
    e = (c1 - c0) / length
    n = np.array([-e[1], e[0]])  # across the mouth, towards the chin
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = np.clip(((xx - c0[0]) * e[0] + (yy - c0[1]) * e[1]) / length, 0, 1)
    v = (xx - c0[0]) * n[0] + (yy - c0[1]) * n[1]

    def curve(points):  # the lip's offset across the mouth, as a function of the way along it
        pu, pv = ((points - c0) @ e) / length, (points - c0) @ n
        order = np.argsort(pu)
        return np.interp(u, pu[order], pv[order])

    v_up = curve(upper)
    gap = np.maximum(curve(lower) - v_up, 1.0)
    t = np.clip((v - v_up) / gap, 0, 1)
    side = np.abs(2 * u - 1)  # 0 in the middle, 1 at the corners
    depth = ((1 - np.abs(2 * t - 1)) * np.sqrt(np.clip(1 - side ** 2, 0, 1)))[..., None]
    throat, rim = lip * 0.18, lip * 0.35
    patch = rim + (throat - rim) * depth
    ivory = 0.55 * np.array([235, 225, 205], np.float64) + 0.45 * lip
    teeth = ((v - v_up >= -1) & (v - v_up < 0.22 * gap) & (side < 0.75))[..., None]
    patch = np.where(teeth, ivory * (0.85 - 0.3 * side[..., None] ** 2), patch)
    return cv2.GaussianBlur(patch.astype(np.float32), (0, 0), 0.8)
