"""Bad and awkward inputs through the one entry point, ``talking_head.animate``, and the CLI.

Every case ends in one of two ways a user can live with:

* a valid mp4 with one frame per decodable driving frame (counted independently of the code under
  test wherever we made the clip ourselves), or
* a :class:`TalkingHeadError` whose message is one line that says what to do,

and in both cases nothing half-written is left behind. The inputs are generated at test time by
``tests/badinput.py`` (nothing large is committed).

Per-case decisions: an image that is merely in an unusual but legitimate format (CMYK, 16-bit,
palette, transparency, grayscale, animated GIF, EXIF-rotated) must WORK and look like the portrait;
broken, empty, non-image, tiny or gigantic images must fail cleanly. Clips without a usable video
stream, without a face or longer than the limit must fail cleanly; audio-less, variable-frame-rate
and rotated phone clips must work. A truncated clip and a one-frame clip may do either.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import badinput
import numpy as np
import pytest
from conftest import live_threads
from PIL import Image

from talking_head import TalkingHeadError, animate
from talking_head.errors import (
    Cancelled,
    ClipError,
    FaceNotFoundError,
    ImageError,
    SettingsError,
)
from talking_head.pipeline import TRACKING_THREAD, AnimateSettings
from talking_head.video import ClipTooLongError, probe

REPO = Path(__file__).resolve().parent.parent
MANIFEST = json.loads((REPO / "gallery" / "manifest.json").read_text(encoding="utf-8"))
PORTRAIT = "gallery:mona_lisa"
CLIP = "gallery:smile_eyes"
CLIP_FRAMES = MANIFEST["clips"]["smile_eyes"]["n_frames"]  # 78
FAST = AnimateSettings(max_side=480)

# A message must tell the user what to do: one of these verbs.
ACTION = re.compile(r"\b(choose|use|upload|trim|export|re-export|re-encode|save|scale|try|check|create|fix|"
                    r"copy|convert|crop|record|resize|pick|select|shorten|see)\b", re.IGNORECASE)
# Things that belong in a log, not in a sentence for a person.
NOISE = re.compile(r"Traceback|File \"|Errno|Error\(|@ 0x|\[mov,|\[in#|moov atom|Invalid data found|"
                   r"ffmpeg version|returned non-zero|NoneType|object has no attribute", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return badinput.build_corpus(tmp_path_factory.mktemp("badinput"))


# ffmpeg children alive before each test's render (another test file may still hold a reader).
_FFMPEG_BEFORE: dict[Path, set[int]] = {}


def _new_out_dir(parent: Path) -> Path:
    d = parent / "out"
    d.mkdir()
    _FFMPEG_BEFORE[d] = set(_child_ffmpegs())
    return d


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return _new_out_dir(tmp_path)


def _child_ffmpegs() -> list[int]:
    """Live (non-zombie or zombie) ffmpeg children of this process: a failed render must reap them."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == me and "ffmpeg" in stat[stat.find("(") + 1: stat.rfind(")")]:
            found.append(int(entry))
    return found


def assert_clean_dir(out_dir: Path, out: Path, *, success: bool) -> None:
    partials = [p.name for p in out_dir.parent.rglob("*partial*")]
    assert not partials, f"partial files left behind: {partials}"
    if success:
        assert [p.name for p in out_dir.iterdir()] == [out.name]
    else:
        assert not out.exists(), "a failed render left its output file"
        assert list(out_dir.iterdir()) == [], f"a failed render left files: {list(out_dir.iterdir())}"
    left = set(_child_ffmpegs()) - _FFMPEG_BEFORE.get(out_dir, set())
    assert not left, f"ffmpeg processes were left running or unreaped: {sorted(left)}"


def assert_helpful(exc: BaseException, expected: type[TalkingHeadError] = TalkingHeadError) -> str:
    assert isinstance(exc, expected), f"{type(exc).__name__} is not a {expected.__name__}: {exc}"
    msg = str(exc)
    assert msg.strip(), "empty error message"
    assert msg == msg.strip() and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    assert len(msg) <= 300, f"too long for one sentence ({len(msg)} chars): {msg}"
    assert msg.rstrip("\"')").endswith((".", "!")), f"not a finished sentence: {msg}"
    assert not NOISE.search(msg), f"log or traceback text in the message: {msg}"
    assert ACTION.search(msg), f"the message does not say what to do: {msg}"
    assert sentences(msg) == 1, f"not one sentence (errors.py: str() is one sentence): {msg}"
    return msg


