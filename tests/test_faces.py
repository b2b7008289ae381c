"""Faces are found on every painting, several faces are handled, no face says so."""
import io
from pathlib import Path

import numpy as np
import pytest
from badinput import two_people_frames

from talking_head.errors import FaceNotFoundError
from talking_head.faces import choose_face, detect_face, get_backend
from talking_head.images import load_image


def test_every_painting_in_the_sources_has_its_face_found(shared_dir):
    paintings = sorted((shared_dir / "gallery-src" / "paintings").iterdir())
    assert len(paintings) >= 14
    be = get_backend("mediapipe")
    for p in paintings:
        img = load_image(p)
        faces = be.detect(img)
        assert faces, f"no face in {p.name}"
        f = choose_face(faces)
        x0, y0, x1, y1 = f.box
        # A face, not a speck: at least 5% of the short side, inside the picture.
        assert (y1 - y0) > 0.05 * min(img.shape[:2]), p.name
        assert 0 <= x0 < x1 <= img.shape[1] + 2 and 0 <= y0 < y1 <= img.shape[0] + 2
        assert f.points.shape == (478, 3)


def test_every_gallery_portrait_s_eyes_hold_their_irises_and_the_manifest_has_that_fit():
    """MediaPipe's fit from its usual crop put the corner of Van Gogh's far eye on the painted iris (the iris
    centre 0.06 of the way from it), so the painted eye's outer half lay in the skin beside the mesh's eye and
    swelled into a dark blot when the driver smiled. Such a fit is taken again from two other crops and the
    median kept. The gallery serves the landmarks its manifest stores: they must be that fit."""
    from talking_head.faces.mediapipe_backend import irises_fit
    from talking_head.gallery import Gallery
    g = Gallery.default()
    for pid in g.manifest()["portraits"]:
        face = detect_face(load_image(g.portrait_path(pid)), backend="mediapipe")
        assert irises_fit(face.points), pid
        stored = g.portrait_face(pid).points
        assert irises_fit(stored), f"{pid}: the manifest's landmarks are an old fit"
        # (a pixel of slack: MediaPipe's arithmetic may differ a little between processors)
        assert np.abs(face.points - stored).max() < 1.0, pid


def test_a_misfit_is_outvoted_by_two_other_crops_and_never_mixed_into_a_new_shape():
    """The refit's choices, with the mesh's fits given: a misfit from one crop gives way to the median of
    three; with one refit missing, or a median whose eyes still do not hold their irises, one fit is kept
    whole (a median of three disagreeing fits is a shape none of them had)."""
    from talking_head.faces import FaceLandmarks
    from talking_head.faces.mediapipe_backend import MediaPipeBackend, irises_fit

    def fit(iris_u: float, shift: float = 0.0) -> FaceLandmarks:
        pts = np.zeros((478, 3), np.float32)
        for a, b, iris in ((33, 133, 468), (263, 362, 473)):
            pts[a, :2], pts[b, :2] = (100 + shift, 100), (140 + shift, 100)
            pts[iris, :2] = (100 + shift + 40 * iris_u, 100)
        return FaceLandmarks(pts, "mediapipe478")

    be = MediaPipeBackend.__new__(MediaPipeBackend)  # (no graphs: the mesh's answers are given below)
    def answers(*fits):
        queue = list(fits)
        be._mesh_once = lambda rgb, box, scale: queue.pop(0)
        return be._mesh_in_box(None, (0, 0, 1, 1))

    good = answers(fit(0.5))
    assert irises_fit(good.points) and good.points[468, 0] == 120           # a good fit: no refit
    median = answers(fit(0.05), fit(0.5, 1.0), fit(0.45, 2.0))
    assert irises_fit(median.points) and median.points[33, 0] == 101        # the misfit outvoted
    one = answers(fit(0.05), None, fit(0.5, 3.0))
    assert one.points[33, 0] == 103                                         # the refit that fits, whole
    mixed = answers(fit(0.05), fit(0.1, 1.0), fit(0.6, 2.0))                # the median would hold 0.1
    assert mixed.points[33, 0] == 102 and irises_fit(mixed.points)
    glance = answers(fit(0.1), fit(0.1, 1.0), fit(0.1, 2.0))                # a hard glance, the same thrice
    assert glance.points[33, 0] == 100 and glance.points[468, 0] == 104


