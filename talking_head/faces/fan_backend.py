"""face-alignment's FAN (68 iBUG points). Its weights are downloaded on first use (or by the
prefetch command), so it serves where there is network or after a prefetch."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import TalkingHeadError
from .base import FaceFollower, FaceLandmarks, register_backend

LAYOUT = "ibug68"
WEIGHT_FILES = ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")


def weights_dir() -> Path:
    from ..checkpoints import torch_checkpoints_dir
    return torch_checkpoints_dir()


def missing_weights() -> list[str]:
    d = weights_dir()
    return [f for f in WEIGHT_FILES if not (d / f).is_file()]


@register_backend("face_alignment")
class FaceAlignmentBackend:
    name = "face_alignment"
    layout = LAYOUT

    @staticmethod
    def unavailable_reason() -> str | None:
        try:
            import face_alignment  # noqa: F401
        except Exception as e:  # pragma: no cover - depends on the install
            return f"face-alignment is not installed ({e}); run pip install -r requirements.txt"
        missing = missing_weights()
        if missing:
            return (f"its weights ({', '.join(missing)}) are not in {weights_dir()}; "
                    "run `python -m talking_head prefetch` on a machine with network")
        return None

    def __init__(self, device: str = "cpu"):
        import face_alignment as fa
        try:
            # compile=True spends minutes in torch.compile at start-up; eager FAN is fast enough here.
            self._fa = fa.FaceAlignment(fa.LandmarksType.TWO_D, device=device, flip_input=False,
                                        compile=False, verbose=False)
        except OSError as e:  # URLError is an OSError: the weights could not be downloaded
            raise TalkingHeadError(
                "face-alignment could not load its weights; run `python -m talking_head prefetch` "
                f"on a machine with network ({e}).") from e
        self._lock = threading.Lock()

    def _faces(self, rgb, boxes=None) -> list[FaceLandmarks]:
        with self._lock:
            preds = self._fa.get_landmarks_from_image(np.ascontiguousarray(rgb), detected_faces=boxes)
        out = []
        for p in preds or []:
            pts = np.zeros((len(p), 3), np.float32)
            pts[:, :2] = p[:, :2]
            out.append(FaceLandmarks(pts, LAYOUT))
        return out

    def detect(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        return self._faces(rgb)

    def track(self, frames: Iterable[np.ndarray], first: FaceLandmarks | None = None,
              follower: FaceFollower | None = None) -> Iterator[FaceLandmarks | None]:
        prev = first
        follower = follower or FaceFollower()
        for rgb in frames:
            if prev is not None:
                # Re-using the last landmarks' box skips the slow S3FD detector on most frames.
                x0, y0, x1, y1 = prev.box
                m = 0.15 * (x1 - x0)
                faces = self._faces(rgb, [np.array([x0 - m, y0 - 2 * m, x1 + m, y1 + m, 1.0])])
                prev = max(faces, key=lambda f: f.size) if faces else None
            else:  # the detector's turn: the same person as before a loss (FaceFollower)
                prev = follower.pick(self._faces(rgb))
            yield follower.seen(prev)
