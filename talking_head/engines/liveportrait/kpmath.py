"""Pure keypoint / pose math of LivePortrait (no learned weights).

Conventions (as in the reference): angles in degrees, keypoints are row vectors and are
rotated as ``kp @ R``, where ``R = (Rz(roll) @ Ry(yaw) @ Rx(pitch))^T``.
"""
from __future__ import annotations

import math

import torch

NUM_BINS = 66


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Pose-bin logits (B, 66) -> angle in degrees (B,): expectation of the softmax, 3 deg/bin."""
    prob = torch.softmax(logits, dim=-1)
    idx = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (prob * idx).sum(dim=-1) * 3.0 - 97.5


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Degrees (any shape with B elements) -> (B, 3, 3) rotation for row vectors (kp @ R)."""
    p, y, r = (a.reshape(-1) / 180 * math.pi for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(p), torch.zeros_like(p)

    def mat(rows):
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    rx = mat([[one, zero, zero], [zero, p.cos(), -p.sin()], [zero, p.sin(), p.cos()]])
    ry = mat([[y.cos(), zero, y.sin()], [zero, one, zero], [-y.sin(), zero, y.cos()]])
    rz = mat([[r.cos(), -r.sin(), zero], [r.sin(), r.cos(), zero], [zero, zero, one]])
    return (rz @ ry @ rx).transpose(1, 2)


def refine_kp_info(raw: dict) -> dict:
    """Raw motion-extractor heads -> pose in degrees (B,1), kp / exp reshaped to (B, K, 3)."""
    b = raw["kp"].shape[0]
    out = dict(raw)
    for k in ("pitch", "yaw", "roll"):
        out[k] = bins_to_degrees(raw[k])[:, None]
    out["kp"] = raw["kp"].reshape(b, -1, 3)
    out["exp"] = raw["exp"].reshape(b, -1, 3)
    return out


def transform_keypoints(kp: torch.Tensor, R: torch.Tensor, exp: torch.Tensor,
                        scale: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x = scale * (kp @ R + exp); x[..., :2] += t[:2] (tz is ignored).  Returns (B, K, 3)."""
    b = kp.shape[0]
    x = kp.reshape(b, -1, 3) @ R + exp.reshape(b, -1, 3)
    x = x * scale.reshape(b, 1, 1)
    return torch.cat([x[..., :2] + t.reshape(b, 1, -1)[..., :2], x[..., 2:]], dim=-1)


def keypoints_from_info(info: dict) -> torch.Tensor:
    """Refined kp info (see refine_kp_info) -> implicit 3-D keypoints x (B, K, 3)."""
    R = rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    return transform_keypoints(info["kp"], R, info["exp"], info["scale"], info["t"])


def relative_driving_keypoints(src: dict, drv: dict, drv0: dict) -> torch.Tensor:
    """Relative motion transfer (reference default): driving frame ``drv`` relative to the
    first driving frame ``drv0``, applied to the source.  Dicts hold refined kp info plus
    ``R`` (rotation_matrix of the pose).  Returns x_d (B, K, 3); tz is dropped.
    """
    R_new = (drv["R"] @ drv0["R"].transpose(1, 2)) @ src["R"]
    delta = src["exp"] + (drv["exp"] - drv0["exp"])
    scale = src["scale"] * (drv["scale"] / drv0["scale"])
    t = src["t"] + (drv["t"] - drv0["t"])
    t = torch.cat([t[..., :2], torch.zeros_like(t[..., 2:])], dim=-1)
    b = src["kp"].shape[0]
    x = scale.reshape(b, 1, 1) * (src["kp"].reshape(b, -1, 3) @ R_new + delta.reshape(b, -1, 3))
    return x + t.reshape(b, 1, 3)


def stitching_input(x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """Input of the stitching MLP: cat(x_s.flatten, x_d.flatten) -> (B, 126)."""
    b = x_s.shape[0]
    return torch.cat([x_s.reshape(b, -1), x_d.reshape(b, -1)], dim=1)


def apply_stitching(x_d: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add the stitching MLP output (B, 3K+2): per-keypoint offsets + a shared (tx, ty)."""
    b, k = x_d.shape[0], x_d.shape[-2]
    x = x_d + delta[..., :3 * k].reshape(b, k, 3)
    txy = delta[..., 3 * k:3 * k + 2].reshape(b, 1, 2)
    return torch.cat([x[..., :2] + txy, x[..., 2:]], dim=-1)
