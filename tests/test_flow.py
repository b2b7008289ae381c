"""The residual-flow refinement: map composition, the face weight, flow transfer, and the engine end to end."""
import cv2
import numpy as np
import pytest

from talking_head.engines import DrivingFrame, create_engine
from talking_head.faces import FaceLandmarks
from talking_head.flow import face_weight, residual_flow, transfer
from talking_head.gallery import Gallery
from talking_head.images import load_image
from talking_head.topology import get_layout
from talking_head.warp import MeshWarper


def _square_mesh(w, h):
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    return src, np.zeros(4, np.float32), np.int32([[0, 1, 2], [0, 2, 3]])


def _texture(h, w, seed=0):
    noise = np.random.default_rng(seed).integers(0, 255, (h, w)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2.0)


def test_zero_displacement_leaves_the_mesh_map_unchanged_and_a_constant_one_shifts_it():
    w = MeshWarper(64, 48, 2)
    src, z, tris = _square_mesh(64, 48)
    dst = src * 0.9 + 3
    plain = w.table(dst, src, z, tris)
    np.testing.assert_array_equal(w.table(dst, src, z, tris, displace=np.zeros(w.cells.shape, np.float32)), plain)
    # new_map(p) = map(p + d): inside the mesh the map is affine, so that is map(p) + A d.
    d = np.float32([2.0, -1.0])
    shifted = w.table(dst, src, z, tris, displace=np.broadcast_to(d, w.cells.shape).copy())
    np.testing.assert_allclose(shifted[15:30, 15:40], plain[15:30, 15:40] + d / 0.9, atol=1e-3)


def test_cells_no_triangle_covers_follow_the_outside_affine():
    w = MeshWarper(40, 40, 1)
    src, z, tris = _square_mesh(10, 10)  # covers only the top-left corner
    m = w.table(src, src, z, tris, outside=np.float64([[1, 0, 5], [0, 1, -2]]))
    np.testing.assert_allclose(m[30, 30], [35, 28])
    np.testing.assert_allclose(m[4, 4], [4, 4])


def test_face_weight_is_zero_outside_the_outline_and_in_the_hole_and_one_deep_inside():
    outline = np.float32([[10, 10], [90, 10], [90, 90], [10, 90]])
    hole = np.float32([[40, 60], [60, 60], [60, 66], [40, 66]])
    wt = face_weight((100, 100), outline, 8.0, [hole], 3.0)
    assert wt.shape == (100, 100) and wt.dtype == np.float32
    assert wt[5, 50] == 0 and wt[50, 95] == 0 and wt[63, 50] == 0
    assert wt[30, 50] == pytest.approx(1.0)
    # Ramps: part-way at a few pixels inside the outline and just outside the hole.
    assert 0 < wt[13, 50] < 1
    assert 0 < wt[58, 50] < 1 and wt[50, 50] == pytest.approx(1.0)


def test_transfer_rotates_and_scales_vectors_back_and_clamps_them():
    flow = np.zeros((50, 50, 2), np.float32)
    flow[..., 0] = 2.0
    weight = np.ones((50, 50), np.float32)
    ang = np.deg2rad(30)
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    to_flow = np.hstack([0.5 * r, [[20.0], [10.0]]])  # target point q -> flow pixel u = 0.5 R q + t
    out = transfer(flow, weight, to_flow, (40, 40), limit=10.0)
    # A flow vector f in flow pixels is (1/0.5) R^T f in target pixels.
    np.testing.assert_allclose(out[10, 10], 2.0 * r.T @ [2.0, 0.0], atol=1e-4)
    clamped = transfer(flow, weight, to_flow, (40, 40), limit=1.0)
    np.testing.assert_allclose(np.linalg.norm(clamped[10, 10]), 2.0, atol=1e-4)
    far = transfer(flow, weight, np.float64([[1, 0, 100], [0, 1, 100]]), (10, 10), limit=10.0)
    assert not far.any()


def test_residual_flow_recovers_a_known_translation():
    img = _texture(96, 96)
    moved = cv2.warpAffine(img, np.float32([[1, 0, 2.0], [0, 1, -1.5]]), (96, 96), borderMode=cv2.BORDER_REFLECT)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    dis.setFinestScale(0)
    # moved(p) = img(p - (2, -1.5)): the offset into the prediction is (-2, +1.5).
    r = residual_flow(dis, img, moved)
    np.testing.assert_allclose(np.median(r[20:-20, 20:-20].reshape(-1, 2), axis=0), [-2.0, 1.5], atol=0.2)


@pytest.fixture(scope="module")
def portrait():
    g = Gallery.default()
    img = load_image(g.portrait_path("mona_lisa"), max_side=700)
    face = g.portrait_face("mona_lisa")
    face = FaceLandmarks(face.points * (img.shape[1] / g.portrait("mona_lisa")["size"][0]), face.layout)
    return img, face


def _render_shifted(portrait, **options):
    """Frame 1 is frame 0 moved by (3, 2) px while the landmarks stay: motion only the pixels show."""
    img, face = portrait
    moved = cv2.warpAffine(img, np.float32([[1, 0, 3], [0, 1, 2]]), img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    eng = create_engine("meshwarp", fill_mouth=False, **options)
    prepared = eng.prepare(img, face)
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    frames = [DrivingFrame(i, im, face.points, face.points, head) for i, im in enumerate((img, moved))]
    out = eng.render(prepared, frames)[1].astype(int)
    x0, y0, x1, y1 = prepared.crop_box
    oval = face.points[list(get_layout(face.layout).oval), :2] - (x0, y0)
    inner = oval.mean(0) + 0.6 * (oval - oval.mean(0))
    mask = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(mask, [inner.astype(np.int32)], 1)
    inside = mask > 0
    return np.abs(out - moved[y0:y1, x0:x1])[inside].mean(), np.abs(out - img[y0:y1, x0:x1])[inside].mean()


def test_refinement_follows_skin_motion_the_landmarks_missed(portrait):
    to_moved, _ = _render_shifted(portrait, refine=True)
    plain_to_moved, plain_to_still = _render_shifted(portrait, refine=False)
    assert plain_to_still == 0  # the mesh alone sees no motion
    assert to_moved < 0.2 * plain_to_moved


def test_without_driving_pixels_the_refinement_is_skipped(portrait):
    img, face = portrait
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    target = face.points.copy()
    target[:, 1] += 1.5
    outs = []
    for refine in (True, False):
        eng = create_engine("meshwarp", refine=refine, fill_mouth=False)
        prepared = eng.prepare(img, face)
        frames = [DrivingFrame(i, None, face.points, t, head) for i, t in enumerate((face.points, target))]
        outs.append(eng.render(prepared, frames)[1])
    np.testing.assert_array_equal(outs[0], outs[1])
