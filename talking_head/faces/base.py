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
        as ``follower`` picks it; the caller's follower tells it afterwards how many faces it saw)."""


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


def _apart(a: Place, b: Place) -> float:
    """How far apart two places are, in the larger face's sizes."""
    return float(np.hypot(a[0] - b[0], a[1] - b[1])) / max(a[2], b[2], 1.0)


class FaceFollower:
    """Which of the faces found in a frame a clip's track takes up: the same person all through the clip.

    A tracker follows one face from frame to frame and asks its detector again where it lost it. The first
    time, the largest face is taken. Taken up again after a loss (a turn, a hand, a cut), the largest face was
    the wrong rule in a clip with two people: half a second with the speaker hidden and the track went to the
    other person for the rest of the clip, and the portrait's head jumped to where that face was. So the
    follower keeps where the other faces are (all places are face-mesh boxes): those a detection found beside
    the one taken; those the tracker finds in its look around every ``CENSUS_EVERY`` frames while it follows
    (``census``: a person who comes in later); and, while the followed face is lost, each detection moves them
    along to where they are now, so a person who moves while the speaker is hidden is still known. After a loss,
    a face at another's place is not taken; of the rest, the nearest to where the lost face was last seen,
    however far it moved while hidden. A place where no face was found lately no longer keeps a face from being
    taken (the followed person may come back where someone else was), and after ``FORGET`` frames it is
    forgotten. A clip where no other face was seen is followed as before: the largest face, wherever
    it comes back.
    """

    CENSUS_EVERY = 15  # frames between two looks for other faces while the face is followed (half a second)
    SAME = 0.5         # a place within this many face sizes of another is the same face
    FORGET = 30        # frames without a face at a place before it is forgotten (about a second)

    def __init__(self) -> None:
        self.last: FaceLandmarks | None = None
        self.others: list[list] = []  # [place, frames it has been missed for] of each other face
        self.faces = 0                # the most faces seen at once

    def _lately(self, other: list) -> bool:
        """Whether another face was seen at its place lately: in the last look around, or since the loss."""
        return other[1] < self.CENSUS_EVERY

    def seen_lately(self) -> list[Place]:
        """The places of the other faces seen lately (a place no one was seen at lately may be the followed
        face's now)."""
        return [other[0] for other in self.others if self._lately(other)]

    def is_followed(self, where: Place) -> bool:
        return self.last is not None and _apart(where, place_of(self.last.box)) < self.SAME

    def _match(self, found: list[Place]) -> list[int | None]:
        """For each place found, the index of the other face it is (nearest first, each at most once), or None."""
        pairs = sorted((_apart(f, o[0]), i, k) for i, f in enumerate(found) for k, o in enumerate(self.others))
        match: list[int | None] = [None] * len(found)
        taken = set()
        for d, i, k in pairs:
            if d < self.SAME and match[i] is None and k not in taken:
                match[i] = k
                taken.add(k)
        return match

    def pick(self, faces: list[FaceLandmarks]) -> FaceLandmarks | None:
        """The face to follow among those a detection found (None: not here)."""
        self.faces = max(self.faces, len(faces))
        if self.last is None:
            face = max(faces, key=lambda f: f.size) if faces else None
            self.others = [[place_of(f.box), 0] for f in faces if f is not face]
            return face
        places = [place_of(f.box) for f in faces]
        # A face is another person's only where that person was seen lately (in the last look around, or since
        # the loss): a face found where someone was a second ago may be the followed one, come back where they left.
        match = [k if k is not None and self._lately(self.others[k]) else None for k in self._match(places)]
        self._update(places, match, missed=1)  # (detections run every frame while the followed face is lost)
        free = [f for f, k in zip(faces, match) if k is None]
        if not free:
            return None
        if not self.others:
            face = max(free, key=lambda f: f.size)
        else:
            last = place_of(self.last.box)
            face = min(free, key=lambda f: _apart(place_of(f.box), last))
        self.others += [[place_of(f.box), 0] for f in free if f is not face]
        return face

    def census(self, found: list[Place]) -> None:
        """The places of the faces beside the followed one now (a tracker's look around)."""
        self.faces = max(self.faces, 1 + len(found))
        match = self._match(found)
        self._update(found, match, missed=self.CENSUS_EVERY)
        self.others = [o for o in self.others if not self.is_followed(o[0])]
        self.others += [[where, 0] for where, k in zip(found, match) if k is None]

    def _update(self, found: list[Place], match: list[int | None], missed: int) -> None:
        """Other faces found again move to where they are now; the rest have been missed ``missed`` frames more,
        and are forgotten after ``FORGET``."""
        again = {k: where for where, k in zip(found, match) if k is not None}
        for k, other in enumerate(self.others):
            other[:] = [again[k], 0] if k in again else [other[0], other[1] + missed]
        self.others = [o for o in self.others if o[1] < self.FORGET]

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
