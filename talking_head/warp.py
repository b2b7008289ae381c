"""Piecewise-affine warping by rasterising a triangle mesh into a remap table.

The destination mesh is drawn into a (coarse) grid; every covered cell stores the source position
interpolated from the triangle's source vertices. A depth buffer decides which triangle wins where
the mesh folds over itself (a head turning away hides its far cheek), so a turn never tears the face
into shards. The coarse table is then upsampled and handed to ``cv2.remap`` at full resolution.

Upsampling is only right where the table is smooth. Where the mesh folds (the near cheek of a turning
head covering the far one), the table jumps, and interpolating across the jump would draw the fold's
edge as a staircase of grid cells; there the table is rasterised again at full resolution.
"""
from __future__ import annotations

import cv2
import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _rasterize(dst, src, z, tris, map_xy, zbuf, step, offset, cells, cell):
    """Draw ``tris`` into the grid ``map_xy``/``zbuf``; with ``cell`` > 0 only into the grid points
    whose ``cells[y // cell, x // cell]`` is set (the rest are skipped a cell at a time)."""
    h, w = zbuf.shape
    # Per row of cells, how many are marked left of each column: a span's count is one subtraction.
    marked = np.zeros((cells.shape[0], cells.shape[1] + 1), np.int32)
    if cell > 0:
        for cy in range(cells.shape[0]):
            for cx in range(cells.shape[1]):
                marked[cy, cx + 1] = marked[cy, cx] + cells[cy, cx]
    for f in range(tris.shape[0]):
        i0, i1, i2 = tris[f, 0], tris[f, 1], tris[f, 2]
        # Grid coordinates of the destination vertices.
        x0 = (dst[i0, 0] - offset) / step
        y0 = (dst[i0, 1] - offset) / step
        x1 = (dst[i1, 0] - offset) / step
        y1 = (dst[i1, 1] - offset) / step
        x2 = (dst[i2, 0] - offset) / step
        y2 = (dst[i2, 1] - offset) / step
        den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(den) < 1e-9:
            continue
        inv = 1.0 / den
        xmin = max(int(np.floor(min(x0, x1, x2))), 0)
        xmax = min(int(np.ceil(max(x0, x1, x2))), w - 1)
        ymin = max(int(np.floor(min(y0, y1, y2))), 0)
        ymax = min(int(np.ceil(max(y0, y1, y2))), h - 1)
        if cell > 0 and xmin <= xmax and ymin <= ymax:
            hit = False
            for cy in range(ymin // cell, ymax // cell + 1):
                if marked[cy, xmax // cell + 1] > marked[cy, xmin // cell]:
                    hit = True
                    break
            if not hit:
                continue  # no marked cell under this triangle
        # Each barycentric coordinate is linear in px along a row: the row's span where all three are
        # non-negative is found first (one pixel wider, for rounding), so the loop skips the bounding
        # box's empty corners; inside it the test and the arithmetic are exactly those of every pixel.
        ka = (y1 - y2) * inv
        kb = (y2 - y0) * inv
        kc = -(ka + kb)
        for py in range(ymin, ymax + 1):
            ca = ((x2 - x1) * (py - y2)) * inv - ka * x2
            cb = ((x0 - x2) * (py - y2)) * inv - kb * x2
            cc = 1.0 - ca - cb
            lo, hi = float(xmin), float(xmax)
            empty = False
            for k, c in ((ka, ca), (kb, cb), (kc, cc)):
                if k > 1e-12:
                    lo = max(lo, (-1e-4 - c) / k - 1.0)
                elif k < -1e-12:
                    hi = min(hi, (-1e-4 - c) / k + 1.0)
                elif c < -1e-4 - 1e-6:
                    empty = True
            if empty or lo > hi:
                continue
            px = max(xmin, int(np.floor(lo)))
            end = min(xmax, int(np.ceil(hi)))
            if cell > 0 and marked[py // cell, end // cell + 1] == marked[py // cell, px // cell]:
                continue  # no marked cell on this row's span
            while px <= end:
                if cell > 0 and not cells[py // cell, px // cell]:
                    px = (px // cell + 1) * cell  # the next cell
                    continue
                q = px
                px += 1
                a = ((y1 - y2) * (q - x2) + (x2 - x1) * (py - y2)) * inv
                b = ((y2 - y0) * (q - x2) + (x0 - x2) * (py - y2)) * inv
                c = 1.0 - a - b
                if a < -1e-4 or b < -1e-4 or c < -1e-4:
                    continue
                depth = a * z[i0] + b * z[i1] + c * z[i2]
                if depth < zbuf[py, q]:
                    zbuf[py, q] = depth
                    map_xy[py, q, 0] = a * src[i0, 0] + b * src[i1, 0] + c * src[i2, 0]
                    map_xy[py, q, 1] = a * src[i0, 1] + b * src[i1, 1] + c * src[i2, 1]


_NO_CELLS = np.ones((1, 1), np.uint8)  # _rasterize's cell mask when every grid point is drawn

# Neighbouring grid cells whose source positions differ by more than this many cell widths straddle a
# fold: a smooth warp moves them apart by about one width (a turning head's far cheek, squeezed
# to half its width, by two).
_FOLD_JUMP = 2.5


@numba.njit(cache=True, nogil=True)
def _jumps(grid, limit, out):
    """Mark both cells of every horizontal or vertical neighbour pair whose positions differ by > limit."""
    h, w = out.shape
    found = False
    for y in range(h):
        for x in range(w):
            if x + 1 < w and (abs(grid[y, x + 1, 0] - grid[y, x, 0]) > limit or abs(grid[y, x + 1, 1] - grid[y, x, 1]) > limit):
                out[y, x] = out[y, x + 1] = 1
                found = True
            if y + 1 < h and (abs(grid[y + 1, x, 0] - grid[y, x, 0]) > limit or abs(grid[y + 1, x, 1] - grid[y, x, 1]) > limit):
                out[y, x] = out[y + 1, x] = 1
                found = True
    return found


@numba.njit(cache=True, nogil=True)
def _open_cells(cells, step, affine, table, zbuf):
    """For the pixels of every marked cell: depth to infinity and the table to ``affine`` of the pixel
    (where no triangle is drawn, the table follows it)."""
    h, w = zbuf.shape
    for cy in range(cells.shape[0]):
        for cx in range(cells.shape[1]):
            if not cells[cy, cx]:
                continue
            for py in range(cy * step, min((cy + 1) * step, h)):
                for px in range(cx * step, min((cx + 1) * step, w)):
                    zbuf[py, px] = np.inf
                    table[py, px, 0] = affine[0, 0] * px + affine[0, 1] * py + affine[0, 2]
                    table[py, px, 1] = affine[1, 0] * px + affine[1, 1] * py + affine[1, 2]


def fold_cells(grid: np.ndarray, step: float) -> np.ndarray:
    """(gh, gw) bool: the cells of a coarse table (gh, gw, 2) whose upsampling crosses a jump.

    Both cells on either side of a jump, grown by one cell: bilinear upsampling reads each cell's
    neighbours, diagonal ones too (without the growth a slanted fold edge left 3.7-px errors in a test).
    """
    jump = np.zeros(grid.shape[:2], np.uint8)
    if not _jumps(grid, np.float32(_FOLD_JUMP * step), jump):
        return jump.view(bool)
    return cv2.dilate(jump, np.ones((3, 3), np.uint8)).view(bool)


class MeshWarper:
    """Remap tables for one output size, reused for every frame.

    ``step`` is the grid spacing in output pixels: the warp is exactly piecewise affine at the grid's
    cells and bilinear in between, which is invisible at step 2 and four times cheaper than step 1.
    """

    def __init__(self, width: int, height: int, step: int = 2):
        self.width, self.height, self.step = width, height, step
        gw, gh = -(-width // step), -(-height // step)
        # Cell centres in output pixels, under the same half-pixel convention as cv2.resize.
        self.offset = (step - 1) / 2.0
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
        self._index = np.dstack([xs, ys])
        self._identity = self._index * step + self.offset
        self._zbuf = np.empty((gh, gw), np.float32)
        self._map = np.empty((gh, gw, 2), np.float32)
        self._zfull: np.ndarray | None = None  # full-resolution depth, for the cells at folds
        self._edges: tuple[tuple[int, int, int, int], np.ndarray] | None = None

    @property
    def cells(self) -> np.ndarray:
        """(gh, gw, 2) centres of the table's grid cells in output pixels."""
        return self._identity

    def table(self, dst: np.ndarray, src: np.ndarray, z: np.ndarray, tris: np.ndarray,
              outside: np.ndarray | None = None, displace: np.ndarray | None = None) -> np.ndarray:
        """Full-resolution (H, W, 2) float32 map: output pixel -> source position.

        ``outside`` (2, 3): the affine that cells no triangle covers follow (default: they stay put).
        ``displace`` (gh, gw, 2): an offset in output pixels per grid cell; the map becomes
        ``map(p + displace(p))``, composed on the grid before it is upsampled, so it costs a remap of
        the small grid rather than of the full table.
        """
        self._edges = None
        if outside is None:
            self._map[:] = self._identity
        else:
            cv2.transform(self._identity, np.asarray(outside, np.float64), dst=self._map)
        self._zbuf.fill(np.inf)
        _rasterize(np.ascontiguousarray(dst, np.float32), np.ascontiguousarray(src, np.float32),
                   np.ascontiguousarray(z, np.float32), tris, self._map, self._zbuf,
                   np.float32(self.step), np.float32(self.offset), _NO_CELLS, 0)
        grid = self._map if displace is None else self._displaced(displace)
        if self.step == 1:
            return grid.copy()
        full = cv2.resize(grid, (grid.shape[1] * self.step, grid.shape[0] * self.step), interpolation=cv2.INTER_LINEAR)
        table = full[: self.height, : self.width]
        if displace is None:
            # (With a displacement the table is no longer the mesh's own; it is left as upsampled.)
            self._exact_at_folds(table, dst, src, z, tris, outside)
        return table

    def fold_edges(self) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Where the last table jumps between neighbouring pixels (the edge of a fold): a box (x0, y0, x1,
        y1) and a bool mask of its pixels on either side of a jump, or None without a fold.

        A fold's edge is exact, so it is as hard as a pixel grid makes it; the painting's own edges are
        soft. Renderers soften these pixels (see ``soften_edges``).
        """
        return self._edges

    def _exact_at_folds(self, table: np.ndarray, dst, src, z, tris, outside) -> None:
        """Rasterise ``table`` again at full resolution inside the cells that straddle a fold."""
        cells = fold_cells(self._map, self.step)
        if not cells.any():
            return
        if self._zfull is None:
            self._zfull = np.empty((self.height, self.width), np.float32)  # only the fold cells' pixels are used
        affine = np.float64([[1, 0, 0], [0, 1, 0]]) if outside is None else np.asarray(outside, np.float64)
        _open_cells(cells, self.step, affine, table, self._zfull)
        # Drawn again only into the fold cells (the triangles that reach none are skipped).
        _rasterize(np.ascontiguousarray(dst, np.float32), np.ascontiguousarray(src, np.float32),
                   np.ascontiguousarray(z, np.float32), tris, table, self._zfull, np.float32(1), np.float32(0),
                   cells.view(np.uint8), self.step)
        rows, cols = np.flatnonzero(cells.any(axis=1)), np.flatnonzero(cells.any(axis=0))
        box = (int(cols[0]) * self.step, int(rows[0]) * self.step,
               min(int(cols[-1] + 1) * self.step, self.width), min(int(rows[-1] + 1) * self.step, self.height))
        edges = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
        if _jumps(table[box[1]:box[3], box[0]:box[2]], np.float32(_FOLD_JUMP), edges):
            self._edges = box, edges.view(bool)

    def _displaced(self, displace: np.ndarray) -> np.ndarray:
        # Grid index of p + displace(p): the grid's cells are ``step`` output pixels apart.
        at = self._index + displace.astype(np.float32) / np.float32(self.step)
        return cv2.remap(self._map, at, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def covered(self) -> np.ndarray:
        """Full-resolution float mask (H, W) of where the last ``table`` call drew a triangle."""
        cov = np.isfinite(self._zbuf).astype(np.float32)
        if self.step != 1:
            cov = cv2.resize(cov, (cov.shape[1] * self.step, cov.shape[0] * self.step), interpolation=cv2.INTER_LINEAR)
        return cov[: self.height, : self.width]

    def warp(self, image: np.ndarray, dst, src, z, tris, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        m = self.table(dst, src, z, tris)
        return cv2.remap(image, m, None, interpolation=interpolation, borderMode=cv2.BORDER_REFLECT)


def soften_edges(image: np.ndarray, edges: tuple[tuple[int, int, int, int], np.ndarray] | None) -> None:
    """Blur ``image`` (in place) on the pixels of ``MeshWarper.fold_edges``: a one-pixel soft edge."""
    if edges is None:
        return
    (bx0, by0, bx1, by1), mask = edges
    # One pixel of context around the box, for the blur.
    x0, y0, x1, y1 = max(bx0 - 1, 0), max(by0 - 1, 0), min(bx1 + 1, image.shape[1]), min(by1 + 1, image.shape[0])
    region = image[y0:y1, x0:x1]
    blurred = cv2.GaussianBlur(region, (3, 3), 0.8)
    m = np.zeros(region.shape[:2], bool)
    m[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = mask
    region[m] = blurred[m]


def coverage_mask(width: int, height: int, polygon: np.ndarray, feather: float = 0.0) -> np.ndarray:
    """Float mask (H, W) of a polygon, optionally feathered by a Gaussian of ``feather`` pixels."""
    m = np.zeros((height, width), np.uint8)
    cv2.fillPoly(m, [np.round(polygon * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    out = m.astype(np.float32) / 255.0
    if feather > 0:
        out = cv2.GaussianBlur(out, (0, 0), feather)
    return out