def test_several_faces_largest_by_default_or_by_index():
    repo = Path(__file__).resolve().parent.parent / "gallery" / "portraits"
    a = load_image(repo / "gogol.jpg", max_side=600)
    b = load_image(repo / "voltaire.jpg", max_side=420)
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + b.shape[1] + 40, 3), 128, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + 40:] = b
    faces = get_backend("mediapipe").detect(canvas)
    assert len(faces) == 2
    largest = choose_face(faces)
    assert largest.box[0] < a.shape[1]  # Gogol is drawn larger
    right = choose_face(faces, 1)
    assert right.box[0] > a.shape[1]
    with pytest.raises(FaceNotFoundError, match="face number 5"):
        choose_face(faces, 5)


def test_no_face_is_a_clear_error():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(FaceNotFoundError, match="No face was found"):
        detect_face(noise)


def _driver_frame0():
    """The first frame of a gallery driving clip (a real face photographed), as the tracker reads it."""
    from talking_head import video
    from talking_head.gallery import Gallery
    path = Gallery.default().clip_path("subtle_smile")
    return next(video.read_frames(path, video.probe(path), max_side=720))


def test_patches_put_points_back_on_the_skin_the_tracker_missed():
    """A cheek rises 7 px more than the tracker says (as MediaPipe's cheeks lag a smile): the corrected
    points follow the skin there, and nowhere else do they move away from where the skin went."""
    import cv2

    from talking_head.faces.patches import PatchCorrector, patch_points
    from talking_head.topology import get_layout

    img = _driver_frame0()
    pts = get_backend("mediapipe").detect(img)[0].points
    xy = pts[:, :2]
    gap = float(np.linalg.norm(xy[33] - xy[263]))
    cheek = xy[205]  # on the left cheek, beside the nostril
    h, w = img.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)

    def motion(x, y):
        """Where the skin at (x, y) goes: the whole head 3 px right and 2 px down, and the cheek 7 px up."""
        bump = np.exp(-0.5 * ((x - cheek[0]) ** 2 + (y - cheek[1]) ** 2) / (0.3 * gap) ** 2)
        return 3.0 + 0 * bump, 2.0 - 7.0 * bump

    dx, dy = motion(gx, gy)
    moved = cv2.remap(img, gx - dx, gy - dy, cv2.INTER_LINEAR)  # skin at p is drawn at p + motion(p)
    truth = xy + np.stack(motion(xy[:, 0], xy[:, 1]), axis=1)
    tracked = pts.copy()
    tracked[:, :2] += [3.0, 2.0]  # the tracker has the head's motion but not the cheek's

    corrector = PatchCorrector("mediapipe478")
    assert np.array_equal(corrector(img, pts), pts)  # the first frame is the reference, unchanged
    out = corrector(moved, tracked)
    assert np.array_equal(out[:, 2], tracked[:, 2])

    before = np.linalg.norm(tracked[:, :2] - truth, axis=1)
    after = np.linalg.norm(out[:, :2] - truth, axis=1)
    followed = np.zeros(len(pts), bool)
    followed[patch_points(get_layout("mediapipe478"), xy)] = True
    on_cheek = followed & (before > 5.0)
    assert on_cheek.sum() >= 5
    assert after[on_cheek].mean() < 0.4 * before[on_cheek].mean()
    still = before < 0.3
    assert still.sum() > 100 and after[still].mean() < 0.5


def test_patches_never_move_a_point_far_on_a_frame_that_shows_no_face():
    from talking_head.faces.patches import MAX_SHIFT, PatchCorrector

    img = _driver_frame0()
    pts = get_backend("mediapipe").detect(img)[0].points
    gap = float(np.linalg.norm(pts[33, :2] - pts[263, :2]))
    corrector = PatchCorrector("mediapipe478")
    corrector(img, pts)
    rng = np.random.default_rng(0)
    for other in (np.full_like(img, 90), rng.integers(0, 255, img.shape, dtype=np.uint8), img[:, ::-1].copy()):
        out = corrector(other, pts)
        assert np.linalg.norm(out[:, :2] - pts[:, :2], axis=1).max() <= MAX_SHIFT * gap


