"""Named parts of each landmark layout: which index is an eye, a lip, the face outline.

Everything that needs to know "where is the mouth" asks here, so engines and motion code work with
either the 478-point MediaPipe mesh or the 68-point iBUG set.
"""
from __future__ import annotations

import functools
import importlib.util
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Layout:
    name: str
    n_points: int
    oval: tuple[int, ...]            # closed loop around the face, clockwise from the top
    rigid: tuple[int, ...]           # points that move with the skull, not with expressions
    inner_lip_upper: tuple[int, ...]  # left corner -> right corner along the upper inner lip
    inner_lip_lower: tuple[int, ...]  # left corner -> right corner along the lower inner lip
    outer_lip: tuple[int, ...]       # closed loop around the lips
    eyes: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # per eye: (upper lid, lower lid), corner -> corner
    iris_centres: tuple[int, ...]    # one per eye, same order as ``eyes``; empty when unknown
    eye_centres_for_iod: tuple[tuple[int, ...], tuple[int, ...]]  # points averaged into each eye centre
    chin: int

    @property
    def mouth_ring(self) -> tuple[int, ...]:
        """The inner-lip loop: upper lip left to right, then the lower lip back."""
        return self.inner_lip_upper + tuple(reversed(self.inner_lip_lower[1:-1]))

    @property
    def outer_lip_lower(self) -> tuple[int, ...]:
        """The lower half of ``outer_lip`` without the corners (the loop runs from the left corner along the
        upper lip to the right corner, then back along the lower lip)."""
        return self.outer_lip[len(self.outer_lip) // 2 + 1:]


MEDIAPIPE = Layout(
    name="mediapipe478",
    n_points=478,
    oval=(10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
          148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109),
    # Forehead, nose bridge, eye corners and temples: cheek and jaw points widen in a smile and
    # would read as the head growing.
    rigid=(10, 109, 67, 103, 338, 297, 332, 151, 9, 8, 168, 6, 197, 195, 5, 4, 33, 133, 263, 362,
           127, 356, 162, 389, 21, 251, 54, 284),
    inner_lip_upper=(78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308),
    inner_lip_lower=(78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308),
    outer_lip=(61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146),
    eyes=(((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133)),
          ((263, 466, 388, 387, 386, 385, 384, 398, 362), (263, 249, 390, 373, 374, 380, 381, 382, 362))),
    iris_centres=(468, 473),
    eye_centres_for_iod=((33, 133, 159, 145), (263, 362, 386, 374)),
    chin=152,
)

IBUG68 = Layout(
    name="ibug68",
    n_points=68,
    oval=tuple(range(0, 17)) + tuple(range(26, 16, -1)),
    rigid=(27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45, 0, 1, 15, 16),
    inner_lip_upper=(60, 61, 62, 63, 64),
    inner_lip_lower=(60, 67, 66, 65, 64),
    outer_lip=tuple(range(48, 60)),
    eyes=(((36, 37, 38, 39), (36, 41, 40, 39)), ((42, 43, 44, 45), (42, 47, 46, 45))),
    iris_centres=(),
    eye_centres_for_iod=(tuple(range(36, 42)), tuple(range(42, 48))),
    chin=8,
)

LAYOUTS = {MEDIAPIPE.name: MEDIAPIPE, IBUG68.name: IBUG68}

# iBUG index -> MediaPipe face-mesh index (the widely used correspondence; the ends of each part agree
# with the layouts above: chin 8 -> 152, eye corners 36/39/42/45 -> 33/133/362/263, inner-lip corners
# 60/64 -> 78/308). Good enough to frame a face crop, rasterise parts and measure eye and lip openness;
# not a landmark-accurate conversion.
MEDIAPIPE_TO_IBUG68 = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,                                       # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,                                                 # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                           # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,                                 # outer lip
    78, 82, 13, 312, 308, 317, 14, 87,                                                   # inner lip
], dtype=np.int64)


def to_ibug68(points: np.ndarray, layout: str) -> np.ndarray:
    """(68, D) iBUG points from a (N, D) landmark array of layout ``ibug68`` or ``mediapipe478``."""
    points = np.asarray(points)
    if layout == IBUG68.name:
        return points[:68]
    if layout == MEDIAPIPE.name:
        return points[MEDIAPIPE_TO_IBUG68]
    raise ValueError(f"no 68-point mapping for the landmark layout {layout!r}")


def get_layout(name: str) -> Layout:
    return LAYOUTS[name]


