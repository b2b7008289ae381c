"""The pure pieces: smoothing, pose/expression split, retargeting, the mesh warp, paste-back."""
import cv2
import numpy as np
import pytest
from scipy.spatial import Delaunay
from scipy.spatial.transform import Rotation

from talking_head import warp
from talking_head.compose import (
    PasteMask,
    draw_label,
    label_box,
    paste_back,
    side_by_side,
)
from talking_head.gallery import Gallery
from talking_head.motion import (
    JAW_SHORTFALL,
    MotionTrack,
    build_track,
    decompose,
    euler_yxz,
    facing_yaw,
    from_euler_yxz,
    retarget,
    rotation_matrix,
    rotation_vector,
    umeyama,
)
from talking_head.smoothing import fill_gaps, one_euro, smooth_track
from talking_head.topology import (
    IBUG68,
    MEDIAPIPE,
    delaunay,
    face_triangles,
    mediapipe_face_triangles,
    mouth_opening,
    strip_triangles,
)
from talking_head.warp import MeshWarper


def _lag(x, truth):
    """Frames by which x trails truth (argmax of the cross-correlation)."""
    lags = range(-10, 11)
    return max(lags, key=lambda k: np.dot(np.roll(x, -k)[20:-20], truth[20:-20]))


def test_smoothing_removes_jitter_without_lag():
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30.0
    truth = 40 * np.sin(2 * np.pi * 0.4 * t)
    noisy = truth + rng.normal(0, 1.5, t.shape)
    smooth = smooth_track(noisy[:, None], 30.0, 1.0, scale=60.0)[:, 0]
    # Frame-to-frame jitter (what a viewer sees as shaking) drops, more so at a higher strength.
    jitter = lambda x: np.diff(x - truth).std()
    strong = smooth_track(noisy[:, None], 30.0, 2.0, scale=60.0)[:, 0]
    assert jitter(smooth) < 0.6 * jitter(noisy)
    assert jitter(strong) < 0.45 * jitter(noisy)
    # A strongly smoothing causal One-Euro trails the motion; the two-way version does not.
    causal = one_euro(noisy[:, None], 30.0, 0.3, 0.0)[:, 0]
    assert _lag(causal, truth) >= 2
    assert _lag(smooth, truth) == 0


def test_smoothing_strength_zero_is_identity():
    x = np.random.default_rng(1).normal(size=(50, 4, 3))
    np.testing.assert_array_equal(smooth_track(x, 25.0, 0.0), x)


def test_fill_gaps_interpolates_and_holds_ends():
    x = np.array([[0.0], [0.0], [2.0], [0.0], [4.0], [0.0]])
    valid = np.array([False, True, True, False, True, False])
    out = fill_gaps(x, valid)[:, 0]
    np.testing.assert_allclose(out, [0.0, 0.0, 2.0, 3.0, 4.0, 4.0])


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    r = Rotation.from_euler("xyz", [10, -20, 5], degrees=True).as_matrix()
    dst = 1.7 * src @ r.T + np.array([3.0, -1.0, 0.5])
    r2, s2, t2 = umeyama(src, dst)
    np.testing.assert_allclose(r2, r, atol=1e-9)
    assert s2 == pytest.approx(1.7)
    np.testing.assert_allclose(t2, [3.0, -1.0, 0.5], atol=1e-9)


def _synthetic_face(layout=IBUG68, seed=3):
    rng = np.random.default_rng(seed)
    pts = np.zeros((layout.n_points, 3))
    pts[:, :2] = rng.uniform(100, 200, size=(layout.n_points, 2))
    pts[:, 2] = rng.normal(0, 5, layout.n_points)
    # Put the eyes where eyes are so the face scale is meaningful.
    pts[list(range(36, 42)), :2] = [120, 130]
    pts[list(range(42, 48)), :2] = [180, 130]
    return pts


