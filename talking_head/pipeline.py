"""The one orchestration path: portrait + driving clip -> mp4.

The CLI, the app, the API and the benchmarks all call :func:`animate`. It resolves inputs (gallery
ids or files), finds the portrait's face and the clip's motion (cached on disk), asks an engine to
render crops, pastes them back into the full canvas, labels every frame and encodes the result.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import numbers
import os
import threading
import time
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from . import handoff, video
from .cache import DiskCache, bytes_digest, file_digest
from .compose import (
    LABEL_TEXT,
    I420Frame,
    PasteMask,
    draw_label,
    even_size,
    label_box,
    paste_back,
    side_by_side,
)
from .engines import (
    DrivingFrame,
    Engine,
    EngineOutOfMemory,
    Prepared,
    SourceStore,
    create_engine,
)
from .errors import (
    Cancelled,
    ClipError,
    FaceNotFoundError,
    Note,
    SettingsError,
    TalkingHeadError,
)
from .faces import (
    FaceFollower,
    FaceLandmarks,
    LandmarkBackend,
    choose_face,
    get_backend,
)
from .faces.patches import track_on_skin
from .gallery import Gallery
from .images import load_image
from .motion import MotionTrack, Retargeted, build_track, decompose, face_size, retarget
from .smoothing import FixedLagSmoother, GapFiller
from .topology import get_layout

GALLERY_PREFIX = "gallery:"
DEFAULT_MAX_DURATION = 30.0
# Driving frames are tracked and used (mouth interior, side-by-side) at this size at most:
# enough for landmarks, and it keeps a 4K phone clip from costing 4K decoding.
DRIVE_MAX_SIDE = 720
# How extracted motion is made (tracked, then corrected on the skin: faces.patches); a new value keeps
# motion cached by an older way from being used.
MOTION_VERSION = "skin-patches-4"  # 2: frames of non-square pixels are tracked at their display shape; 3, 4: the same
# person taken up again after a loss in a clip with several (FaceFollower)
# How a portrait's face is found; a new value keeps faces found the older way from being used. 2: a fit whose
# eyes do not hold their irises is taken again from other crops (faces.mediapipe_backend.irises_fit).
FACE_VERSION = "2"
# The encoder is a third of a render's CPU on a 2-core laptop (more side by side), so it does only what a
# painting's picture needs.
# x264 'ultrafast', with three of the things it turns off put back: B-frames (a file a third smaller), adaptive
# quantisation (bits for the flat, dark parts of a canvas) and the deblocking filter. At CRF 17 that keeps the face's
# PSNR and SSIM of 'superfast' at CRF 18 (46.8 dB / 0.9905 against 46.7 / 0.9904 on a Vermeer render) for
# about a quarter less encoder time, in a file about a third larger (BENCHMARKS.md, twentieth session).
# (x264-params' "deblock=1" would also strengthen the filter: "0,0" is its default strength.)
ENCODER_PRESET = "ultrafast"
ENCODER_CRF = 17
# CAVLC instead of CABAC: the same pictures (the preset's decisions do not depend on the entropy
# coder) for ~17 % less encoder time and a ~13 % larger file.
ENCODER_PARAMS = "cabac=0:bframes=3:aq-mode=1:deblock=0,0"
# Side by side, the driving panel is the clip scaled up to the portrait's height (a 480-px clip beside a
# 1280-px painting): smooth, and at CRF 18 x264 gave it most of the bits (51.5 dB against the painting's
# 49). Quantised 14 steps more coarsely it keeps 45 dB, and the encoder takes about a quarter less time for
# half the file (BENCHMARKS.md, "Side by side").
SIDE_PANEL_COARSER = 14
# The threads a render starts besides the caller's: an upload's motion tracking, and the pasting, converting
# and writing of finished frames (handoff.InOrder). Named, so that a leak can be seen and tested for.
TRACKING_THREAD = "motion-tracking"
FINISHING_THREAD = "compose-encode"
RENDER_THREADS = (TRACKING_THREAD, FINISHING_THREAD)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def encoder_threads() -> int:
    """x264's threads while a render encodes: half the cores, the other half is the renderer's.

    x264's own default (1.5 threads per core) fights the renderer over the CPU: on 2 cores a 12-s
    Vermeer render took 3.63 s with it and 3.16 s with one encoder thread (BENCHMARKS.md).
    """
    return max(1, _cores() // 2)


def encoder_params() -> str:
    """``ENCODER_PARAMS`` with x264's thread count (:func:`encoder_threads`)."""
    return f"{ENCODER_PARAMS}:threads={encoder_threads()}"


_POOL_LOCK = threading.Lock()
_POOL_USERS = 0
_POOL_SAVED: int | None = None


