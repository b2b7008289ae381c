"""Tests for talking_head.video.

Every clip except the two gallery ones is synthesised here with the bundled ffmpeg, so the
tests run offline. Frame counts are always checked against an independent count (packets
from a stream copy, or frames we wrote ourselves), never against the code under test.
"""

from __future__ import annotations

import gc
import itertools
import re
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from talking_head import video
from talking_head.errors import ClipError, TalkingHeadError
from talking_head.video import (
    ClipDecodeError,
    ClipInfo,
    ClipNotFoundError,
    ClipTooLongError,
    EmptyClipError,
    FrameFormatError,
    NotAVideoError,
    NoVideoStreamError,
    VideoEncodeError,
    VideoWriter,
    probe,
    read_frames,
)

GALLERY = SHARED / "gallery-src" / "clips"
FF = video.ffmpeg_exe()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def ff(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([FF, "-hide_banner", "-nostdin", "-v", "error", "-y", *args], input=input, capture_output=True, check=True)


def ffmpeg_info(path: Path) -> str:
    """The human-readable stream summary that `ffmpeg -i` prints (it exits 1: no output named)."""
    return subprocess.run([FF, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def packet_count(path: Path, stream: str = "v:0") -> int:
    """Coded frames counted from packets by stream copy: independent of any decoding."""
    out = subprocess.run(
        [FF, "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum(1 for ln in out.splitlines() if ln.startswith("0,"))


def audio_span(path: Path) -> float:
    """Seconds from 0 to the end of the last audio packet."""
    out = subprocess.run(
        [FF, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tb = Fraction(re.search(r"#tb 0: (\S+)", out)[1])
    last = [ln.split(",") for ln in out.splitlines() if ln.startswith("0,")][-1]
    return float((int(last[2]) + int(last[3])) * tb)


def make_clip(path: Path, rate: str, n: int, size: str = "96x64", *extra: str) -> Path:
    ff("-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}", "-frames:v", str(n), *extra,
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


# Frame i shows the bits of i as 7 black/white vertical bars: survives H.264 at any sane CRF,
# so a dropped or duplicated frame shows up as a wrong number, not as a fuzzy difference.
BITS = 7


def coded_frame(i: int, w: int, h: int) -> np.ndarray:
    f = np.zeros((h, w, 3), np.uint8)
    bar = w // BITS
    for b in range(BITS):
        if i >> b & 1:
            f[:, b * bar : (b + 1) * bar] = 255
    return f


def decode_index(f: np.ndarray, w: int) -> int:
    bar = w // BITS
    h = f.shape[0]
    return sum(1 << b for b in range(BITS) if f[h // 4 : 3 * h // 4, b * bar + 2 : (b + 1) * bar - 2].mean() > 128)


# --------------------------------------------------------------------------------------------
# probe + read_frames on synthetic CFR clips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "fps"), [("25", Fraction(25)), ("30", Fraction(30)), ("30000/1001", Fraction(30000, 1001))]
)
def test_exact_frame_count_and_fps(tmp_path, rate, fps):
    clip = make_clip(tmp_path / "c.mp4", rate, 37)
    info = probe(clip)
    assert info == ClipInfo(
        path=clip, width=96, height=64, fps=fps, n_frames=37, duration=pytest.approx(37 / float(fps)),
        has_audio=False, rotation=0, codec="h264", variable_frame_rate=False, container="mov,mp4,m4a,3gp,3g2,mj2",
    )  # fmt: skip
    assert type(info.fps) is Fraction
    frames = list(read_frames(clip, info))
    assert len(frames) == 37 == packet_count(clip)
    for f in frames[:3]:
        assert f.shape == (64, 96, 3) and f.dtype == np.uint8 and f.flags.c_contiguous and f.flags.writeable


def test_coarse_timebase_jitter_is_still_cfr(tmp_path):
    # Matroska stores ms timestamps, so 29.97 fps comes back as 33/34 ms steps: that is
    # rounding, not a variable rate, and the rate must still be recognised as 30000/1001.
    clip = make_clip(tmp_path / "c.mkv", "30000/1001", 50)
    info = probe(clip)
    assert info.fps == Fraction(30000, 1001)
    assert not info.variable_frame_rate
    assert info.n_frames == 50


@pytest.mark.parametrize(
    ("rate", "n"), [("30000/1001", 2), ("30000/1001", 13), ("24000/1001", 20), ("60000/1001", 3), ("30", 3), ("15", 2)]
)
def test_a_short_matroska_clip_keeps_the_rate_it_was_made_at(tmp_path, rate, n):
    """Over a few frames, 1-ms timestamps cannot tell 29.97 fps from 30 (13 frames read as 30, 3 frames of
    59.94 as 61, 2 of 15 as 1000/67): the rate the header states decides where the timestamps allow it."""
    info = probe(make_clip(tmp_path / "c.mkv", rate, n))
    assert (info.fps, info.n_frames, info.variable_frame_rate) == (Fraction(rate), n, False)


@pytest.mark.parametrize("container", ["mp4", "mov", "ts"])
def test_a_matroska_recording_remuxed_keeps_its_rate(tmp_path, container):
    """A Matroska recording remuxed by stream copy (OBS's "remux to MP4") keeps its whole-millisecond
    timestamps in a finer time base: read tick by tick, 90 frames of 29.97 fps were a varying 839/28."""
    mkv = make_clip(tmp_path / "rec.mkv", "30000/1001", 90)
    remuxed = tmp_path / f"rec.{container}"
    ff("-i", str(mkv), "-c", "copy", str(remuxed))
    info = probe(remuxed)
    assert (info.fps, info.n_frames, info.variable_frame_rate) == (Fraction(30000, 1001), 90, False)


@pytest.mark.parametrize("exit_status", ["killed", 255])
def test_a_probe_whose_ffmpeg_was_stopped_says_so(tmp_path, monkeypatch, exit_status):
    """Ctrl-C reaching ffmpeg but not Python (a command a script started in the background): the probe
    counted the frames read so far, and `gallery add-clip` recorded a 45-s clip as 36 s. ffmpeg killed, or
    ending on SIGINT/SIGTERM as it does, with status 255 (a real SIGINT can land before ffmpeg's handler is
    set, or in a worker that ignores it, and leave it running: the 255 is given here)."""
    clip = make_clip(tmp_path / "c.mp4", "25", 50)
    real_run = subprocess.run

    def stopped(cmd, **kw):
        if "framecrc" not in cmd:
            return real_run(cmd, **kw)
        with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            p.kill()
            out, err = p.communicate()
        return subprocess.CompletedProcess(cmd, p.returncode if exit_status == "killed" else 255, out, err)

    monkeypatch.setattr(video.subprocess, "run", stopped)
    with pytest.raises(ClipError, match="stopped before its end; run the command again"):
        probe(clip)


def test_non_square_pixels_are_decoded_at_the_shape_a_player_shows(tmp_path):
    """An anamorphic clip: 128x96 pictures stored 96 pixels wide with a 4:3 sample aspect ratio. Its size
    is the 128x96 a player shows, and its frames come out at that shape (faces are tracked undistorted)."""
    plain, squeezed = tmp_path / "plain.mp4", tmp_path / "squeezed.mp4"
    make_clip(plain, "25", 10, "128x96")
    ff("-i", str(plain), "-vf", "scale=96:96,setsar=4/3", "-c:v", "libx264", "-preset", "ultrafast", str(squeezed))
    assert "SAR 4:3" in ffmpeg_info(squeezed)
    info = probe(squeezed)
    assert (info.width, info.height) == (128, 96) == (video.read_header(squeezed).width, video.read_header(squeezed).height)
    frames = list(read_frames(squeezed, info))
    assert len(frames) == 10 and frames[0].shape == (96, 128, 3)
    assert np.abs(frames[3].astype(int) - list(read_frames(plain))[3]).mean() < 12  # the picture as shot
    assert next(read_frames(squeezed, info, max_side=64)).shape == (48, 64, 3)


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_a_pixel_aspect_set_by_the_container_is_the_one_shown(tmp_path, container):
    """`-aspect` on a stream copy writes the aspect into the container (MKV's display size, MP4's pasp) and
    leaves the bitstream's. Players and ffmpeg's decoder follow the container; so must the clip's size."""
    plain, squeezed = tmp_path / "plain.mp4", tmp_path / "squeezed.mp4"
    make_clip(plain, "25", 10, "128x96")
    ff("-i", str(plain), "-vf", "scale=96:96,setsar=4/3", "-c:v", "libx264", "-preset", "ultrafast", str(squeezed))
    widened, unsqueezed = tmp_path / f"widened.{container}", tmp_path / f"unsqueezed.{container}"
    ff("-i", str(plain), "-c", "copy", "-aspect", "16:9", str(widened))  # square pixels in the bitstream
    ff("-i", str(squeezed), "-c", "copy", "-aspect", "1:1", str(unsqueezed))  # 4:3 pixels in the bitstream
    for clip, shown in ((widened, (171, 96)), (unsqueezed, (96, 96))):
        info = probe(clip)
        assert (info.width, info.height) == shown == (video.read_header(clip).width, video.read_header(clip).height)
        assert next(read_frames(clip, info)).shape == (shown[1], shown[0], 3)


def test_read_frames_max_side(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", "25", 5, "160x96")
    frames = list(read_frames(clip, max_side=64))
    assert len(frames) == 5
    assert frames[0].shape == (38, 64, 3)  # 96 * 64/160 = 38.4
    assert list(read_frames(clip, max_side=500))[0].shape == (96, 160, 3)  # never upscales


# --------------------------------------------------------------------------------------------
# real gallery clips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fps", "has_audio"),
    [("clip_talking_01.mp4", Fraction(30), True), ("clip_smile_eyes_01.mp4", Fraction(25), False)],
)
def test_gallery_clips(name, fps, has_audio):
    clip = GALLERY / name
    if not clip.exists():
        pytest.skip(f"{clip} not present")
    info = probe(clip)
    assert (info.fps, info.has_audio, info.codec, info.rotation) == (fps, has_audio, "h264", 0)
    assert (info.width, info.height) == (512, 512)
    assert not info.variable_frame_rate
    expected = packet_count(clip)
    assert info.n_frames == expected
    assert sum(1 for _ in read_frames(clip, info)) == expected


def test_gallery_clip_with_a_dropped_frame():
    # clip_wink_01 holds 362 frames at 30 fps with one doubled gap; imageio-ffmpeg's reader
    # yields 363 for it. It is flagged VFR, but its rate is the 30 fps it was shot at: playing
    # the kept frames at 30 matches the container's duration and its audio.
    clip = GALLERY / "clip_wink_01.mp4"
    if not clip.exists():
        pytest.skip(f"{clip} not present")
    info = probe(clip, max_duration=60)
    assert info.n_frames == packet_count(clip) == 362
    assert info.variable_frame_rate
    assert info.fps == Fraction(30)
    assert sum(1 for _ in read_frames(clip, info, max_side=32)) == 362


# --------------------------------------------------------------------------------------------
# VFR, truncation, rotation
# --------------------------------------------------------------------------------------------


def test_variable_frame_rate(tmp_path):
    # 30 fps with a 0.3 s freeze after frame 19 and small wobble; a 1/1000 encoder time base
    # keeps the uneven timestamps instead of rounding them onto a 1/30 grid.
    clip = make_clip(tmp_path / "vfr.mp4", "30", 40, "96x64",
                   "-vf", "setpts='(N/30 + gte(N,20)*0.3 + eq(mod(N,3),1)*0.007)/TB'",
                   "-fps_mode", "passthrough", "-enc_time_base:v", "1/1000")  # fmt: skip
    info = probe(clip)
    assert info.variable_frame_rate
    assert info.n_frames == 40 == packet_count(clip)
    span = 39 / 30 + 0.3
    assert float(info.fps) == pytest.approx(39 / span, rel=2e-3)
    assert info.fps.denominator <= 1001
    assert sum(1 for _ in read_frames(clip, info)) == 40


def _frame_pts(path: Path) -> list[float]:
    """Each frame's presentation time in seconds from the first, from the packets (no decoding)."""
    out = subprocess.run([FF, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"],
                         capture_output=True, text=True, check=True).stdout
    tb = Fraction(re.search(r"#tb 0: (\S+)", out)[1])
    pts = sorted(int(ln.split(",")[2]) for ln in out.splitlines() if ln.startswith("0,"))
    return [float((p - pts[0]) * tb) for p in pts]


def test_a_clip_that_slows_down_keeps_each_frames_time_and_its_sound(tmp_path):
    """A phone clip in dim light: 30 fps for 2 s, then 15 fps; a tone starts at 3 s. Played at its
    average rate its frames would drift half a second from their sound; the writer shows each frame at
    its own time, one output frame per frame still, and the tone stays where it was."""
    clip = tmp_path / "dim.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=s=64x48:r=30:d=4", "-f", "lavfi", "-i", "sine=f=1000:d=4:sample_rate=48000",
       "-vf", "select='lt(t,2)+eq(mod(n,2),0)'", "-fps_mode", "passthrough",
       "-af", "volume='if(lt(t,3),0,1)':eval=frame", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip))  # fmt: skip
    info = probe(clip)
    assert info.variable_frame_rate and info.n_frames == 60 + 30 == packet_count(clip)
    assert info.frame_times is not None and len(info.frame_times) == 90
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, (64, 48), audio_from=clip, duration=4.0, frame_times=info.frame_times) as wr:
        for f in read_frames(clip, info):
            wr.write(f)
    assert packet_count(out) == 90
    assert np.abs(np.array(_frame_pts(out)) - _frame_pts(clip)).max() < 0.002
    assert _tone_onset(out) == pytest.approx(3.0, abs=0.03)
    assert probe(out).frame_times is not None  # the render varies its rate as the clip did


def test_a_constant_rate_clip_with_one_late_frame_stays_constant_rate():
    """The gallery's `wink` has one doubled gap: shown at 30 fps its frames are at most one frame (33 ms)
    from their own times, inside the slack, so it is rendered at a constant rate."""
    info = probe(Path(__file__).resolve().parent.parent / "gallery" / "clips" / "wink.mp4")
    assert info.variable_frame_rate and info.frame_times is None and info.fps == 30


def _evaluate(expression: str, n: int) -> float:
    """ffmpeg's if/lt expression of N, evaluated here."""
    python = expression.replace("if(", "_if(")
    return eval(python, {"N": n, "lt": lambda a, b: a < b, "_if": lambda c, a, b: a if c else b})  # our own expression


def _pieces(expression: str) -> int:
    return expression.count("if(") + 1


def test_the_timeline_expression_follows_the_frame_times():
    rng = np.random.default_rng(1)
    # Three rates, then 1800 frames of phone jitter (+-2 ms), then two frames sharing a time.
    steady = list(np.arange(15) * 0.04) + list(0.6 + np.arange(7) * 0.08) + list(1.16 + np.arange(8) * 0.02)
    expression = video.timeline_expression(steady)
    assert _pieces(expression) == 3
    assert all(abs(_evaluate(expression, i) - t) < 1e-6 for i, t in enumerate(steady))
    jitter = list(np.arange(1800) / 30 + rng.uniform(-0.002, 0.002, 1800))
    expression = video.timeline_expression(jitter)
    assert _pieces(expression) <= 300 and len(expression) < 30000
    got = [_evaluate(expression, i) for i in range(1800)]
    assert np.abs(np.array(got) - (np.array(jitter) - jitter[0])).max() < 0.01
    assert all(b > a for a, b in itertools.pairwise(got))
    tied = video.timeline_expression([0.0, 0.5, 0.5, 1.0])
    assert [_evaluate(tied, i) for i in range(4)] == pytest.approx([0, 0.5, 0.501, 1.0], abs=1e-6)


def test_a_clip_whose_rate_jitters_all_through_is_written_at_its_own_times(tmp_path):
    """A screen recording or a phone in dim light: every frame a little early or late, so its timeline
    takes hundreds of straight pieces. ffmpeg refused the expression past about 97 of them (a sum of
    one term per piece), and the render failed however often it was tried."""
    rng = np.random.default_rng(2)
    times = np.cumsum(np.r_[0, 0.033 + 0.009 * rng.random(599)])
    assert _pieces(video.timeline_expression(times)) > 150
    out = tmp_path / "jitter.mp4"
    frame = np.zeros((32, 32, 3), np.uint8)
    with VideoWriter(out, Fraction(80, 3), (32, 32), frame_times=tuple(times)) as wr:  # (the mean rate, 26.7 fps)
        for i in range(600):
            frame[:] = i % 256
            wr.write(frame)
    assert packet_count(out) == 600
    assert np.abs(np.array(_frame_pts(out)) - times).max() < 0.003


@pytest.mark.parametrize(
    ("pts", "tb", "fps", "vfr"),
    [
        ([i * 3003 for i in range(10)], Fraction(1, 90000), Fraction(30000, 1001), False),
        ([i * 512 for i in range(10)], Fraction(1, 12800), Fraction(25), False),
        ([round(i * 1001 / 24) for i in range(100)], Fraction(1, 1000), Fraction(24000, 1001), False),
        # One gap in an otherwise regular 30 fps clip: the nominal rate, still flagged VFR.
        ([i * 512 for i in range(20)] + [i * 512 + 1024 for i in range(20, 40)], Fraction(1, 15360), Fraction(30), True),
        # Irregular throughout: the average rate.
        ([i * 512 + (i % 3) * 100 for i in range(20)] + [i * 512 + 1024 for i in range(20, 40)], Fraction(1, 15360), None, True),
        ([0], Fraction(1, 1000), Fraction(30), False),  # single frame: header rate
    ],
)
def test_fps_from_timestamps(pts, tb, fps, vfr):
    got, got_vfr = video._fps_from_timestamps(pts, tb, Fraction(30))
    assert got_vfr is vfr
    if fps is not None:
        assert got == fps
    else:  # 39 intervals over 41 frame times at 30 fps: 28.537..., as a small fraction
        assert float(got) == pytest.approx(39 * 15360 / 20992, rel=1e-3)
        assert got.denominator <= 100


def test_a_codec_nothing_here_decodes_says_so(tmp_path):
    """ffmpeg 9 words it "no decoder found"; the clip was called damaged instead of undecodable."""
    mkv = make_clip(tmp_path / "clip.mkv", "25", 10)
    odd = tmp_path / "odd.mkv"
    odd.write_bytes(mkv.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XVC"))
    with pytest.raises(ClipDecodeError, match="cannot be decoded here"):
        probe(odd)


def test_truncated_tail(tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", "25", 100, "128x96", "-movflags", "+faststart")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    info = probe(cut)
    assert 0 < info.n_frames < 100
    assert sum(1 for _ in read_frames(cut, info)) == info.n_frames


@pytest.mark.parametrize(("transfer", "codec"), [("arib-std-b67", "libx264"), ("smpte2084", "libx265")])
def test_an_hdr_clip_reads_as_the_sdr_picture_it_shows(tmp_path, transfer, codec):
    """An iPhone records HLG (PQ: HDR10 phones and cameras), 10-bit BT.2020. The clip here is an SDR
    picture put into HDR as a camera does (SDR white at the reference white of BT.2408: HLG 75 %, PQ
    203 cd/m2); read back, it must be that SDR picture again, not the dim, grey numbers of its signal."""
    sdr, hdr = tmp_path / "sdr.mp4", tmp_path / "hdr.mp4"
    ff("-i", str(GALLERY / "clip_talking_02.mp4"), "-frames:v", "10", "-vf", "scale=128:128", "-an", "-c:v", "libx264",
       "-crf", "0", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", str(sdr))  # fmt: skip
    ff("-i", str(sdr), "-vf", "format=gbrpf32le,zscale=tin=bt709:pin=bt709:min=bt709:rin=tv"
       f":t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=203,format=yuv420p10le",
       "-c:v", codec, "-crf", "4", *(["-x265-params", "log-level=error"] if codec == "libx265" else []),
       "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc", str(hdr))  # fmt: skip
    info = probe(hdr)
    assert info.transfer == transfer and video.read_header(hdr).transfer == transfer and probe(sdr).transfer == ""
    want = np.stack(list(read_frames(sdr))).astype(np.float64)
    got = np.stack(list(read_frames(hdr, info))).astype(np.float64)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() <= 3.0  # (2.1 here; the signal read as SDR numbers: 17 for HLG, 26 for PQ)
    assert np.abs(got.mean(axis=(0, 1, 2)) - want.mean(axis=(0, 1, 2))).max() <= 2.0  # no colour cast


@pytest.mark.parametrize(("display_rotation", "rotation", "k"), [("-90", 90, -1), ("90", 270, 1), ("180", 180, 2)])
def test_rotation_metadata(tmp_path, display_rotation, rotation, k):
    w, h = 64, 48
    src = np.zeros((h, w, 3), np.uint8)
    src[:16, :16] = 255  # white top-left corner
    src[:, -8:, 1] = 200  # green right edge
    plain = tmp_path / "plain.mp4"
    with VideoWriter(plain, Fraction(25), (w, h), crf=0) as wr:
        for _ in range(3):
            wr.write(src)
    rotated = tmp_path / "rot.mp4"
    # -display_rotation is counter-clockwise; the legacy "rotate" tag phones write is clockwise.
    # (-metadata:s:v rotate=90 is silently dropped by ffmpeg 9, so it cannot make a test clip.)
    ff("-display_rotation", display_rotation, "-i", str(plain), "-c", "copy", str(rotated))
    info = probe(rotated)
    assert info.rotation == rotation
    expected = np.rot90(src, k)
    assert (info.height, info.width) == expected.shape[:2]
    frames = list(read_frames(rotated, info))
    assert len(frames) == 3
    assert frames[0].shape == expected.shape
    assert np.abs(frames[0].astype(int) - expected).mean() < 6
    # The header alone (what a render of an upload starts decoding with) gives the same upright size.
    header = video.read_header(rotated)
    assert (header.width, header.height) == (info.width, info.height)
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(rotated, header), frames, strict=True))


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_error_classes(tmp_path):
    classes = [ClipNotFoundError, NotAVideoError, NoVideoStreamError, EmptyClipError, ClipTooLongError, ClipDecodeError, VideoEncodeError]
    assert len(set(classes)) == len(classes)
    for cls in classes:
        assert issubclass(cls, ClipError) and issubclass(cls, TalkingHeadError)
    assert issubclass(FrameFormatError, ClipError) and issubclass(FrameFormatError, ValueError)


def _expect(exc_type, path, **kw) -> str:
    with pytest.raises(ClipError) as ei:
        probe(path, **kw)
    assert type(ei.value) is exc_type, f"{path.name}: {type(ei.value).__name__}: {ei.value}"
    msg = str(ei.value)
    assert "\n" not in msg and msg.endswith(".")
    return msg


def test_probe_errors(tmp_path):
    _expect(ClipNotFoundError, tmp_path / "missing.mp4")
    _expect(ClipNotFoundError, tmp_path)  # a directory

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    _expect(NotAVideoError, text)

    good = make_clip(tmp_path / "good.mp4", "25", 50, "96x64")  # moov at the end, as by default
    headless = tmp_path / "headless.mp4"
    headless.write_bytes(good.read_bytes()[:3000])
    _expect(NotAVideoError, headless)

    png = tmp_path / "still.png"
    ff("-f", "lavfi", "-i", "testsrc2=s=64x64", "-frames:v", "1", str(png))
    _expect(NotAVideoError, png)

    m4a = tmp_path / "voice.m4a"
    ff("-f", "lavfi", "-i", "sine=d=0.5", "-c:a", "aac", str(m4a))
    _expect(NoVideoStreamError, m4a)

    jpg = tmp_path / "cover.jpg"
    ff("-f", "lavfi", "-i", "testsrc2=s=64x64", "-frames:v", "1", str(jpg))
    mp3 = tmp_path / "song.mp3"  # cover art is a "video" stream to ffmpeg, but not a clip
    ff("-f", "lavfi", "-i", "sine=d=0.5", "-i", str(jpg), "-map", "0", "-map", "1", "-c:v", "copy",
       "-disposition:v", "attached_pic", str(mp3))  # fmt: skip
    _expect(NoVideoStreamError, mp3)

    # Header intact, picture data gone: the moov (faststart) says 50 frames, none decode.
    fast = make_clip(tmp_path / "fast.mp4", "25", 50, "96x64", "-movflags", "+faststart")
    data = fast.read_bytes()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(data[: data.index(b"mdat") + 4])
    _expect(EmptyClipError, empty)

    msg = _expect(ClipTooLongError, good, max_duration=1.0)
    assert "2.0 s" in msg and "1 s" in msg and "trim" in msg
    assert probe(good, max_duration=2.0).n_frames == 50  # exactly at the limit is fine


def test_too_long_is_rejected_without_decoding_everything(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", "25", 250, "64x64")  # 10 s
    msg = _expect(ClipTooLongError, clip, max_duration=2)
    assert "10.0 s" in msg


# --------------------------------------------------------------------------------------------
# VideoWriter
# --------------------------------------------------------------------------------------------


def _write_coded(path: Path, n: int, w: int, h: int, **kw) -> list[np.ndarray]:
    frames = [coded_frame(i, w, h) for i in range(n)]
    with VideoWriter(path, Fraction(30000, 1001), (w, h), **kw) as wr:
        for f in frames:
            wr.write(f)
    assert wr.frames_written == n
    return frames


@pytest.fixture(scope="module")
def audio_src(tmp_path_factory) -> Path:
    """A 3 s clip whose audio is silent until a 1 kHz tone starts at exactly 0.5 s."""
    p = tmp_path_factory.mktemp("audio") / "speech.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=s=64x64:r=25:d=3",
       "-f", "lavfi", "-i", "sine=f=1000:d=3:sample_rate=48000",
       "-af", "volume='if(lt(t,0.5),0,1)':eval=frame", "-c:v", "libx264", "-preset", "ultrafast",
       "-c:a", "aac", "-shortest", str(p))  # fmt: skip
    return p


def test_round_trip_exact_frames_odd_size_no_audio(tmp_path, audio_src):
    out = tmp_path / "out.mp4"
    n, w, h = 45, 99, 65
    frames = _write_coded(out, n, w, h, metadata={"comment": "AI-generated test clip", "engine": "demo"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]

    info = probe(out)
    assert info.fps == Fraction(30000, 1001) and not info.variable_frame_rate
    assert (info.width, info.height) == (100, 66)  # padded to even, not scaled
    assert info.n_frames == n == packet_count(out)
    assert not info.has_audio

    got = list(read_frames(out, info))
    assert [decode_index(f, w) for f in got] == list(range(n))
    # Padding adds a black column/row and leaves the picture where it was (a rescale would
    # move the bar edges and smear the last column).
    assert np.abs(got[5][:h, :w].astype(int) - frames[5]).mean() < 3
    assert got[127 % n][:, w:].max() < 40 and got[127 % n][h:, :].max() < 40

    hdr = ffmpeg_info(out)
    assert re.search(r"Video: h264 .*yuv420p", hdr)
    assert "29.97 fps" in hdr and "Audio:" not in hdr
    assert re.search(r"comment\s*: AI-generated test clip", hdr)
    assert re.search(r"engine\s*: demo", hdr)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while downloading


def test_round_trip_with_audio_in_sync_and_cut(tmp_path, audio_src):
    out = tmp_path / "out.mp4"
    n, w, h = 45, 64, 48  # 1.5 s of video; the audio source runs 3 s
    _write_coded(out, n, w, h, audio_from=audio_src, duration=n * 1001 / 30000)
    info = probe(out)
    assert info.has_audio and info.n_frames == n and info.fps == Fraction(30000, 1001)
    assert [decode_index(f, w) for f in read_frames(out, info)] == list(range(n))
    assert re.search(r"Audio: aac", ffmpeg_info(out))
    assert audio_span(out) == pytest.approx(n * 1001 / 30000, abs=0.03)  # cut to the video

    # The tone must still start at 0.5 s: the audio was not shifted against frame 0.
    pcm = ff("-i", str(out), "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-").stdout
    samples = np.abs(np.frombuffer(pcm, np.int16))
    onset = np.argmax(samples > 3000) / 48000
    assert onset == pytest.approx(0.5, abs=0.02)


def _tone_onset(path: Path) -> float:
    """Seconds from the start of ``path``'s timeline to the tone; a sound that starts late is padded from 0
    (raw samples alone would hide a delay)."""
    pcm = ff("-i", str(path), "-map", "0:a:0", "-af", "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "48000",
             "-f", "s16le", "-").stdout  # fmt: skip
    return float(np.argmax(np.abs(np.frombuffer(pcm, np.int16)) > 3000) / 48000)


def _tone_clip(path: Path, seconds: float, tone_at: float, *video: str, codecs=("libx264", "aac")) -> Path:
    """A 64x48, 25-fps clip whose sound is silent until ``tone_at`` seconds, then a 1 kHz tone."""
    speed = ["-preset", "ultrafast"] if codecs[0] == "libx264" else []
    ff("-f", "lavfi", "-i", f"testsrc2=s=64x48:r=25:d={seconds}", "-f", "lavfi",
       "-i", f"sine=f=1000:d={seconds}:sample_rate=48000", "-af", f"volume='if(lt(t,{tone_at}),0,1)':eval=frame",
       "-c:v", codecs[0], *speed, *video, "-c:a", codecs[1], "-shortest", str(path))  # fmt: skip
    return path


def _render(clip: Path, out: Path, **probe_kw) -> ClipInfo:
    """``clip``'s frames written to ``out`` with its sound, as a render does."""
    info = probe(clip, **probe_kw)
    with VideoWriter(out, info.fps, (64, 48), audio_from=clip, audio_start=info.start,
                     duration=info.n_frames / info.fps) as wr:  # fmt: skip
        for f in read_frames(clip, info):
            wr.write(f)
    return info


def test_a_clip_trimmed_without_re_encoding_keeps_its_sound_on_its_frames(tmp_path):
    """A clip cut with ``-ss -c copy`` starts its audio at the cut and its video at the next keyframe,
    0.3 s later; the sound of the first frame is the audio 0.3 s in. The tone starts 0.8 s after the
    first frame in the clip, and must do so in the render too."""
    src, cut, out = tmp_path / "src.mp4", tmp_path / "cut.mp4", tmp_path / "out.mp4"
    _tone_clip(src, 4, 2, "-g", "10")
    ff("-i", str(src), "-ss", "0.9", "-c", "copy", str(cut))  # keyframes every 0.4 s: the video from 1.2 s on
    info = _render(cut, out)
    assert info.start == pytest.approx(0.3, abs=0.03)  # (the audio is cut at an AAC packet: 21 ms)
    assert _tone_onset(out) == pytest.approx(2.0 - 1.2, abs=0.03)


@pytest.mark.parametrize("late", ["sound", "picture"])
@pytest.mark.parametrize(
    ("container", "codecs"),
    [("ts", ("libx264", "aac")), ("mpg", ("mpeg2video", "mp2")), ("ogg", ("libtheora", "libvorbis")),
     ("flv", ("libx264", "aac")), ("mkv", ("libx264", "aac")), ("mp4", ("libx264", "aac"))],
)  # fmt: skip
def test_a_sound_that_starts_apart_from_the_picture_keeps_its_place(tmp_path, container, codecs, late):
    """The sound or the picture starting half a second after the other, as a broadcast recording, a camcorder
    or an edit can store it: the tone plays 0.5 s later (or earlier) against frame 0 than in the clip they
    came from. MPEG-TS, MPEG-PS and Ogg lost it (ffmpeg times a stream read alone from its own start there);
    FLV, MP4 and MKV are the controls."""
    both, clip, out = tmp_path / "both.mkv", tmp_path / f"clip.{container}", tmp_path / "out.mp4"
    _tone_clip(both, 4, 2, codecs=codecs)
    offset = ["-itsoffset", "0.5"]
    ff(*(offset if late == "picture" else []), "-i", str(both), *(offset if late == "sound" else []), "-i", str(both),
       "-map", "0:v", "-map", "1:a", "-c", "copy", str(clip))  # fmt: skip
    _render(clip, out)
    assert _tone_onset(out) == pytest.approx(_tone_onset(both) + (0.5 if late == "sound" else -0.5), abs=0.03)


def test_a_broadcast_recording_cut_twelve_seconds_before_a_keyframe_keeps_its_sound(tmp_path):
    """A recorder's TS with a keyframe every 12 s, cut without re-encoding 0.5 s in: the picture starts at the
    next keyframe, 11.5 s after the sound. ffmpeg takes a timestamp moved by more than 10 s for a broken one and
    undid an -itsoffset that large: the render played the clip's sound from its beginning."""
    full, cut = tmp_path / "full.ts", tmp_path / "cut.ts"
    _tone_clip(full, 14, 13, "-g", "300", "-keyint_min", "300", "-sc_threshold", "0")
    ff("-ss", "0.5", "-i", str(full), "-map", "0", "-c", "copy", str(cut))
    info = _render(cut, tmp_path / "out.mp4")
    assert info.start == pytest.approx(11.5, abs=0.25)  # (the sound is cut at a whole PES packet)
    assert _tone_onset(tmp_path / "out.mp4") == pytest.approx(1.0, abs=0.03)  # the tone at 13 s, the picture from 12 s


def test_an_flv_keeps_the_sound_of_its_first_frame(tmp_path):
    """An FLV as ffmpeg writes one: the picture 21 ms after the sound's first (priming) samples, the tone 0.5 s
    after the first frame. (The review's FLVs, cut with ffmpeg's -ss, lost their first 1.5 s of sound; this
    one did not: a control for the filter that now cuts the sound.)"""
    clip = _tone_clip(tmp_path / "clip.flv", 4, 0.5)
    info = _render(clip, tmp_path / "out.mp4")
    assert info.start == pytest.approx(0.021, abs=0.005)
    assert _tone_onset(tmp_path / "out.mp4") == pytest.approx(0.5, abs=0.03)  # (both moved 21 ms, for AAC's priming)


def test_an_audio_track_that_never_carries_sound_leaves_the_render_silent(tmp_path):
    """A TS whose programme lists an audio track that never sends a packet ("0 channels"): the probe said
    no frame could be decoded, and the writer failed after the whole render."""
    base, clip = _tone_clip(tmp_path / "base.ts", 2, 1), tmp_path / "empty_pid.ts"
    ff("-i", str(base), "-map", "0", "-c", "copy", "-bsf:a", "noise=drop=1", str(clip))
    assert "0 channels" in ffmpeg_info(clip)
    info = _render(clip, tmp_path / "out.mp4")
    assert info.n_frames == 50 and not info.has_audio
    assert "Audio" not in ffmpeg_info(tmp_path / "out.mp4")


def test_a_sound_that_starts_after_the_picture_ends_is_not_moved_onto_it(tmp_path):
    """A TS whose sound starts 8 s after a 4-s picture, probed under a 5-s limit (the probe reads up to 6 s):
    no sound packet was read, and the sound was taken to start with frame 0."""
    long, clip = _tone_clip(tmp_path / "long.mkv", 12, 0), tmp_path / "late.ts"
    ff("-t", "4", "-i", str(long), "-itsoffset", "8", "-i", str(long), "-map", "0:v", "-map", "1:a", "-c", "copy",
       str(clip))  # fmt: skip
    info = _render(clip, tmp_path / "out.mp4", max_duration=5)
    assert info.start <= -4.0
    assert "Audio" not in ffmpeg_info(tmp_path / "out.mp4")  # the picture is over before the sound begins


def test_audio_shorter_than_video_is_padded_not_truncating_video(tmp_path):
    short_audio = tmp_path / "short.wav"  # (not AAC, which is copied as it is)
    ff("-f", "lavfi", "-i", "sine=d=0.4", str(short_audio))
    out = tmp_path / "out.mp4"
    n = 40
    _write_coded(out, n, 64, 48, audio_from=short_audio, duration=n * 1001 / 30000)
    info = probe(out)
    assert info.n_frames == n and info.has_audio
    assert audio_span(out) == pytest.approx(n * 1001 / 30000, abs=0.03)


def test_a_writer_kept_waiting_for_its_frames_holds_no_endless_silence(tmp_path):
    """A render whose frames come slowly (an upload's first frames wait for its tracking; a slow laptop)
    with a sound to re-encode: ffmpeg padded the sound with silence as fast as it could while it waited
    and kept it all for -shortest, 1.3 GB in the first second, and after two it stopped with "No space
    left on device": the user read that the disk was full."""
    clip = _tone_clip(tmp_path / "upload.webm", 2, 1, codecs=("libvpx", "libopus"))
    info = probe(clip)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, (64, 48), audio_from=clip, duration=info.n_frames / info.fps) as wr:
        frames = read_frames(clip, info)
        wr.write(next(frames))
        time.sleep(3)
        status = Path(f"/proc/{wr._proc.pid}/status").read_text()
        for f in frames:
            wr.write(f)
    assert int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) < 200_000  # ffmpeg's peak memory, in kB
    assert packet_count(out) == 50
    assert _tone_onset(out) == pytest.approx(1.0, abs=0.03)
    assert audio_span(out) == pytest.approx(2.0, abs=0.03)


@pytest.mark.parametrize(("layout", "channels"), [("5.1.2", 8), ("5.1.4", 6), ("16c", 8)])
def test_a_sound_with_more_channels_than_aac_takes_is_mixed_down(tmp_path, layout, channels):
    """A cinema camera's or a game capture's 10- or 16-channel sound (or 8 channels AAC has no layout for)
    failed the render with "try the render again", which never helps."""
    clip, out = tmp_path / "many.mkv", tmp_path / "out.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2", "-f", "lavfi", "-i", "sine=f=1000:d=2:sample_rate=48000",
       "-af", f"volume='if(lt(t,1),0,4)':eval=frame,aformat=channel_layouts={layout}", "-c:v", "libx264",
       "-preset", "ultrafast", "-c:a", "pcm_s16le", str(clip))  # fmt: skip
    _render(clip, out)
    assert re.search(rf"Audio: aac .*, {'5.1' if channels == 6 else '7.1'}, ", ffmpeg_info(out))
    assert _tone_onset(out) == pytest.approx(1.0, abs=0.03)


def test_a_writer_with_a_sound_needs_the_length_of_its_picture(tmp_path, audio_src):
    with pytest.raises(ValueError, match="needs the duration"):
        VideoWriter(tmp_path / "out.mp4", 25, (64, 48), audio_from=audio_src)
    assert list(tmp_path.iterdir()) == []


def test_broadcast_aac_audio_is_re_encoded_not_copied(tmp_path):
    """A DVB recording's AAC comes in LATM framing, which MP4 cannot hold: copying it (what the writer does
    with plain AAC when it knows the length) failed the render with "try again", every time."""
    latm = tmp_path / "broadcast.ts"
    ff("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:d=2", "-f", "lavfi", "-i", "sine=d=2",
       "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-mpegts_flags", "latm", str(latm))  # fmt: skip
    assert "aac_latm" in ffmpeg_info(latm)
    out = tmp_path / "out.mp4"
    _write_coded(out, 50, 64, 48, audio_from=latm, duration=2.0)
    assert probe(out).has_audio and audio_span(out) > 1.5  # (the 50 frames last 1.67 s)


def test_audio_from_without_audio_writes_no_audio(tmp_path):
    silent = make_clip(tmp_path / "silent.mp4", "25", 5)
    out = tmp_path / "out.mp4"
    _write_coded(out, 5, 64, 48, audio_from=silent, duration=0.2)
    assert not probe(out).has_audio


def test_exception_in_with_block_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, Fraction(25), (64, 48)) as wr:
            # Keep feeding until ffmpeg has really created the partial file, so the cleanup
            # is tested on a half-written mp4 and not on a file that never existed.
            deadline = time.monotonic() + 5
            i = 0
            while not wr._tmp.exists() and time.monotonic() < deadline:
                wr.write(coded_frame(i % 100, 64, 48))
                i += 1
            assert wr._tmp.exists()
            proc = wr._proc
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    assert proc.returncode is not None  # killed and reaped


def test_missing_output_folder(tmp_path):
    with pytest.raises(VideoEncodeError, match="does not exist"):
        VideoWriter(tmp_path / "nope" / "out.mp4", 25, (64, 48))


def test_abort_and_existing_file_untouched(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous render")
    wr = VideoWriter(out, 25, (64, 48))
    wr.write(coded_frame(1, 64, 48))
    wr.abort()
    wr.abort()  # idempotent
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert out.read_bytes() == b"previous render"


def test_encoder_failure_raises_and_cleans_up(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoEncodeError) as ei:
        with VideoWriter(out, 25, (64, 48), preset="no-such-preset") as wr:
            for i in range(3):
                wr.write(coded_frame(i, 64, 48))
    assert "try the render again" in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_shape(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(FrameFormatError):
        with VideoWriter(out, 25, (64, 48)) as wr:
            wr.write(np.zeros((64, 48, 3), np.uint8))  # (w, h) swapped
    assert list(tmp_path.iterdir()) == []


def test_writer_temp_file_name(tmp_path):
    out = tmp_path / "render.mp4"
    wr = VideoWriter(out, Fraction(24000, 1001), (64, 48))
    try:
        wr.write(coded_frame(0, 64, 48))
        # ffmpeg creates the file only once the encoder has output, so check the name we gave it.
        tmp = wr._tmp
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".render.") and tmp.name.endswith(".partial.mp4")
    finally:
        wr.close()
    assert [p.name for p in tmp_path.iterdir()] == ["render.mp4"]
    assert probe(out).fps == Fraction(24000, 1001)


# --------------------------------------------------------------------------------------------
# process hygiene
# --------------------------------------------------------------------------------------------


@pytest.fixture
def spawned(monkeypatch):
    """Every Popen that talking_head.video starts."""
    procs: list[subprocess.Popen] = []
    real = subprocess.Popen

    def spy(*a, **kw):
        p = real(*a, **kw)
        procs.append(p)
        return p

    monkeypatch.setattr(video.subprocess, "Popen", spy)
    return procs


def test_read_frames_stopped_early_leaves_no_process(tmp_path, spawned):
    clip = make_clip(tmp_path / "c.mp4", "25", 100, "128x96")
    info = probe(clip)
    spawned.clear()  # probe's own runs are waited for by subprocess.run

    it = read_frames(clip, info)
    assert spawned == []  # nothing starts until iteration does
    next(it), next(it)
    it.close()
    assert len(spawned) == 1 and spawned[0].returncode is not None

    it = read_frames(clip, info)
    next(it)
    del it  # dropped without close(): the generator finaliser must still reap ffmpeg
    gc.collect()
    assert len(spawned) == 2 and spawned[1].returncode is not None

    for _ in zip(range(3), read_frames(clip, info)):  # the usual "break early" pattern
        pass
    gc.collect()
    assert all(p.returncode is not None for p in spawned)


# --------------------------------------------------------------------------------------------
# frames handed over in the encoder's own layout (yuv420p)
# --------------------------------------------------------------------------------------------


def _painting(w: int, h: int, seed: int = 0, noise: bool = True) -> np.ndarray:
    """Smooth colour ramps, a few flat patches (skin, sky, a white label-like block), optionally a noisy one."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.dstack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 255 // max(w + h - 2, 1)])
    img = img.astype(np.uint8)
    img[h // 4:h // 2, w // 4:w // 2] = (224, 172, 140)
    img[h // 2:, : w // 3] = (40, 90, 200)
    img[-8:, -16:] = 255
    if noise:
        img[: h // 4, -w // 4:] = rng.integers(0, 256, (h // 4, w // 4, 3))
    return img


def test_i420_frame_matches_ffmpeg_bt709_conversion():
    from talking_head.compose import I420Frame
    w, h = 96, 64
    rgb = _painting(w, h, noise=False)
    ours = I420Frame(w, h).update(rgb)
    theirs = np.frombuffer(ff("-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{w}x{h}", "-i", "pipe:0",
                              "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
                              "-f", "rawvideo", "pipe:1", input=rgb.tobytes()).stdout, np.uint8)
    assert ours.shape == theirs.shape == (w * h * 3 // 2,)
    diff = np.abs(ours.astype(int) - theirs)
    assert diff[: w * h].max() <= 1  # luma
    # Chroma: a 2x2 mean against swscale's own filter; they differ only along sharp colour edges.
    assert diff[w * h:].mean() < 0.6 and diff[w * h:].max() <= 6


def test_i420_frame_updates_only_the_region_and_widens_it_to_even_pixels():
    from talking_head.compose import I420Frame
    w, h = 64, 48
    before, after = _painting(w, h, 0), _painting(w, h, 0)
    after[11:30, 7:40] = (10, 200, 30)  # odd corner: the chroma rows/columns it touches must be redone
    frame = I420Frame(w, h)
    frame.update(before)
    got = frame.update(after, (7, 11, 40, 30)).copy()
    np.testing.assert_array_equal(got, I420Frame(w, h).update(after))
    with pytest.raises(ValueError):
        I420Frame(63, 48)


@pytest.mark.parametrize("size", [(64, 48), (96, 66)])  # 66: the chroma planes are not whole rows
def test_writer_takes_yuv420p_frames(tmp_path, size):
    from talking_head.compose import I420Frame
    w, h = size
    frames = [np.roll(_painting(w, h, noise=False), 4 * i, axis=1) for i in range(5)]
    out_rgb, out_yuv = tmp_path / "rgb.mp4", tmp_path / "yuv.mp4"
    with VideoWriter(out_rgb, Fraction(30), (w, h), crf=10) as wr:
        for f in frames:
            wr.write(f)
    yuv = I420Frame(w, h)
    with VideoWriter(out_yuv, Fraction(30), (w, h), crf=10, pix_fmt="yuv420p") as wr:
        for f in frames:
            wr.write(yuv.update(f))
    a, b = list(read_frames(out_rgb)), list(read_frames(out_yuv))
    assert len(a) == len(b) == 5 == probe(out_yuv).n_frames
    for fa, fb, src in zip(a, b, frames):
        # As close to the source as the RGB path (4:2:0 blurs the sharp patch edges in both), and no
        # colour shift such as ffmpeg re-reading the planes as BT.601 (that costs ~5 levels here).
        assert np.abs(fb.astype(int) - src).mean() < np.abs(fa.astype(int) - src).mean() + 0.25
    assert "bt709" in ffmpeg_info(out_yuv) and "tv" in ffmpeg_info(out_yuv)


def test_writer_refuses_bad_yuv420p_use(tmp_path):
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "odd.mp4", 25, (63, 48), pix_fmt="yuv420p")
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", 25, (64, 48), pix_fmt="bgr24")
    out = tmp_path / "out.mp4"
    with pytest.raises(FrameFormatError):
        with VideoWriter(out, 25, (64, 48), pix_fmt="yuv420p") as wr:
            wr.write(np.zeros((48, 64, 3), np.uint8))  # RGB handed to a yuv420p writer
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("separable", [True, False])
def test_paste_back_copies_the_interior_and_blends_the_rim_like_a_full_blend(separable):
    import cv2

    from talking_head.compose import PasteMask, paste_back
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 256, (120, 100, 3), np.uint8)
    crop = rng.integers(0, 256, (70, 60, 3), np.uint8)
    ramp_y, ramp_x = np.ones(70, np.float32), np.ones(60, np.float32)
    ramp_y[:6], ramp_y[-6:], ramp_x[:9] = np.linspace(0.1, 0.9, 6), np.linspace(0.9, 0.1, 6), np.linspace(0.1, 0.9, 9)
    mask = np.outer(ramp_y, ramp_x)
    if not separable:
        mask[30, 30] = 0.5  # a hole inside: no all-ones interior to copy
    box = (20, 0, 80, 70)
    pm = PasteMask(mask)
    assert (pm.inner is not None) == separable
    want = canvas.copy()
    want[0:70, 20:80] = cv2.blendLinear(crop, np.ascontiguousarray(canvas[0:70, 20:80]), pm.mask, pm.inverse)
    np.testing.assert_array_equal(paste_back(canvas, crop, box, pm), want)


def test_writer_passes_x264_params(tmp_path):
    out = tmp_path / "cavlc.mp4"
    with VideoWriter(out, 25, (64, 48), x264_params="cabac=0") as wr:
        for i in range(3):
            wr.write(coded_frame(i, 64, 48))
    assert b"cabac=0" in out.read_bytes()  # x264 records its settings in the stream
    assert probe(out).n_frames == 3


def test_writer_quantises_a_region_more_coarsely(tmp_path):
    """``coarser``: that region gets fewer bits and a rougher copy of its pixels; the rest is as without."""
    import cv2
    rng = np.random.default_rng(7)
    frames = [cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), np.uint8), (0, 0), 1.5) for _ in range(6)]
    got = {}
    for name, coarser in (("plain", None), ("coarser", (0, 0, 64, 96, 12))):
        out = tmp_path / f"{name}.mp4"
        with VideoWriter(out, 25, (128, 96), crf=18, preset="superfast", coarser=coarser) as wr:
            for f in frames:
                wr.write(f)
        decoded = np.stack(list(read_frames(out, probe(out))))
        err = np.abs(decoded.astype(int) - np.stack(frames)).mean(axis=(0, 1, 3))  # per column
        got[name] = (out.stat().st_size, err[:64].mean(), err[64:].mean())
    assert got["coarser"][0] < 0.8 * got["plain"][0]
    assert got["coarser"][1] > 1.3 * got["plain"][1]               # the left half: rougher
    assert got["coarser"][2] < 1.15 * got["plain"][2]              # the right half: as fine as before
    # By as many quantiser steps as asked: the decoder's per-macroblock quantisers (8 columns of 16 px). The
    # decoder prints each row in pieces, so it runs on one thread (with frame threads, another's line cut into
    # a row in 2 of 150 decodes under load), with no progress line; the demuxer's and muxer's threads still
    # print, so a row may yet be lost now and then.
    log = subprocess.run([FF, "-hide_banner", "-nostats", "-debug", "qp", "-threads", "1",
                          "-i", str(tmp_path / "coarser.mp4"), "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    rows = np.array([[int(r[i:i + 2]) for i in range(0, 16, 2)]
                     for r in re.findall(r"\] +\d+ ((?:[ \d]\d){8})$", log, re.MULTILINE)])
    assert len(rows) >= 6 * 6 - 2      # 6 rows of macroblocks in each of 6 frames
    assert rows[:, :4].mean() - rows[:, 4:].mean() == pytest.approx(12, abs=1.5)


def test_encoder_pipe_holds_a_whole_frame(tmp_path):
    """With the default 64 KiB pipe Python and ffmpeg would take turns instead of working together."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("pipe sizes are a Linux feature")
    wr = VideoWriter(tmp_path / "out.mp4", 25, (320, 240), pix_fmt="yuv420p")
    try:
        assert fcntl.fcntl(wr._proc.stdin.fileno(), fcntl.F_GETPIPE_SZ) >= 320 * 240 * 3 // 2
    finally:
        wr.abort()