def strip_triangles(upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    """Triangles filling the gap between two polylines that share their end points (a lip gap, an eye)."""
    tris = []
    u, l = list(upper), list(lower)
    i = j = 0
    # Walk both curves from the shared left corner, always advancing the one that lags, so the
    # strip has no slivers even when the curves have different point counts.
    while i < len(u) - 1 or j < len(l) - 1:
        if j >= len(l) - 1 or (i < len(u) - 1 and (i + 1) / len(u) <= (j + 1) / len(l)):
            a, b, c = u[i], u[i + 1], l[j]
            i += 1
        else:
            a, b, c = u[i], l[j + 1], l[j]
            j += 1
        if len({a, b, c}) == 3:
            tris.append((a, b, c))
    return np.array(tris, dtype=np.int32).reshape(-1, 3)


def _mediapipe_tesselation() -> frozenset:
    """MediaPipe's FACEMESH_TESSELATION edges.

    Importing mediapipe runs its package start-up (its drawing utilities import matplotlib: ~0.7 s
    on 2 cores), which a render of a portrait whose landmarks and mask are cached never needs
    otherwise; the edge list is plain data in a module without imports, so it is read on its own.
    """
    if "mediapipe" not in sys.modules:
        spec = importlib.util.find_spec("mediapipe")
        if spec is not None and spec.submodule_search_locations:
            path = Path(spec.submodule_search_locations[0]) / "python" / "solutions" / "face_mesh_connections.py"
            if path.is_file():
                return runpy.run_path(str(path))["FACEMESH_TESSELATION"]
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    return FACEMESH_TESSELATION


@functools.lru_cache(maxsize=None)
def mediapipe_face_triangles() -> np.ndarray:
    """The mesh's own triangles (3-cliques of its tesselation edges); eyes and mouth are holes."""
    edges = {tuple(sorted(e)) for e in _mediapipe_tesselation()}
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, k))) for a, b in edges for k in adj[a] & adj[b]}
    return np.array(sorted(tris), dtype=np.int32)


def hole_triangles(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(mouth gap triangles, eye triangles) that close the holes of the face mesh."""
    mouth = strip_triangles(layout.inner_lip_upper, layout.inner_lip_lower)
    eyes = []
    for k, (upper, lower) in enumerate(layout.eyes):
        if layout.iris_centres:
            # A fan around the iris centre lets gaze move the iris inside the lids.
            c = layout.iris_centres[k]
            ring = list(upper) + list(reversed(lower[1:-1]))
            eyes += [(c, ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]
        else:
            eyes += strip_triangles(upper, lower).tolist()
    return mouth, np.array(eyes, dtype=np.int32).reshape(-1, 3)


_DELAUNAY_REACH = 1000


def delaunay(points: np.ndarray) -> np.ndarray:
    """(M, 3) int32 indices into ``points`` (N, 2) of their Delaunay triangles. A point given twice is used
    once (its first index); points on one line give no triangles."""
    p = np.asarray(points, np.float32).reshape(-1, 2)
    if len(p) < 3:
        return np.zeros((0, 3), np.int32)
    # Subdiv2D starts from one large triangle, its corners three times the rectangle's side away; near the
    # hull the triangulation is Delaunay only with those corners far out. With a rectangle that just holds
    # the points, thin triangles along the hull were missing (7 of 1981 for 1000 random points); with a
    # margin of 50 times the points' extent, 9 of 102 random sets still lost one; at 1000, none (the tests
    # compare with qhull's).
    lo, hi = np.floor(p.min(axis=0)), np.ceil(p.max(axis=0))
    reach = min(float(max(hi - lo)) * _DELAUNAY_REACH + 2, 2.0**28)  # (the rectangle is in int32)
    sub = cv2.Subdiv2D((int(lo[0] - reach), int(lo[1] - reach), int(hi[0] - lo[0] + 2 * reach), int(hi[1] - lo[1] + 2 * reach)))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(p.tolist()):
        sub.insert((x, y))
        index.setdefault((x, y), i)
    # The triangles come as corner coordinates, exactly the points inserted (as float32); those that touch
    # the subdivision's own outer corners name no point and are left out.
    corners = np.asarray(sub.getTriangleList(), np.float32).reshape(-1, 3, 2).tolist()
    tris = [[index.get((x, y), -1) for x, y in tri] for tri in corners]
    out = np.array([t for t in tris if min(t) >= 0], np.int32).reshape(-1, 3)
    # (Nearly collinear corners would make triangles of no area: a warp cannot use them.)
    a, b, c = (p[out[:, k]].astype(np.float64) for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return out[np.abs(area) > 1e-9]


def face_triangles(layout: Layout, rest_xy: np.ndarray) -> np.ndarray:
    """Triangles covering the whole face (skin, eyes, mouth gap) for a layout."""
    mouth, eyes = hole_triangles(layout)
    if layout.name == MEDIAPIPE.name:
        skin = mediapipe_face_triangles()
    else:
        tri = delaunay(rest_xy[: layout.n_points])
        inside = set(layout.inner_lip_upper) | set(layout.inner_lip_lower)
        # Delaunay would bridge the lip gap with its own triangles; the strip replaces them.
        skin = np.array([t for t in tri if not set(t) <= inside], dtype=np.int32)
    return np.concatenate([skin, mouth, eyes])


def eye_centres(layout: Layout, xy: np.ndarray) -> np.ndarray:
    return np.stack([xy[list(ix)].mean(axis=0) for ix in layout.eye_centres_for_iod])


def mouth_opening(layout: Layout, xy: np.ndarray) -> np.ndarray:
    """Gap between the inner lips, per frame, in the units of ``xy`` (..., N, 2)."""
    up = xy[..., list(layout.inner_lip_upper[1:-1]), 1]
    lo = xy[..., list(layout.inner_lip_lower[1:-1]), 1]
    return np.clip(lo - up, 0, None).max(axis=-1)


@functools.cache
def mediapipe_wound_triangles() -> np.ndarray:
    """The mesh's triangles wound one way round (each inner edge walked in opposite directions by its
    two triangles), so that a triangle's signed area says whether it faces the viewer.

    Four mutually joined points (the nostril wings) make four 3-cliques of which only two are faces,
    and which two is not written down anywhere: they are left out, which costs a few tiny triangles.
    """
    tris = mediapipe_face_triangles()
    cliques = {tuple(t) for t in tris.tolist()}
    near: dict[int, set[int]] = {}
    for t in cliques:
        for v in t:
            near.setdefault(v, set()).update(t)
    ambiguous = set()
    for a, b, c in cliques:
        for v in (near[a] & near[b] & near[c]) - {a, b, c}:
            if all(tuple(sorted(p)) in cliques for p in ((v, a, b), (v, b, c), (v, a, c))):
                ambiguous.add((a, b, c))
    kept = [list(t) for t in sorted(cliques - ambiguous)]
    by_edge: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(kept):
        for k in range(3):
            by_edge.setdefault(tuple(sorted((t[k], t[(k + 1) % 3]))), []).append(i)
    done = [False] * len(kept)
    for seed in range(len(kept)):  # one pass per connected piece (the mesh is one)
        if done[seed]:
            continue
        done[seed], todo = True, [seed]
        while todo:
            t = kept[todo.pop()]
            for k in range(3):
                a, b = t[k], t[(k + 1) % 3]
                for j in by_edge[tuple(sorted((a, b)))]:
                    if not done[j]:
                        u = kept[j]
                        if any((u[m], u[(m + 1) % 3]) == (a, b) for m in range(3)):
                            u.reverse()  # a neighbour walks the shared edge the other way
                        done[j] = True
                        todo.append(j)
    return np.array(kept, dtype=np.int32)


def turn(o: np.ndarray, u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Twice the signed area of (o, u, p), broadcast over leading axes: positive where p lies left of
    the line o -> u."""
    return (u[..., 0] - o[..., 0]) * (p[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (p[..., 0] - o[..., 0])


def facing(xy: np.ndarray) -> np.ndarray:
    """Twice the signed area of each of ``mediapipe_wound_triangles()`` on a face's points (N, 2+):
    positive where the triangle faces the viewer, negative where its winding is reversed (it faces away).
    Which winding faces the viewer is read from the face itself: most of any face does."""
    tris = mediapipe_wound_triangles()
    p = np.asarray(xy, np.float64)[:, :2]
    area = turn(p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]])
    return area * np.sign(area.sum())


