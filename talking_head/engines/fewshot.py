"""fewshot: the seed paper's own model (Zakharov et al., ICCV 2019) as an engine.

``prepare`` crops the portrait's face the way the training data was cropped, embeds it (K shots: the
portrait, plus any extra images of the same face), and fine-tunes G' and D' on the shots for a
bounded number of steps (0: the feed-forward model). ``render`` draws each frame's target landmarks
(the driver's relative motion already moved onto the portrait's own landmarks by motion.retarget,
so the driver's face shape does not leak in) as a landmark image and lets G' paint the face; only the
face region is pasted back, so the rest of the canvas stays the painting's own.

It needs a trained checkpoint: ``LIVING_PORTRAITS_FEWSHOT_DIR`` (a folder written by
``save_pretrained``) or ``LIVING_PORTRAITS_FEWSHOT_REPO`` (+ ``_REVISION``, a Hub repo in the local
cache after ``prefetch``), or a model passed in. Fine-tuning also needs the content-loss networks.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import CheckpointError, EngineUnavailableError
from ..faces import FaceLandmarks
from .base import DrivingFrame, Engine, Prepared, register_engine

SHOT_CHOICES = (1, 8, 32)


@dataclass
class _FewShotState:
    tuned: object                 # fewshot.finetune.FineTuned
    box: tuple[float, float, float]  # the model's square crop (x0, y0, side), portrait pixels
    layout: str
    shots: int


def _configured_source() -> tuple[str | None, str | None]:
    from ..fewshot.specs import configured_model_repo
    folder = os.environ.get("LIVING_PORTRAITS_FEWSHOT_DIR")
    if folder:
        return folder, None
    return configured_model_repo()


def _face_mask(points68: np.ndarray, w: int, h: int, feather: float) -> np.ndarray:
    """1 on the face (jaw line up to above the brows), feathered to 0 over ``feather`` pixels."""
    jaw, brows = points68[:17], points68[17:27]
    centre = points68[:, :2].mean(axis=0)
    lift = 0.25 * (jaw[:, 1].max() - brows[:, 1].min())
    top = brows[::-1] - (0, lift)
    poly = np.concatenate([jaw, top])
    poly = centre + 1.05 * (poly - centre)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32).reshape(-1, 1, 2)], 1.0)
    k = max(3, int(feather) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    return np.clip(mask * 1.5 - 0.25, 0, 1)


@register_engine("fewshot", priority=-1, description="few-shot adversarial talking heads (Zakharov et al. 2019); "
                 "needs a trained checkpoint")
class FewShotEngine(Engine):
    needs_driving_pixels = False
    batch_size = 8

    def __init__(self, model=None, *, source: str | Path | None = None, revision: str | None = None,
                 shots: int = 1, extra_images: list[np.ndarray] | None = None, finetune_steps: int | None = None,
                 content_loss=None, device: str | None = None, landmarks: str = "auto", seed: int = 0):
        import torch  # here, not at import: listing engines must not load torch

        from ..fewshot.losses import ContentWeightsMissing, build_content_loss
        from ..fewshot.model import TalkingHeadModel
        if model is None:
            if source is None:
                source, revision = _configured_source()
            if source is None:
                raise EngineUnavailableError(self.unavailable_reason() or "no few-shot checkpoint is configured")
            try:
                model = TalkingHeadModel.from_pretrained(source, revision=revision)
            except CheckpointError as e:
                raise EngineUnavailableError(f"The fewshot engine cannot load its checkpoint: {e}") from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        if shots < 1:
            raise ValueError("shots must be at least 1")
        self.shots = shots
        self.extra_images = list(extra_images or [])
        self.landmarks_backend = landmarks
        self.seed = seed
        self.finetune_steps = self.cfg.finetune_steps if finetune_steps is None else int(finetune_steps)
        self.content_loss = content_loss
        if self.finetune_steps > 0 and content_loss is None:
            try:
                self.content_loss = build_content_loss(self.cfg)
            except ContentWeightsMissing as e:
                raise EngineUnavailableError(f"Fine-tuning the fewshot engine needs its content-loss networks: {e} "
                                             "Or use finetune_steps=0 (the feed-forward model).") from None
        self.source_id = str(source) if source is not None else f"in-memory-{id(model):x}"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        from ..fewshot.specs import MODEL_FILES, model_specs
        source, revision = _configured_source()
        if source is None:
            return ("no few-shot checkpoint is configured: train one (python -m talking_head train --config FILE), then set "
                    "LIVING_PORTRAITS_FEWSHOT_DIR to its model folder or LIVING_PORTRAITS_FEWSHOT_REPO to a Hub repo")
        if os.environ.get("LIVING_PORTRAITS_FEWSHOT_DIR"):
            missing = [f for f in MODEL_FILES if not (Path(source) / f).is_file()]
            return f"{source} lacks {', '.join(missing)}" if missing else None
        from .. import checkpoints
        for spec in model_specs(source, revision):
            try:
                checkpoints.locate(spec)
            except CheckpointError as e:
                return str(e)
        return None

    def settings_key(self) -> str:
        return (f"fewshot-v1-{self.source_id}-k{self.shots}+{len(self.extra_images)}-ft{self.finetune_steps}"
                f"-seed{self.seed}")

    # -- shots ----------------------------------------------------------------------------------
    def _shot(self, image: np.ndarray, points68: np.ndarray, box=None):
        from ..fewshot.data import to_tensor
        from ..fewshot.landmarks import crop_box, crop_image, rasterize, to_crop
        cfg = self.cfg
        box = box or crop_box(points68, cfg.crop_scale, cfg.crop_shift)
        crop = crop_image(image, box, cfg.resolution)
        lm = rasterize(to_crop(points68, box, cfg.resolution), cfg.resolution, cfg.landmark_thickness)
        return to_tensor(crop), to_tensor(lm), box

    def _extra_shots(self, limit: int):
        from ..faces import detect_face
        from ..fewshot.landmarks import to_ibug68
        out = []
        for img in self.extra_images[:limit]:
            f = detect_face(img, backend=self.landmarks_backend, what="an extra shot")
            x, y, _ = self._shot(img, to_ibug68(f.points, f.layout))
            out.append((x, y))
        return out

    # -- engine interface ---------------------------------------------------------------------
    def prepare(self, portrait: np.ndarray, face: FaceLandmarks) -> Prepared:
        import torch

        from ..fewshot.finetune import finetune
        from ..fewshot.landmarks import to_ibug68
        pts = to_ibug68(face.points, face.layout)[:, :2].astype(np.float64)
        x, y, box = self._shot(portrait, pts)
        shots = [(x, y)] + self._extra_shots(self.shots - 1)
        frames = torch.stack([s[0] for s in shots])
        lms = torch.stack([s[1] for s in shots])
        tuned = finetune(self.model, frames, lms, steps=self.finetune_steps, content_loss=self.content_loss,
                         seed=self.seed)
        h, w = portrait.shape[:2]
        x0, y0, side = box
        cx0, cy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        cx1, cy1 = min(w, math.ceil(x0 + side)), min(h, math.ceil(y0 + side))
        crop_box = (cx0, cy0, cx1, cy1)
        crop = np.ascontiguousarray(portrait[cy0:cy1, cx0:cx1])
        mask = _face_mask(pts - (cx0, cy0), cx1 - cx0, cy1 - cy0, feather=0.04 * side)
        return Prepared(crop_box, crop, mask, _FewShotState(tuned, box, face.layout, len(shots)))

    def render(self, prepared: Prepared, frames: list[DrivingFrame]) -> list[np.ndarray]:
        from ..fewshot.data import to_image, to_tensor
        from ..fewshot.landmarks import rasterize, to_crop, to_ibug68
        st: _FewShotState = prepared.state
        r = self.cfg.resolution
        lms = np.stack([rasterize(to_crop(to_ibug68(f.target, st.layout), st.box, r), r, self.cfg.landmark_thickness)
                        for f in frames])
        out = to_image(st.tuned.render(to_tensor(lms).to(self.device)))
        x0, y0, side = st.box
        cx0, cy0, cx1, cy1 = prepared.crop_box
        # Square model output -> portrait pixels of the crop box (an affine resample, no rounding drift).
        k = side / r
        m = np.array([[k, 0, x0 - cx0], [0, k, y0 - cy0]], np.float64)
        size = (cx1 - cx0, cy1 - cy0)
        return [cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                for img in out]