def sentences(msg: str) -> int:
    """Sentences in a message; abbreviations, decimals, file names and versions do not end one."""
    text = re.sub(r"\b(e\.g|i\.e|etc|vs)\.", "", msg)
    return len([s for s in re.split(r"[.!?](?:\s+|$)", text) if s.strip()])


def render(portrait, clip, out_dir: Path, name: str = "result.mp4", settings: AnimateSettings = FAST, **kw):
    """(result, None) or (None, TalkingHeadError). Any other exception propagates: it is a bug."""
    out = out_dir / name
    try:
        return animate(portrait, clip, out, settings=settings, **kw), None
    except TalkingHeadError as e:
        return None, e


def expect_error(portrait, clip, out_dir: Path, expected: type[TalkingHeadError], settings=FAST) -> str:
    res, err = render(portrait, clip, out_dir, settings=settings)
    assert err is not None, f"expected {expected.__name__}, but it rendered {res}"
    msg = assert_helpful(err, expected)
    assert_clean_dir(out_dir, out_dir / "result.mp4", success=False)
    return msg


def video_or_clean_refusal(clip, out_dir: Path, n_frames: int | None):
    """Render ``clip``: a playable video of ``n_frames`` (its probe info), or a helpful ClipError with
    nothing left behind (None)."""
    res, err = render(PORTRAIT, clip, out_dir)
    if err is not None:
        assert_helpful(err, ClipError)
        assert_clean_dir(out_dir, out_dir / "result.mp4", success=False)
        return None
    return expect_video(res, out_dir, n_frames)


def expect_video(res, out_dir: Path, n_frames: int | None):
    """The result is a playable mp4 with n_frames frames (None: any positive number)."""
    out = out_dir / "result.mp4"
    assert res is not None
    assert res.path == out and out.is_file()
    info = probe(out)
    assert info.codec == "h264"
    assert info.n_frames == res.n_frames
    if n_frames is None:
        assert info.n_frames > 0
    else:
        assert info.n_frames == n_frames
    assert (info.width, info.height) == tuple(res.size)
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert_clean_dir(out_dir, out, success=True)
    return info


def first_frame(path: Path) -> np.ndarray:
    """Frame 0 of a video as RGB, decoded by ffmpeg directly (not through the code under test)."""
    info = probe(path)
    raw = subprocess.run([badinput.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)


def luma(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def looks_like_base_portrait(video_path: Path, *, mask_outside_oval: bool = False) -> float:
    """Mean absolute luma difference between frame 0 and the upright base portrait at that size.

    Outside the animated face the canvas is the portrait itself, so a correctly decoded and
    oriented image gives a small number; a sideways, inverted, wrongly scaled (16-bit) or wrong
    GIF frame gives a large one.
    """
    frame = first_frame(video_path)
    h, w = frame.shape[:2]
    ref = badinput._base_image().resize((w, h), Image.BILINEAR)
    d = np.abs(luma(frame) - luma(np.asarray(ref)))
    if mask_outside_oval:
        yy, xx = np.mgrid[0:h, 0:w]
        d = d[((xx - w / 2) / (0.45 * w)) ** 2 + ((yy - h / 2) / (0.46 * h)) ** 2 <= 1.0]
    return float(d.mean())


# ---------------------------------------------------------------------------------------------
# portraits that must be refused
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, hint", [
    ("empty", None),
    ("text_as_jpg", None),
    ("truncated_jpeg", None),
    ("truncated_png", None),
    ("bomb_header", "scale"),
    ("bomb_1bit", "scale"),
    ("bomb_64mp", "scale"),           # over the app's 40 MP limit but under Pillow's own hard limit
    ("huge_file", "mb"),              # a 51 MB file
    ("one_pixel", None),
])
def test_unusable_portrait_is_refused_with_a_helpful_message(corpus, out_dir, case, hint):
    t = time.perf_counter()
    msg = expect_error(corpus[case], CLIP, out_dir, ImageError)
    # A decompression bomb is refused from its header, not after decoding 400+ megapixels.
    assert time.perf_counter() - t < 10
    if hint:
        assert hint in msg.lower(), msg


def test_missing_portrait_file(tmp_path, out_dir):
    expect_error(tmp_path / "no_such_portrait.jpg", CLIP, out_dir, ImageError)


def test_portrait_without_a_face(corpus, out_dir):
    expect_error(corpus["no_face"], CLIP, out_dir, FaceNotFoundError)


# ---------------------------------------------------------------------------------------------
# portraits in unusual but legitimate formats must work
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["webp", "tiff", "cmyk_jpeg", "gray16_png", "float_tiff", "palette_png", "rgba_png",
                                  "gray_jpeg", "animated_gif"])
