"""Tests of the self-reenactment metrics (talking_head.metrics)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from talking_head import metrics as M

REPO = Path(__file__).resolve().parents[1]


GALLERY = SHARED / "gallery-src" if (SHARED / "gallery-src").is_dir() else None
needs_gallery = pytest.mark.skipif(GALLERY is None, reason="shared/gallery-src not found")


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    # Smooth structure plus texture, so SSIM has something to be sensitive to.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = 127 + 80 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None]
    img = base + rng.normal(0, 10, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def _synthetic_landmarks() -> np.ndarray:
    rng = np.random.default_rng(3)
    pts = rng.uniform(100, 200, (68, 2))
    pts[36:42] = [120, 130] + rng.normal(0, 2, (6, 2))
    pts[42:48] = [180, 130] + rng.normal(0, 2, (6, 2))
    return pts


# ------------------------------------------------------------------ pixel metrics


def test_identical_images_score_perfectly():
    img = _image()
    assert M.l1(img, img) == 0.0
    assert M.psnr(img, img) == 100.0
    assert M.ssim(img, img) == pytest.approx(1.0)


def test_scores_get_worse_monotonically_with_noise():
    img = _image()
    sigmas = [2, 8, 20, 50]
    noisy = [_noisy(img, s) for s in sigmas]
    l1s = [M.l1(img, n) for n in noisy]
    psnrs = [M.psnr(img, n) for n in noisy]
    ssims = [M.ssim(img, n) for n in noisy]
    assert all(a < b for a, b in zip(l1s, l1s[1:])), l1s
    assert all(a > b for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert all(a > b for a, b in zip(ssims, ssims[1:])), ssims
    assert 0 < l1s[0] and l1s[-1] < 1
    assert psnrs[0] < 100 and ssims[0] < 1


def test_l1_is_on_a_zero_to_one_scale():
    black = np.zeros((16, 16, 3), np.uint8)
    white = np.full((16, 16, 3), 255, np.uint8)
    assert M.l1(black, white) == 1.0
    assert M.l1(black, np.full_like(black, 51)) == pytest.approx(0.2)


def test_psnr_matches_formula():
    a = np.zeros((16, 16, 3), np.uint8)
    b = np.full_like(a, 10)  # mse = 100
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))


def test_ssim_matches_skimage_gaussian_variant():
    from skimage.metrics import structural_similarity

    a, b = _image(0), _noisy(_image(0), 15)
    expected = structural_similarity(
        a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255,
    )
    assert M.ssim(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32)),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)),
    ],
)
def test_bad_inputs_are_rejected(a, b):
    with pytest.raises(ValueError):
        M.l1(a, b)


# ------------------------------------------------------------------ crops


def test_face_crop_box_is_square_centred_and_scaled():
    pts = np.array([[100, 100], [200, 100], [150, 180]], float)  # 100 x 80 extent
    x0, y0, x1, y1 = M.face_crop_box(pts, (512, 512, 3), scale=1.3)
    assert x1 - x0 == y1 - y0 == 130
    assert (x0 + x1) / 2 == pytest.approx(150, abs=1)
    assert (y0 + y1) / 2 == pytest.approx(140, abs=1)


def test_face_crop_box_stays_inside_and_square_near_borders():
    pts = np.array([[0, 0], [60, 60]], float)
    box = M.face_crop_box(pts, (100, 200, 3))
    x0, y0, x1, y1 = box
    assert (x0, y0) == (0, 0) and x1 - x0 == y1 - y0 == 78
    # Larger than the image: shrinks to the short side.
    x0, y0, x1, y1 = M.face_crop_box(np.array([[0, 0], [300, 90]], float), (100, 200, 3))
    assert x1 - x0 == y1 - y0 == 100 and 0 <= x0 and x1 <= 200 and y0 == 0 and y1 == 100
    img = np.zeros((100, 200, 3), np.uint8)
    assert M.crop(img, box).shape == (78, 78, 3)


# ------------------------------------------------------------------ AKD


def test_akd_zero_for_identical_and_one_for_shift_by_inter_ocular_distance():
    real = _synthetic_landmarks()
    iod = M.inter_ocular(real)
    assert M.akd(real, real) == 0.0
    direction = np.array([0.6, 0.8])  # unit vector, so the shift length is exactly iod
    assert M.akd(real + iod * direction, real) == pytest.approx(1.0)
    # Scale invariance: the same relative error on a face twice as big scores the same.
    assert M.akd(2 * (real + 0.1 * iod), 2 * real) == pytest.approx(
        M.akd(real + 0.1 * iod, real)
    )


def test_inter_ocular_uses_eye_centres():
    pts = np.zeros((68, 2))
    pts[36:42] = [10, 50]
    pts[42:48] = [40, 90]
    assert M.inter_ocular(pts) == pytest.approx(50.0)


# ------------------------------------------------------------------ summarize


def test_summarize_averages_akd_over_frames_that_have_it():
    rows = [
        M.FrameScores(l1=0.1, psnr=20, ssim=0.5, akd=0.2),
        M.FrameScores(l1=0.3, psnr=30, ssim=0.7, akd=None),
        M.FrameScores(l1=0.2, psnr=40, ssim=0.9, akd=0.4, akd_hinted=True),
    ]
    s = M.summarize(rows)
    assert s["frames"] == 3
    assert s["l1"] == pytest.approx(0.2)
    assert s["psnr"] == pytest.approx(30)
    assert s["ssim"] == pytest.approx(0.7)
    assert s["akd"] == pytest.approx(0.3)
    assert (s["akd_frames"], s["akd_missing"], s["akd_hinted"]) == (2, 1, 1)
    assert M.summarize([rows[1]])["akd"] is None
    with pytest.raises(ValueError):
        M.summarize([])


# ------------------------------------------------------------------ dlib


@pytest.fixture(scope="module")
def dlib68():
    return M.Dlib68()


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _first_frame(path: Path) -> np.ndarray:
    import cv2
    import imageio_ffmpeg

    # PNG through a pipe carries its own size, so no probing of the stream is needed.
    png = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path),
         "-vframes", "1", "-f", "image2pipe", "-vcodec", "png", "-"],
        capture_output=True, check=True, timeout=30,
    ).stdout
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _assert_face_landmarks(pts, face_box):
    assert pts is not None
    assert pts.shape == (68, 2) and pts.dtype == np.float64
    x0, y0, x1, y1 = face_box
    assert np.all((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1))
    # A plausible face, not 68 points anywhere in the box: eyes above the mouth, the
    # subject's right eye (36-41) on the image's left, and a sensible inter-ocular distance.
    assert pts[36:48, 1].mean() < pts[48:68, 1].mean()
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean()
    assert 0.15 * (x1 - x0) < M.inter_ocular(pts) < 0.6 * (x1 - x0)


@needs_gallery
def test_dlib_finds_the_astronaut(dlib68):
    img = _read_rgb(GALLERY / "paintings" / "astronaut_eileen_collins_nasa.png")
    # Her face in the 512x512 photo (hand-measured, generous); the mission patch on the suit
    # is a known weak HOG false positive and must not be picked.
    _assert_face_landmarks(dlib68(img), (150, 50, 300, 200))


@needs_gallery
def test_dlib_finds_the_face_in_a_driving_clip_frame(dlib68):
    frame = _first_frame(GALLERY / "clips" / "clip_talking_01.mp4")
    assert frame.shape == (512, 512, 3)
    _assert_face_landmarks(dlib68(frame), (120, 120, 400, 450))


def test_dlib_returns_none_on_a_blank_image(dlib68):
    gray = np.full((256, 256, 3), 128, np.uint8)
    assert dlib68(gray) is None
    det = dlib68.detect(gray, hint_box=(60, 60, 200, 200))
    assert det is not None and det.hinted and det.landmarks.shape == (68, 2)


def test_dlib_model_is_cached_per_process(dlib68):
    gray = np.full((64, 64, 3), 128, np.uint8)
    dlib68(gray)
    loaded = M._load_dlib(None)
    M.Dlib68()(gray)  # a second instance must reuse the same ~100 MB model
    assert M._load_dlib(None) is loaded
    # (The cache also holds dlib's other models, such as the face descriptor: one 68-point model among them.)
    assert len([key for key in M._MODELS if key[0] == "68 points"]) == 1


@needs_gallery
def test_score_frame_on_real_frame_against_itself_and_a_degraded_copy(dlib68):
    import cv2

    real = _first_frame(GALLERY / "clips" / "clip_talking_01.mp4")
    real_pts = dlib68(real)
    box = M.face_crop_box(real_pts, real.shape)

    same = M.score_frame(real, real, box, dlib68)
    assert same.l1 == 0 and same.psnr == 100 and same.ssim == pytest.approx(1.0)
    assert same.akd == 0.0 and not same.akd_hinted

    blurred = cv2.GaussianBlur(real, (0, 0), 3)
    worse = M.score_frame(blurred, real, box, dlib68)
    assert worse.l1 > 0 and worse.psnr < 100 and worse.ssim < 1
    assert worse.akd is not None and 0 < worse.akd < 0.5

    # A generated frame with no detectable face still gets landmarks from the hint box.
    blank = np.full_like(real, 128)
    hinted = M.score_frame(blank, real, None, dlib68)
    assert hinted.akd is not None and hinted.akd_hinted

    # No face in the real frame: no AKD, pixel metrics over the whole frame.
    none = M.score_frame(real, blank, None, dlib68)
    assert none.akd is None and none.l1 == pytest.approx(M.l1(real, blank))
    assert M.summarize([same, worse, none])["akd_missing"] == 1
