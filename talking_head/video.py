"""Reading and writing video clips through the static ffmpeg bundled with imageio-ffmpeg.

Why not imageio-ffmpeg's reader or moviepy: both guess a frame count from duration * fps, which
is off by one (or worse on variable-frame-rate phone clips), and the renderer needs exactly one
output frame per driving frame so that the audio we mux back stays in sync. Everything here
therefore talks to the ffmpeg binary directly and counts frames instead of estimating them:

* :func:`probe` decodes the whole video stream once (cheaply: frames are wrapped, not copied or
  hashed) and records every decoded frame's timestamp in the stream's own time base. That gives
  the exact number of frames ``read_frames`` will yield, an exact frame-rate fraction and a
  variable-frame-rate flag. The container header is used only for things it states exactly
  (codec, rotation, audio present).
* :func:`read_header` reads only the container header (milliseconds): enough to start decoding
  frames while :func:`probe` runs beside it, as a render of an uploaded clip does.
* :func:`read_frames` decodes with ``-fps_mode passthrough`` so ffmpeg never drops or
  duplicates frames to hit a nominal rate.
* :class:`VideoWriter` feeds raw RGB (or ready yuv420p) frames to libx264 at an exact fraction rate and only
  moves the finished file into place once ffmpeg has exited cleanly.

No ffprobe is needed (the wheel ships only ffmpeg); all stream facts come from ``ffmpeg -i``
output and the ``framecrc`` muxer.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import re
import secrets
import signal
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

import numpy as np

from talking_head.errors import ClipError
from talking_head.images import fit_within

__all__ = [
    "ClipInfo",
    "ClipHeader",
    "read_header",
    "probe",
    "read_frames",
    "VideoWriter",
    "ffmpeg_exe",
    "ClipNotFoundError",
    "NotAVideoError",
    "NoVideoStreamError",
    "EmptyClipError",
    "ClipTooLongError",
    "ClipDecodeError",
    "VideoEncodeError",
    "FrameFormatError",
]

# A header read only parses container metadata; the full-stream probe decodes every frame of
# a clip that already passed the length limit. Both are generous so that only a wedged ffmpeg
# (e.g. a file on a dead network mount) trips them.
_HEADER_TIMEOUT_S = 60.0
_DECODE_TIMEOUT_S = 600.0

# How framecrc writes a packet's missing timestamp (AV_NOPTS_VALUE).
_NO_TIME = -(2**63)

# Unprivileged processes may widen a pipe up to /proc/sys/fs/pipe-max-size (1 MiB by default).
_PIPE_MAX = 1 << 20

# Frame rates people mean when a measured average lands next to them.
_NTSC_BASES = (24, 30, 48, 60, 120)

# Containers whose streams ffmpeg times from the earliest of the streams it is asked for, not from the
# file's earliest (its demuxers flagged AVFMT_TS_DISCONT: MPEG-TS and M2TS, MPEG-PS (.mpg, .vob, .mod),
# Ogg, an FLV an RTMP server recorded). Read alone, such a file's sound starts at 0 wherever it sits
# against the picture, so the probe measures the sound's start beside the picture's.
_OWN_STREAM_TIMELINES = frozenset({"mpegts", "mpegtsraw", "mpeg", "ogg", "hls", "live_flv"})


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ClipNotFoundError(ClipError):
    """The clip path does not exist or cannot be read."""


class NotAVideoError(ClipError):
    """ffmpeg cannot open the file as a media container (not a video, or a corrupt header)."""

    reason = "not_video"


class NoVideoStreamError(ClipError):
    """The file opens but holds no video stream (e.g. an audio-only file)."""

    reason = "not_video"


class EmptyClipError(ClipError):
    """The video stream exists but not a single frame decodes."""

    reason = "clip_unreadable"


class ClipTooLongError(ClipError):
    """The clip is longer than the caller's limit."""

    reason = "clip_too_long"


class ClipDecodeError(ClipError):
    """ffmpeg failed part-way through decoding a clip that probed fine."""

    reason = "clip_unreadable"


class VideoEncodeError(ClipError):
    """ffmpeg failed while writing an output video; nothing was written."""

    reason = "write_failed"


class FrameFormatError(ClipError, ValueError):
    """A frame passed to VideoWriter.write has the wrong shape or dtype (a caller bug).

    Also a ValueError, because it is a programming error rather than something a user did.
    """


# --------------------------------------------------------------------------------------------
# ClipInfo
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`probe` found out about a clip.

    ``width``/``height`` are the upright display size (non-square pixels made square), i.e. the
    size of the frames :func:`read_frames` yields without ``max_side``. ``rotation`` is clockwise degrees (the
    convention of the legacy mp4 ``rotate`` tag that phones write: a portrait phone clip is
    stored landscape with ``rotation == 90``). ``n_frames`` is exactly the number of frames
    :func:`read_frames` yields. ``fps`` is exact for constant-rate clips and the average rate,
    snapped to a conventional value when close, for variable-rate ones. ``start`` is where the first
    frame sits on the timeline of the clip's sound (as ffmpeg reads the sound alone), in seconds: a clip
    trimmed without re-encoding starts its video at a keyframe, after its audio, and the sound of frame 0
    is the audio ``start`` seconds in. For most containers that timeline is the file's, counted from its
    earliest stream, and a sound that begins after the first frame keeps its delay in its own timestamps;
    in MPEG-TS, MPEG-PS and Ogg it is the sound's own, from its first sample, and ``start`` is negative
    when the sound begins after the first frame. ``frame_times`` (seconds from the first frame, one per frame) is
    given only where playing the frames at ``fps`` would put one more than ``SYNC_SLACK`` from its
    moment in the clip (a phone clip that slows down in dim light): the render then keeps each frame's
    own time, and so its sound. ``transfer`` is the HDR transfer the picture is coded in (ffmpeg's name:
    ``"arib-std-b67"`` for HLG, as iPhones record by default; ``"smpte2084"`` for PQ/HDR10), ``""`` for SDR:
    :func:`read_frames` maps such frames to SDR BT.709.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    n_frames: int
    duration: float
    has_audio: bool
    rotation: int
    codec: str
    variable_frame_rate: bool
    start: float = 0.0
    frame_times: tuple[float, ...] | None = None
    container: str = ""  # ffmpeg's name for the file's format ("mov,mp4,m4a,3gp,3g2,mj2", "avi", ...)
    transfer: str = ""


