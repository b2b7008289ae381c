"""What the app does when a visitor presses Animate, without any Gradio layout.

It turns a visitor's choices into one call of the library's orchestration path: a gallery
portrait x gallery clip goes through the :class:`~talking_head.results.ResultStore` (served
instantly when rendered before), anything uploaded is rendered into the visitor's temporary
folder and never cached. Errors a visitor can fix come back as :class:`VisitorError` with a
message in the visitor's language.
"""
from __future__ import annotations

import ctypes
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from talking_head import video
from talking_head.cache import DiskCache
from talking_head.engines import create_engine
from talking_head.errors import Cancelled, SettingsError, TalkingHeadError
from talking_head.gallery import Gallery
from talking_head.images import load_image
from talking_head.pipeline import (
    AnimateSettings,
    animate,
    check_clip,
    check_portrait,
    resolve_clip,
)
from talking_head.results import ResultStore

from .read_ahead import ReadAhead
from .strings import localize, say, t
from .visitor_files import VisitorFiles

try:  # On a ZeroGPU Space this asks for a GPU for the call; anywhere else it is a no-op.
    import spaces
except ImportError:  # pragma: no cover - spaces is in requirements.txt
    spaces = None

log = logging.getLogger("living_portraits.app")


class VisitorError(Exception):
    """A problem the visitor can fix. ``str()`` says it in the request's language; ``said`` (one of our
    sentences' keys, or the library's error) is kept to say it again in another (see strings.say)."""

    def __init__(self, said: TalkingHeadError | str, lang: str = "en"):
        super().__init__(say(lang, said))
        self.said = said


@dataclass(frozen=True)
class Choice:
    """A portrait or a clip: a gallery id, or an uploaded file."""
    gallery_id: str | None = None
    upload: str | None = None

    @property
    def is_upload(self) -> bool:
        return self.gallery_id is None


def gpu_seconds(portrait: str, clip: str, out, engine: str, settings: AnimateSettings, *rest, **kw) -> int:
    """ZeroGPU duration for one render: start-up plus a share of the clip's length, capped."""
    try:
        length = video.probe(_clip_path(clip)).duration
    except (TalkingHeadError, OSError):
        length = settings.max_duration
    return int(min(120, 20 + math.ceil(1.5 * length)))


def _clip_path(clip: str) -> Path:
    if clip.startswith("gallery:"):
        return Gallery.default().clip_path(clip[len("gallery:"):])
    return Path(clip)


def _render(portrait: str, clip: str, out, engine: str, settings: AnimateSettings,
            progress: Callable[[float, str], None] | None = None, store_root: str | None = None,
            cancel: Callable[[], bool] | None = None, shots: int = 1,
            more_faces: tuple[str, ...] = (), visitor_cache: str | None = None) -> tuple[str, str, list[str]]:
    """The device-bound work of one request (the function ZeroGPU runs on a GPU): (path, engine, notes).

    ``shots``/``more_faces``: the few-shot engine's K and the visitor's extra pictures of the face (paths,
    so that the call's arguments stay picklable for ZeroGPU). ``visitor_cache``: the folder of the
    visitor's own cache, for anything uploaded (None: nothing cached)."""
    if engine == "fewshot" and (shots > 1 or more_faces):
        extra = [load_image(p) for p in more_faces]
        engine = create_engine("fewshot", shots=max(1, int(shots)), extra_images=extra)
    if out is None:  # a gallery x gallery result, stored for everyone
        store = ResultStore(store_root)
        got = store.get_or_render(portrait[len("gallery:"):], clip[len("gallery:"):], engine=engine,
                                  settings=settings, progress=progress, cancel=cancel)
        return str(got.path), got.engine, got.notes
    # Anything uploaded: no shared cache, so no trace of the visitor outside their folder; their own cache
    # there keeps what the upload's check found and the motion of their clip for the next render (side by
    # side, another painting).
    done = animate(portrait, clip, out, engine=engine, settings=settings, progress=progress, cancel=cancel,
                   cache=DiskCache(visitor_cache, enabled=visitor_cache is not None))
    return str(out), done.engine, done.notes


def _render_or_error(*args, **kwargs) -> tuple[str, str, list[str]] | TalkingHeadError:
    """``_render``, with an error the visitor can act on returned rather than raised. On ZeroGPU the call
    runs in another process, and only a ``gr.Error`` comes back out of it with its words: anything else
    arrives as "ZeroGPU worker error". Returned, the error crosses whole (pickled, with its reason and
    facts) and is said in the visitor's language like any other."""
    try:
        return _render(*args, **kwargs)
    except TalkingHeadError as e:
        return e.with_traceback(None)


