"""Synthetic talking subjects: cartoon faces with exact 68-point landmarks, for tests and smoke runs.

A subject's identity is its colours, face proportions and a background pattern; each frame varies
pose (shift, scale, in-plane turn) and expression (mouth opening, eye opening, brow raise). Nothing
here resembles a real person.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _arc(cx, cy, rx, ry, a0, a1, n):
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def template68(mouth: float = 0.0, eyes: float = 1.0, brows: float = 0.0, width: float = 1.0) -> np.ndarray:
    """68 iBUG points of a frontal face in a unit frame (centre 0, face half-height about 1)."""
    w = width
    jaw = _arc(0, -0.1, 0.85 * w, 1.05, np.pi + 0.25, -0.25, 17)[::-1]  # image left (x<0) first
    jaw = jaw[np.argsort(jaw[:, 0])]
    b = 0.08 * brows
    rbrow = _arc(-0.38 * w, -0.42 - b, 0.25 * w, 0.1, np.pi + 0.2, 2 * np.pi - 0.2, 5)
    lbrow = _arc(0.38 * w, -0.42 - b, 0.25 * w, 0.1, np.pi + 0.2, 2 * np.pi - 0.2, 5)
    bridge = np.stack([np.zeros(4), np.linspace(-0.3, 0.12, 4)], axis=1)
    nostrils = np.stack([np.linspace(-0.14, 0.14, 5) * w, 0.2 + 0.03 * np.abs(np.linspace(-2, 2, 5))], axis=1)

    def eye(cx):
        o = 0.07 * eyes
        return np.array([[cx - 0.16 * w, -0.2], [cx - 0.06 * w, -0.2 - o], [cx + 0.06 * w, -0.2 - o],
                         [cx + 0.16 * w, -0.2], [cx + 0.06 * w, -0.2 + o], [cx - 0.06 * w, -0.2 + o]])

    m = 0.25 * mouth
    outer = _arc(0, 0.52 + m / 2, 0.32 * w, 0.1 + m / 2, np.pi, -np.pi, 13)[:-1]  # starts at the left corner
    outer = np.concatenate([outer[:1], outer[1:][::-1]])  # left corner, then along the upper lip
    inner_up = _arc(0, 0.52 + m / 2, 0.22 * w, 0.02 + m / 2, np.pi, 2 * np.pi, 5)
    inner_lo = _arc(0, 0.52 + m / 2, 0.22 * w, 0.02 + m / 2, 0, np.pi, 5)[1:4]
    inner = np.concatenate([inner_up, inner_lo])
    return np.concatenate([jaw, rbrow, lbrow, bridge, nostrils, eye(-0.38 * w), eye(0.38 * w), outer, inner]).astype(np.float32)


@dataclass
class SyntheticSubject:
    """One synthetic person; :meth:`frame` draws it with a given pose and expression."""

    seed: int
    resolution: int = 64

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        self.skin = rng.uniform(60, 240, 3)
        self.hair = rng.uniform(0, 255, 3)
        self.background = rng.uniform(0, 255, 3)
        self.stripe = rng.uniform(0, 255, 3)
        self.lips = rng.uniform(0, 255, 3)
        self.iris = rng.uniform(0, 255, 3)
        self.width = float(rng.uniform(0.8, 1.1))
        self.freq = float(rng.uniform(0.1, 0.35))
        self.angle = float(rng.uniform(0, np.pi))

    def random_pose(self, rng: np.random.Generator) -> dict:
        return {"dx": rng.uniform(-0.08, 0.08), "dy": rng.uniform(-0.06, 0.06), "scale": rng.uniform(0.9, 1.1),
                    "roll": rng.uniform(-0.25, 0.25), "mouth": rng.uniform(0, 1), "eyes": rng.uniform(0.1, 1.0),
                    "brows": rng.uniform(-1, 1)}

    def landmarks(self, pose: dict) -> np.ndarray:
        r = self.resolution
        pts = template68(pose["mouth"], pose["eyes"], pose["brows"], self.width)
        c, s = np.cos(pose["roll"]), np.sin(pose["roll"])
        pts = pts @ np.array([[c, s], [-s, c]], np.float32)
        k = 0.3 * r * pose["scale"]
        return (pts * k + (r / 2 + pose["dx"] * r, r / 2 + 0.05 * r + pose["dy"] * r)).astype(np.float32)

    def frame(self, pose: dict) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 image, (68, 2) landmarks in its pixels)."""
        r = self.resolution
        lm = self.landmarks(pose)
        yy, xx = np.mgrid[0:r, 0:r].astype(np.float32)
        stripes = (np.sin((xx * np.cos(self.angle) + yy * np.sin(self.angle)) * self.freq * 64 / r) > 0)[..., None]
        img = np.where(stripes, self.stripe, self.background).astype(np.uint8)
        sh = 1 << 4

        def poly(points, colour):
            cv2.fillPoly(img, [np.round(points * sh).astype(np.int32).reshape(-1, 1, 2)], colour.tolist(),
                         cv2.LINE_AA, 4)

        centre = lm[:17].mean(axis=0)
        top = lm[17:27, 1].min()
        hair = np.concatenate([lm[:17], [[lm[16, 0], top - 0.25 * r * 0.3], [lm[0, 0], top - 0.25 * r * 0.3]]])
        poly(centre + 1.12 * (hair - centre), self.hair)
        face = np.concatenate([lm[:17], lm[26:16:-1] - (0, 0.05 * r)])
        poly(face, self.skin)
        for a, b in ((36, 42), (42, 48)):
            poly(lm[a:b], np.array([250.0, 250, 250]))
            cv2.circle(img, tuple(np.round(lm[a:b].mean(0) * sh).astype(int)), max(1, int(0.02 * r)) * sh,
                       self.iris.tolist(), -1, cv2.LINE_AA, 4)
        for a, b in ((17, 22), (22, 27)):
            cv2.polylines(img, [np.round(lm[a:b] * sh).astype(np.int32).reshape(-1, 1, 2)], False,
                          (self.hair * 0.5).tolist(), max(1, r // 40), cv2.LINE_AA, 4)
        poly(lm[48:60], self.lips)
        poly(lm[60:68], np.array([40.0, 10, 20]))
        cv2.polylines(img, [np.round(lm[27:31] * sh).astype(np.int32).reshape(-1, 1, 2)], False,
                      (self.skin * 0.7).tolist(), 1, cv2.LINE_AA, 4)
        return img, lm

    def clip(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(n, R, R, 3) frames and (n, 68, 2) landmarks with random poses and expressions."""
        rng = np.random.default_rng([self.seed, seed])
        out = [self.frame(self.random_pose(rng)) for _ in range(n)]
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
