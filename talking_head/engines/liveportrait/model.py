"""The LivePortrait networks put together: source in, driving motion in, frames out.

No files and no UI: :class:`LivePortraitModel` is built from state dicts (see
``talking_head.checkpoints.load_state_dicts``) and works on tensors.  The math follows the
reference's image-driven-by-video path (liveportrait.md §3): relative motion against the first
driving frame, stitching, optional eye / lip retargeting, warp, decode.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from . import kpmath
from .mlp import MLP_SIZES
from .nets import load_network

STITCHING = "stitching_retargeting_module"
BASE_NETWORKS = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")

# Per driving frame, what the motion extractor says that relative motion needs: pitch, yaw, roll
# (degrees), t (3), exp (21x3), scale (1).  Stored per clip, so a clip is looked at once.
FEATURE_SIZE = 3 + 3 + 63 + 1


@dataclass
class Motion:
    """Refined motion-extractor output for a batch: angles (B,1) in degrees, kp/exp (B,21,3), R (B,3,3)."""

    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    exp: torch.Tensor
    scale: torch.Tensor
    kp: torch.Tensor | None = None

    @property
    def R(self) -> torch.Tensor:
        return kpmath.rotation_matrix(self.pitch, self.yaw, self.roll)

    def as_dict(self) -> dict:
        return {"pitch": self.pitch, "yaw": self.yaw, "roll": self.roll, "t": self.t, "exp": self.exp,
                "scale": self.scale, "kp": self.kp, "R": self.R}

    def features(self) -> np.ndarray:
        """(B, FEATURE_SIZE) float32: the driving part of the motion (no canonical keypoints)."""
        b = self.exp.shape[0]
        parts = [self.pitch, self.yaw, self.roll, self.t, self.exp.reshape(b, -1), self.scale]
        return torch.cat([p.reshape(b, -1).float() for p in parts], dim=1).cpu().numpy()

    @classmethod
    def from_features(cls, feats: np.ndarray, device="cpu") -> Motion:
        f = torch.as_tensor(np.asarray(feats, np.float32).reshape(-1, FEATURE_SIZE), device=device)
        b = f.shape[0]
        return cls(f[:, 0:1], f[:, 1:2], f[:, 2:3], f[:, 3:6], f[:, 6:69].reshape(b, 21, 3), f[:, 69:70])

    def take(self, i: int) -> Motion:
        return Motion(*(None if v is None else v[i:i + 1] for v in
                        (self.pitch, self.yaw, self.roll, self.t, self.exp, self.scale, self.kp)))


@dataclass
class Source:
    """A prepared source image: appearance features, motion and implicit keypoints x_s."""

    f_s: torch.Tensor
    motion: Motion
    x_s: torch.Tensor


@dataclass(frozen=True)
class Transfer:
    """How driving motion is carried onto the source (1.0 and True are the reference)."""

    expression: float = 1.0      # scales the driver's expression change
    head: float = 1.0            # scales the driver's head rotation, translation and scale change
    head_motion: bool = True     # False: the head keeps the source's pose (reference region "exp")
    stitching: bool = True


def _scaled_rotation(r_rel: torch.Tensor, k: float) -> torch.Tensor:
    """The rotation ``r_rel`` (B,3,3) with its angle scaled by ``k`` (axis kept)."""
    out = []
    for m in r_rel.detach().double().cpu().numpy():
        vec, _ = cv2.Rodrigues(m)
        out.append(cv2.Rodrigues(vec * k)[0])
    return torch.as_tensor(np.stack(out), dtype=r_rel.dtype, device=r_rel.device)


class LivePortraitModel:
    """The seven networks on one device, with the math between them."""

    def __init__(self, state_dicts: dict[str, dict], device: str | torch.device = "cpu",
                 precision: str = "fp32"):
        self.device = torch.device(device)
        self.precision = precision
        nets = {}
        for name in BASE_NETWORKS:
            nets[name] = load_network(name, state_dicts[name]).to(self.device)
        for part in MLP_SIZES:  # retarget_shoulder (stitching), retarget_mouth, retarget_eye
            nets[part] = load_network(part, state_dicts[f"{STITCHING}.{part}"]).to(self.device)
        self.appearance = nets["appearance_feature_extractor"]
        self.motion_net = nets["motion_extractor"]
        self.warping = nets["warping_module"]
        self.generator = nets["spade_generator"]
        self.stitching_net = nets["retarget_shoulder"]
        self.lip_net = nets["retarget_mouth"]
        self.eye_net = nets["retarget_eye"]

    # -- numerics ---------------------------------------------------------------------------------
    def _autocast(self):
        if self.precision in ("bf16", "fp16") and self.device.type in ("cuda", "cpu"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def to_tensor(self, rgb_u8: np.ndarray) -> torch.Tensor:
        """(H,W,3) or (B,H,W,3) uint8 -> (B,3,H,W) float32 in [0,1] on the device."""
        a = np.asarray(rgb_u8)
        if a.ndim == 3:
            a = a[None]
        t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return t.permute(0, 3, 1, 2).float().div_(255.0)

    # -- stages -----------------------------------------------------------------------------------
    @torch.no_grad()
    def extract_motion(self, images: torch.Tensor) -> Motion:
        """Motion extractor on (B,3,256,256) images in [0,1]."""
        with self._autocast():
            raw = self.motion_net(images)
        info = kpmath.refine_kp_info({k: v.float() for k, v in raw.items()})
        return Motion(info["pitch"], info["yaw"], info["roll"], info["t"], info["exp"], info["scale"], info["kp"])

    @torch.no_grad()
    def prepare_source(self, image: torch.Tensor) -> Source:
        with self._autocast():
            f_s = self.appearance(image).float()
        m = self.extract_motion(image)
        x_s = kpmath.transform_keypoints(m.kp, m.R, m.exp, m.scale, m.t)
        return Source(f_s, m, x_s)

    def driving_keypoints(self, src: Source, drv: Motion, drv0: Motion, transfer: Transfer = Transfer()) -> torch.Tensor:
        """x_d for each driving frame (B,21,3), relative to the first driving frame ``drv0``."""
        b = drv.exp.shape[0]
        sm = src.motion
        d, d0 = drv.as_dict(), drv0.as_dict()
        if transfer.expression == 1.0 and transfer.head == 1.0 and transfer.head_motion:
            s = sm.as_dict()
            s = {k: (v.expand(b, *v.shape[1:]) if v is not None else None) for k, v in s.items()}
            d0 = {k: (v.expand(b, *v.shape[1:]) if v is not None else None) for k, v in d0.items()}
            return kpmath.relative_driving_keypoints(s, d, d0)
        delta = sm.exp + (drv.exp - drv0.exp) * transfer.expression
        R_s = sm.R.expand(b, 3, 3)
        if transfer.head_motion:
            r_rel = drv.R @ d0["R"].transpose(1, 2)
            if transfer.head != 1.0:
                r_rel = _scaled_rotation(r_rel, transfer.head)
            R_new = r_rel @ R_s
            scale = sm.scale * (drv.scale / drv0.scale) ** transfer.head
            t = sm.t + (drv.t - drv0.t) * transfer.head
        else:
            R_new, scale, t = R_s, sm.scale.expand(b, 1), sm.t.expand(b, 3)
        t = torch.cat([t[..., :2], torch.zeros_like(t[..., 2:])], dim=-1)
        x = scale.reshape(b, 1, 1) * (sm.kp.reshape(1, -1, 3) @ R_new + delta.reshape(b, -1, 3))
        return x + t.reshape(b, 1, 3)

    @torch.no_grad()
    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        b = x_d.shape[0]
        x_s = x_s.expand(b, *x_s.shape[1:])
        return kpmath.apply_stitching(x_d, self.stitching_net(kpmath.stitching_input(x_s, x_d)))

    @torch.no_grad()
    def retarget(self, x_s: torch.Tensor, eye_ratios: torch.Tensor | None, lip_ratios: torch.Tensor | None) -> torch.Tensor:
        """Reference eye / lip retargeting (relative mode): x_s + Δ_eye + Δ_lip, before stitching.

        ``eye_ratios`` (B,3): source left, source right, driving eye openness; ``lip_ratios`` (B,2):
        source, driving lip openness.
        """
        ratios = eye_ratios if eye_ratios is not None else lip_ratios
        b = ratios.shape[0]
        flat = x_s.reshape(1, -1).expand(b, -1)
        out = x_s.expand(b, *x_s.shape[1:]).clone()
        if eye_ratios is not None:
            out = out + self.eye_net(torch.cat([flat, eye_ratios], dim=1)).reshape(b, -1, 3)
        if lip_ratios is not None:
            out = out + self.lip_net(torch.cat([flat, lip_ratios], dim=1)).reshape(b, -1, 3)
        return out

    @torch.no_grad()
    def warp_decode(self, f_s: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """(B,3,512,512) float image in (0,1) for driving keypoints x_d (B,21,3)."""
        b = x_d.shape[0]
        with self._autocast():
            feat = f_s.expand(b, *f_s.shape[1:])
            warped = self.warping(feat, x_d, x_s.expand(b, *x_s.shape[1:]))
            img = self.generator(warped["out"])
        return img.float()

    @staticmethod
    def to_uint8(images: torch.Tensor) -> np.ndarray:
        """(B,3,H,W) in [0,1] -> (B,H,W,3) uint8, truncating as the reference does."""
        return (images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def animate(self, src: Source, drv: Motion, drv0: Motion, transfer: Transfer = Transfer(),
                eye_ratios: torch.Tensor | None = None, lip_ratios: torch.Tensor | None = None) -> torch.Tensor:
        """The whole per-frame path: driving motion -> keypoints -> (retarget) -> stitching -> image."""
        if eye_ratios is not None or lip_ratios is not None:
            x_d = self.retarget(src.x_s, eye_ratios, lip_ratios)
        else:
            x_d = self.driving_keypoints(src, drv, drv0, transfer)
        if transfer.stitching:
            x_d = self.stitch(src.x_s, x_d)
        return self.warp_decode(src.f_s, src.x_s, x_d)