def test_unusual_image_format_renders_like_the_portrait(corpus, out_dir, case):
    res, err = render(corpus[case], CLIP, out_dir)
    assert err is None, f"{case} should work but raised: {err}"
    info = expect_video(res, out_dir, CLIP_FRAMES)
    assert info.height > info.width  # the portrait is taller than wide
    assert 478 <= info.height <= 480
    # The canvas is the portrait: right brightness (16-bit scaling), right GIF frame (the first,
    # not the darkened or mirrored ones), colours converted (CMYK), transparency handled.
    diff = looks_like_base_portrait(res.path, mask_outside_oval=(case == "rgba_png"))
    assert diff < 12, f"frame 0 of the {case} render does not look like the portrait (mean luma diff {diff:.1f})"


def test_exif_rotated_portrait_is_used_upright(corpus, out_dir):
    res, err = render(corpus["exif_rotated"], CLIP, out_dir)
    assert err is None, f"an EXIF-rotated JPEG should work but raised: {err}"
    info = expect_video(res, out_dir, CLIP_FRAMES)
    up_w, up_h = badinput.upright_size()
    assert info.height > info.width, "the EXIF orientation was ignored: the output is landscape"
    assert abs(info.width / info.height - up_w / up_h) < 0.01
    # Upright, not upside down or mirrored: the canvas matches the upright portrait.
    diff = looks_like_base_portrait(res.path)
    assert diff < 12, f"the EXIF-rotated portrait was not turned upright (mean luma diff {diff:.1f})"
    # The face was found where it is in the upright portrait (upper part of the canvas).
    _, y0, _, y1 = res.crop_box
    assert (y0 + y1) / 2 < info.height * 0.6


# ---------------------------------------------------------------------------------------------
# several faces
# ---------------------------------------------------------------------------------------------

GROUP = AnimateSettings(max_side=960)  # at 480 the three faces would be tiny


def _tile_of(crop_box, canvas_w: int) -> int:
    """Which member's tile (0, 1, 2 from the left) holds the centre of crop_box."""
    s = canvas_w / badinput.group_canvas_width()
    cx = (crop_box[0] + crop_box[2]) / 2 / s
    for i, (a, b) in enumerate(badinput.group_tile_spans()):
        if a - 10 <= cx <= b + 10:
            return i
    raise AssertionError(f"crop centre {cx:.0f} is in no tile: {badinput.group_tile_spans()}")


@pytest.fixture(scope="module")
def group_default(corpus, tmp_path_factory):
    d = _new_out_dir(tmp_path_factory.mktemp("group_default"))
    res, err = render(corpus["group"], CLIP, d, settings=GROUP)
    assert err is None, f"a portrait with several faces should work with the largest face, but raised: {err}"
    expect_video(res, d, CLIP_FRAMES)
    return res


def test_several_faces_default_is_the_largest(group_default):
    # badinput draws the leftmost member largest.
    assert _tile_of(group_default.crop_box, group_default.size[0]) == 0
    # ...and the user is told that only one of the three was animated, and how to choose another.
    [note] = group_default.notes
    assert note.reason == "several_faces" and note.facts["count"] == 3
    assert "3 faces" in note and "the largest" in note and "--face" in note


@pytest.mark.parametrize("index", [1, 2])
def test_several_faces_face_index_picks_another_face(corpus, out_dir, group_default, index):
    res, err = render(corpus["group"], CLIP, out_dir, settings=AnimateSettings(max_side=960, face_index=index))
    assert err is None, f"face_index={index} should work but raised: {err}"
    expect_video(res, out_dir, CLIP_FRAMES)
    assert res.crop_box != group_default.crop_box
    assert _tile_of(res.crop_box, res.size[0]) == index
    assert [n.reason for n in res.notes] == ["chosen_face"] and f"face number {index}" in res.notes[0]


@pytest.mark.parametrize("index", [3, 7, -1])
def test_out_of_range_face_index_is_refused(corpus, out_dir, index):
    msg = expect_error(corpus["group"], CLIP, out_dir, FaceNotFoundError,
                       settings=AnimateSettings(max_side=960, face_index=index))
    assert "3 face" in msg, msg


def test_face_index_on_a_single_face_gallery_portrait(out_dir):
    ok, err = render(PORTRAIT, CLIP, out_dir, settings=AnimateSettings(max_side=480, face_index=0))
    assert err is None, err
    expect_video(ok, out_dir, CLIP_FRAMES)
    (out_dir / "result.mp4").unlink()
    expect_error(PORTRAIT, CLIP, out_dir, FaceNotFoundError, settings=AnimateSettings(max_side=480, face_index=1))