@dataclass(frozen=True)
class ClipHeader:
    """What a clip's header says before any frame is decoded (:func:`read_header`).

    ``width``/``height`` are the upright display size the header states; :func:`probe` confirms it
    by decoding. The number of frames is not known yet, so :func:`read_frames` given a header
    cannot tell a clip that fails part-way from one whose damaged tail :func:`probe` leaves out:
    the caller compares the frames it read with the probe's ``n_frames``.
    """

    path: Path
    width: int
    height: int
    transfer: str = ""  # as ClipInfo.transfer


# --------------------------------------------------------------------------------------------
# ffmpeg plumbing
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the static ffmpeg that ships inside the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _widen_pipe(f, size: int) -> None:
    """Let a pipe hold ``size`` bytes (Linux; elsewhere a no-op), so each side can run a frame ahead.

    The default 64 KiB holds a tenth of a frame: ffmpeg and Python would take turns instead of
    working at the same time.
    """
    try:
        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), min(size, _PIPE_MAX))
    except (OSError, ValueError):
        pass  # not Linux, or over the system's limit: the default size still works


def _url(path: Path) -> str:
    # "file:" stops ffmpeg from reading a name like "clip:1.mp4" or "-x.mp4" as a protocol or
    # an option.
    return "file:" + str(path)


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


def _with_log(err: ClipError, ffmpeg_log: str) -> ClipError:
    # str(err) must stay one sentence a user can act on; ffmpeg's own words are for whoever
    # reads the traceback or the log, so they go into a note.
    if ffmpeg_log.strip():
        err.add_note("ffmpeg: " + _tail(ffmpeg_log))
    return err


