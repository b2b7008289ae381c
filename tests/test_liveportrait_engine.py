"""The liveportrait engine: crop and paste-back as the reference, end-to-end frames equal to the reference
vectors through the real checkpoint loading (synthetic weights in a fake, offline Hub cache), ``auto``
choosing it only with a GPU, and a CLI render on this CPU at reduced length with its motion cached.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from hubcache import matching_specs, offline_env

from talking_head import checkpoints as ck
from talking_head import cli, video
from talking_head.compose import paste_back
from talking_head.engines import auto_engine_name, engine_status
from talking_head.engines.liveportrait import crop as lpcrop
from talking_head.engines.liveportrait import engine as lpengine
from talking_head.engines.liveportrait.model import Motion, Transfer

pytestmark = pytest.mark.neural

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def vec(shared_dir):
    v = dict(np.load(shared_dir / "refcheck" / "vectors_seed1.npz"))
    v.pop("meta_json")
    return v


@pytest.fixture
def lp_ready(monkeypatch, lp_hub_cache):
    """The fake hub cache in place of the real one, with specs that accept its synthetic files."""
    cache, paths = lp_hub_cache
    offline_env(monkeypatch, cache)
    specs = matching_specs(paths)
    monkeypatch.setattr(ck, "SPECS", specs + tuple(s for s in ck.SPECS if s.engine != "liveportrait"))
    return specs


@pytest.fixture
def model(lp_ready):
    return lpengine.load_model("cpu", "fp32")


def _err(got, ref):
    d = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    return float(d.max()), float(np.sqrt((d ** 2).mean()))


# ------------------------------------------------------------------------------ crop and paste-back
def test_source_crop_is_the_reference_crop(vec):
    m = lpcrop.source_crop_matrix(vec["lmk68"])
    assert _err(m, vec["crop_M_o2c"])[0] <= 1e-3
    img = lpcrop.warp_crop(vec["orig_img_u8"], m, 512, border=cv2.BORDER_CONSTANT)
    diff = np.abs(img.astype(int) - vec["crop_img_u8"])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    small = lpcrop.to_net_input(vec["crop_img_u8"])
    assert np.array_equal(small, vec["crop_img256_u8"])


def test_paste_mask_is_the_reference_template(vec):
    assert np.array_equal(lpcrop.paste_mask(), vec["paste_mask_crop_u8"])


def test_paste_back_matches_the_reference(vec):
    orig = vec["orig_img_u8"]
    box, to_box = lpcrop.placement(vec["crop_M_o2c"].astype(np.float64), orig.shape)
    crop = lpcrop.crop_to_box(vec["wd_image_u8"][0], to_box, box)
    mask = lpcrop.crop_to_box(lpcrop.paste_mask(), to_box, box).astype(np.float32) / 255
    out = paste_back(orig, crop, box, mask)  # the compositor every engine's frames go through
    diff = np.abs(out.astype(int) - vec["paste_result_u8"])
    # The compositor rounds its blend where the reference truncates (1 LSB at most); on top of a 1-LSB
    # bilinear difference of the warped crop that makes 2 on a handful of pixels.
    assert diff.max() <= 2 and (diff > 1).sum() <= 10, (diff.max(), (diff > 1).sum())
    x0, y0, x1, y1 = box
    outside = np.ones(orig.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], orig[outside])


def test_mediapipe_mesh_frames_the_face_like_68_points(shared_dir):
    """The 478->68 reduction puts eyes and mouth where the 68-point layout has them."""
    from talking_head.gallery import Gallery
    g = Gallery.default()
    face = g.portrait_face("mona_lisa")
    pts = lpcrop.ibug68(face)
    assert pts.shape == (68, 2)
    m = lpcrop.source_crop_matrix(pts)
    inside = pts @ m[:2, :2].T + m[:2, 2]
    assert inside.min() > 0 and inside.max() < 512  # the whole face is in the crop
    eyes_y = inside[36:48, 1].mean()
    mouth_y = inside[48:68, 1].mean()
    assert 150 < eyes_y < mouth_y < 400
    assert abs(lpcrop.rotation_degrees(m)) < 20


# ------------------------------------------------------------------------------ model through the loader
def test_end_to_end_frames_match_the_reference(vec, model):
    """Our F, M, relative motion, stitching, W, G from the stored images, loaded through the Hub cache."""
    src = model.prepare_source(torch.from_numpy(vec["I_s"]))
    drv = model.extract_motion(torch.from_numpy(vec["I_d"].reshape(3, 3, 256, 256)))
    for i, k in enumerate(vec["wd_frames"]):
        img = model.animate(src, drv.take(int(k)), drv.take(0))
        mx, rms = _err(img.numpy(), vec["wd_image"][i])
        assert mx <= 2e-3 and rms <= 2e-4, (k, mx, rms)


def test_cached_features_give_the_same_motion(vec, model):
    drv = model.extract_motion(torch.from_numpy(vec["I_d"].reshape(3, 3, 256, 256)))
    again = Motion.from_features(drv.features())
    assert torch.allclose(again.R, drv.R, atol=1e-6)
    assert torch.equal(again.exp, drv.exp) and torch.equal(again.t, drv.t)


def test_retargeting_matches_the_reference(vec, model):
    x_s = torch.from_numpy(vec["s_x"])
    x_d = model.retarget(x_s, torch.from_numpy(vec["eye_ratio_in"]), torch.from_numpy(vec["lip_ratio_in"]))
    assert _err(x_d - x_s, vec["eye_delta"] + vec["lip_delta"])[0] <= 1e-5
    assert _err(model.stitch(x_s, x_d), vec["retarget_x_d_new"])[0] <= 1e-5


def test_transfer_strengths(vec, model):
    src = model.prepare_source(torch.from_numpy(vec["I_s"]))
    drv = model.extract_motion(torch.from_numpy(vec["I_d"].reshape(3, 3, 256, 256)))
    d1, d0 = drv.take(1), drv.take(0)
    ref = model.driving_keypoints(src, d1, d0)
    assert _err(ref, vec["pf_x_d_new"][1])[0] <= 1e-5
    # the general path at strength 1 is the reference path
    general = model.driving_keypoints(src, d1, d0, Transfer(expression=1.0 + 1e-12))
    assert _err(general, ref)[0] <= 1e-5
    still = model.driving_keypoints(src, d1, d0, Transfer(expression=0.0, head_motion=False))
    assert _err(still, src.x_s)[0] <= 1e-5  # no expression, no head motion: the source's own keypoints
    half = model.driving_keypoints(src, d1, d0, Transfer(expression=0.5, head=0.5))
    full_err, half_err = _err(ref, src.x_s)[0], _err(half, src.x_s)[0]
    assert 0 < half_err < full_err


# ------------------------------------------------------------------------------ registry
def test_engine_is_unavailable_without_weights(monkeypatch, tmp_path):
    offline_env(monkeypatch, tmp_path / "empty-hub")
    reason = engine_status()["liveportrait"]
    assert reason and "python -m talking_head prefetch" in reason
    assert auto_engine_name() == "meshwarp"


def test_auto_picks_liveportrait_with_weights_and_a_gpu(monkeypatch, lp_ready):
    assert engine_status()["liveportrait"] is None
    monkeypatch.setattr(lpengine, "best_device", lambda: "cpu")
    assert auto_engine_name() == "meshwarp"  # on a CPU it would take seconds per frame
    monkeypatch.setattr(lpengine, "best_device", lambda: "cuda")
    assert auto_engine_name() == "liveportrait"


# ------------------------------------------------------------------------------ the product path on CPU
@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """The first 3 frames (0.12 s) of a gallery clip, as an upload would be."""
    src = Path(__file__).resolve().parent.parent / "gallery" / "clips" / "smile_eyes.mp4"
    out = tmp_path_factory.mktemp("clip") / "three.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src), "-frames:v", "3",
                    "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def _grey(x_d: torch.Tensor) -> torch.Tensor:
    """What stands in for the decoder's images where the decoder is not what a test checks."""
    return torch.full((len(x_d), 3, 512, 512), 0.5)