# ---------------------------------------------------------------------------------------------
# clips that must be refused
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, expected", [
    ("audio_only", ClipError),        # an m4a: no video stream at all
    ("zero_frames", ClipError),       # an mp4 written from zero frames: no track
    ("garbled_clip", ClipError),      # a video stream of which not one frame decodes
    ("random_bytes", ClipError),      # a corrupt header: noise named .mp4
    ("no_face_clip", FaceNotFoundError),
    ("face_partly_visible", FaceNotFoundError),  # a face in 8 of 25 frames
])
def test_unusable_clip_is_refused_with_a_helpful_message(corpus, out_dir, case, expected):
    expect_error(PORTRAIT, corpus[case], out_dir, expected)


def test_a_gallery_clip_is_not_held_to_the_uploads_length_limit(tmp_path):
    """A museum added a 45-s clip (`gallery add-clip --max-duration 60`); every render and `prerender` then
    refused it as too long. The limit is for visitors' uploads: the same file uploaded is still refused."""
    from talking_head.gallery import Gallery

    short = AnimateSettings(max_side=240, max_duration=2.0)  # (smile_eyes lasts 3.1 s)
    done = animate(PORTRAIT, "gallery:smile_eyes", tmp_path / "gallery.mp4", settings=short)
    assert done.n_frames == 78
    with pytest.raises(ClipTooLongError):
        animate(PORTRAIT, Gallery.default().clip_path("smile_eyes"), tmp_path / "upload.mp4", settings=short)
    assert not (tmp_path / "upload.mp4").exists()


@pytest.mark.parametrize("portrait, clip", [
    ("gallery:no_such_portrait", CLIP),
    (PORTRAIT, "gallery:no_such_clip"),
    ("gallery:../../etc/passwd", CLIP),
    (PORTRAIT, "gallery:Smile Eyes"),
], ids=["unknown-portrait", "unknown-clip", "path-as-portrait-id", "bad-clip-id"])
def test_bad_gallery_ids(out_dir, portrait, clip):
    expect_error(portrait, clip, out_dir, TalkingHeadError)


def test_output_folder_missing(tmp_path):
    out = tmp_path / "no_such_folder" / "result.mp4"
    res, err = None, None
    try:
        res = animate(PORTRAIT, CLIP, out, settings=FAST)
    except TalkingHeadError as e:
        err = e
    assert err is not None, f"rendered into a folder that does not exist: {res}"
    assert_helpful(err)
    assert not out.parent.exists()
    assert not list(tmp_path.rglob("*partial*"))


def test_still_image_as_clip(out_dir):
    expect_error(PORTRAIT, badinput.BASE_PORTRAIT, out_dir, ClipError)


def test_missing_clip_and_folder_as_clip(tmp_path, out_dir):
    expect_error(PORTRAIT, tmp_path / "no_such_clip.mp4", out_dir, ClipError)
    expect_error(PORTRAIT, tmp_path, out_dir, ClipError)


def test_clip_longer_than_the_limit(out_dir):
    """(A gallery clip is not held to this limit: test_a_gallery_clip_is_not_held_to_the_uploads_length_limit.)"""
    clip = str(badinput.BASE_CLIP)
    msg = expect_error(PORTRAIT, clip, out_dir, ClipTooLongError, settings=AnimateSettings(max_side=480, max_duration=1.0))
    assert "trim" in msg.lower(), msg
    assert "1 s" in msg, msg
    # An upload is tracked from its header on while the probe counts its frames: the probe's verdict
    # stops that tracking too.
    assert not live_threads(TRACKING_THREAD)


# ---------------------------------------------------------------------------------------------
# awkward clips that must work (or, where marked, may fail cleanly)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["truncated_clip", "truncated_faststart"])
def test_truncated_clip_renders_what_is_there_or_fails_cleanly(corpus, out_dir, case):
    info = video_or_clean_refusal(corpus[case], out_dir, None)
    if info is not None:
        assert 0 < info.n_frames < CLIP_FRAMES
        assert info.n_frames == probe(corpus[case]).n_frames


def test_audio_less_clip(corpus, out_dir):
    res, err = render(PORTRAIT, corpus["short_no_audio"], out_dir)
    assert err is None, err
    info = expect_video(res, out_dir, badinput.SHORT_FRAMES)
    assert not info.has_audio
    assert info.fps == 25


def test_clip_with_audio_keeps_it(corpus, out_dir):
    res, err = render(PORTRAIT, corpus["short_with_audio"], out_dir)
    assert err is None, err
    info = expect_video(res, out_dir, badinput.SHORT_FRAMES)
    assert info.has_audio
    assert abs(info.duration - 1.0) < 0.05


