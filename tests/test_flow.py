"""The residual-flow refinement: map composition, the face weight, flow transfer, and the engine end to end."""
import cv2
import numpy as np
import pytest

from talking_head.engines import DrivingFrame, create_engine
from talking_head.flow import face_weight, residual_flow, smooth_flow, transfer
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


def test_smooth_flow_keeps_a_constant_field_and_ignores_what_has_no_weight():
    flow = np.zeros((60, 60, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.5, -0.5
    flow[:, 40:] = (9.0, 9.0)  # a zero-weight region (background, an eye) with a wild flow
    weight = np.ones((60, 60), np.float32)
    weight[:, 40:] = 0
    out = smooth_flow(flow, weight, 4.0)
    # Next to the zero-weight region the field is neither pulled towards 9 nor towards 0.
    np.testing.assert_allclose(out[30, 5:39], np.broadcast_to([1.5, -0.5], (34, 2)), atol=1e-3)
    # Noise is averaged away, and sigma 0 changes nothing.
    noisy = flow.copy()
    noisy[:, :40] += np.random.default_rng(0).normal(0, 1.0, (60, 40, 2)).astype(np.float32)
    assert np.abs(smooth_flow(noisy, weight, 4.0)[20:40, 10:30] - flow[20:40, 10:30]).max() < 0.35
    assert smooth_flow(noisy, weight, 0) is noisy


def test_residual_flow_recovers_a_known_translation():
    img = _texture(96, 96)
    moved = cv2.warpAffine(img, np.float32([[1, 0, 2.0], [0, 1, -1.5]]), (96, 96), borderMode=cv2.BORDER_REFLECT)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    dis.setFinestScale(0)
    # moved(p) = img(p - (2, -1.5)): the offset into the prediction is (-2, +1.5).
    r = residual_flow(dis, img, moved)
    np.testing.assert_allclose(np.median(r[20:-20, 20:-20].reshape(-1, 2), axis=0), [-2.0, 1.5], atol=0.2)


def _render_shifted(portrait, **options):
    """Frame 1 is frame 0 moved by (1.5, 1) px while the landmarks stay: motion only the pixels show.

    (Within the residual's length limit: the refinement corrects small misses, not large ones.)
    """
    img, face = portrait
    moved = cv2.warpAffine(img, np.float32([[1, 0, 1.5], [0, 1, 1]]), img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
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
    # The eyes are left to the landmarks (an iris rolling is not skin motion): not scored.
    for upper, lower in get_layout(face.layout).eyes:
        eye = face.points[list(upper) + list(reversed(lower[1:-1])), :2] - (x0, y0)
        cv2.fillPoly(mask, [(eye.mean(0) + 2.0 * (eye - eye.mean(0))).astype(np.int32)], 0)
    inside = mask > 0
    return np.abs(out - moved[y0:y1, x0:x1])[inside].mean(), np.abs(out - img[y0:y1, x0:x1])[inside].mean()


def test_refinement_follows_skin_motion_the_landmarks_missed(portrait):
    to_moved, _ = _render_shifted(portrait, refine=True)
    plain_to_moved, plain_to_still = _render_shifted(portrait, refine=False)
    assert plain_to_still == 0  # the mesh alone sees no motion
    assert to_moved < 0.2 * plain_to_moved


def test_the_residual_leaves_the_eyes_to_the_landmarks(portrait):
    """The driver's iris rolling must not drag the portrait's lids: no residual inside the eyes."""
    img, face = portrait
    eng = create_engine("meshwarp", fill_mouth=False, refine=True)
    prepared = eng.prepare(img, face)
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    moved = cv2.warpAffine(img, np.float32([[1, 0, 3], [0, 1, 2]]), img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    eng.render(prepared, [DrivingFrame(0, img, face.points, face.points, head)])
    s = prepared.state
    flow, weight, xy = s.driver.residual(moved, face.points)
    lay = get_layout(face.layout)
    for (upper, lower), iris in zip(lay.eyes, lay.iris_centres):
        x, y = np.round(xy[iris]).astype(int)
        assert weight[y, x] == 0
    # Deep in the cheek the residual is kept and follows the (3, 2) px shift, -k * (3, 2) in crop pixels.
    oval = xy[list(lay.oval)]
    centre, side = oval.mean(0), oval[np.argmin(oval[:, 0])]
    cheek = np.round(centre + 0.45 * (side - centre)).astype(int)
    assert weight[cheek[1], cheek[0]] > 0.5
    np.testing.assert_allclose(flow[cheek[1], cheek[0]], -s.driver.k * np.float32([3, 2]), atol=0.6)


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


def test_mouth_interior_colours_are_matched_to_the_portrait_and_its_warper_is_reused(portrait):
    from talking_head.engines.meshwarp import _lip_band, _match_colour

    img, face = portrait
    lay = get_layout(face.layout)
    # The driver is the portrait itself in other colours: matching must bring its lips back.
    driver = np.clip(img.astype(np.float32) * [0.6, 0.9, 1.2] + [40, -10, 5], 0, 255).astype(np.uint8)
    lips = face.points[list(lay.outer_lip), :2]
    x0, y0 = np.floor(lips.min(0)).astype(int) - 2
    x1, y1 = np.ceil(lips.max(0)).astype(int) + 3
    region, patch = img[y0:y1, x0:x1], driver[y0:y1, x0:x1]
    out = _match_colour(patch, driver, face.points, region, face.points[:, :2] - (x0, y0), lay)
    assert out.dtype == np.uint8 and out.shape == patch.shape
    band = _lip_band(face.points[:, :2] - (x0, y0), lay, region.shape) > 0
    assert band.sum() > 50
    # The lips' colour comes back (a per-channel affine tint is not one rotation of Lab's colour plane,
    # so single pixels keep a few levels of it).
    assert np.abs(out[band].mean(0) - region[band].mean(0)).max() < 4
    assert np.abs(out[band].astype(int) - region[band]).mean() < 8
    assert np.abs(patch[band].astype(int) - region[band]).mean() > 15

    # Rendering an opening mouth keeps one interior warper for the clip, grown only when needed.
    eng = create_engine("meshwarp", refine=False)
    prepared = eng.prepare(img, face)
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    frames = []
    for i, drop in enumerate((0.0, 6.0, 4.0, 6.0)):
        target = face.points.copy()
        target[list(lay.inner_lip_lower), 1] += drop
        frames.append(DrivingFrame(i, driver, target, target, head))
    eng.render(prepared, frames[:2])
    warper = prepared.state.mouth_warper
    assert warper is not None
    eng.render(prepared, frames[2:])
    assert prepared.state.mouth_warper is warper


def test_white_teeth_stay_white_when_the_drivers_lips_are_redder(portrait):
    """Matched channel by channel, a driver whose lips are pinker than the painting's (nearly every
    driver: paintings' lips are brownish) turned the teeth green. Grey must stay grey."""
    from talking_head.engines.meshwarp import _match_colour

    img, face = portrait
    lay = get_layout(face.layout)
    driver = np.clip(img.astype(np.float32) * [1.25, 0.8, 0.95], 0, 255).astype(np.uint8)  # pinker lips
    lips = face.points[list(lay.outer_lip), :2]
    x0, y0 = np.floor(lips.min(0)).astype(int) - 2
    x1, y1 = np.ceil(lips.max(0)).astype(int) + 3
    region = img[y0:y1, x0:x1]
    teeth = np.full((20, 30, 3), (232, 230, 226), np.uint8)
    out = _match_colour(teeth, driver, face.points, region, face.points[:, :2] - (x0, y0), lay).astype(int)
    spread = out.max(axis=2) - out.min(axis=2)
    assert spread.max() <= 12, f"the teeth took a colour: {out[0, 0]}"
    assert out.mean() > 170, "the teeth went dark"


def _mouth_opened_onto(img, face, colour) -> list[DrivingFrame]:
    """Two driving frames of the painting itself: at rest, then with the lower lip 12 px down over an
    interior painted ``colour``."""
    lay = get_layout(face.layout)
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    opened = face.points.copy()
    opened[list(lay.inner_lip_lower), 1] += 12.0
    driver = img.copy()
    cv2.fillPoly(driver, [np.round(opened[list(lay.mouth_ring), :2]).astype(np.int32)], colour)
    return [DrivingFrame(0, driver, face.points, face.points, head), DrivingFrame(1, driver, opened, opened, head)]


def test_a_black_and_white_portrait_gets_a_grey_mouth_interior(portrait):
    """Mark Twain's photograph driven by a colour clip opened onto a blue mouth: matched per channel,
    red driver lips over grey portrait lips tint the interior. It must stay grey."""
    img, face = portrait
    grey = cv2.merge([cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)] * 3)
    eng = create_engine("meshwarp", layered=False)
    prepared = eng.prepare(grey, face)
    # The driver is the colour painting with its mouth (as the target says) opened onto a blue-green interior.
    frames = _mouth_opened_onto(img, face, (40, 140, 200))
    ring = frames[1].target[list(get_layout(face.layout).mouth_ring), :2]
    out = eng.render(prepared, frames)[1].astype(int)
    x0, y0 = prepared.crop_box[:2]
    mouth = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(ring - (x0, y0)).astype(np.int32)], 1)
    inside = out[mouth > 0]
    assert len(inside) > 30
    assert np.abs(inside - np.asarray(prepared.crop, int)[mouth > 0]).mean() > 5, "the mouth was not filled"
    assert (inside.max(axis=1) - inside.min(axis=1)).max() <= 2, "the grey portrait's mouth got a colour"


def test_the_drivers_mouth_view_stands_in_for_the_whole_frame(portrait):
    """A clip's second render gets only the mouth views the first one kept (no frames): the same pictures."""
    from talking_head.engines.meshwarp import _MOUTH_VIEW_SIZE, _mouth_view

    img, face = portrait
    lay = get_layout(face.layout)
    eng = create_engine("meshwarp", layered=False)
    prepared = eng.prepare(img, face)
    first = _mouth_opened_onto(img, face, (60, 20, 30))
    head, opened = first[1].head, first[1].target
    with_frames = eng.render(prepared, first)
    views = [fr.features for fr in first]
    assert all(v.shape == (_MOUTH_VIEW_SIZE[1], _MOUTH_VIEW_SIZE[0], 3) and v.dtype == np.uint8 for v in views)
    again = [DrivingFrame(i, None, fr.landmarks, fr.target, head, features=v) for i, (fr, v) in enumerate(zip(first, views))]
    np.testing.assert_array_equal(eng.render(prepared, again)[1], with_frames[1])
    # ... and they are what fills the mouth: with neither, it is the drawn cavity.
    cavity = eng.render(prepared, [DrivingFrame(i, None, fr.landmarks, fr.target, head) for i, fr in enumerate(first)])
    assert np.abs(cavity[1].astype(int) - with_frames[1]).max() > 40
    # The view is made from the landmarks alone: frames decoded at half size give the same view of the lips.
    lm = opened[:, :2].astype(np.float64)
    a, half = _mouth_view(lay, opened), _mouth_view(lay, opened * 0.5)
    np.testing.assert_allclose(lm @ a[:, :2].T + a[:, 2], 0.5 * lm @ half[:, :2].T + half[:, 2], atol=1e-6)
    lips = lm[list(lay.outer_lip)] @ a[:, :2].T + a[:, 2]
    np.testing.assert_allclose(lips.mean(axis=0), np.array(_MOUTH_VIEW_SIZE) / 2, atol=1e-6)
    assert lips.min() > 0 and (lips.max(axis=0) < _MOUTH_VIEW_SIZE).all()


def test_where_the_drivers_face_was_lost_the_mouth_is_drawn(portrait):
    """A clip cut to black for half a second (the face lost, its landmarks filled in across the gap): the open
    mouth over those frames was cut from the black frame and matched to the painting, a blue-grey hole. The last
    mouth seen will not do either: it may be closed where the filled-in mouth opens (stretched lips in the
    hole). Those frames get the drawn cavity, and no view to cache."""
    img, face = portrait
    eng = create_engine("meshwarp", layered=False)
    prepared = eng.prepare(img, face)
    rest, opened = _mouth_opened_onto(img, face, (150, 40, 50))
    black = np.zeros_like(img)
    lost = DrivingFrame(2, black, opened.landmarks, opened.target, opened.head, seen=False)
    out = eng.render(prepared, [rest, opened, lost])
    assert lost.features is None
    drawn = eng.render(prepared, [DrivingFrame(i, None, fr.landmarks, fr.target, fr.head) for i, fr in enumerate([rest, opened])])
    np.testing.assert_array_equal(out[2], drawn[1])
    assert np.abs(out[1].astype(int) - drawn[1]).max() > 40  # (where the face was seen, the driver's own mouth)


def test_the_residual_is_averaged_over_frames_so_flow_noise_does_not_shimmer(portrait, monkeypatch):
    """Pixels jittering by +-1 px around still landmarks: the running mean halves what reaches the warp."""
    from talking_head.engines import meshwarp

    img, face = portrait
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    shifts = [0, 1.0, -1.0, 1.0, -1.0, 1.0]
    frames = [DrivingFrame(i, cv2.warpAffine(img, np.float32([[1, 0, d], [0, 1, 0]]), img.shape[1::-1],
                                             borderMode=cv2.BORDER_REFLECT), face.points, face.points, head)
              for i, d in enumerate(shifts)]
    last = {}
    for temporal in (1.0, 0.5):
        monkeypatch.setattr(meshwarp, "_FLOW_TEMPORAL", temporal)
        eng = create_engine("meshwarp", fill_mouth=False, refine=True)
        prepared = eng.prepare(img, face)
        eng.render(prepared, frames)
        last[temporal] = np.abs(prepared.state.prev_disp[..., 0]).max()
    assert last[1.0] > 0.5
    assert last[0.5] < 0.6 * last[1.0]


def test_expression_detail_darkens_the_portrait_where_the_driver_creased_and_nowhere_else():
    """``detail=True``, a driving clip's frame 0 as the portrait: frame 1 is frame 0 with a dark crease on
    one cheek, a darkened eye and the camera's exposure up 10 %; the landmarks stay. The portrait darkens
    along the crease by about the driver's ratio; the exposure drift, the eyes and everything outside the
    face are left alone."""
    from talking_head import video
    from talking_head.faces import detect_face
    from talking_head.gallery import Gallery
    path = Gallery.default().clip_path("subtle_smile")
    img = next(video.read_frames(path, video.probe(path)))
    face = detect_face(img)
    lay = get_layout(face.layout)
    pts = face.points[:, :2]
    oval = pts[list(lay.oval)]
    centre, side = oval.mean(0), oval[np.argmin(oval[:, 0])]
    cheek = centre + 0.5 * (side - centre)
    iod = float(np.linalg.norm(pts[lay.iris_centres[0]] - pts[lay.iris_centres[1]]))
    crease = np.zeros(img.shape[:2], np.float32)
    a, b = np.round(cheek + (0, -0.25 * iod)).astype(int), np.round(cheek + (0.05 * iod, 0.25 * iod)).astype(int)
    cv2.line(crease, tuple(int(v) for v in a), tuple(int(v) for v in b), 1.0, max(2, round(0.1 * iod)))
    crease = cv2.GaussianBlur(crease, (0, 0), 0.02 * iod)
    crease /= crease.max()
    eye = np.zeros(img.shape[:2], np.float32)
    cv2.circle(eye, tuple(int(v) for v in np.round(pts[lay.iris_centres[1]])), round(0.15 * iod), 1.0, -1)
    darker = 1 - 0.35 * crease[..., None] - 0.5 * eye[..., None]
    frame1 = np.clip(img * darker * 1.1, 0, 255).astype(np.uint8)
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    frames = [DrivingFrame(i, im, face.points, face.points, head) for i, im in enumerate((img, frame1))]
    outs = {}
    for detail in (False, True):
        eng = create_engine("meshwarp", fill_mouth=False, detail=detail)
        prepared = eng.prepare(img, face)
        outs[detail] = [o.astype(float) for o in eng.render(prepared, frames)]
    x0, y0 = prepared.crop_box[:2]
    np.testing.assert_array_equal(outs[False][0], outs[False][1])  # the mesh alone sees no change
    np.testing.assert_array_equal(outs[True][0], outs[False][0])  # frame 0 is the reference
    ratio = (outs[True][1].mean(-1) + 1) / (outs[False][1].mean(-1) + 1)
    cx, cy = np.round((a + b) / 2 - (x0, y0)).astype(int)
    r = round(0.1 * iod)
    # The crease: the driver darkened it to 0.65; blurred on the small crop and counted a little less on
    # textured skin (_DETAIL_TEXTURE), the portrait still darkens clearly.
    assert 0.6 < ratio[cy - r:cy + r + 1, cx - r:cx + r + 1].min() < 0.85
    skin = np.round(centre + 0.4 * (oval[np.argmax(oval[:, 0])] - centre) - (x0, y0)).astype(int)
    assert abs(ratio[skin[1] - 2:skin[1] + 3, skin[0] - 2:skin[0] + 3].mean() - 1) < 0.03  # exposure drift divided out
    ex, ey = np.round(pts[lay.iris_centres[1]] - (x0, y0)).astype(int)
    assert abs(ratio[ey - 2:ey + 3, ex - 2:ex + 3].mean() - 1) < 0.03  # the eye is the landmarks' business
    face_box = np.zeros(ratio.shape, bool)
    fx0, fy0 = np.floor(oval.min(0) - (x0, y0)).astype(int) - 4  # the weight is drawn on a smaller crop
    fx1, fy1 = np.ceil(oval.max(0) - (x0, y0)).astype(int) + 4
    face_box[max(fy0, 0):fy1, max(fx0, 0):fx1] = True
    np.testing.assert_array_equal(outs[True][1][~face_box], outs[False][1][~face_box])  # nothing outside the face


def test_refine_and_detail_align_each_driver_frame_once_and_render_the_same(portrait, monkeypatch):
    """With both options on, the residual flow and the shading ratio share frame t's aligned crops: the
    driver's frame is cropped once per frame, and the frames equal those rendered with nothing shared."""
    from talking_head.engines import meshwarp

    img, face = portrait
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    frames = [DrivingFrame(i, cv2.warpAffine(img, np.float32([[1, 0, d], [0, 1, 0.5 * d]]), img.shape[1::-1],
                                             borderMode=cv2.BORDER_REFLECT), face.points, face.points, head)
              for i, d in enumerate([0, 1.5, -1.0, 2.0])]
    crops = []
    crop_square = meshwarp._crop_square
    monkeypatch.setattr(meshwarp, "_crop_square", lambda *a: crops.append(1) or crop_square(*a))

    def render():
        eng = create_engine("meshwarp", fill_mouth=False, refine=True, detail=True)
        return eng.render(eng.prepare(img, face), frames)

    shared = render()
    assert len(crops) == len(frames) - 1  # frame 0 is the reference, cropped when the flow is made
    aligned = meshwarp._DriverFlow._aligned

    def unshared(self, *a):
        self._last = None
        return aligned(self, *a)

    monkeypatch.setattr(meshwarp._DriverFlow, "_aligned", unshared)
    for a, b in zip(shared, render()):
        np.testing.assert_array_equal(a, b)
    assert len(crops) == 3 * (len(frames) - 1)


def test_an_open_mouth_carries_the_paintings_own_texture(portrait):
    """The driver's mouth is a camera's, smooth; on a painting it looked pasted in (Van Gogh's teeth, a flat
    beige bar among his brush strokes). The interior takes the fine texture of the painting's skin (a cheek):
    here a flat interior must come out about as textured as the skin below the lips, and no darker or lighter."""
    from talking_head.topology import MEDIAPIPE

    img, face = portrait
    eng = create_engine("meshwarp", layered=False)
    prepared = eng.prepare(img, face)
    colour = (150, 120, 105)
    frames = _mouth_opened_onto(img, face, colour)
    out = eng.render(prepared, frames)[1]
    x0, y0 = prepared.crop_box[:2]
    mouth = np.zeros(out.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(frames[1].target[list(MEDIAPIPE.mouth_ring), :2] - (x0, y0)).astype(np.int32)], 1)
    inside = cv2.erode(mouth, np.ones((5, 5), np.uint8)) > 0
    assert inside.sum() > 40

    def fine(grey):
        blur = cv2.GaussianBlur(grey, (0, 0), 1.5)
        return np.abs(grey - blur) / (blur + 10)
    g = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    rest = cv2.cvtColor(prepared.crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    xy = prepared.state.rest
    lips = xy[list(MEDIAPIPE.outer_lip)]
    below = fine(rest)[int(lips[:, 1].max()) + 3:int(xy[MEDIAPIPE.chin, 1]) - 3, int(lips[:, 0].min()):int(lips[:, 0].max())]
    texture, skin = float(np.median(fine(g)[inside])), float(np.median(below))
    assert texture > 0.5 * skin, f"the interior is smooth ({texture:.3f}) beside the painting's skin ({skin:.3f})"
    assert texture < 2 * skin
    assert abs(float(np.mean(g[inside])) - float(np.mean(cv2.cvtColor(np.uint8([[colour]]), cv2.COLOR_RGB2GRAY)))) < 25


def test_the_mouth_fill_fades_out_before_the_edge_of_its_box():
    """The fill's soft edge must reach nothing inside the box it is drawn in: with the box 2-3 px outside the
    lips and a feather that grows with the face, the fill stopped in a straight line beside a large mouth
    (Newton at 1280 px: up to 35 grey levels)."""
    from conftest import gallery_portrait
    img, face = gallery_portrait("newton", 1280)
    frames = _mouth_opened_onto(img, face, (60, 20, 30))
    outs = []
    for fill in (True, False):
        eng = create_engine("meshwarp", layered=False, fill_mouth=fill)
        prepared = eng.prepare(img, face)
        outs.append(eng.render(prepared, frames)[1].astype(int))
    diff = np.abs(outs[0] - outs[1]).max(axis=2)
    ys, xs = np.nonzero(diff)
    assert len(ys) > 50, "the mouth was not filled"
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    rim = np.concatenate([diff[y0, x0:x1 + 1], diff[y1, x0:x1 + 1], diff[y0:y1 + 1, x0], diff[y0:y1 + 1, x1]])
    assert rim.max() <= 3, f"the fill ends in a hard edge ({rim.max()} grey levels at the rim of what it changed)"


def test_the_drawn_mouth_follows_a_tilted_mouths_lips(portrait):
    """Drawn row by row, the cavity's teeth were a straight band across the box: on a tilted (or smiling) mouth
    they crossed the hole and left the upper lip's edge. They must lie along the upper inner lip."""
    from talking_head.engines.meshwarp import _cavity

    img, face = portrait
    lay = get_layout(face.layout)
    pts = face.points[:, :2].astype(np.float64).copy()
    upper, lower = list(lay.inner_lip_upper), list(lay.inner_lip_lower)
    corners = pts[[upper[0], upper[-1]]]
    across = np.array([-(corners[1] - corners[0])[1], (corners[1] - corners[0])[0]])
    across /= np.linalg.norm(across)
    width = float(np.linalg.norm(corners[1] - corners[0]))
    pts[lower[1:-1]] += 0.35 * width * across  # the mouth opened
    centre = pts[upper + lower].mean(0)
    a = np.deg2rad(25)
    pts = (pts - centre) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + centre  # and tilted
    ring = pts[list(lay.mouth_ring)]
    x0, y0 = np.floor(ring.min(0)).astype(int) - 6
    x1, y1 = np.ceil(ring.max(0)).astype(int) + 7
    region = img[y0:y1, x0:x1]
    local = pts - (x0, y0)
    patch = _cavity(region, ring - (x0, y0), lay, local)
    inside = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(ring - (x0, y0)).astype(np.int32)], 1)
    grey = patch.mean(axis=2)
    teeth = np.argwhere((grey > np.percentile(grey[inside > 0], 85)) & (inside > 0))[:, ::-1] + 0.5
    assert len(teeth) > 20

    def to_segments(p, line):  # the distance from each point to a polyline
        a, b = line[:-1][None], line[1:][None]
        ab = b - a
        s = np.clip(((p[:, None] - a) * ab).sum(-1) / (ab ** 2).sum(-1), 0, 1)
        return np.linalg.norm(p[:, None] - (a + s[..., None] * ab), axis=-1).min(axis=1)

    gap = 0.35 * width
    d = to_segments(teeth, local[upper])  # (drawn row by row: a median of 0.28 of the gap)
    assert np.median(d) < 0.2 * gap, "the teeth are not along the upper lip"
    assert np.percentile(d, 90) < 0.35 * gap