@contextlib.contextmanager
def renderer_threads(encoding: bool):
    """While a render encodes, OpenCV's thread pool gets the cores x264 leaves (one on 2 cores).

    With both, OpenCV split each remap across both cores, one of which x264 was using: a 12-s Vermeer
    render took 3.19 s instead of 3.07 s (BENCHMARKS.md). The pool is process-wide, so concurrent
    renders share one setting; the last to finish puts the old size back.
    """
    global _POOL_USERS, _POOL_SAVED
    if not encoding:
        yield
        return
    with _POOL_LOCK:
        if _POOL_USERS == 0:
            _POOL_SAVED = cv2.getNumThreads()
            cv2.setNumThreads(max(1, _cores() - encoder_threads()))
        _POOL_USERS += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _POOL_USERS -= 1
            if _POOL_USERS == 0:
                cv2.setNumThreads(_POOL_SAVED)


ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class AnimateSettings:
    expression_strength: float = 1.0   # 0 keeps the face still, 1 copies the driver, >1 exaggerates
    head_strength: float = 1.0
    head_motion: bool = True           # False: only the face moves, the head stays put
    smoothing: float = 1.0             # 0 raw landmarks, 1 default, 2 very smooth
    side_by_side: bool = False         # driving clip | result
    crop_only: bool = False            # the animated crop instead of the whole canvas
    max_duration: float = DEFAULT_MAX_DURATION
    face_index: int | None = None      # which face of the portrait (from the left); None: the largest
    landmarks: str = "auto"            # landmark backend
    max_side: int = 1280               # canvas long side: portraits larger than this are scaled down first

    def __post_init__(self):
        """A number out of its range is refused with the range (SettingsError): a strength of 50 smeared the
        face away, a max side of 10 wrote a 6x10 video whose label could not be seen, NaN stopped OpenCV."""
        for name, what, low, high in _SETTING_RANGES:
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                    and low <= value <= high and (name != "max_side" or value == int(value))):
                kind = "a whole number of pixels" if name == "max_side" else "a number"
                raise SettingsError(f"Use {kind} from {low:g} to {high:g} for the {what}; {value!r} is not one.",
                                    setting=name, low=low, high=high, value=value)
            # (plain numbers from here on: a numpy int or a float of a whole number of pixels come in too)
            object.__setattr__(self, name, int(value) if name == "max_side" else float(value))


# (field, its name for a person, lowest, highest): AnimateSettings' numbers.
_SETTING_RANGES = (
    ("expression_strength", "expression strength", 0.0, 2.0),
    ("head_strength", "head motion strength", 0.0, 2.0),
    ("smoothing", "smoothing", 0.0, 2.0),
    ("max_duration", "longest clip accepted (seconds)", 0.1, 3600.0),
    ("max_side", "canvas's long side", 240, 8192),
)


@dataclass
class AnimateResult:
    path: Path
    n_frames: int
    fps: object
    size: tuple[int, int]
    engine: str
    crop_box: tuple[int, int, int, int]
    timings: dict = field(default_factory=dict)
    motion_cached: bool = False
    notes: list[Note] = field(default_factory=list)  # what a user should know (a fallback, several faces)


class _Canceller:
    def __init__(self, cancel):
        self._cancel = cancel

    def check(self) -> None:
        c = self._cancel
        if c is None:
            return
        if (c.is_set() if isinstance(c, threading.Event) else c()):
            raise Cancelled()


# -- inputs ---------------------------------------------------------------------------------------
# Progress messages (the callback's second argument); their reasons let a caller say them in its own words.
STEP_FACE = Note("Finding the face in the portrait", reason="face")
STEP_MOTION = Note("Reading the driving clip's motion", reason="motion")
STEP_DONE = Note("Done", reason="done")


def _gallery_id(spec) -> str | None:
    if isinstance(spec, str) and spec.startswith(GALLERY_PREFIX):
        return spec[len(GALLERY_PREFIX):]
    return None


def resolve_portrait(spec, settings: AnimateSettings, gallery: Gallery,
                     cache: DiskCache) -> tuple[np.ndarray, FaceLandmarks, str, int]:
    """(image, face, content key, faces in the picture) for a gallery id, a path, bytes or an array."""
    gid = _gallery_id(spec)
    if gid is not None:
        path = gallery.portrait_path(gid)
        img = load_image(path, max_side=settings.max_side)
        face = gallery.portrait_face(gid)
        entry = gallery.portrait(gid)
        stored_w = entry.get("size", [img.shape[1]])[0]
        if settings.face_index is None and stored_w:
            if stored_w != img.shape[1]:  # a smaller max_side scaled the image down
                face = FaceLandmarks(face.points * (img.shape[1] / stored_w), face.layout)
            return img, face, f"gallery:{gid}:{file_digest(path)}", 1
        spec = path
    img = load_image(spec, max_side=settings.max_side)
    content = file_digest(spec) if isinstance(spec, (str, os.PathLike)) else bytes_digest(img.tobytes())
    key = cache.key("face", content, settings.landmarks, str(settings.face_index), str(img.shape), "count",
                    FACE_VERSION)
    blob = cache.get("face", key)
    if blob is not None:  # layout (16 bytes), how many faces the picture holds (4), the chosen face's points
        count = int(np.frombuffer(blob[16:20], np.int32)[0])
        arr = np.frombuffer(blob[20:], np.float32).reshape(-1, 3)
        face = FaceLandmarks(arr.copy(), blob[:16].decode().strip())
    else:
        faces = get_backend(settings.landmarks).detect(img)
        face = choose_face(faces, settings.face_index, what="the portrait")
        count = len(faces)
        cache.put("face", key, face.layout.ljust(16).encode() + np.int32(count).tobytes()
                  + face.points.astype(np.float32).tobytes())
    return img, face, key, count


