"""The landmark backend interface and the face-choosing rules shared by all backends."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

import numpy as np

from ..errors import FaceNotFoundError, TalkingHeadError


@dataclass
class FaceLandmarks:
    """Landmarks of one face in image pixels.

    ``points`` is (N, 3): x, y in pixels, z a relative depth in the same pixel scale (smaller is nearer
    the camera; 0 where the backend has no depth). ``layout`` names the point set ("mediapipe478" or
    "ibug68") so consumers know which index is which.
    """

    points: np.ndarray
    layout: str

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.xy.min(axis=0)
        x1, y1 = self.xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def size(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0)))


class LandmarkBackend(Protocol):
    name: str
    layout: str

    def detect(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        """All faces in a still image, in any order."""

    def track(self, frames: Iterable[np.ndarray], first: FaceLandmarks | None = None,
              follower: FaceFollower | None = None) -> Iterator[FaceLandmarks | None]:
        """One result per frame of a video (None where the face is lost), following one face (``first``, or
        as ``follower`` picks it; the caller's follower tells it afterwards how many people it saw)."""


def choose_face(faces: list[FaceLandmarks], face_index: int | None = None, *, what: str = "the portrait") -> FaceLandmarks:
    """The largest face, or the ``face_index``-th counted from the left (0-based)."""
    if not faces:
        raise FaceNotFoundError(
            f"No face was found in {what}; choose an image where one face is clearly visible, "
            "facing forward and at least about 80 pixels tall.", reason="no_face" if what == "the portrait" else "")
    if face_index is None:
        return max(faces, key=lambda f: f.size)
    ordered = sorted(faces, key=lambda f: f.box[0])
    if not 0 <= face_index < len(ordered):
        choices = "0" if len(ordered) == 1 else f"a number from 0 to {len(ordered) - 1}"
        raise FaceNotFoundError(
            f"{what.capitalize()} has {len(ordered)} face(s), so there is no face number {face_index}; "
            f"choose {choices} (faces are counted from the left, starting at 0).", reason="no_such_face",
            count=len(ordered))
    return ordered[face_index]


class FaceFollower:
    """Which of the faces found in a frame a clip's track takes up: the same person all through the clip.

    A tracker follows one face from frame to frame and asks its detector again only where it lost it. The
    first time, the largest face is taken. Taken up again after a loss (a turn, a hand, a cut), the largest
    face was the wrong rule in a clip with two people: half a second with the speaker hidden and the track went
    to the other person for the rest of the clip, and the portrait's head jumped to where that face was. Once
    a detection has seen several faces, a lost face is taken up again only near where it was last seen (the
    nearest face within ``REACH`` of its size), and is otherwise still lost. A clip with one person is
    followed as before: wherever that face comes back.
    """

    REACH = 0.75  # how far (in face sizes) from where it was last seen a lost face is looked for

    def __init__(self) -> None:
        self.last: FaceLandmarks | None = None
        self.people = 0  # the most faces one detection found

    def pick(self, faces: list[FaceLandmarks]) -> FaceLandmarks | None:
        self.people = max(self.people, len(faces))
        if not faces:
            return None
        if self.last is None or self.people < 2:
            return max(faces, key=lambda f: f.size)
        centre = self.last.xy.mean(axis=0)
        distance, face = min(((float(np.linalg.norm(f.xy.mean(axis=0) - centre)), f) for f in faces),
                             key=lambda pair: pair[0])
        return face if distance <= self.REACH * self.last.size else None

    def seen(self, face: FaceLandmarks | None) -> FaceLandmarks | None:
        if face is not None:
            self.last = face
        return face


_BACKENDS = {}


def register_backend(name: str):
    def deco(factory):
        _BACKENDS[name] = factory
        return factory
    return deco


def _registered() -> dict:
    from . import fan_backend, mediapipe_backend  # noqa: F401  (registration)
    return _BACKENDS


def available_backends() -> dict[str, str | None]:
    """Backend name -> None if usable here, else the reason it is not."""
    return {name: factory.unavailable_reason() for name, factory in _registered().items()}


@functools.lru_cache(maxsize=None)
def get_backend(name: str = "auto") -> LandmarkBackend:
    """A ready backend by name; ``auto`` prefers the offline mediapipe mesh, then face-alignment.

    Backends are checked in that order and no further than needed: asking after face-alignment
    imports torch (over a second), which an uploaded clip tracked by mediapipe has no use for.
    """
    backends = _registered()
    if name == "auto":
        for candidate in ("mediapipe", "face_alignment"):
            if backends[candidate].unavailable_reason() is None:
                return backends[candidate]()
        raise TalkingHeadError("No face landmark backend can run here: " + "; ".join(
            f"{k}: {v}" for k, v in available_backends().items()))
    if name not in backends:
        raise TalkingHeadError(f"Unknown landmark backend {name!r}; choose one of: auto, {', '.join(backends)}.")
    reason = backends[name].unavailable_reason()
    if reason is not None:
        raise TalkingHeadError(f"The {name} landmark backend cannot run here: {reason}")
    return backends[name]()


def detect_face(rgb: np.ndarray, *, backend: str = "auto", face_index: int | None = None,
                what: str = "the portrait") -> FaceLandmarks:
    return choose_face(get_backend(backend).detect(rgb), face_index, what=what)