def test_variable_frame_rate_clip(corpus, out_dir):
    assert probe(corpus["vfr_clip"]).variable_frame_rate  # the corpus really is VFR
    res, err = render(PORTRAIT, corpus["vfr_clip"], out_dir)
    assert err is None, err
    info = expect_video(res, out_dir, badinput.VFR_FRAMES)
    # Each frame is shown at its own time, so the render lasts as long as the clip (~1.32 s).
    assert abs(info.duration - 1.32) < 0.1, info
    assert probe(res.path).frame_times is not None  # its rate varies as the clip's does


def test_rotated_phone_clip_is_used_upright(corpus, out_dir):
    sbs = AnimateSettings(max_side=480, side_by_side=True)
    res, err = render(PORTRAIT, corpus["phone_rotated"], out_dir, "rotated.mp4", settings=sbs)
    assert err is None, f"a rotated phone clip should work but raised: {err}"
    ref, err = render(PORTRAIT, corpus["phone_upright"], out_dir, "upright.mp4", settings=sbs)
    assert err is None, err
    assert res.n_frames == ref.n_frames == badinput.SHORT_FRAMES
    rot, up = probe(res.path), probe(ref.path)
    assert rot.n_frames == badinput.SHORT_FRAMES
    # The driving half is as wide as an upright 384x512 clip at the output height, not 512x384.
    assert (rot.width, rot.height) == (up.width, up.height)
    canvas_w = up.width - round(384 * up.height / 512)
    assert abs(canvas_w - 320) <= 2, (up.width, up.height)
    # Same upright driving frames, same motion: the two renders look the same.
    d = np.abs(first_frame(res.path).astype(np.int16) - first_frame(ref.path).astype(np.int16)).mean()
    assert d < 4, f"the rotated clip's render differs from the upright one's (mean diff {d:.1f})"
    assert not list(out_dir.parent.rglob("*partial*"))


def test_clip_whose_name_looks_like_a_protocol_and_an_option(corpus, out_dir):
    assert corpus["odd_name_clip"].name.startswith("-clip:")
    res, err = render(PORTRAIT, corpus["odd_name_clip"], out_dir)
    assert err is None, err
    expect_video(res, out_dir, badinput.SHORT_FRAMES)


def test_animated_gif_as_driving_clip_works_or_fails_cleanly(corpus, out_dir):
    video_or_clean_refusal(corpus["gif_clip"], out_dir, badinput.SHORT_FRAMES)


def test_one_frame_clip_renders_one_frame_or_fails_cleanly(corpus, out_dir):
    video_or_clean_refusal(corpus["one_frame_clip"], out_dir, 1)


def test_cancel_mid_render_leaves_nothing_behind(out_dir):
    """Not a bad input, but the same promise: a render stopped half-way leaves no file and no ffmpeg.

    The caller still holds the exception here (as an app that logs or shows it does), so the
    driving clip's reader must have been closed by the pipeline itself, not by garbage collection.
    """
    checks = {"n": 0}

    def cancel():
        checks["n"] += 1
        return checks["n"] > 30  # well into the frame loop of the 78-frame clip

    res, err = render(PORTRAIT, CLIP, out_dir, cancel=cancel)
    assert isinstance(err, Cancelled), (res, err)
    assert str(err).strip() and "\n" not in str(err)
    assert_clean_dir(out_dir, out_dir / "result.mp4", success=False)


# ---------------------------------------------------------------------------------------------
# the CLI: exit 2 and one "error: ..." line, or exit 0
# ---------------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talking_head", "animate", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180, check=False)