def test_decompose_separates_head_pose_from_expression():
    neutral = _synthetic_face()
    expr = np.zeros_like(neutral)
    expr[62:68, 1] = 6.0  # the lower inner lip drops: an expression, not a head motion
    r = Rotation.from_euler("z", 12, degrees=True).as_matrix()
    frames = [neutral, 1.1 * (neutral + expr) @ r.T + [5, -3, 0]]
    track = MotionTrack(np.array(frames, np.float32), np.ones(2, bool), "ibug68", 25, (400, 400))
    pe = decompose(track)
    np.testing.assert_allclose(pe.rotation[1], r, atol=0.02)
    assert pe.scale[1] == pytest.approx(1.1, rel=0.02)
    # The lip motion shows up as expression, the rigid points barely move.
    assert pe.expression[1][62:68, 1].mean() > 4.0
    assert np.abs(pe.expression[1][list(IBUG68.rigid)]).mean() < 0.5


def _mediapipe_neutral() -> np.ndarray:
    """A real MediaPipe face at rest: the first frame of a gallery clip's stored motion."""
    return MotionTrack.load(Gallery.default().motion_path("mouth_open")).landmarks[0].astype(np.float64)


def test_the_chin_follows_an_opening_mouth_further_than_mediapipe_reads_it():
    """MediaPipe's mesh keeps the jaw too closed: the chin is carried down by a share of the lower lip's
    drop, the more the nearer the chin; nothing above the lower lip moves, and a lip that rises moves
    no chin."""
    neutral = _mediapipe_neutral()
    lay = MEDIAPIPE
    down = neutral[lay.chin] - (neutral[33] + neutral[263]) / 2
    down /= np.linalg.norm(down)
    opened, raised = neutral.copy(), neutral.copy()
    lower = list(lay.outer_lip_lower) + list(lay.inner_lip_lower[1:-1])
    opened[lower] += 20.0 * down  # the lower lip drops 20 px; the tracker's chin stays put
    raised[lower] -= 5.0 * down
    r = Rotation.from_euler("z", 8, degrees=True).as_matrix()
    frames = [neutral, (opened - 300) @ r.T + 300, raised]
    pe = decompose(MotionTrack(np.array(frames, np.float32), np.ones(3, bool), lay.name, 25, (600, 600)))
    rebuilt = pe.rebuilt()
    np.testing.assert_allclose(rebuilt[2], frames[2], atol=1e-6)  # no jaw correction: the frame itself
    assert (rebuilt[1][lay.chin] - frames[1][lay.chin]) @ (r @ down) > 4.0  # the chin, lower than tracked
    share = JAW_SHORTFALL[lay.name]
    assert 0.1 < share < 0.5
    chin_drop = pe.expression[1][lay.chin] @ down
    assert chin_drop == pytest.approx(share * 20.0, abs=0.3)
    # The lower lip itself is where the tracker put it; eyes, nose and upper lip do not move.
    assert (pe.expression[1][list(lay.outer_lip_lower)] @ down).mean() == pytest.approx(20.0, abs=0.5)
    above = [33, 133, 263, 362, 1, 4, 0, 13, *lay.inner_lip_upper]
    assert np.abs(pe.expression[1][above]).max() < 0.3
    # Points between the lip and the chin go part of the way.
    depth = (neutral - neutral[lay.chin]) @ down
    lip = depth[list(lay.outer_lip_lower)].max()
    between = np.flatnonzero((depth > 0.6 * lip) & (depth < 0.3 * lip))
    assert len(between) > 3
    part = pe.expression[1][between] @ down
    assert (part > 0.2).all() and (part < share * 20.0).all()
    # A lip pushed up (a pout) is a lip, not a jaw closing past shut.
    assert np.abs(pe.expression[2][lay.chin]).max() < 1e-6
    # 68-point tracks (face-alignment, trained like dlib) are left exactly as tracked.
    assert JAW_SHORTFALL.get(IBUG68.name, 0.0) == 0.0


