"""The engine interface: prepare a portrait once, then render driving frames onto it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import EngineUnavailableError, TalkingHeadError
from ..faces import FaceLandmarks


class EngineOutOfMemory(EngineUnavailableError):
    """The engine's device ran out of memory even one frame at a time."""


@dataclass
class Prepared:
    """A portrait made ready for one engine: the crop it animates and whatever state it keeps."""

    crop_box: tuple[int, int, int, int]   # x0, y0, x1, y1 in portrait pixels
    crop: np.ndarray                      # the portrait's pixels inside crop_box
    paste_mask: np.ndarray                # (h, w) float32 in 0..1: how much of the rendered crop replaces the canvas
    state: Any = None


@dataclass
class DrivingFrame:
    """One frame of driving motion, already expressed on the portrait."""

    index: int
    image: np.ndarray | None   # the driving clip's frame (RGB) when the engine needs pixels
    landmarks: np.ndarray      # (N, 3) driving landmarks, driving pixels (smoothed)
    target: np.ndarray         # (N, 3) where the portrait's landmarks go, portrait pixels
    # Where points rigidly attached to the head go, portrait pixels: a (2, 4) affine camera acting on
    # (x, y, z, 1), z in the target's units (see motion.Retargeted.head), or a (2, 3) affine on (x, y, 1).
    head: np.ndarray
    features: np.ndarray | None = None  # the engine's own per-frame driving features (see Engine.driving_features)
    # Whether the driver's face was found in this frame. Where it was not (a hand before it, a black cut, a turn
    # away), the landmarks are filled in between the frames around the gap, and the pixels show something else:
    # an engine does not read the face from them (meshwarp draws the mouth's inside, LivePortrait keeps the last
    # expression it read).
    seen: bool = True


class SourceStore(ABC):
    """Bytes an engine keeps between processes for a portrait it prepared (the pipeline's disk cache).

    Keys are the engine's own; the store adds the engine's settings and the code version, so a key
    need only name the content. A store may forget anything, so ``get`` may always return None.
    """

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...


class Engine(ABC):
    """Small on purpose: the pipeline owns files, caching, pasting and encoding."""

    name: str = ""
    needs_driving_pixels: bool = False
    batch_size: int = 1
    # Set by the pipeline before ``prepare``: where slow parts of a preparation may be kept (None: nowhere).
    source_store: SourceStore | None = None
    # Engines that read something from each driving frame's pixels name it here; they fill
    # ``DrivingFrame.features`` while rendering (or leave it None where they read nothing), the pipeline
    # caches those with the clip and hands them back next time (then the frames' pixels are not needed).
    driving_features: str | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the engine can run here, else what is missing and how to get it."""
        return None

    @classmethod
    def suits_auto(cls) -> bool:
        """Whether ``auto`` may pick this engine here (an engine can run but be too slow to choose unasked)."""
        return True

    def settings_key(self) -> str:
        """Everything that changes this engine's output, for cache keys."""
        return self.name

    def features_key(self) -> str:
        """Everything the cached ``driving_features`` depend on."""
        return f"{self.driving_features}:{self.settings_key()}"

    def configure(self, settings: Any) -> None:
        """Called with the render's ``AnimateSettings`` before :meth:`prepare`; engines that steer motion
        themselves (instead of following ``DrivingFrame.target``) read the strengths here."""

    @abstractmethod
    def prepare(self, portrait: np.ndarray, face: FaceLandmarks) -> Prepared: ...

    @abstractmethod
    def render(self, prepared: Prepared, frames: list[DrivingFrame]) -> list[np.ndarray]:
        """Rendered crops, each the size of ``prepared.crop``: arrays of their own, not buffers the next call
        reuses (the pipeline pastes and encodes them on a second thread while this draws the next ones)."""


@dataclass
class _Entry:
    factory: Callable[..., Engine]
    priority: int  # ``auto`` takes the available engine with the highest priority
    description: str = field(default="")


_REGISTRY: dict[str, _Entry] = {}


def register_engine(name: str, *, priority: int = 0, description: str = ""):
    def deco(cls):
        cls.name = name
        _REGISTRY[name] = _Entry(cls, priority, description)
        return cls
    return deco


def _load_builtin() -> None:
    from . import meshwarp  # noqa: F401
    from . import fewshot  # noqa: F401
    from .liveportrait import engine  # noqa: F401


def engine_status() -> dict[str, str | None]:
    """Engine name -> None when ready, else why not."""
    _load_builtin()
    return {name: e.factory.unavailable_reason() for name, e in _REGISTRY.items()}


def engine_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY, key=lambda n: -_REGISTRY[n].priority)


def engine_class(name: str) -> type[Engine]:
    _load_builtin()
    return _REGISTRY[name].factory


def auto_engine_name(status: dict[str, str | None] | None = None) -> str | None:
    """The engine ``auto`` picks here: the ready one with the highest priority that suits ``auto``."""
    status = engine_status() if status is None else status
    for candidate in engine_names():
        if status[candidate] is None and _REGISTRY[candidate].factory.suits_auto():
            return candidate
    return None


def create_engine(name: str = "auto", **options) -> Engine:
    status = engine_status()
    if name == "auto":
        chosen = auto_engine_name(status)
        if chosen is None:
            raise EngineUnavailableError("No animation engine can run here: " + "; ".join(f"{k}: {v}" for k, v in status.items()))
        return _REGISTRY[chosen].factory(**options)
    if name not in _REGISTRY:
        raise TalkingHeadError(f"Unknown engine {name!r}; choose one of: auto, {', '.join(engine_names())}.")
    if status[name] is not None:
        raise EngineUnavailableError(f"The {name} engine cannot run here: {status[name]}")
    return _REGISTRY[name].factory(**options)