def test_tracking_on_skin_gives_one_result_per_frame_and_keeps_lost_faces_lost():
    from talking_head.faces.patches import track_on_skin

    img = _driver_frame0()
    shifted = np.roll(img, (4, -6), axis=(0, 1))
    blank = np.full_like(img, 128)
    out = list(track_on_skin(get_backend("mediapipe"), iter([img, blank, shifted, img])))
    assert len(out) == 4 and out[1] is None
    assert all(o is not None and o.shape == (478, 3) for o in (out[0], out[2], out[3]))
    # The face shifted 6 px left and 4 down is found there; the first frame's face again where it was.
    centre = lambda p: p[:, :2].mean(axis=0)
    assert np.allclose(centre(out[2]) - centre(out[0]), [-6, 4], atol=1.0)
    assert np.allclose(centre(out[3]), centre(out[0]), atol=1.0)


def test_a_track_lost_in_a_clip_of_two_people_comes_back_to_the_same_person():
    """Half a second with the speaker hidden sent the track to the other person for the rest of the clip: the
    motion jumped to that face's place and size, and the portrait's head was torn up into its hair."""
    from talking_head.faces import FaceFollower
    from talking_head.faces.patches import track_on_skin

    both, hidden, split = two_people_frames()
    assert len(get_backend("mediapipe").detect(both)) == 2
    follower = FaceFollower()
    out = list(track_on_skin(get_backend("mediapipe"), iter([both, both, hidden, hidden, both, both]), follower))
    assert follower.faces == 2  # (what the render's note says)
    assert out[2] is None and out[3] is None, "the other person was taken for the hidden one"
    for k in (0, 1, 4, 5):
        assert out[k] is not None and out[k][:, 0].max() < split, f"frame {k}: not the person on the left"
    np.testing.assert_allclose(out[4][:, :2].mean(0), out[0][:, :2].mean(0), atol=2.0)


def test_a_second_face_beside_the_followed_one_is_not_followed():
    """Two visitors cheek to cheek: the tracker's mesh takes whichever face it finds in the square around the
    followed one, and followed the smaller face from the first frame."""
    from badinput import close_pair_frame

    from talking_head.faces import FaceFollower
    from talking_head.faces.patches import track_on_skin

    frame, split = close_pair_frame()
    assert len(get_backend("mediapipe").detect(frame)) == 2
    follower = FaceFollower()
    out = list(track_on_skin(get_backend("mediapipe"), iter([frame] * 4), follower))
    assert follower.faces == 2
    for points in out:
        assert points is not None and points[:, 0].mean() < split - 100, "the smaller face was followed"


def _face_at(cx: float, cy: float, side: float):
    from talking_head.faces import FaceLandmarks
    square = np.float32([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]) * [side / 2, side / 2, 0]
    return FaceLandmarks(square + [cx, cy, 0], "test4")