def several_faces_note(count: int, chosen: int | None) -> Note | None:
    """What to tell the user when the picture holds more faces than the one animated."""
    if count < 2:
        return None
    if chosen is not None:
        return Note(f"The portrait has {count} faces; face number {chosen} from the left (counted from 0) was "
                    "animated.", reason="chosen_face", count=count, number=chosen + 1)
    return Note(f"The portrait has {count} faces; the largest was animated. To animate another, name it with "
                "--face, or crop the picture around it.", reason="several_faces", count=count)


def several_faces_in_clip_note(count: int) -> Note | None:
    """What to tell the user when the driving clip showed more faces than the one followed (a photograph on the
    wall or a mirror counts: the note says faces, not people)."""
    if count < 2:
        return None
    return Note(f"The driving clip shows {count} faces; the portrait follows the one that was largest where the "
                "clip starts. To follow another, crop the clip around that person.",
                reason="clip_several_faces", count=count)


def check_portrait(spec, settings: AnimateSettings | None = None, cache: DiskCache | None = None) -> Note | None:
    """Load a portrait and find its face exactly as a render would, before any rendering: raises the
    error the render would raise (not an image, damaged, too big, no face); returns the note a render
    would add (several faces) or None. The face found goes into ``cache`` (none by default: the file may
    be a visitor's), where a render given the same cache finds it."""
    settings = settings or AnimateSettings()
    _, _, _, count = resolve_portrait(spec, settings, Gallery.default(), cache or DiskCache(enabled=False))
    return several_faces_note(count, settings.face_index)


def check_clip(path, settings: AnimateSettings | None = None, cache: DiskCache | None = None) -> video.ClipInfo:
    """Probe a driving clip as a render would (not a video, no frames, too long): raises what the render
    would raise. The probe goes into ``cache`` as :func:`check_portrait`'s face does."""
    settings, path, cache = settings or AnimateSettings(), Path(path), cache or DiskCache(enabled=False)
    return _probe(path, _digest(path) if cache.enabled else None, settings.max_duration, cache)


def _check_found(raw: list[np.ndarray | None]) -> None:
    """Raise the error a user can act on when the driving clip's face is missing too often."""
    if not raw:
        raise ClipError("The driving clip has no frames that can be decoded; choose another clip.",
                        reason="clip_unreadable")
    found = sum(r is not None for r in raw)
    if found == 0:
        raise FaceNotFoundError("No face was found in the driving clip; use a clip where one face is clearly "
                                "visible, facing the camera.", reason="clip_no_face")
    if found < 0.5 * len(raw):
        raise FaceNotFoundError(f"The face is visible in only {found} of {len(raw)} frames of the driving clip; "
                                "use a clip where the face stays in view.", reason="clip_face_lost",
                                found=found, total=len(raw))


def extract_motion(path: Path, info: video.ClipInfo, *, backend: str = "auto",
                   progress: ProgressFn | None = None, cancel=None) -> MotionTrack:
    """Track the driving face through a clip (raw landmarks; smoothing happens at render time)."""
    be = get_backend(backend)
    canceller = _Canceller(cancel)
    raw, size, follower = [], None, FaceFollower()

    reader = video.read_frames(path, info, max_side=DRIVE_MAX_SIDE)

    def frames() -> Iterator[np.ndarray]:
        nonlocal size
        for i, f in enumerate(reader):
            canceller.check()
            size = (f.shape[1], f.shape[0])
            if progress and i % 10 == 0:
                progress(i / max(info.n_frames, 1), STEP_MOTION)
            yield f

    try:
        raw.extend(track_on_skin(be, frames(), follower))
    finally:
        reader.close()  # stop ffmpeg now if tracking failed or was cancelled
    _check_found(raw)
    return build_track(raw, be.layout, info.fps, size, follower.faces)


def _clip_file(spec, gallery: Gallery) -> tuple[Path, str | None]:
    """(the clip's path, its gallery id or None)."""
    gid = _gallery_id(spec)
    return (gallery.clip_path(gid) if gid is not None else Path(spec)), gid


