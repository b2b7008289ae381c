"""Faces are found on every painting, several faces are handled, no face says so."""
from pathlib import Path

import numpy as np
import pytest

from talking_head.errors import FaceNotFoundError
from talking_head.faces import choose_face, detect_face, get_backend
from talking_head.images import load_image


def test_every_painting_in_the_sources_has_its_face_found(shared_dir):
    paintings = sorted((shared_dir / "gallery-src" / "paintings").iterdir())
    assert len(paintings) >= 14
    be = get_backend("mediapipe")
    for p in paintings:
        img = load_image(p)
        faces = be.detect(img)
        assert faces, f"no face in {p.name}"
        f = choose_face(faces)
        x0, y0, x1, y1 = f.box
        # A face, not a speck: at least 5% of the short side, inside the picture.
        assert (y1 - y0) > 0.05 * min(img.shape[:2]), p.name
        assert 0 <= x0 < x1 <= img.shape[1] + 2 and 0 <= y0 < y1 <= img.shape[0] + 2
        assert f.points.shape == (478, 3)


def test_several_faces_largest_by_default_or_by_index():
    repo = Path(__file__).resolve().parent.parent / "gallery" / "portraits"
    a = load_image(repo / "gogol.jpg", max_side=600)
    b = load_image(repo / "voltaire.jpg", max_side=420)
    h = max(a.shape[0], b.shape[0])
    canvas = np.full((h, a.shape[1] + b.shape[1] + 40, 3), 128, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + 40:] = b
    faces = get_backend("mediapipe").detect(canvas)
    assert len(faces) == 2
    largest = choose_face(faces)
    assert largest.box[0] < a.shape[1]  # Gogol is drawn larger
    right = choose_face(faces, 1)
    assert right.box[0] > a.shape[1]
    with pytest.raises(FaceNotFoundError, match="face number 5"):
        choose_face(faces, 5)


def test_no_face_is_a_clear_error():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    with pytest.raises(FaceNotFoundError, match="No face was found"):
        detect_face(noise)
