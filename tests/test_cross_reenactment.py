"""Cross-reenactment measures: a painting driven by someone else follows their face and keeps its own."""
import math

import numpy as np
import pytest
from conftest import gallery_portrait

from talking_head import bench, video
from talking_head.cross_reenactment import (
    MIN_SPREAD,
    SIGNALS,
    FaceDescriptor,
    expression_signals,
    following,
    identity_distance,
)
from talking_head.gallery import Gallery
from talking_head.metrics import Dlib68


@pytest.fixture(scope="module")
def face68():
    """dlib's 68 points on a real face: the first frame of a gallery clip."""
    path = Gallery.default().clip_path("smile_eyes")
    frame = next(iter(video.read_frames(path, video.probe(path))))
    return Dlib68()(frame)


def _moved(points, angle_deg=0.0, scale=1.0, shift=(0.0, 0.0)):
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = points.mean(axis=0)
    return (points - c) @ rot.T * scale + c + np.asarray(shift)


def test_the_signals_follow_the_face_and_not_its_size_place_or_tilt(face68):
    opened = face68.copy()
    opened[[65, 66, 67]] += (0, 8)                       # the lower inner lip drops 8 px
    frames = np.stack([face68, opened, _moved(opened, 20, 1.7, (40, -25))])
    s = expression_signals(frames)
    assert s["mouth"][1] > s["mouth"][0] + 0.05, "an open mouth did not read as open"
    for name in ("mouth", "eyes", "brows", "turn", "nod"):
        assert s[name][2] == pytest.approx(s[name][1], abs=1e-9), f"{name} changed when the face was moved"
    assert s["tilt"][2] - s["tilt"][1] == pytest.approx(20, abs=1e-6)
    for name in ("eyes", "brows", "turn", "nod"):
        assert s[name][1] == pytest.approx(s[name][0]), f"opening the mouth moved {name}"


def test_each_signal_moves_its_own_way_and_a_blink_moves_only_the_eyes(face68):
    def change(edit):
        moved = face68.copy()
        edit(moved)
        after = expression_signals(np.stack([face68, moved]))
        return {name: after[name][1] - after[name][0] for name in SIGNALS}

    def blink(p):
        p[[37, 38]] = p[[41, 40]]
        p[[43, 44]] = p[[47, 46]]

    def raise_brows(p):
        p[17:27] -= (0, 6)

    def turn_left(p):                                   # the nose tip toward the outline's far end (point 16)
        p[30] += (6, 0)

    def nod_down(p):                                    # the nose tip nearer the eyes: a head tipped forward
        p[30] -= (0, 6)

    d = change(blink)
    assert d["eyes"] < -0.05 and d["brows"] == pytest.approx(0) and d["tilt"] == pytest.approx(0)
    assert change(raise_brows)["brows"] > 0.05
    assert change(turn_left)["turn"] > 0.02
    assert change(nod_down)["nod"] < -0.05


def test_following_is_the_correlation_and_says_nothing_of_a_movement_the_driver_does_not_make():
    t = np.linspace(0, 6, 60)
    driver = {n: MIN_SPREAD[n] * 3 * np.sin(t) for n in SIGNALS}
    driver["brows"] = np.full_like(t, 0.2)                # the driver's brows never move
    result = {n: 0.4 * v + 7 for n, v in driver.items()}  # less far, elsewhere, in time
    result["mouth"] = -result["mouth"]                   # closes when the driver opens
    scores = following(driver, result)
    assert scores["eyes"] == pytest.approx(1.0) and scores["tilt"] == pytest.approx(1.0)
    assert scores["mouth"] == pytest.approx(-1.0)
    assert math.isnan(scores["brows"])
    for level in (0.0, 0.1):  # a still result does not follow: 0, whatever its level (not skipped as NaN)
        still = following(driver, {n: np.full_like(t, level) for n in SIGNALS})
        assert math.isnan(still.pop("brows")) and set(still.values()) == {0.0}


def test_a_sitter_s_descriptor_holds_across_sizes_and_tells_two_sitters_apart():
    det, desc = Dlib68(), FaceDescriptor()
    ids = {}
    for pid in ("mona_lisa", "newton"):
        img, _ = gallery_portrait(pid, 800)
        ids[pid] = desc.describe(img, det.detect(img))
    small, _ = gallery_portrait("mona_lisa", 480)
    assert identity_distance(desc.describe(small, det.detect(small)), ids["mona_lisa"]) < 0.2
    assert identity_distance(ids["mona_lisa"], ids["newton"]) > 0.5


def test_the_mona_lisa_performs_a_grin_and_stays_herself():
    """What `bench --cross` reports, on one portrait and the shortest clip: her mouth opens and closes with
    the driver's, and her face stays much nearer her own than the driver's."""
    (row,) = bench.cross_reenactment(["mona_lisa"], ["smile_eyes"], stride=4)
    assert row["frames"] >= 15
    assert row["mouth"] > 0.8
    assert row["driver_identity"] > 0.6, "the driver reads as the Mona Lisa: the identity check sees nothing"
    assert row["identity"] < 0.4


def test_bench_cross_prints_the_table_for_the_portraits_and_clips_asked(capsys):
    from talking_head.cli import main
    assert main(["bench", "--cross", "--no-speed", "--portraits", "mona_lisa", "--clips", "smile_eyes",
                 "--cross-stride", "6"]) == 0
    out = capsys.readouterr().out
    assert "Engine alone" not in out, "--no-speed still timed the engine"
    header = next(line for line in out.splitlines() if line.startswith("| portrait | clip |"))
    assert header.split(" | ")[3:9] == list(SIGNALS)
    (row,) = [line for line in out.splitlines() if line.startswith("| mona_lisa | smile_eyes |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[2]) >= 8 and float(cells[3]) > 0.5  # frames scored; the mouth follows


@pytest.mark.parametrize("value, says", [("0", "must be 1 or more, not 0"), ("x", "expected a whole number, not 'x'")])
def test_bench_refuses_a_stride_that_would_score_nothing(value, says, capsys):
    from talking_head.cli import main
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--cross", "--no-speed", "--cross-stride", value])
    assert stop.value.code == 2 and says in capsys.readouterr().err
