"""The one orchestration path: portrait + driving clip -> mp4.

The CLI, the app, the API and the benchmarks all call :func:`animate`. It resolves inputs (gallery
ids or files), finds the portrait's face and the clip's motion (cached on disk), asks an engine to
render crops, pastes them back into the full canvas, labels every frame and encodes the result.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import video
from .cache import DiskCache, bytes_digest, file_digest
from .compose import PasteMask, draw_label, even_size, label_box, paste_back, side_by_side
from .engines import DrivingFrame, Engine, create_engine
from .errors import Cancelled, ClipError, FaceNotFoundError, TalkingHeadError
from .faces import FaceLandmarks, choose_face, get_backend
from .gallery import Gallery
from .images import load_image
from .motion import MotionTrack, build_track, decompose, retarget

GALLERY_PREFIX = "gallery:"
DEFAULT_MAX_DURATION = 30.0
# Driving frames are tracked and used (mouth interior, side-by-side) at this size at most:
# enough for landmarks, and it keeps a 4K phone clip from costing 4K decoding.
DRIVE_MAX_SIDE = 720
# x264 'superfast' at CRF 18 looks the same as 'veryfast' on painted textures here and encodes in
# about half the time, which is most of a render on a 2-core laptop.
ENCODER_PRESET = "superfast"

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
def _gallery_id(spec) -> str | None:
    if isinstance(spec, str) and spec.startswith(GALLERY_PREFIX):
        return spec[len(GALLERY_PREFIX):]
    return None


def resolve_portrait(spec, settings: AnimateSettings, gallery: Gallery, cache: DiskCache) -> tuple[np.ndarray, FaceLandmarks, str]:
    """(image, face, content key) for a gallery id, a path, bytes or an array."""
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
            return img, face, f"gallery:{gid}:{file_digest(path)}"
        spec = path
    img = load_image(spec, max_side=settings.max_side)
    content = file_digest(spec) if isinstance(spec, (str, os.PathLike)) else bytes_digest(img.tobytes())
    key = cache.key("face", content, settings.landmarks, str(settings.face_index), str(img.shape))
    blob = cache.get("face", key)
    if blob is not None:
        arr = np.frombuffer(blob[16:], np.float32).reshape(-1, 3)
        face = FaceLandmarks(arr.copy(), blob[:16].decode().strip())
    else:
        faces = get_backend(settings.landmarks).detect(img)
        face = choose_face(faces, settings.face_index, what="the portrait")
        cache.put("face", key, face.layout.ljust(16).encode() + face.points.astype(np.float32).tobytes())
    return img, face, key


def extract_motion(path: Path, info: video.ClipInfo, *, backend: str = "auto",
                   progress: ProgressFn | None = None, cancel=None) -> MotionTrack:
    """Track the driving face through a clip (raw landmarks; smoothing happens at render time)."""
    be = get_backend(backend)
    canceller = _Canceller(cancel)
    raw, size = [], None

    reader = video.read_frames(path, info, max_side=DRIVE_MAX_SIDE)

    def frames() -> Iterator[np.ndarray]:
        nonlocal size
        for i, f in enumerate(reader):
            canceller.check()
            size = (f.shape[1], f.shape[0])
            if progress and i % 10 == 0:
                progress(i / max(info.n_frames, 1), "Reading the driving clip's motion")
            yield f

    try:
        for face in be.track(frames()):
            raw.append(None if face is None else face.points)
    finally:
        reader.close()  # stop ffmpeg now if tracking failed or was cancelled
    if not raw:
        raise ClipError("The driving clip has no frames that can be decoded; choose another clip.")
    found = sum(r is not None for r in raw)
    if found == 0:
        raise FaceNotFoundError("No face was found in the driving clip; use a clip where one face is clearly "
                                "visible, facing the camera.")
    if found < 0.5 * len(raw):
        raise FaceNotFoundError(f"The face is visible in only {found} of {len(raw)} frames of the driving clip; "
                                "use a clip where the face stays in view.")
    return build_track(raw, be.layout, info.fps, size)


def resolve_clip(spec, settings: AnimateSettings, gallery: Gallery, cache: DiskCache,
                 progress: ProgressFn | None, cancel) -> tuple[Path, video.ClipInfo, MotionTrack, bool]:
    """(path, info, raw motion track, whether the motion came from a cache or the gallery)."""
    gid = _gallery_id(spec)
    path = gallery.clip_path(gid) if gid is not None else Path(spec)
    info = video.probe(path, max_duration=settings.max_duration)
    if gid is not None and gallery.motion_path(gid).is_file():
        track = MotionTrack.load(gallery.motion_path(gid))
        if settings.landmarks in ("auto", track.layout) or get_backend(settings.landmarks).layout == track.layout:
            return path, info, track, True
    key = cache.key("motion", file_digest(path), get_backend(settings.landmarks).name)
    blob = cache.get("motion", key)
    if blob is not None:
        return path, info, MotionTrack.from_bytes(blob), True
    track = extract_motion(path, info, backend=settings.landmarks, progress=progress, cancel=cancel)
    cache.put("motion", key, track.to_bytes())
    return path, info, track, False


# -- the path ---------------------------------------------------------------------------------------
class _NoWriter:
    """Stands in for the encoder when a caller wants frames, not a file (benchmarks, previews)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, frame):
        pass


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
    copy it to keep it) and the engine's raw crop; with
    ``out=None`` nothing is encoded (benchmarks score frames before compression).
    """
    settings = settings or AnimateSettings()
    gallery = gallery or Gallery.default()
    cache = cache or DiskCache()
    report = progress or (lambda f, m: None)
    canceller = _Canceller(cancel)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    report(0.0, "Finding the face in the portrait")
    image, face, _ = resolve_portrait(portrait, settings, gallery, cache)
    canceller.check()
    timings["portrait_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    clip_path, info, track, motion_cached = resolve_clip(
        clip, settings, gallery, cache, lambda f, m: report(0.05 + 0.25 * f, m), cancel)
    timings["motion_s"] = time.perf_counter() - t
    canceller.check()

    eng = engine if isinstance(engine, Engine) else create_engine(engine)
    t = time.perf_counter()
    if track.layout != face.layout:
        raise TalkingHeadError(f"The portrait's landmarks ({face.layout}) and the clip's motion ({track.layout}) "
                               "come from different landmark backends; choose the same --landmarks for both.")
    prepared = eng.prepare(image, face)
    smooth = track.smoothed(settings.smoothing)
    pe = decompose(smooth)
    motion = retarget(pe, face.points, face.layout, expression_strength=settings.expression_strength,
                      head_strength=settings.head_strength, head_motion=settings.head_motion)
    timings["prepare_s"] = time.perf_counter() - t

    x0, y0, x1, y1 = prepared.crop_box
    base = prepared.crop if settings.crop_only else image
    out_w, out_h = even_size(base.shape[1], base.shape[0])
    need_pixels = eng.needs_driving_pixels or settings.side_by_side
    sbs_w = 0
    if settings.side_by_side:
        sbs_w = max(2, int(round(info.width * out_h / info.height)))
        sbs_w += sbs_w % 2
    n = len(track)
    t = time.perf_counter()
    scale_drv = None
    writer_cm = _NoWriter() if out is None else video.VideoWriter(
        out, info.fps, (out_w + sbs_w, out_h), audio_from=clip_path if info.has_audio else None, preset=ENCODER_PRESET,
        duration_hint=len(track) / info.fps,
        metadata={"comment": "AI-generated animation of a portrait (Living Portraits)", "description": f"engine={eng.name}"})
    with writer_cm as writer:
        frames_iter = video.read_frames(clip_path, info, max_side=DRIVE_MAX_SIDE) if need_pixels else None
        # The output is trimmed to even sides, so the crop may lose its last row or column.
        pbox = (x0, y0, min(x1, out_w), min(y1, out_h))
        paste_mask = PasteMask(prepared.paste_mask[: pbox[3] - y0, : pbox[2] - x0])
        # One frame buffer for the whole clip: only the crop and the label change between frames.
        buffer = np.ascontiguousarray(base[:out_h, :out_w]).copy()
        lx0, ly0, lx1, ly1 = label_box(buffer.shape)
        batch: list[DrivingFrame] = []
        drv_images: list[np.ndarray | None] = []
        done = 0

        def flush():
            nonlocal done
            rendered = eng.render(prepared, batch)
            for fr, crop, drv in zip(batch, rendered, drv_images):
                if settings.crop_only:
                    buffer[:] = crop[:out_h, :out_w]
                else:
                    paste_back(image, crop[: pbox[3] - y0, : pbox[2] - x0], pbox, paste_mask, out=buffer)
                    buffer[ly0:ly1, lx0:lx1] = image[ly0:ly1, lx0:lx1]  # the label blends onto clean pixels
                frame = draw_label(buffer, label or "AI-generated")
                if settings.side_by_side:
                    frame = side_by_side(drv, frame)[:, : out_w + sbs_w]
                writer.write(frame)
                if on_frame is not None:
                    on_frame(fr.index, frame, crop)
                done += 1
            batch.clear()
            drv_images.clear()
            report(0.3 + 0.7 * done / n, f"Animating frame {done} of {n}")

        try:
            for i in range(n):
                canceller.check()
                img = None
                if frames_iter is not None:
                    img = next(frames_iter, None)
                    if img is None:
                        break  # the clip decoded fewer frames than its motion: stop at the shorter
                if img is not None and scale_drv is None and (img.shape[1], img.shape[0]) != tuple(track.frame_size):
                    scale_drv = img.shape[1] / track.frame_size[0]
                lm = smooth.landmarks[i] if scale_drv is None else smooth.landmarks[i] * scale_drv
                batch.append(DrivingFrame(i, img, lm, motion.targets[i], motion.head[i]))
                drv_images.append(img)
                if len(batch) >= eng.batch_size:
                    flush()
            if batch:
                flush()
        finally:
            # On any failure (cancel, engine, encoder) the decoder's ffmpeg must stop now, not
            # whenever the exception and its traceback are garbage-collected.
            if frames_iter is not None:
                frames_iter.close()
        if done == 0:
            raise ClipError("No frame of the driving clip could be rendered; choose another clip.")
    timings["render_encode_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    report(1.0, "Done")
    return AnimateResult(Path(out) if out is not None else None, done, info.fps, (out_w + sbs_w, out_h), eng.name, prepared.crop_box,
                         timings, motion_cached)