def _our_stderr(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("case", ["not_an_image", "no_face", "too_long", "corrupt_clip", "strength_nan"])
def test_cli_reports_one_error_line_and_exits_2(corpus, out_dir, case):
    portrait, clip, extra = {
        "not_an_image": (str(corpus["text_as_jpg"]), CLIP, []),
        "no_face": (str(corpus["no_face"]), CLIP, []),
        "too_long": (PORTRAIT, str(badinput.BASE_CLIP), ["--max-duration", "1"]),
        "corrupt_clip": (PORTRAIT, str(corpus["random_bytes"]), []),
        "strength_nan": (PORTRAIT, CLIP, ["--strength", "nan"]),   # was an internal error from OpenCV, on two lines
    }[case]
    out = out_dir / "cli.mp4"
    r = _cli("--portrait", portrait, "--clip", clip, "--out", str(out), "--max-side", "480", *extra)
    lines = _our_stderr(r.stderr)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert len(lines) == 1, f"expected one error line, got:\n{r.stderr}"
    assert lines[0].startswith("error: ")
    msg = lines[0][len("error: "):]
    assert msg and not NOISE.search(msg) and ACTION.search(msg), lines[0]
    assert "Wrote" not in r.stdout
    assert_clean_dir(out_dir, out, success=False)


@pytest.mark.parametrize("field, value, says", [
    ("expression_strength", 50.0, "from 0 to 2 for the expression strength"),   # smeared the face away
    ("expression_strength", -3.0, "from 0 to 2"),
    ("expression_strength", float("nan"), "from 0 to 2"),
    ("head_strength", -5.0, "head motion strength"),
    ("smoothing", 1e9, "from 0 to 2 for the smoothing"),
    ("max_side", 10, "from 240 to 8192 for the canvas's long side"),            # a 6x10 video, its label unseen
    ("max_side", -5, "240"),                                                       # was an internal error
    ("max_side", 480.5, "whole number"),
    ("max_duration", 0.0, "longest clip accepted"),
])
def test_settings_out_of_range_are_refused_with_the_range(field, value, says):
    with pytest.raises(SettingsError) as e:
        AnimateSettings(**{field: value})
    msg = assert_helpful(e.value, SettingsError)
    assert says in msg, msg
    assert AnimateSettings(**{field: {"max_side": 240, "max_duration": 0.1}.get(field, 2.0)})  # the ends are fine


def test_cli_good_case_exits_0(out_dir):
    out = out_dir / "cli.mp4"
    r = _cli("--portrait", PORTRAIT, "--clip", CLIP, "--out", str(out), "--max-side", "480")
    assert r.returncode == 0, r.stderr
    assert not [ln for ln in _our_stderr(r.stderr) if ln.startswith(("error", "Traceback"))], r.stderr
    assert "Wrote" in r.stdout
    assert probe(out).n_frames == CLIP_FRAMES
    assert_clean_dir(out_dir, out, success=True)


# ---------------------------------------------------------------------------------------------
# every case of the corpus through the library, the CLI and the app's API
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """What one corpus file must do, wherever it is used.

    A render must have ``frames`` frames (``either``: or fail cleanly with a ClipError); a refusal
    raises ``error`` in the library, and on every surface its message matches ``says``, the
    explanation that belongs to this case and no other.
    """
    role: str                               # "portrait" (driven by smile_eyes) or "clip" (driving mona_lisa)
    frames: int | None = None
    error: type[TalkingHeadError] | None = None
    says: str = ""
    either: bool = False


_RENDER_78 = Case("portrait", frames=CLIP_FRAMES)
_BOMB = r"more than 40 megapixels; scale it down"
CASES: dict[str, Case] = {
    # portraits
    "empty": Case("portrait", error=ImageError, says=r"is empty"),
    "text_as_jpg": Case("portrait", error=ImageError, says=r"not an image"),
    "truncated_jpeg": Case("portrait", error=ImageError, says=r"damaged or incomplete"),
    "truncated_png": Case("portrait", error=ImageError, says=r"damaged or incomplete"),
    "bomb_header": Case("portrait", error=ImageError, says=_BOMB),
    "bomb_1bit": Case("portrait", error=ImageError, says=_BOMB),       # a valid 20000x20000 PNG
    "bomb_64mp": Case("portrait", error=ImageError, says=_BOMB),
    "huge_file": Case("portrait", error=ImageError, says=r"(?i)over the 50 MB limit|exceeds the maximum file size of 52428800 bytes"),
    "one_pixel": Case("portrait", error=ImageError, says=r"only 1x1 pixels"),
    "webp": _RENDER_78, "tiff": _RENDER_78, "cmyk_jpeg": _RENDER_78, "gray16_png": _RENDER_78, "float_tiff": _RENDER_78,
    "palette_png": _RENDER_78, "rgba_png": _RENDER_78, "gray_jpeg": _RENDER_78, "animated_gif": _RENDER_78,
    "exif_rotated": _RENDER_78, "group": _RENDER_78, "six_faces": _RENDER_78,
    "no_face": Case("portrait", error=FaceNotFoundError, says=r"No face was found in the portrait"),
    "tiny_face": Case("portrait", error=FaceNotFoundError, says=r"at least about 80 pixels tall"),
    "profile": Case("portrait", error=FaceNotFoundError, says=r"facing forward"),
    # clips
    "audio_only": Case("clip", error=ClipError, says=r"no video stream \(it looks like an audio-only file\)"),
    "zero_frames": Case("clip", error=ClipError, says=r"no video stream \(the file is empty or its index is damaged\)"),
    "no_video_stream": Case("clip", error=ClipError, says=r"no video stream \(it holds only subtitles or data\)"),
    "corrupt_header": Case("clip", error=ClipError, says=r"no video stream \(the file is empty or its index is damaged\)"),
    "garbled_clip": Case("clip", error=ClipError, says=r"Not a single video frame .* could be decoded"),
    "random_bytes": Case("clip", error=ClipError, says=r"not a video file that can be opened"),
    "too_long": Case("clip", error=ClipTooLongError, says=r"31\.0 s long but the limit is 30 s; trim it"),
    "no_face_clip": Case("clip", error=FaceNotFoundError, says=r"No face was found in the driving clip"),
    "face_partly_visible": Case("clip", error=FaceNotFoundError, says=r"visible in only 8 of 25 frames"),
    "truncated_clip": Case("clip", either=True, says=r"re-export|export"),
    "truncated_faststart": Case("clip", either=True, says=r"re-export|export"),
    "one_frame_clip": Case("clip", frames=1, either=True, says=r"choose another clip|re-export"),
    "gif_clip": Case("clip", frames=badinput.SHORT_FRAMES, either=True, says=r"re-export|export"),
    "short_no_audio": Case("clip", frames=badinput.SHORT_FRAMES),
    "short_with_audio": Case("clip", frames=badinput.SHORT_FRAMES),
    "vfr_clip": Case("clip", frames=badinput.VFR_FRAMES),
    "odd_name_clip": Case("clip", frames=badinput.SHORT_FRAMES),
    "phone_upright": Case("clip", frames=badinput.SHORT_FRAMES),
    "phone_rotated": Case("clip", frames=badinput.SHORT_FRAMES),
    "fps240": Case("clip", frames=badinput.HIGH_FPS_FRAMES),
    "uhd_4k": Case("clip", frames=badinput.UHD_FRAMES),
    "face_leaves_halfway": Case("clip", frames=badinput.SHORT_FRAMES),
}
HANG_S = 180  # no single case may take longer, anywhere


def test_the_table_covers_the_whole_corpus(corpus):
    assert set(CASES) == set(corpus), set(CASES) ^ set(corpus)
    assert len(CASES) >= 40


def _inputs(case: Case, path: Path) -> tuple[str, str]:
    return (str(path), CLIP) if case.role == "portrait" else (PORTRAIT, str(path))


def _check_message(name: str, case: Case, msg: str) -> None:
    assert re.search(case.says, msg), f"{name}: the message is not this case's own explanation: {msg}"
    assert not NOISE.search(msg), f"{name}: log or traceback text in the message: {msg}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_through_the_library(corpus, out_dir, tmp_path, monkeypatch, name):
    """animate() renders the case correctly or raises its own one-line message; within HANG_S; no
    output, partial file, temporary file or ffmpeg left behind."""
    case = CASES[name]
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    portrait, clip = _inputs(case, corpus[name])
    box: dict = {}

    def work():
        try:
            box["r"] = render(portrait, clip, out_dir)
        except BaseException as e:  # noqa: BLE001 - not a TalkingHeadError: a bug, re-raised below
            box["bug"] = e

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(HANG_S)
    assert not worker.is_alive(), f"{name}: the render hung for more than {HANG_S} s"
    if "bug" in box:
        raise box["bug"]
    res, err = box["r"]
    if err is None:
        assert case.error is None, f"{name} should be refused ({case.error.__name__}) but rendered {res}"
        expect_video(res, out_dir, case.frames if not (case.either and case.frames is None) else None)
    else:
        assert case.error is not None or case.either, f"{name} should render but raised: {err}"
        assert_helpful(err, case.error or ClipError)
        _check_message(name, case, str(err))
        assert_clean_dir(out_dir, out_dir / "result.mp4", success=False)
    assert list(private_tmp.iterdir()) == [], f"{name}: temporary files left: {list(private_tmp.iterdir())}"


@pytest.fixture(scope="session")
def cli_runs(corpus, tmp_path_factory):
    """Every case through ``python -m talking_head animate`` (two at a time: the CI has two cores)."""
    root = tmp_path_factory.mktemp("cli_matrix")

    def one(name: str):
        case = CASES[name]
        work = root / name
        (work / "out").mkdir(parents=True)
        (work / "tmp").mkdir()
        out = work / "out" / "result.mp4"
        portrait, clip = _inputs(case, corpus[name])
        env = {**os.environ, "TMPDIR": str(work / "tmp")}
        t = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-m", "talking_head", "animate", "--portrait", portrait, "--clip", clip,
                                "--out", str(out), "--max-side", "480"], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=HANG_S, check=False)
        except subprocess.TimeoutExpired:
            r = None
        return name, (r, work, time.perf_counter() - t)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, sorted(CASES)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_through_the_cli(cli_runs, name):
    """Exit 0 with the whole video, or exit 2 with one ``error:`` line that explains this case; no
    traceback, no hang, nothing half-written or temporary left."""
    case = CASES[name]
    r, work, _ = cli_runs[name]
    assert r is not None, f"{name}: the CLI hung for more than {HANG_S} s"
    lines = _our_stderr(r.stderr)
    assert "Traceback" not in r.stderr, f"{name}: traceback on stderr:\n{r.stderr}"
    out = work / "out" / "result.mp4"
    if r.returncode == 0:
        assert case.error is None, f"{name} should be refused but the CLI exited 0: {r.stdout}"
        assert lines == [], f"{name}: stderr on success:\n{r.stderr}"
        assert [p.name for p in (work / "out").iterdir()] == ["result.mp4"]
        if case.frames is not None:
            assert probe(out).n_frames == case.frames
    else:
        assert case.error is not None or case.either, f"{name} should render; exit {r.returncode}:\n{r.stderr}"
        assert r.returncode == 2, f"{name}: exit {r.returncode}:\n{r.stderr}"
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: not one error line:\n{r.stderr}"
        _check_message(name, case, lines[0][len("error: "):])
        assert list((work / "out").iterdir()) == [], f"{name}: left {list((work / 'out').iterdir())}"
    assert list((work / "tmp").iterdir()) == [], f"{name}: temporary files left: {list((work / 'tmp').iterdir())}"