def test_the_follower_takes_the_largest_face_first_and_after_a_loss_never_another_persons():
    from talking_head.faces.base import FaceFollower, place_of

    small_left, big_right = _face_at(100, 100, 60), _face_at(400, 120, 90)
    f = FaceFollower()
    assert f.seen(f.pick([small_left, big_right])) is big_right  # the largest, as a portrait's default
    assert f.faces == 2
    f.seen(_face_at(380, 110, 90))                            # it moved a little while followed
    assert f.pick([small_left]) is None                       # lost: the other person is not it
    near = _face_at(410, 100, 80)
    assert f.pick([small_left, near]) is near                 # back where it was
    moved = _face_at(700, 300, 90)                            # back, but it moved far while hidden
    assert f.pick([moved, _face_at(105, 98, 62)]) is moved    # (the other person moved a little too)
    assert f.pick([]) is None

    # A second person who comes in while the first is followed is counted by the tracker's look around.
    f = FaceFollower()
    f.seen(f.pick([_face_at(200, 200, 100)]))
    f.census([])
    assert f.faces == 1
    newcomer = _face_at(600, 180, 70)
    f.census([place_of(newcomer.box)])
    assert f.faces == 2
    assert f.pick([newcomer]) is None                         # the speaker hidden: the newcomer is not taken
    assert f.pick([newcomer, _face_at(260, 210, 100)]) is not newcomer

    # The other person moves while the followed one is hidden: each detection moves their place along.
    f = FaceFollower()
    f.seen(f.pick([_face_at(100, 100, 80), _face_at(400, 100, 60)]))
    for x in range(400, 330, -10):                            # 10 px a frame, 70 px in all: more than a face size
        assert f.pick([_face_at(x, 100, 60)]) is None
    assert f.pick([_face_at(330, 100, 60), _face_at(120, 110, 80)]).xy.mean(0)[0] == 120
    # Someone who left a second ago: the followed person may come back where they were.
    f = FaceFollower()
    f.seen(f.pick([_face_at(100, 100, 80), _face_at(400, 100, 80)]))
    f.census([])                                              # gone at the look around
    assert f.pick([]) is None                                 # the followed face lost too
    back = _face_at(400, 100, 80)
    assert f.pick([back]) is back

    # One person in the clip: found again wherever it comes back, as before.
    alone = FaceFollower()
    alone.seen(alone.pick([_face_at(100, 100, 60)]))
    elsewhere = _face_at(500, 300, 60)
    assert alone.pick([elsewhere]) is elsewhere


def test_a_person_who_walks_in_later_is_not_taken_for_the_speaker_hidden_for_a_moment():
    """The follower counted only the faces a detection saw, and detections run where the face was lost: someone
    who came in later was unknown, and the speaker hidden for a moment was swapped for them."""
    from talking_head.faces import FaceFollower
    from talking_head.faces.patches import track_on_skin

    both, hidden, split = two_people_frames()
    alone = both.copy()
    alone[:, split:] = 40
    follower = FaceFollower()
    n = FaceFollower.CENSUS_EVERY  # the look around at frame n sees the newcomer
    frames = [alone] * n + [both] * 3 + [hidden] * 2 + [both] * 2
    out = list(track_on_skin(get_backend("mediapipe"), iter(frames), follower))
    assert follower.faces == 2
    assert out[n + 3] is None and out[n + 4] is None, "the newcomer was taken for the hidden speaker"
    assert out[n + 5] is not None and out[n + 5][:, 0].max() < split


def test_a_clip_of_two_people_is_rendered_with_a_note_saying_whom_the_portrait_follows(tmp_path):
    """An upload (tracked, then from the cache) says so; a gallery clip, chosen by the museum, does not."""
    from badinput import make_two_people_clip

    from talking_head.cache import DiskCache
    from talking_head.pipeline import AnimateSettings, animate
    clip = make_two_people_clip(tmp_path)
    cache, settings = DiskCache(tmp_path / "cache"), AnimateSettings(max_side=320)
    for _ in ("tracked", "cached"):
        notes = animate("gallery:mona_lisa", str(clip), None, settings=settings, cache=cache).notes
        assert [(n.reason, n.facts["count"]) for n in notes] == [("clip_several_faces", 2)]
        assert "2 faces" in str(notes[0]) and "crop the clip" in str(notes[0])
    assert animate("gallery:mona_lisa", "gallery:smile_eyes", None, settings=settings, cache=cache).notes == []


def test_a_motion_track_keeps_how_many_faces_its_tracker_saw():
    from talking_head.motion import MotionTrack
    pts = np.random.default_rng(0).uniform(0, 48, (2, 68, 3)).astype(np.float32)
    t = MotionTrack(pts, np.ones(2, bool), "ibug68", 25, (64, 48), faces=3)
    assert MotionTrack.from_bytes(t.to_bytes()).faces == 3
    assert t.smoothed(0).faces == 3
    # A track stored before the count was kept (every shipped gallery clip's) reads as "not recorded".
    buf = io.BytesIO()
    np.savez_compressed(buf, landmarks=t.landmarks, found=t.found, layout=t.layout, fps=np.array([25, 1]),
                        frame_size=np.array(t.frame_size))
    assert MotionTrack.from_bytes(buf.getvalue()).faces == 0