def far_side(layout: Layout, xy: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(hidden, source): where a turned face's mesh folds behind its own silhouette.

    On a face seen from the side, the mesh's far cheek runs past the visible edge and folds back
    behind the near skin: its triangles face away from the viewer (their winding is reversed), and the
    points whose every triangle faces away (``hidden``, a bool mask; those of the fold that reaches the
    face's outline) project onto skin that belongs to other triangles. ``source[i]`` is, for a hidden
    point, the silhouette point nearest to it in 3-D (a point with triangles on both sides of the fold),
    and ``i`` itself for every other point. None for layouts without a 3-D mesh (their triangles are a
    flat Delaunay and never fold).
    """
    if layout.name != MEDIAPIPE.name:
        return None
    tris = mediapipe_wound_triangles()
    p = np.asarray(xy, np.float64)
    back = facing(p) < 0
    n = len(p)
    on_back = np.bincount(tris[back].ravel(), minlength=n) > 0
    on_front = np.bincount(tris[~back].ravel(), minlength=n) > 0
    hidden = on_back & ~on_front
    # Only the fold past the face's outline: a nose's own far side also faces away, but it folds onto
    # the cheek beside it, not onto the background.
    outer = np.zeros(n, bool)
    todo = [v for v in layout.oval if hidden[v]]
    outer[todo] = True
    links: dict[int, set[int]] = {}
    for t in tris[back].tolist():
        for v in t:
            links.setdefault(v, set()).update(t)
    while todo:
        for u in links.get(todo.pop(), ()):
            if hidden[u] and not outer[u]:
                outer[u] = True
                todo.append(u)
    hidden = outer
    source = np.arange(n)
    edge = np.flatnonzero(on_back & on_front)
    if hidden.any() and len(edge):
        p3 = np.column_stack([p[:, :2], np.asarray(z, np.float64)])
        h = np.flatnonzero(hidden)
        dist = np.linalg.norm(p3[h, None, :] - p3[None, edge, :], axis=2)
        source[h] = edge[dist.argmin(axis=1)]
    else:
        hidden[:] = False
    return hidden, source
