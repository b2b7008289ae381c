"""Our LivePortrait networks vs the reference vectors (shared/refcheck, README tolerances).

Weights are the deterministic synthetic ones from refcheck/fill.py (seed 1); every stage runs
on the stored inputs of that stage, fp32 on CPU with 2 threads.
"""
import sys

import numpy as np
import pytest
import torch

from talking_head.engines.liveportrait import kpmath
from talking_head.engines.liveportrait.nets import load_network

pytestmark = pytest.mark.neural

torch.set_num_threads(2)

# README §3 thresholds (max abs error)
TOL_GLUE, TOL_DEG = 1e-5, 2e-4
TOL_FS, TOL_LOGITS, TOL_KP, TOL_MLP = 5e-5, 1e-4, 5e-5, 1e-5
TOL_OCC, TOL_DEF, TOL_WARPED = 2e-5, 2e-5, 5e-5
TOL_IMAGE, TOL_IMAGE_RMS = 5e-4, 5e-5


@pytest.fixture(scope="module")
def refcheck(shared_dir):
    d = shared_dir / "refcheck"
    if not (d / "vectors_seed1.npz").is_file():
        pytest.skip("shared/refcheck is missing")
    sys.path.insert(0, str(d))
    try:
        import fill
    finally:
        sys.path.remove(str(d))
    vec = dict(np.load(d / "vectors_seed1.npz"))
    vec.pop("meta_json")
    return fill, vec


@pytest.fixture(scope="module")
def vec(refcheck):
    return refcheck[1]


@pytest.fixture(scope="module")
def weights(refcheck):
    fill = refcheck[0]
    man = fill.load_manifest()
    cache = {}

    def get(name):
        if name not in cache:
            net = man["networks"][name]
            cache[name] = fill.fill(net["entries"], seed=1, namespace=name)
        return cache[name]
    return get


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def maxerr(got, ref):
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    ref = np.asarray(ref)
    assert got.size == ref.size, (got.shape, ref.shape)
    return float(np.abs(got.reshape(ref.shape).astype(np.float64) - ref).max())


# ---------------------------------------------------------------- 1. pure math
def test_rotation_matrix(vec):
    pyr = t(vec["rot_test_pyr_deg"])
    R = kpmath.rotation_matrix(pyr[:, 0], pyr[:, 1], pyr[:, 2])
    assert maxerr(R, vec["rot_test_R"]) <= TOL_GLUE


def test_bins_to_degrees(vec):
    assert maxerr(kpmath.bins_to_degrees(t(vec["bins_test_logits"])), vec["bins_test_deg"]) <= TOL_DEG
    for pre, n in (("s_", 1), ("d_", 3)):
        for k in ("pitch", "yaw", "roll"):
            deg = kpmath.bins_to_degrees(t(vec[pre + "raw_" + k]).reshape(n, 66))
            assert maxerr(deg, vec[pre + k]) <= TOL_DEG, pre + k


