"""Driving motion: landmark tracks, head pose separated from expression, retargeting to a portrait.

Pure functions over arrays; the only state is the ``MotionTrack`` data itself.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .files import replace_file
from .smoothing import fill_gaps, smooth_track
from .topology import Layout, eye_centres, get_layout


@dataclass
class MotionTrack:
    """Per-frame landmarks of the driving face, in the driving clip's pixels.

    Stored raw (gaps filled, not smoothed) so that the smoothing strength stays a render-time choice.
    """

    landmarks: np.ndarray        # (T, N, 3) float32
    found: np.ndarray            # (T,) bool: the face was detected in that frame (others interpolated)
    layout: str
    fps: Fraction
    frame_size: tuple[int, int]  # (w, h)
    faces: int = 0              # the most faces the tracker saw at once (0: not recorded)

    def __len__(self) -> int:
        return len(self.landmarks)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, landmarks=self.landmarks.astype(np.float32), found=self.found,
                            layout=self.layout, fps=np.array([self.fps.numerator, self.fps.denominator]),
                            frame_size=np.array(self.frame_size), faces=np.int32(self.faces))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "MotionTrack":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(z["landmarks"], z["found"].astype(bool), str(z["layout"]),
                       Fraction(int(z["fps"][0]), int(z["fps"][1])), tuple(int(v) for v in z["frame_size"]),
                       int(z["faces"]) if "faces" in z.files else 0)

    def save(self, path: Path) -> None:
        """Write the track (replacing any old file whole: see ``files.replace_file``)."""
        replace_file(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> "MotionTrack":
        return cls.from_bytes(Path(path).read_bytes())


    def smoothed(self, strength: float = 1.0) -> "MotionTrack":
        """The same track smoothed without lag; strength 0 returns it unchanged."""
        size = face_size(self.landmarks[0], get_layout(self.layout))
        arr = smooth_track(self.landmarks, float(self.fps), strength, scale=size)
        return MotionTrack(arr.astype(np.float32), self.found, self.layout, self.fps, self.frame_size, self.faces)


def build_track(raw: list[np.ndarray | None], layout: str, fps: Fraction, frame_size: tuple[int, int],
                faces: int = 0) -> MotionTrack:
    """A track from per-frame detections (None where the face was lost, filled by interpolation); ``faces``:
    the most faces the tracker saw at once."""
    found = np.array([r is not None for r in raw], dtype=bool)
    n = get_layout(layout).n_points
    arr = np.stack([r if r is not None else np.zeros((n, 3), np.float32) for r in raw])
    arr = fill_gaps(arr, found)
    return MotionTrack(arr.astype(np.float32), found, layout, Fraction(fps), frame_size, faces)


def face_size(points: np.ndarray, layout: Layout) -> float:
    """Face scale: distance between the eye centres (stable under expressions)."""
    c = eye_centres(layout, points[:, :2])
    return float(np.linalg.norm(c[1] - c[0]))


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares similarity dst ~ s * R @ src + t (Umeyama 1991). Returns (R, s, t)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(len(d))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    r = u @ np.diag(sign) @ vt
    var = (a ** 2).sum() / len(src)
    s = float((d * sign).sum() / var) if var > 0 else 1.0
    return r, s, mu_d - s * r @ mu_s


@dataclass
class PoseExpression:
    """A track split into rigid head motion and expression, relative to the neutral (first) frame.

    frame t = scale[t] * rotation[t] @ (neutral + expression[t]) + translation[t]

    (``decompose`` corrects the expression's jaw for its tracker, so for MediaPipe tracks this rebuilds
    the track except below the lower lip while the mouth is open.)
    """

    neutral: np.ndarray      # (N, 3)
    rotation: np.ndarray     # (T, 3, 3)
    scale: np.ndarray        # (T,)
    translation: np.ndarray  # (T, 3)
    expression: np.ndarray   # (T, N, 3), in the neutral frame's coordinates

    def rebuilt(self) -> np.ndarray:
        """(T, N, 3) the frames as pose and expression say, in the clip's pixels."""
        moved = np.einsum("tnj,tij->tni", self.neutral[None] + self.expression, self.rotation)
        return self.scale[:, None, None] * moved + self.translation[:, None, :]


# How much further the chin goes down than the tracker says, per unit of the lower lip's drop. Against
# dlib's 68 points on the seven gallery clips, MediaPipe's chin dropped 0.26-0.68 of what the lower lip
# dropped where dlib's dropped 0.54-0.89 (median difference 0.24), and the shortfall grew with the mouth's
# opening (BENCHMARKS.md): its mesh keeps the jaw too closed. Face-alignment's 68 points follow dlib's.
JAW_SHORTFALL = {"mediapipe478": 0.25}