def _digest(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None  # unreadable: the probe says what is wrong


def _duration(info: video.ClipInfo, n: int) -> float:
    """Seconds that ``n`` frames of the clip last in the render."""
    if info.frame_times is None or n > len(info.frame_times):
        return n / info.fps
    return info.frame_times[n - 1] + 1 / float(info.fps)


def _length_limit(settings: AnimateSettings, gid: str | None) -> float | None:
    """The longest clip a render takes: the settings' for an upload; none for a gallery clip, whose length the
    museum accepted when it added it (`gallery add-clip --max-duration`: a 45-s clip was added, then refused
    by every render and by prerender)."""
    return None if gid is not None else settings.max_duration


def _probe(path: Path, digest: str | None, max_duration: float | None, cache: DiskCache) -> video.ClipInfo:
    """``video.probe``'s answer, remembered per file content: a probe decodes the clip."""
    if digest is None:
        return video.probe(path, max_duration=max_duration)
    key = cache.key("probe", digest, repr(max_duration), "v6")  # v6: the rates of short Matroska clips and of remuxed ones
    blob = cache.get("probe", key)
    if blob is not None:
        fields = json.loads(blob)
        times = fields.get("frame_times")
        return video.ClipInfo(path=path, **{**fields, "fps": Fraction(fields["fps"]),
                                            "frame_times": None if times is None else tuple(times)})
    info = video.probe(path, max_duration=max_duration)
    fields = {k: v for k, v in dataclasses.asdict(info).items() if k != "path"}
    cache.put("probe", key, json.dumps({**fields, "fps": str(info.fps)}).encode())
    return info


def _known_motion(path: Path, gid: str | None, digest: str | None, settings: AnimateSettings, gallery: Gallery,
                  cache: DiskCache) -> tuple[MotionTrack | None, str | None]:
    """(the clip's raw motion if the gallery ships it or the cache holds it, else None; the key it is cached
    under once extracted, None for the gallery's own)."""
    if gid is not None and gallery.motion_path(gid).is_file():
        try:
            track = MotionTrack.load(gallery.motion_path(gid))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            track = None  # damaged: the clip is tracked again, as an upload would be
        if track is not None and (settings.landmarks in ("auto", track.layout)
                                  or get_backend(settings.landmarks).layout == track.layout):
            return track, None
    if digest is None:
        return None, None
    key = cache.key("motion", digest, get_backend(settings.landmarks).name, MOTION_VERSION)
    blob = cache.get("motion", key)
    return None if blob is None else MotionTrack.from_bytes(blob), key


def _find_clip(spec, settings: AnimateSettings, gallery: Gallery,
               cache: DiskCache) -> tuple[Path, video.ClipInfo, MotionTrack | None, str | None, str | None]:
    """(path, info, its stored raw motion or None when it must be extracted, the motion's cache key, the
    file's digest)."""
    path, gid = _clip_file(spec, gallery)
    digest = _digest(path)
    info = _probe(path, digest, _length_limit(settings, gid), cache)
    track, key = _known_motion(path, gid, digest, settings, gallery, cache)
    return path, info, track, key, digest


def resolve_clip(spec, settings: AnimateSettings, gallery: Gallery, cache: DiskCache,
                 progress: ProgressFn | None, cancel) -> tuple[Path, video.ClipInfo, MotionTrack, bool]:
    """(path, info, raw motion track, whether the motion came from a cache or the gallery)."""
    path, info, track, key, _ = _find_clip(spec, settings, gallery, cache)
    if track is not None:
        return path, info, track, True
    track = extract_motion(path, info, backend=settings.landmarks, progress=progress, cancel=cancel)
    if key is not None:
        cache.put("motion", key, track.to_bytes())
    return path, info, track, False


# -- driving motion, frame by frame ---------------------------------------------------------------
def _retarget(smooth: MotionTrack, face: FaceLandmarks, settings: AnimateSettings) -> Retargeted:
    return retarget(decompose(smooth), face.points, face.layout, expression_strength=settings.expression_strength,
                    head_strength=settings.head_strength, head_motion=settings.head_motion)


def _stored_drive(track: MotionTrack, face: FaceLandmarks, settings: AnimateSettings, clip_path: Path,
                  info: video.ClipInfo, need_pixels: bool) -> Iterator[DrivingFrame]:
    """Driving frames from a motion track known in full (the gallery's or a cached one)."""
    smooth = track.smoothed(settings.smoothing)
    motion = _retarget(smooth, face, settings)
    frames = video.read_frames(clip_path, info, max_side=DRIVE_MAX_SIDE) if need_pixels else None
    scale_drv = None
    try:
        for i in range(len(track)):
            img = None
            if frames is not None:
                img = next(frames, None)
                if img is None:
                    return  # the clip decoded fewer frames than its motion: stop at the shorter
            if img is not None and scale_drv is None and (img.shape[1], img.shape[0]) != tuple(track.frame_size):
                scale_drv = img.shape[1] / track.frame_size[0]
            lm = smooth.landmarks[i] if scale_drv is None else smooth.landmarks[i] * scale_drv
            yield DrivingFrame(i, img, lm, motion.targets[i], motion.head[i], seen=bool(track.found[i]))
    finally:
        if frames is not None:
            frames.close()


def _features_key(eng: Engine, clip_digest: str | None, settings: AnimateSettings, cache: DiskCache,
                  track: MotionTrack | None) -> str | None:
    """Where the engine's per-frame driving features for this clip and motion are cached (None: nowhere).

    Features are read from the frames where the landmarks say (meshwarp's mouth views, LivePortrait's
    crops), so the motion they were made with is part of the key: a gallery clip whose stored motion
    was replaced or re-tracked does not get views cut where the old landmarks were.
    """
    if not eng.driving_features or clip_digest is None or track is None:
        return None
    motion = bytes_digest(np.ascontiguousarray(track.landmarks).tobytes() + np.ascontiguousarray(track.found).tobytes())
    return cache.key("features", clip_digest, eng.features_key(), settings.landmarks, repr(settings.smoothing), motion)


def _stored_features(key: str | None, cache: DiskCache) -> list[np.ndarray | None] | None:
    """The engine's per-frame driving features cached under ``key`` (None for a frame it read nothing from), or
    None."""
    if key is None:
        return None
    blob = cache.get("features", key)
    if blob is None:
        return None
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
            features, present = stored["features"], stored["present"]
    except (ValueError, KeyError, OSError, TypeError, AttributeError, zipfile.BadZipFile):
        return None  # unreadable: computed again and stored over it
    return [f if has else None for f, has in zip(features, present)]


def _features_bytes(features: list[np.ndarray | None]) -> bytes:
    """Per-frame features as one file: stacked (zeros where a frame has none) and which frames have them."""
    blank = np.zeros_like(next(f for f in features if f is not None))
    buf = io.BytesIO()
    np.savez(buf, features=np.stack([blank if f is None else f for f in features]),
             present=np.array([f is not None for f in features]))
    return buf.getvalue()


def _with_features(drive: Iterator[DrivingFrame], stored: list[np.ndarray | None]) -> Iterator[DrivingFrame]:
    """The driving frames with the engine's stored features attached."""
    try:
        for fr in drive:
            if fr.index < len(stored):
                fr.features = stored[fr.index]
            yield fr
    finally:
        drive.close()


def _tracking_ahead(fps: float, batch: int) -> int:
    """How many frames tracking may run past rendering: the smoother's look-ahead and two blocks, so
    tracking never waits on rendering."""
    return math.ceil((FixedLagSmoother.LAG_S + 2 * FixedLagSmoother.BLOCK_S) * fps) + batch


class _LiveTracking:
    """Tracks the driving face in a background thread while the caller renders the frames already tracked.

    The thread decodes the clip once and keeps each frame until the renderer takes it (the engine
    needs the driving pixels too), running at most ``ahead`` frames past the renderer unless the
    renderer is waiting for it (a face lost for longer than that must be found again first). The
    tracker's native code and OpenCV release the GIL, so on two cores tracking and rendering overlap.
    """

    def __init__(self, path: Path, info: video.ClipInfo | video.ClipHeader, backend: LandmarkBackend, ahead: int):
        self.ahead = ahead
        self.frames: list[np.ndarray | None] = []  # decoded frames; None once taken
        self.raw: list[np.ndarray | None] = []     # landmarks per tracked frame; None where no face was found
        self.size: tuple[int, int] | None = None
        self.follower = FaceFollower()  # which face is tracked; how many faces it saw
        self.ended = False
        self._error: BaseException | None = None
        self._taken = 0
        self._stop = False
        self._starved = False  # the renderer waits for tracking: a long gap in the face must not stall both
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(path, info, backend), name=TRACKING_THREAD, daemon=True)
        self._thread.start()

    def _run(self, path: Path, info: video.ClipInfo | video.ClipHeader, backend: LandmarkBackend) -> None:
        try:
            reader = video.read_frames(path, info, max_side=DRIVE_MAX_SIDE)
            try:
                for points in track_on_skin(backend, self._feed(reader), self.follower):
                    with self._cond:
                        self.raw.append(points)
                        self._cond.notify_all()
            finally:
                reader.close()  # stop ffmpeg now if tracking failed or was stopped
        except BaseException as e:  # noqa: BLE001 - whatever it is, wait() raises it in the rendering thread
            self._error = e
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _feed(self, reader: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for f in reader:
            with self._cond:
                while not self._stop and not self._starved and len(self.frames) - self._taken >= self.ahead:
                    self._cond.wait()
                if self._stop:
                    return
                self.frames.append(f)
                self.size = (f.shape[1], f.shape[0])
            yield f

    def set_ahead(self, ahead: int) -> None:
        """Once the clip's frame rate is known: how far tracking may run past rendering."""
        with self._cond:
            self.ahead = ahead
            self._cond.notify_all()

    def wait(self, n: int, canceller: _Canceller) -> tuple[int, bool]:
        """Block until ``n`` frames are tracked or tracking has ended: (frames tracked, ended)."""
        with self._cond:
            try:
                while len(self.raw) < n and not self.ended:
                    self._starved = True
                    self._cond.notify_all()
                    self._cond.wait(timeout=0.1)
                    canceller.check()
            finally:
                self._starved = False
            if self._error is not None:
                raise self._error
            return len(self.raw), self.ended

    def take(self, i: int) -> np.ndarray:
        """Frame ``i`` (taken in order); forgotten here, so the thread may decode further."""
        with self._cond:
            frame, self.frames[i] = self.frames[i], None
            self._taken = i + 1
            self._cond.notify_all()
        return frame

    def close(self) -> None:
        """Stop the thread (if still running) and wait for it; its ffmpeg is stopped too."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()


def _live_drive(live: _LiveTracking, backend: LandmarkBackend, face: FaceLandmarks, settings: AnimateSettings,
                info: video.ClipInfo, need_pixels: bool, on_track: Callable[[MotionTrack], None],
                canceller: _Canceller) -> Iterator[DrivingFrame]:
    """Driving frames while the clip's motion is still being tracked, a fixed lag behind the tracker.

    The same steps as for a stored track (gaps filled, smoothed, split into head pose and
    expression, retargeted), in blocks; the smoothing matches the whole-track one (FixedLagSmoother).
    ``on_track`` gets the raw track once tracking has ended.
    """
    fps, layout = float(info.fps), get_layout(backend.layout)
    filler, smoother = GapFiller(), None
    first: np.ndarray | None = None  # the smoothed frame 0: the neutral face of decompose()
    tracked = index = 0
    while True:
        step = smoother.block if smoother else 1
        n, ended = live.wait(tracked + step, canceller)
        filled = [f for r in live.raw[tracked:n] for f in filler.push(r)]
        tracked = n
        if ended:
            _check_found(live.raw)
            if len(live.raw) < info.n_frames:  # tracking read the frames before the probe had counted them
                raise video.ClipDecodeError(f"Decoding {info.path.name} failed part-way; re-export the clip as an "
                                            "H.264 MP4 and try again.")
            on_track(build_track(live.raw, backend.layout, info.fps, live.size, live.follower.faces))
            filled += filler.finish()
        for x in filled:
            x = x.astype(np.float32)  # as a stored track holds it
            if smoother is None:
                smoother = FixedLagSmoother(fps, settings.smoothing, scale=face_size(x, layout))
            smoother.push(x)
        ready = smoother.ready(final=ended) if smoother else []
        if ready:
            first = ready[0] if first is None else first
            chunk = np.stack([first] + ready).astype(np.float32)
            track = MotionTrack(chunk, np.ones(len(chunk), bool), backend.layout, info.fps, live.size)
            motion = _retarget(track, face, settings)
            for k in range(1, len(chunk)):
                img = live.take(index)
                yield DrivingFrame(index, img if need_pixels else None, chunk[k], motion.targets[k], motion.head[k],
                                   seen=live.raw[index] is not None)
                index += 1
        if ended:
            return


# -- the path ---------------------------------------------------------------------------------------
class _CacheStore(SourceStore):
    """An engine's :class:`SourceStore` in the disk cache, under its name and settings."""

    def __init__(self, cache: DiskCache, eng: Engine):
        self.cache, self.scope = cache, f"{eng.name}:{eng.settings_key()}"

    def get(self, key: str) -> bytes | None:
        return self.cache.get("source", self.cache.key("source", self.scope, key))

    def put(self, key: str, data: bytes) -> None:
        self.cache.put("source", self.cache.key("source", self.scope, key), data)


class _NoWriter:
    """Stands in for the encoder when a caller wants frames, not a file (benchmarks, previews)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, frame):
        pass


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Compositor:
    """Finished frames from rendered crops: pasted into the canvas, labelled, side by side with the driver.

    The canvas and the label stay still, so each frame only the pasted crop (and the label, where the
    crop reaches it) is redrawn, and only that region is converted into the encoder's yuv420p.
    """

    def __init__(self, image: np.ndarray, prepared: Prepared, settings: AnimateSettings, text: str, sbs_w: int,
                 encode: bool, rgb: bool = True):
        self.image, self.text, self.crop_only, self.sbs_w = image, text, settings.crop_only, sbs_w
        base = prepared.crop if settings.crop_only else image
        self.out_w, self.out_h = even_size(base.shape[1], base.shape[0])
        # The output is trimmed to even sides, so the crop may lose its last row or column.
        x0, y0, x1, y1 = prepared.crop_box
        self.pbox = (x0, y0, min(x1, self.out_w), min(y1, self.out_h))
        self.mask = PasteMask(prepared.paste_mask[: self.pbox[3] - y0, : self.pbox[2] - x0])
        # One frame buffer for the whole clip: only the crop and the label change between frames.
        self.buffer = np.ascontiguousarray(base[: self.out_h, : self.out_w]).copy()
        self.video_w = self.out_w + sbs_w
        self.lbox = label_box(self.buffer.shape, text, self.video_w)
        self.label_moves = settings.crop_only or _overlaps(self.lbox, self.pbox)
        if not self.label_moves:
            draw_label(self.buffer, text, self.video_w)
        # Side by side, the encoder's frame is put together in yuv420p (the panel scaled plane by plane) and
        # the RGB one only for a caller that looks at frames (``rgb``).
        self.yuv = I420Frame(self.out_w + sbs_w, self.out_h) if encode else None
        self.rgb = rgb or not encode
        if self.yuv is not None:
            self.yuv.update(self.buffer, x_offset=sbs_w)

    def compose(self, crop: np.ndarray, driving: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(the RGB frame, or None side by side when not asked for; the same frame in yuv420p for the encoder
        or None); the buffers are reused."""
        x0, y0, x1, y1 = dirty = self.pbox
        lx0, ly0, lx1, ly1 = self.lbox
        if self.label_moves and not self.crop_only:
            # The label blends onto clean pixels: last frame's label goes, then this frame's crop is pasted.
            self.buffer[ly0:ly1, lx0:lx1] = self.image[ly0:ly1, lx0:lx1]
            dirty = (min(x0, lx0), min(y0, ly0), max(x1, lx1), max(y1, ly1))
        if self.crop_only:
            self.buffer[:] = crop[: self.out_h, : self.out_w]
        else:
            paste_back(self.image, crop[: y1 - y0, : x1 - x0], self.pbox, self.mask, out=self.buffer)
        if self.label_moves:
            draw_label(self.buffer, self.text, self.video_w)
        frame = self.buffer
        if self.crop_only:
            dirty = None
        if self.sbs_w:
            if self.yuv is not None:
                self.yuv.update_scaled(driving, self.sbs_w)
            frame = side_by_side(driving, frame, self.sbs_w) if self.rgb else None
        return frame, None if self.yuv is None else self.yuv.update(self.buffer, dirty, x_offset=self.sbs_w)


FALLBACK_ENGINE = "meshwarp"


def animate(portrait, clip, out: os.PathLike | str | None, *, engine: str | Engine = "auto",
            settings: AnimateSettings | None = None, progress: ProgressFn | None = None, cancel=None,
            gallery: Gallery | None = None, cache: DiskCache | None = None, label: str | None = None,
            on_frame: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> AnimateResult:
    """Make ``portrait`` perform ``clip`` and write an H.264 mp4 to ``out``.

    ``portrait``: ``"gallery:ID"``, an image path, bytes or an RGB array. ``clip``: ``"gallery:ID"`` or
    a video path. ``progress(fraction, message)`` is called as work proceeds; ``cancel`` is a
    ``threading.Event`` or a callable returning True to stop (raises :class:`Cancelled`, writes nothing).
    Errors a user can fix raise :class:`TalkingHeadError` with a message that says what to do.
    ``on_frame(index, frame, crop)`` sees every finished frame (a buffer reused for the next frame:
    copy it to keep it) and the engine's raw crop, in order, on the thread that composes and encodes; with
    ``out=None`` nothing is encoded (benchmarks score frames before compression). Where an engine runs out of
    device memory and the render starts again on the CPU (a ``Note`` in progress and in the result's notes),
    ``on_frame`` sees the frames again from index 0: the new engine's.

    A clip whose motion is not stored yet is tracked in a background thread while the frames
    already tracked are rendered, a fixed lag behind; its motion is then cached for the next render.
    """
    kwargs = dict(settings=settings, progress=progress, cancel=cancel, gallery=gallery, cache=cache, label=label,
                  on_frame=on_frame)
    try:
        return _animate_once(portrait, clip, out, engine=engine, **kwargs)
    except EngineOutOfMemory as e:
        name = engine.name if isinstance(engine, Engine) else engine
        if name == FALLBACK_ENGINE:
            raise
        note = Note(f"The {name} engine ran out of device memory ({e}); this result was rendered on the CPU "
                    f"with {FALLBACK_ENGINE} instead.", reason="out_of_memory", engine=name, fallback=FALLBACK_ENGINE)
        (progress or (lambda f, m: None))(0.0, note)
        result = _animate_once(portrait, clip, out, engine=FALLBACK_ENGINE, **kwargs)
        result.notes.append(note)
        return result


def _animate_once(portrait, clip, out, *, engine, settings, progress, cancel, gallery, cache, label,
                  on_frame) -> AnimateResult:
    settings = settings or AnimateSettings()
    gallery = gallery or Gallery.default()
    cache = cache or DiskCache()
    report = progress or (lambda f, m: None)
    canceller = _Canceller(cancel)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    report(0.0, STEP_FACE)
    image, face, _, faces_found = resolve_portrait(portrait, settings, gallery, cache)
    canceller.check()
    timings["portrait_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    clip_path, gid = _clip_file(clip, gallery)
    clip_digest = _digest(clip_path)
    track, motion_key = _known_motion(clip_path, gid, clip_digest, settings, gallery, cache)
    backend = get_backend(settings.landmarks) if track is None else None
    layout = track.layout if track is not None else backend.layout
    if layout != face.layout:
        raise TalkingHeadError(f"The portrait's landmarks ({face.layout}) and the clip's motion ({layout}) "
                               "come from different landmark backends; choose the same --landmarks for both.")
    live: _LiveTracking | None = None
    drive: Iterator[DrivingFrame] | None = None
    try:
        header = None
        if track is None:
            # The clip's frames are decoded and tracked from now on, in a background thread, while the
            # probe decodes it beside them and the engine prepares the portrait: on two cores the probe
            # (a whole decode) no longer holds everything up. The size comes from the header.
            header = video.read_header(clip_path)
            if header is not None:  # room for a 30-fps clip until the probe gives the rate (set_ahead below)
                live = _LiveTracking(clip_path, header, backend, _tracking_ahead(30.0, 8))
        info = _probe(clip_path, clip_digest, _length_limit(settings, gid), cache)
        if track is None and (header is None or (info.width, info.height) != (header.width, header.height)):
            # The header stated no size, or one the decoder does not confirm: track at the probed size.
            if live is not None:
                live.close()
            live = _LiveTracking(clip_path, info, backend, _tracking_ahead(float(info.fps), 8))
        timings["motion_s"] = time.perf_counter() - t
        canceller.check()

        eng = engine if isinstance(engine, Engine) else create_engine(engine)
        t = time.perf_counter()
        eng.configure(settings)
        eng.source_store = _CacheStore(cache, eng)
        n_hint = len(track) if track is not None else info.n_frames
        prepared = eng.prepare(image, face)
        feats_key = _features_key(eng, clip_digest, settings, cache, track)  # None until live tracking has ended
        stored = _stored_features(feats_key, cache)
        need_pixels = settings.side_by_side or (eng.needs_driving_pixels and (stored is None or len(stored) < n_hint))
        # Features made by this render, to be cached (not kept where there is no cache: 19 MB for a meshwarp clip).
        new_features: list[np.ndarray] | None = [] if eng.driving_features and stored is None and cache.enabled else None

        def keep_motion(tr: MotionTrack) -> None:
            nonlocal feats_key
            feats_key = _features_key(eng, clip_digest, settings, cache, tr)  # the motion the features follow
            if motion_key is not None:
                cache.put("motion", motion_key, tr.to_bytes())
        if track is not None:
            n = len(track)
            drive = _stored_drive(track, face, settings, clip_path, info, need_pixels)
        else:
            n = info.n_frames
            live.set_ahead(_tracking_ahead(float(info.fps), eng.batch_size))
            drive = _live_drive(live, backend, face, settings, info, need_pixels, keep_motion, canceller)
            report(0.05, STEP_MOTION)
        if stored is not None:
            drive = _with_features(drive, stored)
        timings["prepare_s"] = time.perf_counter() - t

        sbs_w = 0
        if settings.side_by_side:
            base = prepared.crop if settings.crop_only else image
            sbs_w = max(2, int(round(info.width * even_size(base.shape[1], base.shape[0])[1] / info.height)))
            sbs_w += sbs_w % 2
        t = time.perf_counter()
        done = 0
        comp = _Compositor(image, prepared, settings, label or LABEL_TEXT, sbs_w, encode=out is not None,
                           rgb=on_frame is not None)
        writer_cm = _NoWriter() if out is None else video.VideoWriter(
            out, info.fps, (comp.out_w + sbs_w, comp.out_h), audio_from=clip_path if info.has_audio else None,
            audio_start=info.start, frame_times=info.frame_times,
            preset=ENCODER_PRESET, crf=ENCODER_CRF, x264_params=encoder_params(), duration=_duration(info, n), pix_fmt="yuv420p",
            # (whole macroblocks only: one that reaches into the painting would coarsen its edge)
            coarser=(0, 0, sbs_w - sbs_w % 16, comp.out_h, SIDE_PANEL_COARSER) if sbs_w >= 16 else None,
            metadata={"comment": "AI-generated animation of a portrait (Living Portraits)", "description": f"engine={eng.name}"})
        with writer_cm as writer, renderer_threads(out is not None):
            batch: list[DrivingFrame] = []

            def finish_frame(item: tuple[DrivingFrame, np.ndarray]) -> None:
                fr, crop = item
                frame, encoded = comp.compose(crop, fr.image)
                writer.write(encoded)
                if on_frame is not None:
                    on_frame(fr.index, frame, crop)

            # The engine draws the next frames while the last ones are pasted, converted and written.
            with handoff.InOrder(finish_frame, depth=max(2, eng.batch_size), name=FINISHING_THREAD) as finishing:
                def flush():
                    nonlocal done
                    for fr, crop in zip(batch, eng.render(prepared, batch)):
                        if new_features is not None:
                            new_features.append(fr.features)
                        finishing.put((fr, crop))
                    done += len(batch)  # (drawn: up to a batch of them may still be being written)
                    batch.clear()
                    report(0.05 + 0.95 * done / n, Note(f"Animating frame {done} of {n}", reason="frames", done=done, total=n))

                for fr in drive:
                    canceller.check()
                    batch.append(fr)
                    if len(batch) >= eng.batch_size:
                        flush()
                if batch:
                    flush()
            if done == 0:
                raise ClipError("No frame of the driving clip could be rendered; choose another clip.",
                                reason="clip_unreadable")
            if feats_key and new_features and any(f is not None for f in new_features):
                cache.put("features", feats_key, _features_bytes(new_features))
    finally:
        # On any failure (a bad clip, cancel, engine, encoder) the decoder's ffmpeg and the tracking thread
        # stop now, not whenever the exception and its traceback are garbage-collected.
        if drive is not None:
            drive.close()
        if live is not None:
            live.close()
    timings["render_encode_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    report(1.0, STEP_DONE)
    notes = [several_faces_note(faces_found, settings.face_index)]
    if gid is None:  # (a gallery clip's faces were the museum's choice, told to the staff who added it)
        notes.append(several_faces_in_clip_note(track.faces if track is not None else live.follower.faces))
    return AnimateResult(Path(out) if out is not None else None, done, info.fps, (comp.out_w + sbs_w, comp.out_h), eng.name,
                         prepared.crop_box, timings, track is not None, [n for n in notes if n is not None])