def test_retarget_is_identity_for_self_reenactment_and_scales_to_a_bigger_face():
    neutral = _synthetic_face()
    moved = neutral.copy()
    moved[62:68, 1] += 6.0
    track = MotionTrack(np.array([neutral, moved], np.float32), np.ones(2, bool), "ibug68", 25, (400, 400))
    pe = decompose(track)
    same = retarget(pe, neutral, "ibug68")
    np.testing.assert_allclose(same.targets[1], moved, atol=1e-3)
    # A portrait twice the size, elsewhere: the lip drops twice as far, around its own face.
    big = neutral * 2 + [300, 50, 0]
    out = retarget(pe, big, "ibug68")
    np.testing.assert_allclose(out.targets[0], big, atol=1e-3)
    assert (out.targets[1] - big)[62:68, 1].mean() == pytest.approx(12.0, rel=0.05)
    # With head motion off and strength 0 nothing moves.
    still = retarget(pe, big, "ibug68", expression_strength=0.0, head_motion=False)
    np.testing.assert_allclose(still.targets[1], big, atol=1e-6)


def _turned(points, degrees):
    c = points.mean(axis=0)
    return (points - c) @ Rotation.from_euler("y", degrees, degrees=True).as_matrix().T + c


def test_the_head_motion_moves_points_at_their_depth():
    """``head`` is the head's rigid motion as an affine camera on (x, y, z, 1): the portrait's own rigid
    points go exactly where the targets put them, and a point behind the face moves the other way from
    the nose when the head turns."""
    face = _synthetic_face()
    face[30, 2] = -40.0  # the nose tip, in front
    frames = [face, _turned(face, 20)]
    pe = decompose(MotionTrack(np.array(frames, np.float32), np.ones(2, bool), "ibug68", 25, (400, 400)))
    out = retarget(pe, face, "ibug68")
    assert out.head.shape == (2, 2, 4)
    h = out.head[1].astype(np.float64)
    rigid = list(IBUG68.rigid)
    moved = np.c_[face[rigid], np.ones(len(rigid))] @ h.T
    np.testing.assert_allclose(moved, out.targets[1][rigid, :2], atol=0.05)
    centre = face[rigid].mean(axis=0)
    nose = h @ np.r_[face[30], 1] - face[30, :2]
    behind = h @ np.r_[centre[:2], centre[2] + 150, 1] - centre[:2]
    assert abs(nose[0]) > 5 and np.sign(behind[0]) == -np.sign(nose[0])


def test_a_turned_portrait_turns_back_toward_the_viewer_only_so_far():
    """Its far side was barely painted: a driver turning 20° turns a 30°-turned portrait back by at most
    ~8°, but away from the viewer by the full 20°; a portrait facing the viewer turns freely."""
    face = _synthetic_face()
    face[36:48, 2] = 0.0  # both eyes at the same depth: facing the viewer
    assert facing_yaw("ibug68", face) == pytest.approx(0.0, abs=1e-6)
    frames = [face, _turned(face, 20), _turned(face, -20)]
    pe = decompose(MotionTrack(np.array(frames, np.float32), np.ones(3, bool), "ibug68", 25, (400, 400)))
    for own in (30.0, -30.0):
        portrait = _turned(face, own)
        assert abs(facing_yaw("ibug68", portrait)) == pytest.approx(30.0, abs=0.5)
        turns = [abs(facing_yaw("ibug68", t)) - 30.0 for t in retarget(pe, portrait, "ibug68").targets[1:]]
        back, away = sorted(turns)
        assert -8.5 < back < -5.0, "turned back toward the viewer by more than its limit"
        assert away == pytest.approx(20.0, abs=1.0)
    turns = sorted(facing_yaw("ibug68", t) for t in retarget(pe, face, "ibug68").targets[1:])
    assert turns == pytest.approx([-20.0, 20.0], abs=1.0)


def test_build_track_fills_lost_frames():
    a = _synthetic_face()
    raw = [a, None, a + 2, None]
    tr = build_track([r if r is None else r.astype(np.float32) for r in raw], "ibug68", 25, (400, 400))
    assert tr.found.tolist() == [True, False, True, False]
    np.testing.assert_allclose(tr.landmarks[1], a + 1, atol=1e-4)
    back = MotionTrack.from_bytes(tr.to_bytes())
    np.testing.assert_array_equal(back.landmarks, tr.landmarks)
    assert back.fps == 25 and back.layout == "ibug68"