def test_cli_renders_with_liveportrait_on_cpu(lp_ready, short_clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lpengine, "best_device", lambda: "cpu")  # (on a GPU machine too: the model patched here)
    model = lpengine.load_model("cpu", "fp32")
    real_decode, driven = model.warp_decode, []
    monkeypatch.setattr(model, "warp_decode",
                        lambda f_s, x_s, x_d: driven.append((f_s, x_s, x_d)) or real_decode(f_s, x_s, x_d))
    out = tmp_path / "lp.mp4"
    code = cli.main(["animate", "--portrait", "gallery:mona_lisa", "--clip", str(short_clip), "--out", str(out),
                     "--engine", "liveportrait"])
    assert code == 0, capsys.readouterr().err
    info = video.probe(out)
    assert info.n_frames == 3
    assert info.fps == video.probe(short_clip).fps
    frames = list(video.read_frames(out, info))
    assert len(frames) == 3

    from talking_head.gallery import Gallery
    from talking_head.images import load_image
    portrait = load_image(Gallery.default().portrait_path("mona_lisa"), max_side=1280)
    h, w = frames[0].shape[:2]
    assert (w, h) == (portrait.shape[1] // 2 * 2, portrait.shape[0] // 2 * 2)
    m = lpcrop.source_crop_matrix(lpcrop.ibug68(Gallery.default().portrait_face("mona_lisa")))
    x0, y0, x1, y1 = lpcrop.placement(m, portrait.shape)[0]
    # The canvas outside the face crop is the painting (up to compression), inside it is the decoder's.
    # (Synthetic weights paint noise, so "changed" is all that can be asserted of the face.)
    top = slice(0, max(y0 - 8, 1))
    still = np.abs(frames[0][top].astype(int) - portrait[:h][top].astype(int)).mean()
    face = (slice(y0 + (y1 - y0) // 3, y1 - (y1 - y0) // 3), slice(x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3))
    moved = np.abs(frames[0][face].astype(int) - portrait[face].astype(int)).mean()
    assert still < 6 and moved > 5 * still, (still, moved)

    # The clip's driving motion was stored: a second render runs the motion extractor on the portrait only, and
    # drives the decoder with the same keypoints (a grey frame stands in for the decoder's: it was run above).
    seen, first = [], list(driven)
    real = model.extract_motion
    monkeypatch.setattr(model, "extract_motion", lambda images: seen.append(len(images)) or real(images))
    driven.clear()
    monkeypatch.setattr(model, "warp_decode",
                        lambda f_s, x_s, x_d: driven.append((f_s, x_s, x_d)) or _grey(x_d))
    out2 = tmp_path / "lp2.mp4"
    assert cli.main(["animate", "--portrait", "gallery:mona_lisa", "--clip", str(short_clip), "--out", str(out2),
                     "--engine", "liveportrait"]) == 0
    assert seen == [1], seen
    assert len(driven) == len(first) > 0
    for again, before in zip(driven, first):  # the portrait's features and keypoints, and the driving keypoints
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(again, before))
    assert video.probe(out2).n_frames == 3


def test_out_of_memory_halves_the_batch_then_falls_back_to_the_cpu(lp_ready, short_clip, tmp_path, monkeypatch):
    from talking_head import animate
    monkeypatch.setattr(lpengine, "best_device", lambda: "cpu")  # (on a GPU machine too: the model patched here)
    model = lpengine.load_model("cpu", "fp32")
    sizes = []

    def tight(f_s, x_s, x_d):  # (what is tested is the engine's retries, not the decoder: a grey frame stands in)
        sizes.append(x_d.shape[0])
        if x_d.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return _grey(x_d)
    monkeypatch.setattr(model, "warp_decode", tight)
    eng = lpengine.LivePortraitEngine(device="cpu", batch_size=4)
    res = animate("gallery:mona_lisa", str(short_clip), tmp_path / "a.mp4", engine=eng)
    assert (res.engine, res.n_frames, res.notes) == ("liveportrait", 3, [])
    assert sizes == [3, 2, 1, 1, 1] and eng.batch_size == 1

    def never(*a):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
    monkeypatch.setattr(model, "warp_decode", never)
    messages = []
    res = animate("gallery:mona_lisa", str(short_clip), tmp_path / "b.mp4", engine="liveportrait",
                  progress=lambda f, m: messages.append(m))
    assert res.engine == "meshwarp" and res.n_frames == 3
    assert "ran out of device memory" in res.notes[0] and "meshwarp" in res.notes[0]
    assert any("ran out of device memory" in m for m in messages)
    assert video.probe(tmp_path / "b.mp4").n_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]  # nothing half-written


def test_frames_where_the_drivers_face_was_lost_keep_the_motion_seen_last(lp_ready, monkeypatch):
    """A clip cut to black: the motion extractor would read a head and an expression off the black frames. Lost
    frames keep the motion of the last frame where the face was seen, also when a batch is read again after
    running out of memory; before the face is first seen the portrait rests, and the clip's neutral frame is
    the first with the face (a black frame's was the reference for the whole clip)."""
    from talking_head.engines import DrivingFrame
    from talking_head.gallery import Gallery
    from talking_head.images import load_image

    eng = lpengine.LivePortraitEngine(device="cpu", precision="fp32", batch_size=3)
    g = Gallery.default()
    face = g.portrait_face("mona_lisa")
    img = load_image(g.portrait_path("mona_lisa"), max_side=1280)
    prepared = eng.prepare(img, face)
    black, turned = np.zeros_like(img), np.ascontiguousarray(img[:, ::-1])
    head = np.float32([[1, 0, 0], [0, 1, 0]])
    # 0: black, before the face; 1: the face; 2-3: lost; 4: the face, another picture; 5: lost.
    pictures = [black, img, black, black, turned, black]
    frames = [DrivingFrame(i, pic, face.points, face.points, head, seen=i in (1, 4)) for i, pic in enumerate(pictures)]
    real, sizes = eng.model.warp_decode, []

    def tight(f_s, x_s, x_d):
        sizes.append(x_d.shape[0])
        if x_d.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(f_s, x_s, x_d)
    monkeypatch.setattr(eng.model, "warp_decode", tight)
    # The first batch: frame 0 rests, frames 1-2 run out of memory and the batch is drawn again, halved.
    out = eng.render(prepared, frames[:3]) + eng.render(prepared, frames[3:])
    assert sizes[0] == 2, "the frames after the rest did not run out of memory first"
    np.testing.assert_array_equal(out[0], prepared.crop)  # at rest before the face
    f = [fr.features for fr in frames]
    np.testing.assert_array_equal(f[2], f[1])
    np.testing.assert_array_equal(f[3], f[1])
    np.testing.assert_array_equal(f[5], f[4])
    assert not np.array_equal(f[4], f[1])
    for k in (2, 3):  # (drawn in batches of other sizes than frame 1: a level apart here and there)
        assert np.abs(out[k].astype(int) - out[1]).max() <= 1
    # The neutral frame is frame 1's: frame 1 driven relative to itself is the portrait at rest.
    from talking_head.engines.liveportrait.model import Motion
    assert torch.equal(prepared.state["drv0"].exp, Motion.from_features(f[1][None]).exp)
