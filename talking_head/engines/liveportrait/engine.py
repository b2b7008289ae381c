"""The ``liveportrait`` engine: the public LivePortrait checkpoints behind our Engine interface.

The pipeline hands over the portrait with its landmarks, then driving frames (pixels + landmarks).
Here: the reference's rotated source crop from our own landmarks, the driving crop fixed from the
clip's first frame, relative motion with stitching, batched warp + decode on the best device, and
the decoded 512 crop warped back into the portrait box with the reference's feathered mask.

Per-frame driving motion is returned in ``DrivingFrame.features`` so the pipeline can cache it with
the clip; a clip whose features are cached is never decoded again (unless a side-by-side needs it).
"""
from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import checkpoints
from ...errors import CheckpointError, EngineUnavailableError
from ...faces import FaceLandmarks
from ..base import DrivingFrame, Engine, EngineOutOfMemory, Prepared, register_engine
from . import crop as lpcrop

if TYPE_CHECKING:  # torch is imported when the engine is used, not when the registry asks about it
    from .model import LivePortraitModel, Motion

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_MODELS: dict[tuple, LivePortraitModel] = {}
_MODELS_LOCK = threading.Lock()


def best_device() -> str:
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _resolve_precision(precision: str, device: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    if device == "cuda":
        import torch
        if torch.cuda.is_bf16_supported():
            return "bf16"
    return "fp32"


def load_model(device: str = "auto", precision: str = "auto", *, local_dir=None,
               file_specs=None) -> LivePortraitModel:
    """The networks from verified checkpoint files, loaded once per process and device."""
    import torch

    from .model import LivePortraitModel
    device = best_device() if device == "auto" else device
    precision = _resolve_precision(precision, device)
    specs = tuple(file_specs) if file_specs is not None else checkpoints.specs("liveportrait")
    key = (device, precision, str(local_dir or checkpoints.default_local_dir() or checkpoints.hub_cache_dir()), specs)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            if device == "mps":
                # grid_sampler_3d has no MPS kernel (liveportrait.md §5): let PyTorch run it on the CPU.
                os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
            if device == "cuda":
                # Our fp32 is the reference's fp32: no TF32 shortcuts unless a fast mode was asked for.
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
            sds = checkpoints.load_state_dicts("liveportrait", local_dir=local_dir, file_specs=specs)
            model = LivePortraitModel(sds, device=device, precision=precision)
            _MODELS.clear()  # one set of networks at a time: they are half a gigabyte
            _MODELS[key] = model
    return model


@register_engine("liveportrait", priority=10,
                 description="LivePortrait networks (KwaiVGI, MIT weights from the Hugging Face Hub); fast on a GPU")
class LivePortraitEngine(Engine):
    needs_driving_pixels = True
    driving_features = "liveportrait-motion-v2"  # v2: a frame where the face was lost keeps the last motion seen

    def __init__(self, device: str = "auto", precision: str = "auto", stitching: bool = True,
                 retarget_eyes: bool = False, retarget_lips: bool = False, batch_size: int | None = None,
                 local_dir=None, file_specs=None, model: LivePortraitModel | None = None):
        self.device = best_device() if device == "auto" else device
        self.precision = _resolve_precision(precision, self.device)
        self.stitching = stitching
        self.retarget_eyes, self.retarget_lips = retarget_eyes, retarget_lips
        self.batch_size = batch_size or (16 if self.device == "cuda" else 4 if self.device == "mps" else 1)
        self._local_dir, self._specs = local_dir, file_specs
        from .model import Transfer
        self.transfer = Transfer(stitching=stitching)
        try:
            # ``model``: networks built elsewhere (benchmarks time randomly initialised ones)
            self.model = model or load_model(self.device, self.precision, local_dir=local_dir, file_specs=file_specs)
        except CheckpointError as e:
            raise EngineUnavailableError(f"The liveportrait engine cannot start: {e}") from e

    # -- availability ---------------------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = checkpoints.status().get("liveportrait", [])
        if missing:
            return (f"its weights are not downloaded ({'; '.join(missing[:2])}"
                    f"{'; …' if len(missing) > 2 else ''}); run `python -m talking_head prefetch`")
        return None

    @classmethod
    def suits_auto(cls) -> bool:
        """``auto`` picks this engine only with a GPU: on a CPU it takes seconds per frame."""
        return best_device() != "cpu"

    def settings_key(self) -> str:
        return (f"{self.name}:{self.precision}:stitch={int(self.stitching)}:eyes={int(self.retarget_eyes)}"
                f":lips={int(self.retarget_lips)}:{self._weights_id()}")

    def features_key(self) -> str:
        """What the cached per-frame driving features depend on: the motion extractor and the crop."""
        return f"{self.driving_features}:{self.precision}:{self._weights_id()}"

    def _weights_id(self) -> str:
        specs = self._specs if self._specs is not None else checkpoints.specs("liveportrait")
        h = hashlib.sha256("|".join(f"{s.filename}={s.sha256}" for s in specs).encode()).hexdigest()
        return h[:12]

    def configure(self, settings: Any) -> None:
        from .model import Transfer
        self.transfer = Transfer(expression=float(getattr(settings, "expression_strength", 1.0)),
                                 head=float(getattr(settings, "head_strength", 1.0)),
                                 head_motion=bool(getattr(settings, "head_motion", True)),
                                 stitching=self.stitching)

    # -- the portrait -----------------------------------------------------------------------------
    def prepare(self, portrait: np.ndarray, face: FaceLandmarks) -> Prepared:
        pts = lpcrop.ibug68(face)
        m_o2c = lpcrop.source_crop_matrix(pts)
        box, to_box = lpcrop.placement(m_o2c, portrait.shape)
        crop512 = lpcrop.warp_crop(portrait, m_o2c, lpcrop.SOURCE_SIZE)
        src = self.model.prepare_source(self.model.to_tensor(lpcrop.to_net_input(crop512)))
        mask = lpcrop.crop_to_box(lpcrop.paste_mask(), to_box, box).astype(np.float32) / 255.0
        x0, y0, x1, y1 = box
        state = {"source": src, "to_box": to_box, "box": box, "drv0": None, "drv_m": None,
                 "src_eyes": lpcrop.eye_open_ratios(pts), "src_lip": lpcrop.lip_open_ratio(pts)}
        return Prepared(box, portrait[y0:y1, x0:x1].copy(), mask, state)

    # -- driving frames ---------------------------------------------------------------------------
    def _driving_motion(self, state: dict, frames: list[DrivingFrame]) -> Motion:
        """Motion of each frame, from its cached features or by looking at its pixels."""
        from .model import Motion
        todo = [fr for fr in frames if fr.features is None]
        if todo:
            if state["drv_m"] is None:
                # The driving crop is fixed by the clip's first frame, so head movement stays visible.
                box = lpcrop.driving_box(lpcrop.ibug68(todo[0].landmarks))
                state["drv_m"] = lpcrop.box_matrix(*box, lpcrop.NET_SIZE)
            if any(fr.image is None for fr in todo):
                raise ValueError("the liveportrait engine needs the driving frames' pixels")
            crops = np.stack([lpcrop.warp_crop(fr.image, state["drv_m"], lpcrop.NET_SIZE) for fr in todo])
            feats = self.model.extract_motion(self.model.to_tensor(crops)).features()
            for fr, f in zip(todo, feats):
                fr.features = f
            # Where the driver's face was lost, the motion of the last frame it was seen in (the head holds still
            # until it is found again). Only frames read now: a batch halved after running out of memory is read
            # again, and its frames must keep what the frames before them gave.
            for fr in todo:
                if fr.seen:
                    state["seen"] = fr.features
                elif state.get("seen") is not None:
                    fr.features = state["seen"]
        return Motion.from_features(np.stack([fr.features for fr in frames]), device=self.model.device)

    def render(self, prepared: Prepared, frames: list[DrivingFrame]) -> list[np.ndarray]:
        """Rendered crops; on a device out-of-memory the batch is halved (and stays smaller) until one
        frame at a time fails too, then :class:`EngineOutOfMemory` (the pipeline falls back to the CPU)."""
        import torch
        try:
            return self._render(prepared, frames)
        except torch.OutOfMemoryError as e:
            if self.device == "cuda":
                torch.cuda.empty_cache()
            if len(frames) == 1:
                raise EngineOutOfMemory(f"The {self.device} device ran out of memory rendering one frame.") from e
            half = (len(frames) + 1) // 2
            self.batch_size = min(self.batch_size, half)
            return self.render(prepared, frames[:half]) + self.render(prepared, frames[half:])

    def _render(self, prepared: Prepared, frames: list[DrivingFrame]) -> list[np.ndarray]:
        import torch
        state = prepared.state
        drv = self._driving_motion(state, frames)
        if state["drv0"] is None:
            # The clip's neutral frame is its first with the face (frames arrive in order); before it, the
            # portrait rests (a motion read off a black frame or a hand was the reference for the whole clip).
            lead = next((k for k, fr in enumerate(frames) if fr.seen), len(frames))
            if lead:
                rest = [prepared.crop.copy() for _ in frames[:lead]]
                return rest + (self._render(prepared, frames[lead:]) if lead < len(frames) else [])
        drv0 = drv.take(0) if state["drv0"] is None else state["drv0"]
        eyes = lips = None
        if self.retarget_eyes or self.retarget_lips:
            pts = [lpcrop.ibug68(fr.landmarks) for fr in frames]
            dev = self.model.device
            if self.retarget_eyes:
                eyes = torch.tensor([[*state["src_eyes"], lpcrop.eye_open_ratios(p)[0]] for p in pts],
                                    dtype=torch.float32, device=dev)
            if self.retarget_lips:
                lips = torch.tensor([[state["src_lip"], lpcrop.lip_open_ratio(p)] for p in pts],
                                    dtype=torch.float32, device=dev)
        images = self.model.animate(state["source"], drv, drv0, self.transfer, eyes, lips)
        state["drv0"] = drv0  # (once drawn: a batch that ran out of memory is drawn again, halved, from the same start)
        return [lpcrop.crop_to_box(img, state["to_box"], state["box"]) for img in self.model.to_uint8(images)]