def test_keypoint_transform_from_raw_heads(vec):
    for pre, n in (("s_", 1), ("d_", 3)):
        raw = {k: t(vec[pre + "raw_" + k]).reshape(n, -1)
               for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")}
        info = kpmath.refine_kp_info(raw)
        for k in ("t", "exp", "scale", "kp"):
            assert maxerr(info[k], vec[pre + k]) <= TOL_GLUE, pre + k
        R = kpmath.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
        assert maxerr(R, vec[pre + "R"]) <= TOL_GLUE, pre + "R"
        assert maxerr(kpmath.keypoints_from_info(info), vec[pre + "x"]) <= TOL_GLUE, pre + "x"
        # and from the stored refined values alone
        x = kpmath.transform_keypoints(t(vec[pre + "kp"]).reshape(n, 21, 3),
                                       t(vec[pre + "R"]).reshape(n, 3, 3),
                                       t(vec[pre + "exp"]), t(vec[pre + "scale"]), t(vec[pre + "t"]))
        assert maxerr(x, vec[pre + "x"]) <= TOL_GLUE


def test_relative_motion_and_stitching_glue(vec):
    """Glue formulas on the stored refined motion (README: 1e-5)."""
    def info(pre, i=None):
        g = (lambda k: t(vec[pre + k])) if i is None else (lambda k: t(vec[pre + k][i]))
        d = {k: g(k) for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")}
        d["R"] = g("R")
        return d
    src = info("s_")
    for i in range(3):
        x_d = kpmath.relative_driving_keypoints(src, info("d_", i), info("d_", 0))
        assert maxerr(x_d, vec["pf_x_d_new"][i]) <= TOL_GLUE
        sin = kpmath.stitching_input(t(vec["s_x"]), t(vec["ef_x_d_new"][i]))
        assert maxerr(sin, vec["stitch_in"][i]) <= TOL_GLUE
        x_st = kpmath.apply_stitching(t(vec["ef_x_d_new"][i]), t(vec["stitch_out"][i]))
        assert maxerr(x_st, vec["ef_x_d_stitched"][i]) <= TOL_GLUE


# ---------------------------------------------------------------- 2. appearance extractor F
def test_appearance_feature_extractor(vec, weights):
    net = load_network("appearance_feature_extractor", weights("appearance_feature_extractor"))
    with torch.no_grad():
        f_s = net(t(vec["I_s"]))
    assert f_s.shape == (1, 32, 16, 64, 64)
    assert maxerr(f_s, vec["f_s"]) <= TOL_FS


# ---------------------------------------------------------------- 3. motion extractor M
HEADS = ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")


def test_motion_extractor(vec, weights):
    net = load_network("motion_extractor", weights("motion_extractor"))
    for pre, imgs in (("s_", [vec["I_s"]]), ("d_", list(vec["I_d"]))):
        with torch.no_grad():
            outs = [net(t(im)) for im in imgs]
        for k in HEADS:
            tol = TOL_LOGITS if k in ("pitch", "yaw", "roll") else TOL_KP
            got = torch.stack([o[k] for o in outs])
            assert maxerr(got, vec[pre + "raw_" + k]) <= tol, pre + "raw_" + k
        # refined values and keypoints computed from our own raw heads
        for i, o in enumerate(outs):
            info = kpmath.refine_kp_info(o)
            ref = {k: vec[pre + k] if pre == "s_" else vec[pre + k][i]
                   for k in ("pitch", "yaw", "roll", "x")}
            for k in ("pitch", "yaw", "roll"):
                assert maxerr(info[k], ref[k]) <= TOL_DEG, pre + k
            assert maxerr(kpmath.keypoints_from_info(info), ref["x"]) <= TOL_KP, pre + "x"


# ---------------------------------------------------------------- 4. stitching / retargeting MLPs
@pytest.mark.parametrize("name,inp,out", [
    ("stitching_retargeting_module.retarget_shoulder", "stitch_in", "stitch_out"),
    ("stitching_retargeting_module.retarget_eye", "eye_feat_in", "eye_delta"),
    ("stitching_retargeting_module.retarget_mouth", "lip_feat_in", "lip_delta"),
])
def test_retargeting_mlps(vec, weights, name, inp, out):
    net = load_network(name, weights(name))
    with torch.no_grad():
        got = net(t(vec[inp]))
    assert maxerr(got, vec[out]) <= TOL_MLP


# ---------------------------------------------------------------- 5. SPADE generator G
def image_errors(got, ref):
    d = got.detach().numpy().reshape(ref.shape).astype(np.float64) - ref
    return float(np.abs(d).max()), float(np.sqrt((d ** 2).mean()))


@pytest.fixture(scope="module")
def generator(weights):
    return load_network("spade_generator", weights("spade_generator"))


def test_spade_generator(vec, generator):
    with torch.no_grad():
        img = generator(t(vec["wd_warped_feature"]))
    assert img.shape == (1, 3, 512, 512)
    mx, rms = image_errors(img, vec["wd_image"][0])
    assert mx <= TOL_IMAGE and rms <= TOL_IMAGE_RMS, (mx, rms)


# ---------------------------------------------------------------- 6. warping module W (+ G)
@pytest.fixture(scope="module")
def warped(vec, weights):
    """W(f_s, x_s, x_d) for each stored frame, on the stored inputs."""
    net = load_network("warping_module", weights("warping_module"))
    with torch.no_grad():
        return [net(t(vec["f_s"]), t(vec["ef_x_d_stitched"][fr]), t(vec["s_x"]))
                for fr in vec["wd_frames"]]


def test_warping_module(vec, warped):
    for j, r in enumerate(warped):
        assert maxerr(r["occlusion_map"], vec["wd_occlusion"][j]) <= TOL_OCC
        assert maxerr(r["deformation"], vec["wd_deformation"][j]) <= TOL_DEF
    r = warped[0]
    assert maxerr(r["mask"][:, :, 8], vec["wd_mask_slice_d8"]) <= TOL_GLUE
    assert maxerr(r["out"], vec["wd_warped_feature"]) <= TOL_WARPED


def test_warp_then_decode(vec, warped, generator):
    """W -> G on frame 2 (G alone was checked on frame 1's stored feature)."""
    with torch.no_grad():
        img = generator(warped[1]["out"])
    mx, rms = image_errors(img, vec["wd_image"][1])
    assert mx <= TOL_IMAGE and rms <= TOL_IMAGE_RMS, (mx, rms)


# ---------------------------------------------------------------- end to end: images -> frame
TOL_CHAIN, TOL_CHAIN_RMS = 2e-3, 2e-4   # README §4: kp noise is amplified by the warp


def test_chain_from_images(vec, weights, generator):
    """Our F, M, motion transfer, stitching, W, G from I_s and I_d -> wd_image (frame 1)."""
    load = lambda n: load_network(n, weights(n))
    F_, M_ = load("appearance_feature_extractor"), load("motion_extractor")
    S_ = load("stitching_retargeting_module.retarget_shoulder")
    W_ = load("warping_module")

    def kp_info(img):
        info = kpmath.refine_kp_info(M_(t(img)))
        info["R"] = kpmath.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
        return info

    with torch.no_grad():
        f_s = F_(t(vec["I_s"]))
        src, d0, d1 = kp_info(vec["I_s"]), kp_info(vec["I_d"][0]), kp_info(vec["I_d"][1])
        x_s = kpmath.keypoints_from_info(src)
        x_d = kpmath.relative_driving_keypoints(src, d1, d0)
        x_d = kpmath.apply_stitching(x_d, S_(kpmath.stitching_input(x_s, x_d)))
        assert maxerr(x_d, vec["ef_x_d_stitched"][1]) <= TOL_KP
        img = generator(W_(f_s, x_d, x_s)["out"])
    mx, rms = image_errors(img, vec["wd_image"][0])
    assert mx <= TOL_CHAIN and rms <= TOL_CHAIN_RMS, (mx, rms)