def _read_text(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")


@dataclass(frozen=True)
class _Stream:
    index: int
    kind: str  # "Video", "Audio", ...
    desc: str  # the rest of the "Stream #0:N: Kind: ..." line
    side_lines: tuple[str, ...]  # indented lines that follow (metadata, side data)

    @property
    def is_real_video(self) -> bool:
        # Matches ffmpeg's own "0:V" specifier: cover art in an mp3/m4a is a Video stream too.
        return self.kind == "Video" and "(attached pic)" not in self.desc and "(timed thumbnails)" not in self.desc

    @property
    def codec(self) -> str:
        """ffmpeg's name for the stream's codec ("h264", "aac", "aac_latm")."""
        return self.desc.split(None, 1)[0].rstrip(",")


@dataclass(frozen=True)
class _Header:
    format_name: str
    duration: float | None
    streams: tuple[_Stream, ...]

    @property
    def video(self) -> _Stream | None:
        return next((s for s in self.streams if s.is_real_video), None)

    @property
    def sound(self) -> _Stream | None:
        """The first audio stream ffmpeg could describe: one it gives no sample rate ("0 channels", a TS
        track declared but never sent) cannot be decoded, and the clip is taken as silent."""
        return next((s for s in self.streams if s.kind == "Audio" and " Hz" in s.desc), None)

    @property
    def has_audio(self) -> bool:
        return self.sound is not None


_INPUT_RE = re.compile(r"^Input #0, (.*?), from '", re.M)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)\S*: (\w+): (.*)$")
_SIZE_RE = re.compile(r"(?<![\w/])([1-9]\d{0,5})x([1-9]\d{0,5})(?!\w)")
_HDR_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (?:fps|tbr)\b")
# ffmpeg 9 prints "Display Matrix: rotation of -90.00 degrees", older builds
# "displaymatrix: rotation of -90.00 degrees". The angle is counter-clockwise.
_ROTATION_RE = re.compile(r"display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.I)
# "512x480 [SAR 15:16 DAR 1:1]": pixels 15/16 as wide as they are high (anamorphic camcorders, some edits).
# The bracket holds the bitstream's own value; a container that sets another (MKV's display size, MP4's
# pasp box; `-aspect` writes them) adds it after, ", SAR 4:3 DAR 16:9", and the decoder follows the container.
_SAR_RE = re.compile(r"(\[|, )SAR (\d+):(\d+) DAR")
_HDR_TRANSFER_RE = re.compile(r"[(/ ](arib-std-b67|smpte2084)[,)/]")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ClipNotFoundError(f"The clip {path} does not exist; check the path and try again.")
    if not path.is_file():
        raise ClipNotFoundError(f"The clip path {path} is not a file; choose a video file instead.")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ClipNotFoundError(
            f"The clip {path} cannot be read ({e.strerror or e}); fix its permissions and try again."
        ) from e


def _read_header(path: Path) -> _Header:
    """Parse ``ffmpeg -i`` (which exits 1 because no output is named; that is expected)."""
    _check_readable(path)
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _url(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=_HEADER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise NotAVideoError(
            f"Reading the header of {path.name} took longer than {_HEADER_TIMEOUT_S:.0f} s; "
            "copy the clip to a local disk or re-export it and try again."
        ) from e
    err = proc.stderr.decode("utf-8", "replace")
    m = _INPUT_RE.search(err)
    if not m:
        if "No such file or directory" in err:
            raise ClipNotFoundError(f"The clip {path} does not exist; check the path and try again.")
        if "Permission denied" in err:
            raise ClipNotFoundError(f"The clip {path} cannot be read; fix its permissions and try again.")
        raise _with_log(
            NotAVideoError(
                f"{path.name} is not a video file that can be opened (it is corrupt or in an unknown format); "
                "export it as an MP4 and try again."
            ),
            err,
        )

    dm = _DURATION_RE.search(err)
    duration = int(dm[1]) * 3600 + int(dm[2]) * 60 + float(dm[3]) if dm else None

    streams: list[_Stream] = []
    cur: tuple[int, str, str] | None = None
    side: list[str] = []
    for line in err[m.start() :].splitlines():
        sm = _STREAM_RE.match(line)
        if sm or not line.startswith(" "):  # a new stream, or the end of Input #0's block
            if cur:
                streams.append(_Stream(*cur, tuple(side)))
            cur, side = None, []
            if sm:
                cur = (int(sm[1]), sm[2], sm[3])
            elif not line.startswith("Input #0"):
                break
        elif cur:
            side.append(line.strip())
    if cur:
        streams.append(_Stream(*cur, tuple(side)))
    return _Header(format_name=m[1], duration=duration, streams=tuple(streams))


def _stream_rotation(s: _Stream) -> int:
    for line in s.side_lines:
        m = _ROTATION_RE.search(line)
        if m:
            ccw = float(m[1])
            # Clockwise, snapped to a right angle: nothing downstream can display skewed video.
            return int(round(-ccw / 90.0)) % 4 * 90
    return 0


def _header_fps(s: _Stream) -> Fraction | None:
    """The header's rounded rate ("29.97 fps"); only used when a clip has a single frame."""
    m = _HDR_FPS_RE.search(s.desc)
    if not m:
        return None
    value = Fraction(m[1]) * (1000 if m[2] else 1)
    return value if value > 0 else None


# --------------------------------------------------------------------------------------------
# Frame-rate arithmetic
# --------------------------------------------------------------------------------------------


def _snap_fps(value: Fraction, rel_tol: float) -> Fraction | None:
    """The conventional rate (integer or N*1000/1001) nearest to ``value`` within ``rel_tol``."""
    if value <= 0:
        return None
    candidates = [Fraction(round(value))] if round(value) >= 1 else []
    candidates += [Fraction(n * 1000, 1001) for n in _NTSC_BASES]
    best = min(candidates, key=lambda c: abs(c - value))
    return best if abs(best - value) <= value * Fraction(rel_tol) else None


def _simplest_fraction(value: Fraction, rel_tol: float) -> Fraction:
    """The fraction with the smallest denominator within ``rel_tol`` of ``value``.

    An average like 361 frames / 12.0333 s is exactly 5415/181; 359/12 says the same to 0.001%.
    """
    for den in range(1, 1002):
        f = value.limit_denominator(den)
        if abs(f - value) <= value * Fraction(rel_tol):
            return f
    return value.limit_denominator(1001)


# How far from its own moment a frame may be shown: viewers notice sound ahead of the picture from
# about 45 ms (ITU-R BT.1359).
SYNC_SLACK = 0.045
# A rendered clip's own frame times are written as a piecewise-linear function of the frame index, to
# within this many seconds, in at most this many pieces (ffmpeg's setpts takes an expression, not a list).
_TIMELINE_TOLERANCE = 0.001
_TIMELINE_PIECES = 300
# Frames that share a timestamp (or go back in time) are shown at least this far apart.
_TIMELINE_MIN_GAP = 0.001
_TIMELINE_TIMESCALE = 90000


def _frame_times(pts: list[int], tb: Fraction, fps: Fraction) -> tuple[float, ...] | None:
    """Each frame's time from the first, where playing the frames at ``fps`` would stray from them by
    more than ``SYNC_SLACK``; None where the constant rate keeps every frame close enough."""
    times = [float((p - pts[0]) * tb) for p in pts]
    if max(abs(t - i / float(fps)) for i, t in enumerate(times)) <= SYNC_SLACK:
        return None
    return tuple(times)


def timeline_expression(times: list[float] | tuple[float, ...]) -> str:
    """An ffmpeg expression of the frame index ``N`` that gives frame N's time in seconds, as in ``times``
    (strictly increasing from the first, and within ``_TIMELINE_TOLERANCE`` of each time, or more where
    that would take more than ``_TIMELINE_PIECES`` straight pieces). Past the last frame the last piece
    goes on."""
    t = np.asarray(times, np.float64) - float(times[0])
    for i in range(1, len(t)):
        t[i] = max(t[i], t[i - 1] + _TIMELINE_MIN_GAP)
    if len(t) == 1:
        return "0"
    tolerance = _TIMELINE_TOLERANCE
    while True:
        knots = [0]
        while knots[-1] < len(t) - 1:
            a, b = knots[-1], knots[-1] + 1
            while b + 1 < len(t):
                k = np.arange(a, b + 2)
                line = t[a] + (k - a) * (t[b + 1] - t[a]) / (b + 1 - a)
                if np.abs(line - t[k]).max() > tolerance:
                    break
                b += 1
            knots.append(b)
        if len(knots) - 1 <= _TIMELINE_PIECES:
            break
        tolerance *= 2
    pieces = list(itertools.pairwise(knots))

    def piece(a: int, b: int) -> str:
        return f"({t[a]:.6f}+(N-{a})*{(t[b] - t[a]) / (b - a):.9f})"

    def tree(lo: int, hi: int) -> str:
        # Pieces lo..hi-1 as a balanced tree of if()s, log2(pieces) deep: ffmpeg refuses an expression
        # nested about 100 deep, and a sum of one term per piece is that deep at about 97 pieces.
        if hi - lo == 1:
            return piece(*pieces[lo])
        mid = (lo + hi) // 2
        return f"if(lt(N,{pieces[mid][0]}),{tree(lo, mid)},{tree(mid, hi)})"

    return tree(0, len(pieces))


_MS = Fraction(1, 1000)


def _fps_from_timestamps(pts: list[int], tb: Fraction, fallback: Fraction | None) -> tuple[Fraction, bool]:
    """(fps, variable_frame_rate) from decoded frame timestamps in time base ``tb``; ``fallback`` is the
    rate the header states."""
    ts = sorted(pts)
    if len(ts) < 2 or ts[-1] <= ts[0]:
        fps = fallback or Fraction(25)
        return (_snap_fps(fps, 1e-3) or fps), False
    if tb < _MS and all(((t - ts[0]) * tb / _MS).denominator == 1 for t in ts):
        # Whole milliseconds in a finer time base: a Matroska or FLV recording remuxed into MP4, MOV or TS by
        # stream copy (as OBS's "remux" does). Their rounding is a millisecond's, not a tick's.
        ts, tb = [int((t - ts[0]) * tb / _MS) for t in ts], _MS
    diffs = [b - a for a, b in zip(ts, ts[1:])]
    # The header's rate (as ffmpeg prints it, to two decimals) where it is a conventional one.
    header = _snap_fps(fallback, 1e-3) if fallback else None
    span_ticks = ts[-1] - ts[0]
    avg = (len(ts) - 1) / (span_ticks * tb)
    # Timestamps are rounded to whole ticks, so a short clip in a coarse time base cannot pin the rate
    # down to better than about one tick over the whole span: Matroska's 1-ms ticks read 13 frames of
    # 29.97 fps as 30 fps, 3 of 59.94 as 61. Within that, the header's rate is the one it was made at.
    rel_tol = max(1e-4, 1.5 / span_ticks)
    header_fits = header is not None and abs(header - avg) <= avg * rel_tol
    med = statistics.median(diffs)
    # One tick of slack: a 29.97 clip in a 1/1000 time base legitimately alternates 33 and 34.
    tol = max(1.0, 1e-3 * med)
    vfr = any(abs(d - med) > tol for d in diffs)
    if min(diffs) == max(diffs):
        exact = 1 / (diffs[0] * tb)  # e.g. 3003 ticks of 1/90000 -> exactly 30000/1001
        return (header if header_fits else _snap_fps(exact, 1e-9) or exact), False
    regular = sum(abs(d - med) <= tol for d in diffs) / len(diffs)
    nominal = 1 / (Fraction(med).limit_denominator(1 << 20) * tb)
    if fallback and regular >= 0.9 and abs(nominal - fallback) <= 1e-3 * fallback:
        # A constant-rate clip with a few frames dropped (e.g. cut by stream copy): its rate is the
        # one it was shot at, and playing the kept frames at that rate matches its audio best.
        return header or fallback, vfr
    if header_fits:
        return header, vfr
    return (_snap_fps(avg, rel_tol) or _simplest_fraction(avg, 1e-4)), vfr


def _as_fraction(fps: Fraction | int | float | str) -> Fraction:
    if isinstance(fps, float):
        # 29.97 as a float is really 2997/100 or worse; the caller surely meant 30000/1001.
        f = Fraction(fps)
        return _snap_fps(f, 1e-3) or f.limit_denominator(1001)
    return Fraction(fps)


# --------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------


def _too_long(path: Path, found: float, limit: float, at_least: bool) -> ClipTooLongError:
    length = f"at least {found:.1f} s" if at_least else f"{found:.1f} s"
    return ClipTooLongError(
        f"The clip {path.name} is {length} long but the limit is {limit:g} s; "
        f"trim it to {limit:g} s or less and try again.", limit=limit)


def _video_header(path: Path) -> tuple[_Header, _Stream]:
    """The header and its video stream; a clear error for a still image or a file with no video."""
    header = _read_header(path)
    fmt = header.format_name
    # ffmpeg happily opens a PNG/JPEG as a one-frame "video"; a still is not a driving clip.
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise NotAVideoError(f"{path.name} is a still image, not a video; choose a video clip instead.")
    vstream = header.video
    if vstream is None:
        if any(s.kind == "Audio" for s in header.streams):
            what = "it looks like an audio-only file"
        elif header.streams:
            what = "it holds only subtitles or data"
        else:  # a container with no track at all: written from zero frames, or its index is damaged
            what = "the file is empty or its index is damaged"
        raise NoVideoStreamError(f"{path.name} has no video stream ({what}); choose a video clip instead.")
    return header, vstream


def _display_size(vstream: _Stream, coded: tuple[int, int]) -> tuple[int, int]:
    """The upright (width, height) a player shows frames of ``coded`` size in: pixels made square (the
    stream's sample aspect ratio), then turned by its rotation."""
    w, h = coded
    found = {opener: (int(a), int(b)) for opener, a, b in _SAR_RE.findall(vstream.desc) if int(a) and int(b)}
    a, b = found.get(", ", found.get("[", (1, 1)))  # (0:1 is "unknown": the other one counts)
    if a != b:
        w = max(1, round(w * a / b))
    return (h, w) if _stream_rotation(vstream) in (90, 270) else (w, h)


def _hdr_transfer(vstream: _Stream) -> str:
    """The HDR transfer ffmpeg names in the stream's colour description ("yuv420p10le(tv,
    bt2020nc/bt2020/arib-std-b67)"), or "" for an SDR picture."""
    m = _HDR_TRANSFER_RE.search(vstream.desc)
    return m[1] if m else ""


def _header_size(vstream: _Stream) -> tuple[int, int] | None:
    """The upright (width, height) the header states for ``vstream``; None where it states none."""
    m = _SIZE_RE.search(vstream.desc)
    if not m:
        return None
    return _display_size(vstream, (int(m[1]), int(m[2])))


def read_header(path: str | os.PathLike[str]) -> ClipHeader | None:
    """The clip's upright frame size from its header alone, without decoding a frame (None where the
    header does not state one: only :func:`probe` can tell then).

    Raises the errors :func:`probe` raises before it decodes (:class:`ClipNotFoundError`,
    :class:`NotAVideoError`, :class:`NoVideoStreamError`).
    """
    path = Path(path)
    _, vstream = _video_header(path)
    size = _header_size(vstream)
    return None if size is None else ClipHeader(path=path, width=size[0], height=size[1], transfer=_hdr_transfer(vstream))


def probe(path: str | os.PathLike[str], *, max_duration: float | None = None) -> ClipInfo:
    """Inspect a clip, decoding its video stream once to count frames exactly.

    Raises a :class:`~talking_head.errors.ClipError` subclass for every way a clip can be
    unusable: :class:`ClipNotFoundError`, :class:`NotAVideoError`,
    :class:`NoVideoStreamError`, :class:`EmptyClipError`, :class:`ClipTooLongError`
    (when the clip is longer than ``max_duration`` seconds by more than half a frame) and
    :class:`ClipDecodeError`.
    """
    path = Path(path)
    header, vstream = _video_header(path)

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-max_error_rate", "1", "-noautorotate"]
    if max_duration is not None:
        # Stop decoding one second past the limit: an hour-long upload is rejected after
        # decoding about max_duration seconds of it, not the whole hour.
        cmd += ["-t", f"{max_duration + 1.0:.3f}"]
    # Where the sound starts against the picture, for containers whose sound ffmpeg would time from its
    # own first sample when it is read alone (the writer's case): copied, so its packets cost nothing.
    sound = header.sound if header.format_name in _OWN_STREAM_TIMELINES else None
    cmd += [
        "-i", _url(path),
        "-map", "0:V:0", *(["-map", f"0:{sound.index}", "-c:a", "copy"] if sound is not None else []),
        # passthrough: one output per decoded frame, no drop/dup to a nominal rate;
        # enc_time_base demux: keep the stream's own time base instead of 1/round(fps), which
        # would quantise away exactly the timestamps we are here to measure.
        "-fps_mode", "passthrough", "-enc_time_base:v", "demux",
        # wrapped_avframe passes a pointer, so framecrc checksums a few hundred bytes per frame
        # instead of the whole picture.
        "-c:v", "wrapped_avframe", "-f", "framecrc", "pipe:1",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=_DECODE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise ClipDecodeError(
            f"Decoding {path.name} took longer than {_DECODE_TIMEOUT_S:.0f} s; "
            "use a shorter or smaller clip and try again."
        ) from e
    if proc.returncode < 0 or proc.returncode == 255:  # a signal stopped it (255: ffmpeg's exit on SIGINT/SIGTERM,
        # as when Ctrl-C reaches the process group): the frames it counted are a part of the clip's
        raise ClipDecodeError(f"Reading {path.name} was stopped before its end; run the command again.")
    out = proc.stdout.decode("ascii", "replace")
    err = proc.stderr.decode("utf-8", "replace")

    tb: Fraction | None = None
    sound_tb: Fraction | None = None
    dims: tuple[int, int] | None = None
    pts: list[int] = []
    sound_pts: int | None = None
    for line in out.splitlines():
        if line.startswith("#tb 0:"):
            tb = Fraction(line.split(":", 1)[1].strip())
        elif line.startswith("#tb 1:"):
            sound_tb = Fraction(line.split(":", 1)[1].strip())
        elif line.startswith("#dimensions 0:"):
            w, h = line.split(":", 1)[1].strip().split("x")
            dims = (int(w), int(h))
        elif line.startswith("0,"):
            fields = line.split(",")
            pts.append(int(fields[2]))
        elif line.startswith("1,") and sound_pts is None:
            sound_pts = int(line.split(",")[2])
            sound_pts = None if sound_pts == _NO_TIME else sound_pts
    n = len(pts)
    if n == 0 and ("Decoder (codec" in err or "Unsupported codec" in err or "no decoder found" in err):
        raise _with_log(
            ClipDecodeError(
                f"The video in {path.name} cannot be decoded here; re-export it as an H.264 MP4 and try again."
            ),
            err,
        )
    if n == 0:
        raise _with_log(
            EmptyClipError(
                f"Not a single video frame of {path.name} could be decoded (the file is probably damaged); "
                "re-export it as an H.264 MP4 and try again."
            ),
            err,
        )

    tb = tb or Fraction(1, 90000)
    fps, vfr = _fps_from_timestamps(pts, tb, _header_fps(vstream))
    duration = float(n / fps)
    if max_duration is not None and duration > max_duration + 0.5 / float(fps):
        # Decoding may have stopped at the -t bound; then only the header knows the full length
        # (and if it lacks one, all we can say is "at least").
        cut = duration >= max_duration + 0.9
        if cut and header.duration and header.duration >= duration:
            raise _too_long(path, header.duration, max_duration, at_least=False)
        raise _too_long(path, duration, max_duration, at_least=cut)

    rotation = _stream_rotation(vstream)
    if dims is None:
        size = _header_size(vstream)
        if size is None:
            raise NotAVideoError(f"{path.name} has a video stream of unknown size; re-export it as an MP4 and try again.")
        w, h = size
    else:
        w, h = _display_size(vstream, dims)
    return ClipInfo(
        path=path,
        width=w,
        height=h,
        fps=fps,
        n_frames=n,
        duration=duration,
        has_audio=header.has_audio,
        rotation=rotation,
        codec=vstream.codec,
        variable_frame_rate=vfr,
        start=_sound_start(float(pts[0] * tb), sound is not None,
                           None if sound_pts is None or sound_tb is None else float(sound_pts * sound_tb), duration),
        frame_times=_frame_times(pts, tb, fps) if vfr else None,
        container=header.format_name,
        transfer=_hdr_transfer(vstream),
    )


def _sound_start(first_frame: float, sound_apart: bool, first_sound: float | None, duration: float) -> float:
    """:attr:`ClipInfo.start` from the first frame's time and, for a container whose sound is timed on its
    own (``sound_apart``, ``_OWN_STREAM_TIMELINES``), the sound's first packet's time on the same timeline."""
    if first_sound is not None:
        return first_frame - first_sound
    if sound_apart:  # no sound while the picture lasted (the probe stops a second after the length limit)
        return -(duration + 1.0)
    # Otherwise ffmpeg counts timestamps from the file's earliest stream, so this is the first frame's offset.
    return max(0.0, first_frame)


# --------------------------------------------------------------------------------------------
# read_frames
# --------------------------------------------------------------------------------------------


def read_frames(
    path: str | os.PathLike[str], info: ClipInfo | ClipHeader | None = None, *, max_side: int | None = None
) -> Iterator[np.ndarray]:
    """Yield every coded frame of ``path`` as an upright, C-contiguous RGB uint8 (H, W, 3) array.

    Exactly ``info.n_frames`` frames come out. With ``max_side`` the frames are downscaled
    (area filter, aspect kept) so the longer side is at most ``max_side``. The clip is probed
    now when ``info`` is not given, so bad paths fail here rather than on first iteration;
    ffmpeg itself starts on first iteration and is always reaped, even when the consumer stops
    early. Given a :class:`ClipHeader` (no count known yet), a decoder that stops early ends the
    frames without an error; the caller compares their number with :func:`probe`'s.
    """
    path = Path(path)
    if info is None:
        info = probe(path)
    w, h = fit_within(info.width, info.height, max_side)
    expected = info.n_frames if isinstance(info, ClipInfo) else 0
    return _frame_iter(path, w, h, expected=expected, transfer=info.transfer)


def _frame_iter(path: Path, w: int, h: int, expected: int, transfer: str = "") -> Iterator[np.ndarray]:
    # An explicit size also pins the output size if the stream changes resolution mid-way,
    # which would otherwise make the raw byte stream unparseable. Area averaging where the size changes
    # (max_side, non-square pixels): ffmpeg's default bicubic cost 80 % more CPU; at the coded size the
    # flag changes nothing (the same bytes).
    vf = f"scale={w}:{h}:flags=area"
    if transfer:
        # HDR to SDR after the downscale (zimg works in floats): BT.2408's reference white (HLG 75 %, PQ
        # 203 cd/m2) becomes SDR white, so faces keep the brightness the phone showed; the highlights above
        # it (a window, a lamp) are clipped as an SDR camera would; BT.2020 colours outside BT.709 too.
        # Read as SDR numbers, an iPhone's HLG clip came out dim and grey.
        vf += f",zscale=tin={transfer}:t=bt709:p=bt709:m=bt709:r=tv:npl=203"
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
        # ffmpeg 9 exits non-zero once over 2/3 of frames fail to decode (-max_error_rate);
        # probe counts whatever decodes, so reading must not give up where probe did not.
        "-max_error_rate", "1",
        "-i", _url(path),
        "-map", "0:V:0", "-fps_mode", "passthrough",  # never drop/dup (autorotate stays on)
        "-vf", vf, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1",
    ]  # fmt: skip
    frame_bytes = w * h * 3
    # stderr goes to a file: a pipe nobody drains can fill up and deadlock ffmpeg.
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf)
        assert proc.stdout is not None
        _widen_pipe(proc.stdout, frame_bytes)
        count = 0
        try:
            while True:
                frame = np.empty((h, w, 3), np.uint8)
                buf = memoryview(frame).cast("B")
                got = 0
                while got < frame_bytes:
                    k = proc.stdout.readinto(buf[got:])
                    if not k:
                        break
                    got += k
                if got < frame_bytes:
                    break  # EOF (a partial frame only happens if ffmpeg died; checked below)
                count += 1
                yield frame
            rc = proc.wait()
            # A complaint after every probed frame came out (e.g. about the damaged tail that
            # probe already excluded) costs the caller nothing, so only a short read is fatal.
            if rc != 0 and count < expected:
                raise _with_log(
                    ClipDecodeError(
                        f"Decoding {path.name} failed part-way; re-export the clip as an H.264 MP4 and try again."
                    ),
                    _read_text(errf),
                )
        finally:
            # Runs on normal end, on error, and on generator close()/garbage collection when
            # the consumer stops early: kill first so ffmpeg is not blocked writing to a pipe
            # nobody reads, then reap it so no zombie is left.
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


# --------------------------------------------------------------------------------------------
# VideoWriter
# --------------------------------------------------------------------------------------------

# Tags the mp4 muxer writes natively (as iTunes-style atoms). Any other key is only kept with
# "-movflags use_metadata_tags", which stores *all* tags as QuickTime mdta keys instead; so that
# flag is added only when it is needed.
_NATIVE_MP4_TAGS = frozenset(
    {
        "title", "artist", "author", "album_artist", "album", "composer", "date", "comment",
        "genre", "copyright", "grouping", "lyrics", "description", "synopsis", "show",
        "episode_id", "network", "track", "disc",
    }
)  # fmt: skip


# The shape of one written frame, from (width, height), per input pixel format.
_FRAME_SHAPE = {
    "rgb24": lambda w, h: (h, w, 3),
    "yuv420p": lambda w, h: (w * h * 3 // 2,),
}


class VideoWriter:
    """Write RGB frames to a browser-playable H.264 MP4, atomically.

    ``size`` is ``(width, height)`` of the frames that will be written. Odd sizes are padded
    (never scaled) by one black row/column, because yuv420p needs even dimensions. With
    ``pix_fmt="yuv420p"`` the caller hands over frames already in the encoder's layout (flat
    uint8 arrays: the Y plane, then Cb and Cr at half size; BT.709 limited range, e.g. from
    :class:`talking_head.compose.I420Frame`; even sizes only), which halves what goes through the
    pipe and saves ffmpeg a full-frame colour conversion. ``x264_params`` are passed on as
    ``-x264-params`` (e.g. ``"cabac=0"``). The output
    rate is exactly ``fps`` and each :meth:`write` is exactly one output frame. When
    ``audio_from`` has an audio stream its sound is cut to ``duration``, the seconds the frames will last
    (needed with ``audio_from``). AAC that needs no moving is copied as it is (a shorter one stays
    shorter: players then show the last frames in silence); any other sound is re-encoded to AAC (mixed
    down to 7.1 at most) and padded with silence to ``duration``.
    ``audio_start`` is where frame 0 sits on the timeline of ``audio_from``'s sound (:attr:`ClipInfo.start`):
    the audio before it is left out, so the sound keeps the clip's sync; audio that starts after
    the clip's first frame keeps its delay (a negative ``audio_start`` delays the sound by as much). ``frame_times`` (seconds from the first frame, e.g.
    :attr:`ClipInfo.frame_times`) shows frame i at its own time instead of at i / ``fps``, for a
    clip whose rate varies: one output frame per write still, and the sound stays on the picture.
    ``coarser`` (x, y, width, height, steps): x264 quantises that region ``steps`` quantiser steps more
    coarsely than the rest (a region that needs fewer bits than ``crf`` would give it; each 6 steps halve
    the bits a picture gets). x264 takes whole 16-px macroblocks that the region touches.

    Frames go to ``.<name>.<random>.partial.mp4`` next to ``path``; only a clean close renames
    it onto ``path``. An exception in the ``with`` block, :meth:`abort`, or an encoder failure
    kills ffmpeg and deletes the partial file, so ``path`` is never half-written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: Fraction | int | float | str,
        size: tuple[int, int],
        *,
        audio_from: str | os.PathLike[str] | Path | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        metadata: dict[str, str] | None = None,
        duration: float | None = None,
        pix_fmt: str = "rgb24",
        x264_params: str | None = None,
        audio_start: float = 0.0,
        frame_times: list[float] | tuple[float, ...] | None = None,
        coarser: tuple[int, int, int, int, float] | None = None,
    ):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            # Caught here because ffmpeg would only notice after the first frames were rendered.
            raise VideoEncodeError(
                f"Cannot write {self.path.name}: the folder {self.path.parent} does not exist; create it and try again."
            )
        self.fps = _as_fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        w, h = (int(v) for v in size)
        if w < 1 or h < 1:
            raise ValueError(f"size must be positive (width, height), got {size!r}")
        if pix_fmt not in _FRAME_SHAPE:
            raise ValueError(f"pix_fmt must be one of {sorted(_FRAME_SHAPE)}, got {pix_fmt!r}")
        if pix_fmt == "yuv420p" and (w % 2 or h % 2):
            raise ValueError(f"yuv420p frames need even sides, got {w}x{h}")
        self.size = (w, h)
        self.pix_fmt = pix_fmt
        self.frames_written = 0
        # "Closed" until ffmpeg is running, so that __del__/abort after a failed __init__ are no-ops.
        self._closed = True
        self._proc: subprocess.Popen[bytes] | None = None

        audio: Path | None = None
        audio_is_aac = False
        if audio_from is not None:
            if duration is None or not duration > 0:
                raise ValueError(f"audio_from needs the duration the frames will last, got {duration!r}")
            audio_path = Path(audio_from)
            header = _read_header(audio_path)
            sound = header.sound
            # (A sound that only starts once the picture is over has nothing to play in it.)
            if sound is not None and -audio_start < duration:
                audio = audio_path
                audio_is_aac = sound.codec == "aac"  # (not aac_latm: MP4 cannot hold it)
        self.has_audio = audio is not None
        # The sound is moved onto frame 0 by the filters (cut at audio_start, every time shifted by it), never
        # by ffmpeg's input options: -ss on an FLV landed 1.5 s late, and in MPEG-TS an -itsoffset over 10 s
        # was taken for a broken timestamp and undone.
        shift = abs(audio_start) > 0.0005
        # AAC that needs no shift is copied (cut to the length) instead of re-encoded: re-encoding cost as much as
        # the whole H.264 encode here.
        copy_audio = audio_is_aac and not shift

        tags = dict(metadata or {})
        for key in tags:
            if not key or "=" in key or not key.isprintable():
                raise ValueError(f"invalid metadata key {key!r}")

        # Not mkstemp: that creates the file 0600, and the final video should get the same
        # umask-derived permissions as any other file the app writes. The random part keeps
        # concurrent renders of the same target apart.
        self._tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.partial.mp4")

        filters = []
        if frame_times is not None:
            # A fine time base first: setpts' times would otherwise be rounded to the input's 1/fps.
            filters += [f"settb=1/{_TIMELINE_TIMESCALE}", f"setpts='({timeline_expression(frame_times)})/TB'"]
        if w % 2 or h % 2:
            filters.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")
        if pix_fmt == "rgb24":
            # Convert with the BT.709 matrix and tag it so: untagged yuv is guessed as BT.601 or
            # BT.709 depending on the player, which shifts skin tones between browsers.
            filters.append("scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")
        if coarser is not None:
            # libx264 reads the region from each frame's side data; qoffset 1 is the whole 8-bit quantiser
            # range, 51 steps.
            x, y, rw, rh, steps = coarser
            filters.append(f"addroi=x={int(x)}:y={int(y)}:w={int(rw)}:h={int(rh)}:qoffset={float(steps) / 51:.5f}")

        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", pix_fmt, "-video_size", f"{w}x{h}",
        ]  # fmt: skip
        if pix_fmt == "yuv420p":
            # Say what the frames already are, or ffmpeg converts them from an assumed BT.601.
            cmd += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
        cmd += [
            # The exact fraction: "29.97" would give a 2997/100 stream that drifts from the audio.
            "-framerate", f"{self.fps.numerator}/{self.fps.denominator}",
            "-i", "pipe:0",
        ]  # fmt: skip
        if audio is not None:
            if copy_audio:
                cmd += ["-t", f"{float(duration):.6f}"]
            cmd += ["-i", _url(audio)]
        cmd += ["-map", "0:v:0"]
        if audio is not None:
            cmd += ["-map", f"1:{sound.index}"]
        if filters:
            cmd += ["-vf", ",".join(filters)]
        cmd += [
            "-fps_mode", "passthrough",  # one output frame per written frame, whatever happens
            # The encoder keeps the filters' fine time base for a varying rate (by default: 1/fps).
            *(["-enc_time_base:v", "filter", "-video_track_timescale", str(_TIMELINE_TIMESCALE)] if frame_times else []),
            "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
            *(["-x264-params", x264_params] if x264_params else []),
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
        ]  # fmt: skip
        if audio is not None and copy_audio:
            cmd += ["-c:a", "copy"]
        elif audio is not None:
            place = ""
            if shift:  # the sound from frame 0's moment on, that moment made 0; a sound that starts later keeps its delay
                place = (f"atrim=start={float(audio_start):.6f}," if audio_start > 0 else "") + (
                    f"asetpts=PTS{-float(audio_start):+.6f}/TB,")
            # Padded with silence to the picture's length and cut there, never an endless apad ended by -shortest:
            # ffmpeg made silence as fast as it could while it waited for the next frame and held it all for
            # -shortest (1.3 GB in a second's wait, 0.58 GB over an upload's render), until its queue overflowed
            # and it stopped with "No space left on device". (-shortest would also cut the video where the sound
            # ended a few ms early.)
            end = f"{float(duration):.6f}"
            # Layouts AAC takes: its encoder refuses more than 8 channels (5.1.4, 22.2) and some of 8 (5.1.2),
            # which failed the render; those are mixed down to the nearest of these.
            layouts = "mono|stereo|3.0|4.0|5.0|5.1|6.1|7.1"
            cmd += ["-af", f"{place}apad=whole_dur={end},atrim=end={end},aformat=channel_layouts={layouts}",
                    "-c:a", "aac", "-b:a", "160k"]  # fmt: skip
        movflags = "+faststart"  # moov first, so browsers start playing before the download ends
        if any(k not in _NATIVE_MP4_TAGS for k in tags):
            movflags += "+use_metadata_tags"
        cmd += ["-movflags", movflags]
        for k, v in tags.items():
            cmd += ["-metadata", f"{k}={v}"]
        cmd += ["-f", "mp4", _url(self._tmp)]

        self._errf = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._errf)
            _widen_pipe(self._proc.stdin, int(np.prod(_FRAME_SHAPE[pix_fmt](w, h))))
        except BaseException:
            self._errf.close()
            raise
        self._closed = False

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False

    def __del__(self):
        # A writer dropped without close() must not leave ffmpeg running or a partial file.
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass

    # -- writing ---------------------------------------------------------------------------

    def write(self, frame: np.ndarray) -> None:
        """Append one frame: RGB uint8 of shape (height, width, 3), or flat yuv420p (see the class)."""
        if self._closed:
            raise VideoEncodeError(f"The writer for {self.path.name} is already closed; start a new render.")
        shape = _FRAME_SHAPE[self.pix_fmt](*self.size)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != shape:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise FrameFormatError(f"Frames must be uint8 arrays of shape {shape}, got {got}; this is a bug.")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
        except (BrokenPipeError, ValueError, OSError) as e:
            raise self._fail("ffmpeg stopped accepting frames") from e
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the file onto ``path``; on failure nothing is left behind."""
        if self._closed:
            return
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # ffmpeg already gone; its exit status below says why
        rc = self._proc.wait()
        if rc != 0:
            raise self._fail(f"ffmpeg exited with status {rc}")
        if self.frames_written == 0:
            raise self._fail("no frames were written")
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:
            raise self._fail(f"the finished file could not be moved into place ({e})") from e
        self._closed = True
        self._errf.close()

    def _exit_status(self, grace: float = 2.0) -> int | None:
        """ffmpeg's exit status, waiting ``grace`` seconds for it: a broken pipe means ffmpeg closed its
        end, but the kernel closes a dying process's files before the process can be reaped, so an
        immediate poll() can miss the signal (SIGXFSZ) that says why it died."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return None

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial file. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
            proc.wait()
        try:
            self._tmp.unlink(missing_ok=True)
        finally:
            self._errf.close()

    def _fail(self, what: str) -> VideoEncodeError:
        rc = self._exit_status()
        ffmpeg_log = "" if self._errf.closed else _read_text(self._errf)
        self.abort()
        if _disk_full(ffmpeg_log, rc):
            err = VideoEncodeError(f"Writing {self.path.name} failed because the disk is full; nothing was saved, "
                                   "free some disk space and try again.")
        else:
            err = VideoEncodeError(f"Writing {self.path.name} failed ({what}); nothing was saved, try the render again.")
        return _with_log(err, ffmpeg_log)


def _disk_full(ffmpeg_log: str, rc: int | None) -> bool:
    """Whether ffmpeg stopped because the output could not grow: ENOSPC, EDQUOT, or EFBIG/SIGXFSZ (a file-size limit)."""
    if rc is not None and rc == -getattr(signal, "SIGXFSZ", 25):
        return True
    return any(s in ffmpeg_log for s in ("No space left on device", "Disk quota exceeded", "File too large"))