render_on_device = spaces.GPU(duration=gpu_seconds)(_render_or_error) if spaces is not None else _render_or_error
# ZeroGPU runs the wrapped call in another process and pickles its arguments: a progress or cancel
# closure cannot travel, so there the bar shows the queue and start, not per-frame progress, and a
# visitor who leaves stops the render only when ZeroGPU's own time limit does.
ON_ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))


def _give_memory_back() -> None:
    """Hand freed memory back to the system after a render: glibc keeps it in its arenas otherwise, and a
    kiosk that runs all day would sit at its busiest moment's size (RELIABILITY.md, soak)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        pass


# Video codecs and containers (ffmpeg's names) that current browsers play in a <video> element; a clip in
# another (a phone's HEVC, ProRes, MPEG-4 Part 2, an AVI file) renders all the same, but its preview may
# stay black.
BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
BROWSER_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "ogg"})
CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC (H.265)", "prores": "ProRes", "mpeg4": "MPEG-4 Part 2",
               "mjpeg": "Motion JPEG", "vp8": "VP8", "vp9": "VP9", "av1": "AV1"}


def unplayable_format(info: video.ClipInfo) -> str:
    """How to name a clip's format that a browser may not preview ("HEVC (H.265)", "H.264 (AVI)"), or ""."""
    codec, container = info.codec, info.container
    known_container = not container or container in BROWSER_CONTAINERS
    if codec in BROWSER_CODECS and known_container:
        return ""
    name = CODEC_NAMES.get(codec, codec.upper())
    return name if known_container else f"{name} ({container.split(',')[0].upper()})"


@dataclass(frozen=True)
class UploadCheck:
    """What a visitor is told about a file when it arrives, said in their language when it is shown (so
    that a language switch says it again): the error a render would end with (or the key of one of our
    own sentences), how many faces a picture has (0 where it cannot be used), or the format of a good clip
    that a browser may not preview (see unplayable_format; empty for one every browser plays)."""
    said: TalkingHeadError | str | None = None
    faces: int = 1
    codec: str = ""

    @property
    def ok(self) -> bool:
        return self.said is None

    @property
    def unreadable(self) -> bool:
        """Not a picture or not a video at all (the field is emptied rather than left showing it broken)."""
        return getattr(self.said, "reason", "") in ("not_image", "image_damaged", "empty", "not_video",
                                                    "clip_unreadable")

    def message(self, lang: str) -> str:
        if self.said is not None:
            return say(lang, self.said)
        if self.codec:
            return t(lang, "clip_other_codec", codec=self.codec)
        return t(lang, "faces_found", count=self.faces) if self.faces > 1 else ""


@dataclass(frozen=True)
class Rendered:
    """A finished request: the video, the engine that made it and anything the visitor should know (the
    library's notes, said in the visitor's language where they are shown)."""
    path: Path
    engine: str
    notes: tuple[str, ...] = ()


