"""Temporal smoothing of landmark tracks (pure functions)."""
from __future__ import annotations

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(x: np.ndarray, fps: float, min_cutoff: float = 1.5, beta: float = 0.3, d_cutoff: float = 1.0) -> np.ndarray:
    """Casiez et al.'s One-Euro filter along axis 0 of ``x`` (T, ...).

    Slow motion is smoothed hard (jitter goes), fast motion lightly (no lag on a quick blink or a
    mouth opening): the cutoff grows with the signal's speed. ``beta`` is per unit of ``x`` per second.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return x.copy()
    dt = 1.0 / fps
    out = np.empty_like(x)
    out[0] = x[0]
    dx_prev = np.zeros_like(x[0])
    a_d = _alpha(d_cutoff, dt)
    for t in range(1, len(x)):
        dx = (x[t] - out[t - 1]) / dt
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        cutoff = min_cutoff + beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
        dx_prev = dx_hat
    return out


def smooth_track(x: np.ndarray, fps: float, strength: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Zero-lag smoothing of a whole track: One-Euro run forwards and backwards, averaged.

    A clip is known in full before rendering, so the filter's causal lag is cancelled by running it
    both ways. ``strength`` 0 returns the input; 1 is the default; 2 is very smooth. ``scale`` is the
    size of the face in the units of ``x``, so the same settings suit a 100-pixel and a 1000-pixel face.
    """
    if strength <= 0 or len(x) < 3:
        return np.asarray(x, dtype=np.float64).copy()
    min_cutoff = 3.0 / strength
    beta = 4.0 / (strength * max(scale, 1e-6))
    fwd = one_euro(x, fps, min_cutoff, beta)
    bwd = one_euro(x[::-1], fps, min_cutoff, beta)[::-1]
    return 0.5 * (fwd + bwd)


def fill_gaps(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames where ``valid`` is False; ends hold the nearest valid value."""
    x = np.asarray(x, dtype=np.float64).copy()
    valid = np.asarray(valid, dtype=bool)
    if valid.all() or not valid.any():
        return x
    t = np.arange(len(x))
    flat = x.reshape(len(x), -1)
    for k in range(flat.shape[1]):
        flat[~valid, k] = np.interp(t[~valid], t[valid], flat[valid, k])
    return flat.reshape(x.shape)