def _jaw_weights(layout: Layout, neutral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) weights, 0 down to the lower lip and rising smoothly to 1 at the chin, and the face's downward
    unit vector (eyes to chin) in the neutral face."""
    down = neutral[layout.chin] - eye_centres(layout, neutral).mean(axis=0)
    down = down / max(float(np.linalg.norm(down)), 1e-9)
    depth = (neutral - neutral[layout.chin]) @ down
    lip = depth[list(layout.outer_lip_lower)].max()
    u = np.clip((depth - lip) / max(-lip, 1e-9), 0.0, 1.0)
    return u * u * (3 - 2 * u), down


def follow_jaw(layout: Layout, neutral: np.ndarray, expression: np.ndarray, share: float) -> np.ndarray:
    """``expression`` (T, N, D) with the chin and the jaw below the lower lip carried down by ``share`` of
    how far the lower lip dropped in each frame (only while it is below its neutral place: a jaw closes
    no further than shut)."""
    if share == 0.0:
        return expression
    w, down = _jaw_weights(layout, neutral)
    drop = np.maximum(expression[:, list(layout.outer_lip_lower)] @ down, 0.0).mean(axis=1)
    return expression + (share * drop)[:, None, None] * w[None, :, None] * down[None, None, :]


def decompose(track: MotionTrack, neutral_index: int = 0) -> PoseExpression:
    """Head pose and expression per frame, the expression's jaw corrected for the tracker's known
    shortfall (``JAW_SHORTFALL``)."""
    layout = get_layout(track.layout)
    rigid = list(layout.rigid)
    lm = track.landmarks.astype(np.float64)
    neutral = lm[neutral_index]
    T = len(lm)
    rot = np.empty((T, 3, 3))
    scale = np.empty(T)
    trans = np.empty((T, 3))
    expr = np.empty_like(lm)
    for t in range(T):
        r, s, tr = umeyama(neutral[rigid], lm[t][rigid])
        rot[t], scale[t], trans[t] = r, s, tr
        expr[t] = ((lm[t] - tr) @ r) / s - neutral
    expr = follow_jaw(layout, neutral, expr, JAW_SHORTFALL.get(layout.name, 0.0))
    return PoseExpression(neutral, rot, scale, trans, expr)


def rotation_vector(r: np.ndarray) -> np.ndarray:
    """The axis-angle vector (radians) of a 3x3 rotation matrix."""
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    s = float(np.linalg.norm(w))  # 2 sin(angle)
    angle = float(np.arctan2(s / 2, (np.trace(r) - 1) / 2))
    if s > 1e-6:
        return w / s * angle
    if angle < np.pi / 2:
        return w / 2  # nearly no rotation: sin(angle) ~ angle
    # Nearly half a turn: the axis is the column of (R + I) / 2 with the largest diagonal.
    b = (r + np.eye(3)) / 2
    i = int(np.argmax(np.diag(b)))
    axis = b[:, i] / np.sqrt(max(b[i, i], 1e-12))
    return axis / np.linalg.norm(axis) * angle


def rotation_matrix(v: np.ndarray) -> np.ndarray:
    """The 3x3 rotation matrix of an axis-angle vector (Rodrigues' formula)."""
    v = np.asarray(v, np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = v / angle
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def euler_yxz(r: np.ndarray) -> tuple[float, float, float]:
    """Angles (a, b, c), radians, with r = Ry(a) Rx(b) Rz(c): a turn about the vertical axis, then a nod,
    then a tilt in the image plane."""
    b = float(np.arcsin(np.clip(-r[1, 2], -1.0, 1.0)))
    if abs(r[1, 2]) < 1 - 1e-9:
        return float(np.arctan2(r[0, 2], r[2, 2])), b, float(np.arctan2(r[1, 0], r[1, 1]))
    # Nodded a quarter turn: the turn and the tilt are about one axis; all of it is put in the turn.
    return float(np.arctan2(-r[2, 0], r[0, 0])), b, 0.0


def from_euler_yxz(a: float, b: float, c: float) -> np.ndarray:
    """Ry(a) Rx(b) Rz(c) (see ``euler_yxz``)."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    ry = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    rx = np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return ry @ rx @ rz


def _scale_rotation(r: np.ndarray, k: float) -> np.ndarray:
    """R**k via the axis-angle vector, so 'motion strength' scales turning smoothly."""
    if k == 1.0:
        return r
    return rotation_matrix(rotation_vector(r) * k)


# A portrait turned from the viewer turns back toward them only so far: its far side was barely
# painted, and a 2-D warp can only stretch the few pixels it has (Van Gogh's self-portrait, turned 32°,
# driven by talking_02's 19° turn: the far eye smeared across the cheek). Portraits turned less than
# _UNFOLD_FROM_DEG turn freely; the others get a turn back of at most about
# max(_UNFOLD_MIN_DEG, _UNFOLD_BUDGET_DEG - their own turn), approached smoothly.
_UNFOLD_FROM_DEG = 10.0
_UNFOLD_BUDGET_DEG = 30.0
_UNFOLD_MIN_DEG = 8.0


def facing_yaw(layout_name: str, points: np.ndarray) -> float:
    """How far a face is turned from the viewer (degrees, about the vertical axis; 0 facing them), from
    the depth of one eye against the other. Layouts without depth read 0."""
    layout = get_layout(layout_name)
    p = np.asarray(points, np.float64)
    if p.shape[1] < 3:
        return 0.0
    left, right = eye_centres(layout, p)
    d = right - left
    return float(np.degrees(np.arctan2(d[2], d[0])))


def _limit_turn_back(r: np.ndarray, yaw_deg: float) -> np.ndarray:
    """``r`` with the part of its turn about the vertical axis that faces a portrait turned ``yaw_deg``
    back toward the viewer eased under its limit (see ``_UNFOLD_BUDGET_DEG``)."""
    if abs(yaw_deg) < _UNFOLD_FROM_DEG:
        return r
    a, b, c = euler_yxz(r)  # the face's yaw becomes yaw - a
    if a * yaw_deg <= 0:
        return r  # turning further away, or not at all
    limit = np.radians(max(_UNFOLD_MIN_DEG, _UNFOLD_BUDGET_DEG - abs(yaw_deg)))
    eased = np.sign(a) * limit * np.tanh(abs(a) / limit)
    return from_euler_yxz(eased, b, c)


@dataclass
class Retargeted:
    """The driving motion expressed on the portrait: per-frame target landmarks and head transform."""

    targets: np.ndarray  # (T, N, 3) where each portrait landmark should be, portrait pixels
    # (T, 2, 4) where a point rigidly attached to the head (hair, ears) at (x, y) and depth z (the
    # landmarks' z, portrait pixels) goes: head[t] @ (x, y, z, 1). A head turning or nodding moves what
    # lies behind the face less than the face, or the other way.
    head: np.ndarray


def retarget(pe: PoseExpression, portrait: np.ndarray, layout_name: str, *, expression_strength: float = 1.0,
             head_strength: float = 1.0, head_motion: bool = True) -> Retargeted:
    """Relative motion transfer onto a portrait's own landmarks (N, 3).

    The driver's expression displacements are rotated and scaled from the driver's face into the
    portrait's face (an in-plane similarity fitted on rigid points), so a wide-faced driver does not
    change the portrait's face shape; head rotation is applied about the portrait's own face centre. A
    portrait turned from the viewer turns back toward them only so far (``_limit_turn_back``).
    """
    layout = get_layout(layout_name)
    rigid = list(layout.rigid)
    q0 = portrait.astype(np.float64)
    # In-plane similarity from the driver's neutral face to the portrait's (z ignored for the angle).
    r2, k, _ = umeyama(pe.neutral[rigid, :2], q0[rigid, :2])
    rz = np.eye(3)
    rz[:2, :2] = r2
    centre = q0[rigid].mean(axis=0)
    T = len(pe.scale)
    targets = np.empty((T,) + q0.shape)
    head = np.empty((T, 2, 4))
    c_drv = pe.neutral[rigid].mean(axis=0)
    yaw = facing_yaw(layout_name, q0)
    for t in range(T):
        e = (k * expression_strength) * (pe.expression[t] @ rz.T)
        if head_motion:
            r = _limit_turn_back(rz @ _scale_rotation(pe.rotation[t], head_strength) @ rz.T, yaw)
            s = pe.scale[t] ** head_strength
            # Where the driver's face centre went, scaled into the portrait's pixels.
            moved = pe.scale[t] * pe.rotation[t] @ c_drv + pe.translation[t] - c_drv
            shift = head_strength * k * (rz @ moved)
        else:
            r, s, shift = np.eye(3), 1.0, np.zeros(3)
        targets[t] = centre + s * (q0 + e - centre) @ r.T + shift
        a = s * r[:2]
        head[t, :, :3] = a
        head[t, :, 3] = centre[:2] + shift[:2] - a @ centre
    return Retargeted(targets.astype(np.float32), head.astype(np.float32))
