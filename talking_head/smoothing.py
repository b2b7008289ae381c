"""Temporal smoothing of landmark tracks (pure functions)."""
from __future__ import annotations

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class _OneEuro:
    """The running state of Casiez et al.'s One-Euro filter: feed frames in order, get each filtered one."""

    def __init__(self, fps: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
        self.dt = 1.0 / fps
        self.min_cutoff, self.beta = min_cutoff, beta
        self.a_d = _alpha(d_cutoff, self.dt)
        self.prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.prev is None:
            self.prev, self.dx_prev = x.copy(), np.zeros_like(x)
            return self.prev
        dx = (x - self.prev) / self.dt
        dx_hat = self.a_d * dx + (1 - self.a_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = _alpha(cutoff, self.dt)
        self.prev = a * x + (1 - a) * self.prev
        self.dx_prev = dx_hat
        return self.prev


def one_euro(x: np.ndarray, fps: float, min_cutoff: float = 1.5, beta: float = 0.3, d_cutoff: float = 1.0) -> np.ndarray:
    """Casiez et al.'s One-Euro filter along axis 0 of ``x`` (T, ...).

    Slow motion is smoothed hard (jitter goes), fast motion lightly (no lag on a quick blink or a
    mouth opening): the cutoff grows with the signal's speed. ``beta`` is per unit of ``x`` per second.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return x.copy()
    f = _OneEuro(fps, min_cutoff, beta, d_cutoff)
    out = np.empty_like(x)
    for t in range(len(x)):
        out[t] = f(x[t])
    return out


def _parameters(strength: float, scale: float) -> tuple[float, float]:
    """(min_cutoff, beta) for a smoothing strength and a face size."""
    return 3.0 / strength, 4.0 / (strength * max(scale, 1e-6))


def smooth_track(x: np.ndarray, fps: float, strength: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Zero-lag smoothing of a whole track: One-Euro run forwards and backwards, averaged.

    A clip is known in full before rendering, so the filter's causal lag is cancelled by running it
    both ways. ``strength`` 0 returns the input; 1 is the default; 2 is very smooth. ``scale`` is the
    size of the face in the units of ``x``, so the same settings suit a 100-pixel and a 1000-pixel face.
    """
    if strength <= 0 or len(x) < 3:
        return np.asarray(x, dtype=np.float64).copy()
    min_cutoff, beta = _parameters(strength, scale)
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


class GapFiller:
    """:func:`fill_gaps` for a track that arrives frame by frame.

    A frame comes out as soon as it is known: a valid one at once, a missing one when the gap it
    sits in has closed (interpolated) or the track has ended (the last valid value held).
    """

    def __init__(self):
        self._last: np.ndarray | None = None
        self._pending = 0

    def push(self, x: np.ndarray | None) -> list[np.ndarray]:
        """Add one frame (None: missing); returns the frames that are now settled, in order."""
        if x is None:
            self._pending += 1
            return []
        x = np.asarray(x, dtype=np.float64)
        if self._last is None:
            out = [x] * self._pending  # a leading gap holds the first valid value
        else:
            n = self._pending + 1
            out = [self._last + (k / n) * (x - self._last) for k in range(1, n)]
        self._last, self._pending = x, 0
        return out + [x]

    def finish(self) -> list[np.ndarray]:
        """The trailing gap, holding the last valid value (nothing if no frame was ever valid)."""
        if self._last is None:
            return []
        out, self._pending = [self._last] * self._pending, 0
        return out


class FixedLagSmoother:
    """:func:`smooth_track` for a track that arrives frame by frame; frames come out ``LAG_S`` seconds behind.

    The forward One-Euro pass is causal and runs as frames arrive. The backward pass needs the
    future, so for each block of frames it starts ``LAG_S`` seconds past the block's end: by the time
    it reaches the block, the filter has forgotten the (made-up) state it started from. At the end of
    the track it starts from the last frame, as :func:`smooth_track` does. The result matches
    :func:`smooth_track` to well under a hundredth of a pixel, so it has no lag either.
    """

    # By 1.5 s the backward filter's memory of where it started has decayed to ~1e-4 pixels.
    LAG_S = 1.5
    BLOCK_S = 0.5

    def __init__(self, fps: float, strength: float = 1.0, scale: float = 1.0):
        self.fps, self.lag, self.block = fps, max(1, round(self.LAG_S * fps)), max(1, round(self.BLOCK_S * fps))
        self._params = _parameters(strength, scale) if strength > 0 else None
        self._forward = _OneEuro(fps, *self._params) if self._params else None
        self._raw: list[np.ndarray] = []  # frames not yet given out, then the look-ahead
        self._fwd: list[np.ndarray] = []
        self._seen = 0

    def push(self, x: np.ndarray) -> None:
        """Add the next raw frame."""
        x = np.asarray(x, dtype=np.float64)
        self._raw.append(x)
        self._fwd.append(self._forward(x).copy() if self._forward else x)
        self._seen += 1

    def ready(self, final: bool = False) -> list[np.ndarray]:
        """The frames that are now settled, in order; ``final``: the track has ended, give out the rest."""
        out: list[np.ndarray] = []
        while len(self._raw) >= self.block + self.lag:
            out += self._settle(self.block, self.block + self.lag)
        if final and self._raw:
            if self._params is None or self._seen < 3:  # what smooth_track returns unsmoothed
                out += [x.copy() for x in self._raw]
                self._raw, self._fwd = [], []
            else:
                out += self._settle(len(self._raw), len(self._raw))
        return out

    def _settle(self, n: int, horizon: int) -> list[np.ndarray]:
        """Give out the first ``n`` frames, running the backward pass from frame ``horizon - 1``."""
        if self._params is None:
            done = self._raw[:n]
        else:
            backward = _OneEuro(self.fps, *self._params)
            bwd = [backward(x) for x in self._raw[horizon - 1::-1]][::-1]
            done = [0.5 * (f + b) for f, b in zip(self._fwd[:n], bwd[:n])]
        del self._raw[:n], self._fwd[:n]
        return done