class Studio:
    def __init__(self, gallery: Gallery, store: ResultStore, files: VisitorFiles, *, engine: str = "auto",
                 uploads: bool = True, max_clip_s: float = 30.0):
        self.gallery = gallery
        self.store = store
        self.files = files
        self.engine = engine
        self.uploads = uploads
        self.max_clip_s = max_clip_s
        self.ahead = ReadAhead()

    def settings(self, *, strength: float = 1.0, smoothing: float = 1.0, head_motion: bool = True,
                 side_by_side: bool = False, crop_only: bool = False, face: int | None = None) -> AnimateSettings:
        """``face``: which face of a picture with several, counted from the left from 0 (None: the largest).
        A number out of its range (an API call's) raises VisitorError with the range."""
        try:
            return AnimateSettings(expression_strength=float(strength), smoothing=float(smoothing),
                                   head_motion=bool(head_motion), side_by_side=bool(side_by_side),
                                   crop_only=bool(crop_only), max_duration=self.max_clip_s,
                                   face_index=None if face is None or face < 0 else int(face))
        except SettingsError as e:
            raise VisitorError(e) from None

    def visitor_cache(self, session_id: str | None) -> DiskCache:
        """A cache of the visitor's own, in their folder (deleted with it): what their uploads' checks
        found, and their clip's motion, for their next render. None (a disabled one) once they have left."""
        if self.files.ended(session_id):
            return DiskCache(enabled=False)
        return DiskCache(self.files.session_dir(session_id) / "cache")

    def read_ahead(self, path: str | None, session_id: str | None = None) -> bool:
        """Track the motion of a visitor's uploaded clip into their own cache now, in the background (call
        it once they have agreed to the clip's use), so that their render finds it; False when not started
        (uploads off, the clip under way already, another visitor's clip being read)."""
        if not (self.uploads and path):
            return False
        settings, cache = self.settings(), self.visitor_cache(session_id)
        return self.ahead.start(session_id or "", str(path), lambda stop, done: resolve_clip(
            str(path), settings, self.gallery, cache, lambda fraction, _: done(fraction), stop))

    def end_session(self, session_id: str | None) -> None:
        """The visitor has left: stop reading their clip, then delete their files."""
        self.ahead.stop(session_id or "")
        self.files.end_session(session_id)

    def check_upload(self, path: str | None, kind: str, session_id: str | None = None) -> UploadCheck:
        """What the visitor should know about a file the moment it arrives: the sentence a render would
        end with (not an image, no face, a clip too long), or that the picture has several faces (and how
        many, to choose from), or that a good clip's codec may leave its preview black. ``kind``: "portrait"
        or "clip"."""
        if not path:
            return UploadCheck()
        try:
            if kind == "portrait":
                note = check_portrait(path, self.settings(), self.visitor_cache(session_id))
                return UploadCheck(faces=note.facts["count"] if note else 1)
            info = check_clip(path, self.settings(), self.visitor_cache(session_id))
            return UploadCheck(codec=unplayable_format(info))
        except TalkingHeadError as e:
            return UploadCheck(e, 0)
        except Exception:
            log.exception("checking an uploaded %s failed", kind)
            return UploadCheck("err_unexpected", 0)
        finally:
            if self.files.ended(session_id):  # they left while it ran: what it cached goes too
                self.files.end_session(session_id)
            _give_memory_back()

    def run(self, portrait: Choice, clip: Choice, settings: AnimateSettings, *, lang: str = "en",
            consent: bool = False, engine: str | None = None, session_id: str | None = None,
            progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
            shots: int = 1, more_faces: tuple[str, ...] | list[str] = ()) -> Rendered:
        """Render (or fetch) the result for one request; raises VisitorError with a message to show.

        ``cancel()`` returning True (the visitor left or cancelled) stops the render; nothing is kept.
        """
        if portrait.gallery_id is None and not portrait.upload:
            raise VisitorError("err_choose_portrait", lang)
        if clip.gallery_id is None and not clip.upload:
            raise VisitorError("err_choose_clip", lang)
        more_faces = tuple(str(f) for f in more_faces or ())
        if more_faces and (engine or self.engine) != "fewshot":
            more_faces = ()  # only the few-shot engine learns from more pictures
        if portrait.is_upload or clip.is_upload or more_faces:
            if not self.uploads:
                raise VisitorError("err_uploads_off", lang)
            if not consent:
                raise VisitorError("err_consent", lang)
        for choice in (portrait, clip):
            if choice.is_upload:
                self.files.remember_upload(session_id, choice.upload)
        for face in more_faces:
            self.files.remember_upload(session_id, face)
        p_spec = f"gallery:{portrait.gallery_id}" if portrait.gallery_id else str(portrait.upload)
        c_spec = f"gallery:{clip.gallery_id}" if clip.gallery_id else str(clip.upload)
        personal = portrait.is_upload or clip.is_upload or bool(more_faces)
        out = self.files.new_result_path(session_id) if personal else None
        own = self.visitor_cache(session_id) if personal else None
        try:
            said = None if progress is None else (lambda f, m: progress(f, localize(lang, m)))
            waited = clip.is_upload and self.ahead.wait(session_id or "", str(clip.upload), cancel)
            if waited and cancel is not None and cancel():  # (left while their clip was being read)
                raise Cancelled()
            got = render_on_device(p_spec, c_spec, out, engine or self.engine, settings,
                                   None if ON_ZERO_GPU else said, str(self.store.root),
                                   None if ON_ZERO_GPU else cancel, int(shots or 1), more_faces,
                                   str(own.root) if own is not None and own.enabled else None)
            if isinstance(got, TalkingHeadError):
                raise got
            path, used, notes = got
            return Rendered(Path(path), used, tuple(notes))
        except TalkingHeadError as e:
            raise VisitorError(e, lang) from None
        except Exception:
            # Not the visitor's fault: keep the details for the operator, never the visitor's files.
            log.exception("render failed (portrait %s, clip %s)", "upload" if portrait.is_upload else p_spec,
                          "upload" if clip.is_upload else c_spec)
            raise VisitorError("err_unexpected", lang) from None
        finally:
            _give_memory_back()