@pytest.fixture(scope="module")
def api(launch_app, tmp_path_factory):
    """One launched app for every API case (a queue long enough for all of them) and one client.

    The client downloads results into a folder of its own, so that the server's upload folder holds
    only what the server put there. At the end the client leaves, and the visitor's files must go.
    """
    from gradio_client import Client

    from demo.ui import AppConfig

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # notice a client that left within a second
        url, demo = launch_app(AppConfig(queue_size=64))
        client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("api_downloads")))
        yield client, demo
        client.close()
        files = demo.lp_files
        deadline = time.time() + 30
        while _nonempty(files.visitor_files()) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(5.5)  # Gradio's empty upload temps are the sweeper's once 5 s old
        files.sweep()
        assert files.visitor_files() == [], f"visitor files left after the session ended: {files.visitor_files()}"


def _nonempty(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        try:
            if p.stat().st_size:
                out.append(p)
        except OSError:
            pass  # deleted while we looked
    return out


def _api_call(client, case: Case, path: Path):
    from gradio_client import handle_file

    if case.role == "portrait":
        args = ("", handle_file(str(path)), CLIP.split(":", 1)[1], None)
    else:
        args = (PORTRAIT.split(":", 1)[1], None, "", handle_file(str(path)))
    return client.submit(*args, True, False, 1.0, 1.0, True, False, "auto", api_name="/animate")


def _partials(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if "partial" in p.name or p.name.startswith(".render-")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_through_the_api(api, corpus, name):
    """The /animate endpoint returns the whole video, or an error whose message explains this case (no
    traceback); within HANG_S; nothing half-written in the visitor's area or the shared store."""
    client, demo = api
    case = CASES[name]
    files, store = demo.lp_files, demo.lp_store
    before = {p for p in files.sessions_root.rglob("*.mp4")} if files.sessions_root.is_dir() else set()
    stored_before = len(store.stored())
    job = _api_call(client, case, corpus[name])
    try:
        value = job.result(timeout=HANG_S)
    except TimeoutError:
        pytest.fail(f"{name}: no answer from the API within {HANG_S} s")
    except Exception as e:  # noqa: BLE001 - gradio_client raises AppError (or ValueError for a refused upload)
        msg = str(e)
        assert case.error is not None or case.either, f"{name} should render but the API said: {msg}"
        assert "Traceback" not in msg and 'File "' not in msg, f"{name}: traceback in the API's answer: {msg}"
        _check_message(name, case, msg)
        after = set(files.sessions_root.rglob("*.mp4")) if files.sessions_root.is_dir() else set()
        assert after == before, f"{name}: a refused request left {after - before}"
    else:
        assert case.error is None, f"{name} should be refused but the API returned {value}"
        out = value["video"] if isinstance(value, dict) else value
        info = probe(out)
        assert info.codec == "h264"
        if case.frames is not None:
            assert info.n_frames == case.frames
        after = set(files.sessions_root.rglob("*.mp4"))
        assert len(after - before) == 1, f"{name}: expected one new result, found {after - before}"
    assert not _partials(files.root) and not _partials(store.root) and not _partials(files.uploads_root)
    assert len(store.stored()) == stored_before, f"{name}: a visitor's file entered the shared store"
