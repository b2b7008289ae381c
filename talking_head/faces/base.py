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


Place = tuple[float, float, float]  # a face's centre (x, y) and size (the square root of its box's area), pixels


def place_of(box: tuple[float, float, float, float]) -> Place:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, float(np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0)))


def _near(a: Place, b: Place, within: float) -> bool:
    return float(np.hypot(a[0] - b[0], a[1] - b[1])) < within * max(a[2], b[2])


class FaceFollower:
    """Which of the faces found in a frame a clip's track takes up: the same person all through the clip.

    A tracker follows one face from frame to frame and asks its detector again where it lost it. The first
    time, the largest face is taken. Taken up again after a loss (a turn, a hand, a cut), the largest face was
    the wrong rule in a clip with two people: half a second with the speaker hidden and the track went to the
    other person for the rest of the clip, and the portrait's head jumped to where that face was. So the
    follower keeps where the other people are: the faces a detection found beside the one taken, and those the
    tracker finds in a look around every ``CENSUS_EVERY`` frames while it follows its face (``census``), which
    counts a person who walks in later. After a loss, a face where another person was is not taken; of the
    rest, the nearest to where the lost face was last seen, however far it moved while hidden. A clip where no
    one else was seen is followed as before: the largest face, wherever it comes back.
    """

    CENSUS_EVERY = 15  # frames between two looks for other people while the face is followed (half a second)
    SAME = 0.5         # a place within this many face sizes of a face's centre is that face
    OTHER = 0.6        # ... and of another person's last known place, that person (who may have moved a little)

    def __init__(self) -> None:
        self.last: FaceLandmarks | None = None
        self.others: list[Place] = []  # where the other people were last seen
        self.people = 0                # the most faces seen at once

    def is_other(self, where: Place) -> bool:
        return any(_near(where, o, self.OTHER) for o in self.others)

    def is_followed(self, where: Place) -> bool:
        return self.last is not None and _near(where, place_of(self.last.box), self.SAME)

    def pick(self, faces: list[FaceLandmarks]) -> FaceLandmarks | None:
        """The face to follow among those a detection found (None: not here)."""
        if not faces:
            return None
        self.people = max(self.people, len(faces))
        free = [f for f in faces if not self.is_other(place_of(f.box))] if self.last is not None else faces
        if not free:
            return None
        if self.last is None or not self.others:
            face = max(free, key=lambda f: f.size)
        else:
            x, y, _ = place_of(self.last.box)
            face = min(free, key=lambda f: float(np.hypot(*(np.asarray(place_of(f.box)[:2]) - (x, y)))))
        self._met([place_of(f.box) for f in faces if f is not face], place_of(face.box))
        return face

    def census(self, others: list[Place]) -> None:
        """Where the faces beside the followed one are now (a tracker's look around)."""
        self.people = max(self.people, 1 + len(others))
        if self.last is not None:
            self._met(others, place_of(self.last.box))

    def _met(self, found: list[Place], followed: Place) -> None:
        # Places just seen replace the old ones near them; an old place stays (the person may be hidden for
        # now) unless the followed face is there now.
        kept = [o for o in self.others
                if not any(_near(o, f, self.OTHER) for f in found) and not _near(o, followed, self.SAME)]
        self.others = found + kept

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