def test_mesh_topology_covers_the_face():
    tris = mediapipe_face_triangles()
    assert len(tris) > 800 and tris.max() < 468
    strip = strip_triangles(MEDIAPIPE.inner_lip_upper, MEDIAPIPE.inner_lip_lower)
    # The lip gap is closed by triangles touching both lips.
    ups, los = set(MEDIAPIPE.inner_lip_upper), set(MEDIAPIPE.inner_lip_lower)
    assert all(set(t) & ups and set(t) & los for t in strip.tolist())
    assert len(face_triangles(IBUG68, _synthetic_face()[:, :2])) > 50


def _triangle_set(tris) -> set:
    return {tuple(sorted(t)) for t in np.asarray(tris).tolist()}


@pytest.mark.parametrize("points", [
    np.random.default_rng(3).random((1000, 2)) * 800,  # thin triangles along the hull among them
    np.random.default_rng(4).random((40, 2)) * [5000, 30] + [3000, 8000],  # far from the origin, flat
    np.unique(_synthetic_face()[:, :2], axis=0),  # (its points repeat: qhull keeps the last, this the first)
    *(np.random.default_rng(s).random((12, 2)) * [9, 3000] for s in range(20)),  # slivers along the hull
], ids=["random", "flat and far", "face", *(f"slivers {s}" for s in range(20))])
def test_the_triangulation_is_delaunays(points):
    """The same triangles as qhull's Delaunay (scipy), which the engine used before."""
    assert _triangle_set(delaunay(points)) == _triangle_set(Delaunay(points).simplices)


def test_the_triangulation_of_a_grid_a_repeated_point_and_a_line():
    # A grid's cells have four corners on one circle: either diagonal is Delaunay, but the cells must be
    # covered once, each by two triangles of half its area.
    g = np.stack(np.meshgrid(np.arange(12.0), np.arange(9.0)), -1).reshape(-1, 2) * 7 + 0.5
    tris = delaunay(g)
    a, b, c = (g[tris[:, k]] for k in range(3))
    area = np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])) / 2
    assert len(tris) == 2 * 11 * 8 and area == pytest.approx(np.full(len(tris), 49 / 2))
    assert _triangle_set(delaunay(np.array([[0, 0], [5, 0], [0, 5], [0, 0.0]]))) == {(0, 1, 2)}
    assert delaunay(np.array([[0, 0], [1, 1], [2, 2.0]])).shape == (0, 3)
    assert delaunay(np.zeros((2, 2))).shape == (0, 3)


def test_rotations_as_vectors_and_as_angles_agree_with_scipy():
    rng = np.random.default_rng(5)
    for q in Rotation.random(500, random_state=6):
        r = q.as_matrix()
        np.testing.assert_allclose(rotation_vector(r), q.as_rotvec(), atol=1e-9)
        np.testing.assert_allclose(rotation_matrix(q.as_rotvec()), r, atol=1e-12)
        np.testing.assert_allclose(euler_yxz(r), q.as_euler("YXZ"), atol=1e-9)
        np.testing.assert_allclose(from_euler_yxz(*q.as_euler("YXZ")), r, atol=1e-12)
    for angle in (0.0, 1e-9, 1e-4, np.pi - 1e-7, np.pi):  # no turn, and half a turn
        v = rng.normal(size=3)
        v *= angle / np.linalg.norm(v)
        r = Rotation.from_rotvec(v).as_matrix()
        np.testing.assert_allclose(rotation_matrix(rotation_vector(r)), r, atol=1e-7)
    for nod in (np.pi / 2, -np.pi / 2):  # a quarter-turn nod: turn and tilt share an axis
        r = from_euler_yxz(0.3, nod, 0.2)
        np.testing.assert_allclose(from_euler_yxz(*euler_yxz(r)), r, atol=1e-12)


def test_mouth_opening():
    pts = _synthetic_face()[:, :2]
    pts[[61, 62, 63], 1] = 150
    pts[[65, 66, 67], 1] = 158
    assert mouth_opening(IBUG68, pts) == pytest.approx(8.0)


def test_warp_identity_and_translation():
    rng = np.random.default_rng(4)
    img = (rng.uniform(0, 255, (64, 80, 3))).astype(np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img[::4, ::4], 4, 0), 4, 1))
    src = np.array([[0, 0], [79, 0], [79, 63], [0, 63], [40, 32]], np.float32)
    tris = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]], np.int32)
    z = np.zeros(5, np.float32)
    for step in (1, 2):
        w = MeshWarper(80, 64, step)
        same = w.warp(img, src, src, z, tris)
        assert np.abs(same.astype(int) - img).mean() < 0.5
        table = w.table(src, src, z, tris)
        np.testing.assert_allclose(table[10, 20], [20, 10], atol=1e-3)
    # Moving only the centre vertex right by 6 px: the pixel there shows what was 6 px to the left.
    dst = src.copy()
    dst[4] += [6, 0]
    table = MeshWarper(80, 64, 1).table(dst, src, z, tris)
    np.testing.assert_allclose(table[32, 46], [40, 32], atol=0.05)
    np.testing.assert_allclose(table[0, 0], [0, 0], atol=1e-3)  # the border stays


def test_warp_depth_buffer_keeps_the_nearer_triangle():
    src = np.array([[0, 0], [40, 0], [0, 40], [60, 0], [60, 40], [20, 40]], np.float32)
    tris = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    # Both triangles drawn onto the same spot: the one with smaller depth wins.
    dst = np.array([[0, 0], [40, 0], [0, 40], [0, 0], [40, 0], [0, 40]], np.float32)
    near_first = np.array([0, 0, 0, 5, 5, 5], np.float32)
    near_second = near_first[::-1].copy()
    w = MeshWarper(64, 64, 1)
    a = w.table(dst, src, near_first, tris)[5, 5].copy()
    b = w.table(dst, src, near_second, tris)[5, 5].copy()
    assert a[0] < 30 and b[0] > 30


def _reference_table(w, h, dst, src, z, tris):
    """Brute force: every pixel tests every triangle (barycentric >= -1e-4), nearest depth wins."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.dstack([xs, ys])
    zbuf = np.full((h, w), np.inf)
    for i0, i1, i2 in tris:
        (x0, y0), (x1, y1), (x2, y2) = dst[i0], dst[i1], dst[i2]
        den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(den) < 1e-9:
            continue
        a = ((y1 - y2) * (xs - x2) + (x2 - x1) * (ys - y2)) / den
        b = ((y2 - y0) * (xs - x2) + (x0 - x2) * (ys - y2)) / den
        c = 1 - a - b
        depth = a * z[i0] + b * z[i1] + c * z[i2]
        win = (a >= -1e-4) & (b >= -1e-4) & (c >= -1e-4) & (depth < zbuf)
        zbuf[win] = depth[win]
        for k in range(2):
            out[..., k][win] = (a * src[i0, k] + b * src[i1, k] + c * src[i2, k])[win]
    return out, np.isfinite(zbuf)


def test_warp_rasteriser_matches_a_brute_force_reference_on_slivers_and_overlaps():
    rng = np.random.default_rng(7)
    pts = rng.uniform(-5, 52, (40, 2)).astype(np.float32)  # some vertices off the grid
    tris = rng.integers(0, 40, (60, 3)).astype(np.int32)  # thin slivers, overlaps, both windings
    tris = tris[(tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])]
    src = (pts * 0.9 + rng.normal(0, 2, pts.shape)).astype(np.float32)
    z = rng.uniform(0, 10, 40).astype(np.float32)
    w = MeshWarper(48, 40, 1)
    table = w.table(pts, src, z, tris)
    ref, covered = _reference_table(48, 40, pts.astype(np.float64), src.astype(np.float64), z.astype(np.float64), tris)
    np.testing.assert_array_equal(w.covered() > 0, covered)
    np.testing.assert_allclose(table, ref, atol=2e-3)


FOLD_W, FOLD_H = 96, 64


def _folded_quads():
    """(dst, src, z, tris) of a nearer quad slid over its neighbour on a 96x64 canvas: left quad (far)
    and right quad (near), both 48 px wide in the source; the right one's left edge is slanted (x = 26.7
    at the top, 17.7 at the bottom) and slid over the left quad, its right edge (x = 73.7) leaves the
    canvas uncovered."""
    src = np.float32([[0, 0], [48, 0], [48, 63], [0, 63], [48, 0], [95, 0], [95, 63], [48, 63]])
    dst = src.copy()
    dst[4:] -= [21.3, 0]
    dst[7, 0] -= 9.0
    z = np.float32([5, 5, 5, 5, 0, 0, 0, 0])
    return dst, src, z, np.int32([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])


def test_a_fold_is_rasterised_at_full_resolution_not_upsampled_into_a_staircase(monkeypatch):
    """A nearer quad slid over its neighbour: the table jumps at the fold's edge, a slanted line.

    Upsampling a coarse table across that jump draws the edge as a staircase of grid cells; the
    table there must be the exact one (away from the outermost pixels, see the crop's paste-back).
    """
    w, h, step = FOLD_W, FOLD_H, 4
    dst, src, z, tris = _folded_quads()
    ref, _ = _reference_table(w, h, dst.astype(np.float64), src.astype(np.float64), z.astype(np.float64), tris)

    def worst(table):
        return np.abs(table - ref)[2:-2, 2:-2].max()

    # Within a fraction of a pixel: where two triangles meet at an angle the upsampling rounds the kink.
    assert worst(MeshWarper(w, h, step).table(dst, src, z, tris)) < 0.5
    monkeypatch.setattr(warp, "_FOLD_JUMP", np.inf)  # the fold left to the upsampling
    assert worst(MeshWarper(w, h, step).table(dst, src, z, tris)) > 5


def test_a_folds_edge_is_softened_and_nothing_else():
    """The exact fold edge is a hard pixel staircase of its own; only the pixels beside it are blurred."""
    w, h = FOLD_W, FOLD_H
    wp = MeshWarper(w, h, 4)
    table = wp.table(*_folded_quads())
    (x0, y0, x1, y1), mask = wp.fold_edges()
    ys, xs = np.nonzero(mask)
    ys, xs = ys + y0, xs + x0
    # Every marked pixel sits next to the near quad's slanted left edge (x = 26.7 at the top, 17.7 at
    # the bottom) or its right edge over the uncovered canvas (x = 73.7), where the table jumps.
    left = 26.7 - 9.0 * ys / 63.0
    assert np.all((np.abs(xs - left) <= 1.5) | (np.abs(xs - 73.7) <= 1.5))
    assert len(ys) >= 2 * h
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 200
    img = cv2.remap(img, table, None, cv2.INTER_LINEAR)
    soft = img.copy()
    warp.soften_edges(soft, wp.fold_edges())
    changed = np.abs(soft.astype(int) - img).max(axis=2) > 0
    full = np.zeros((h, w), bool)
    full[y0:y1, x0:x1] = mask
    assert changed.any() and not (changed & ~full).any()


def test_a_smooth_warp_has_no_fold_cells():
    src = np.float32([[0, 0], [79, 0], [79, 63], [0, 63], [40, 32]])
    dst = src.copy()
    dst[4] += [9, -5]  # a strong but smooth pull
    wp = MeshWarper(80, 64, 4)
    wp.table(dst, src, np.zeros(5, np.float32), np.int32([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]))
    assert not warp.fold_cells(wp._map, wp.step).any()


def test_paste_back_feathers_only_the_rim():
    canvas = np.zeros((100, 100, 3), np.uint8)
    crop = np.full((40, 40, 3), 200, np.uint8)
    mask = np.ones((40, 40), np.float32)
    mask[:, :5] = np.linspace(0, 1, 7)[1:-1]
    out = paste_back(canvas, crop, (30, 30, 70, 70), PasteMask(mask))
    assert out[50, 50, 0] == 200 and out[10, 10, 0] == 0
    assert 0 < out[50, 31, 0] < 200  # blended seam
    assert canvas.max() == 0  # the canvas itself is untouched
    buf = canvas.copy()
    paste_back(canvas, crop, (30, 30, 70, 70), mask, out=buf)
    np.testing.assert_array_equal(buf, out)


def test_label_is_visible_and_side_by_side_keeps_height():
    frame = np.full((360, 640, 3), 128, np.uint8)
    draw_label(frame)
    x0, y0, x1, y1 = label_box(frame.shape)
    region = frame[y0:y1, x0:x1]
    assert region.max() > 220 and region.min() < 90  # white text on a dark badge
    assert (frame[:y0 - 1] == 128).all()
    sbs = side_by_side(np.zeros((480, 480, 3), np.uint8), frame)
    assert sbs.shape == (360, 360 + 640, 3)


def test_the_mesh_edges_read_without_importing_mediapipe_are_mediapipes_own(monkeypatch):
    import sys

    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    from talking_head import topology
    monkeypatch.delitem(sys.modules, "mediapipe")  # as in a process that has not imported it: the file is read alone
    edges = topology._mediapipe_tesselation()
    assert "mediapipe" not in sys.modules
    assert edges == FACEMESH_TESSELATION and len(edges) > 2000


def test_where_the_animated_crop_reaches_the_label_the_label_sits_on_the_animated_pixels():
    """A crop pasted over the label's corner: each finished frame is the crop pasted into the painting with
    the label drawn on top, as if drawn fresh, frame after frame (not the still painting under the label)."""
    from talking_head.engines.base import Prepared
    from talking_head.pipeline import AnimateSettings, _Compositor

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (240, 320, 3), np.uint8)
    box = (100, 60, 320, 240)  # reaches the bottom-right corner, where the label sits
    w, h = box[2] - box[0], box[3] - box[1]
    mask = np.ones((h, w), np.float32)
    mask[:8], mask[:, :8] = 0.5, 0.5  # a feathered edge, away from the label
    prepared = Prepared(box, image[60:, 100:].copy(), mask)
    comp = _Compositor(image, prepared, AnimateSettings(), "AI-generated", 0, encode=True)
    assert comp.label_moves
    for k in range(3):
        crop = rng.integers(0, 256, (h, w, 3), np.uint8)
        frame, _ = comp.compose(crop, None)
        expected = draw_label(paste_back(image, crop, box, mask))
        np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize("driver_side", [120, 480])  # scaled up beside the result, and down
def test_side_by_side_frames_reach_the_encoder_as_the_picture_shows_them(driver_side):
    """Side by side, the encoder's yuv420p frame is put together from the driving frame converted at its
    own size and scaled plane by plane, and from the result's changed region: it is the finished RGB frame
    converted whole, within rounding, frame after frame."""
    from talking_head.compose import I420Frame
    from talking_head.engines.base import Prepared
    from talking_head.pipeline import AnimateSettings, _Compositor

    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 3)
    box = (100, 60, 260, 200)
    w, h = box[2] - box[0], box[3] - box[1]
    prepared = Prepared(box, image[60:200, 100:260].copy(), np.ones((h, w), np.float32))
    sbs_w = 240
    comp = _Compositor(image, prepared, AnimateSettings(side_by_side=True), "AI-generated", sbs_w, encode=True)
    whole = I420Frame(320 + sbs_w, 240)
    for k in range(3):
        # Smooth pictures, as a camera's and a painting's are (noise would test the two scalers, not us).
        driving = cv2.GaussianBlur(rng.integers(0, 256, (driver_side, driver_side, 3), np.uint8), (0, 0), 2)
        crop = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), np.uint8), (0, 0), 2)
        frame, encoded = comp.compose(crop, driving)
        assert frame.shape == (240, 320 + sbs_w, 3)
        expected = whole.update(frame).astype(int)
        n = whole.y.size
        assert np.abs(encoded[:n].astype(int) - expected[:n]).max() <= 2              # luma
        assert np.abs(encoded[n:].astype(int) - expected[n:]).mean() < 1.0             # chroma, filtered apart
        np.testing.assert_array_equal(encoded[:n].reshape(240, -1)[:, sbs_w:], expected[:n].reshape(240, -1)[:, sbs_w:])
    # Without a caller that looks at the frames, no RGB side-by-side frame is made at all.
    quiet = _Compositor(image, prepared, AnimateSettings(side_by_side=True), "AI-generated", sbs_w, encode=True, rgb=False)
    frame, encoded = quiet.compose(crop, driving)
    assert frame is None and encoded.size == whole.data.size
