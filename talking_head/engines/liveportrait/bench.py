"""Speed of the liveportrait engine: ``python -m talking_head bench-liveportrait [...]``.

Prints two tables, medians over repeats:
  1. the network pass alone per stage (F, M, W, G, stitching) and per frame (M + stitching + W + G on
     a batch of driving crops), for each batch size and precision, in ms/frame and frames/s;
  2. end to end through ``talking_head.animate`` (decode -> crop -> networks -> paste -> H.264 mp4) on a
     gallery portrait and the first N seconds of a gallery clip, with the weights already loaded.
Speed does not depend on the weights' values, so when the real checkpoints are not downloaded the
networks run with their random initialisation (said in the output); fast modes also print their
largest error against fp32 on the same inputs.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from ... import checkpoints
from .engine import LivePortraitEngine, best_device
from .mlp import MLP_SIZES
from .model import BASE_NETWORKS, STITCHING, LivePortraitModel, Transfer
from .nets import build_network

NAMES = (*BASE_NETWORKS, *(f"{STITCHING}.{part}" for part in MLP_SIZES))


def random_state_dicts(seed: int = 0) -> dict[str, dict]:
    """State dicts of freshly initialised networks (the official shapes), for timing only.

    The spectral-norm buffers ``weight_u``/``weight_v`` are left uninitialised by the constructors, so
    they are set here as a consistent pair (v a unit vector, u = normalise(W v)).
    """
    torch.manual_seed(seed)
    out = {}
    for n in NAMES:
        sd = build_network(n).state_dict()
        for k in [k for k in sd if k.endswith(".weight_orig")]:
            base = k[: -len("_orig")]
            w = sd[k].reshape(sd[k].shape[0], -1)
            v = torch.nn.functional.normalize(torch.randn(w.shape[1]), dim=0)
            sd[base + "_v"], sd[base + "_u"] = v, torch.nn.functional.normalize(w @ v, dim=0)
        out[n] = sd
    return out


REFCHECK = Path(__file__).resolve().parents[4] / "shared" / "refcheck"


@functools.cache
def synthetic_state_dicts() -> tuple[dict[str, dict], str]:
    """Weights for timing and for fast-mode errors when the real files are absent: the refcheck
    synthetic weights (tuned to keep activations in range) when ``shared/refcheck`` is beside the
    checkout, else random initialisation (values may overflow: fine for timing, not for errors)."""
    if (REFCHECK / "fill.py").is_file():
        import sys
        sys.path.insert(0, str(REFCHECK))
        try:
            from fill import fill_all, load_manifest
        finally:
            sys.path.remove(str(REFCHECK))
        return fill_all(load_manifest(), 1), "synthetic weights of shared/refcheck (same networks)"
    return random_state_dicts(), "random weights (same networks)"


def state_dicts() -> tuple[dict[str, dict], str]:
    """The real checkpoints when they are here, else synthetic ones; and which."""
    if not checkpoints.status().get("liveportrait"):
        return checkpoints.load_state_dicts(), "official checkpoints"
    return synthetic_state_dicts()


def get_model(device: str, precision: str) -> tuple[LivePortraitModel, str]:
    sds, which = state_dicts()
    return LivePortraitModel(sds, device=device, precision=precision), which


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def _median_ms(fn, device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def network_pass(model: LivePortraitModel, batch: int, repeats: int) -> dict:
    """ms per call of each stage at ``batch`` and ms/frame of the per-frame path."""
    dev = model.device
    gen = torch.Generator().manual_seed(1)
    src_img = torch.rand(1, 3, 256, 256, generator=gen).to(dev)
    drv_img = torch.rand(batch, 3, 256, 256, generator=gen).to(dev)
    src = model.prepare_source(src_img)
    drv0 = model.extract_motion(drv_img[:1])
    out = {}
    with torch.no_grad():
        out["F (source, once)"] = _median_ms(lambda: model.prepare_source(src_img), dev, repeats)
        out["M"] = _median_ms(lambda: model.extract_motion(drv_img), dev, repeats) / batch
        drv = model.extract_motion(drv_img)
        x_d = model.driving_keypoints(src, drv, drv0)
        out["stitching"] = _median_ms(lambda: model.stitch(src.x_s, x_d), dev, repeats) / batch
        feat = src.f_s.expand(batch, *src.f_s.shape[1:])
        xs = src.x_s.expand(batch, *src.x_s.shape[1:])
        with model._autocast():
            warped = model.warping(feat, x_d, xs)["out"]
            out["W"] = _median_ms(lambda: model.warping(feat, x_d, xs), dev, repeats) / batch
            out["G"] = _median_ms(lambda: model.generator(warped), dev, repeats) / batch

        def per_frame():
            d = model.extract_motion(drv_img)
            return model.animate(src, d, drv0, Transfer())
        out["frame (M+S+W+G)"] = _median_ms(per_frame, dev, repeats) / batch
    return out


def fast_mode_error(device: str, precision: str, batch: int = 2) -> float:
    """Largest |image difference| of ``precision`` against fp32, same weights and inputs."""
    sds, _ = state_dicts()
    ref = LivePortraitModel(sds, device=device, precision="fp32")
    fast = LivePortraitModel(sds, device=device, precision=precision)
    gen = torch.Generator().manual_seed(2)
    s_img = torch.rand(1, 3, 256, 256, generator=gen).to(device)
    d_img = torch.rand(batch, 3, 256, 256, generator=gen).to(device)
    outs = []
    for m in (ref, fast):
        src = m.prepare_source(s_img)
        d = m.extract_motion(d_img)
        outs.append(m.animate(src, d, d.take(0)).float().cpu())
    return float((outs[0] - outs[1]).abs().max())


def _short_clip(clip: Path, seconds: float, dest: Path) -> Path:
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-t", f"{seconds}",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "copy", str(dest)], check=True)
    return dest


def end_to_end(model: LivePortraitModel, device: str, precision: str, seconds: float, repeats: int,
               portrait: str = "mona_lisa", clip_id: str = "talking_01", batch: int | None = None) -> dict:
    """Seconds for animate() on the first ``seconds`` of a gallery clip (motion cached after the first run)."""
    from ...cache import DiskCache
    from ...gallery import Gallery
    from ...pipeline import animate
    tmp = Path(tempfile.mkdtemp(prefix="lp-bench-"))
    clip = _short_clip(Gallery.default().clip_path(clip_id), seconds, tmp / "clip.mp4")
    eng = LivePortraitEngine(device=device, precision=precision, batch_size=batch, model=model)
    cache = DiskCache(root=tmp / "cache")
    times, res = [], None
    for i in range(repeats + 1):
        t = time.perf_counter()
        res = animate(f"gallery:{portrait}", str(clip), tmp / f"out{i}.mp4", engine=eng, cache=cache)
        _sync(model.device)
        if i:  # the first run also tracks the clip's face and fills the motion caches
            times.append(time.perf_counter() - t)
    return {"frames": res.n_frames, "clip_s": seconds, "median_s": statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    from ...bench import machine
    p = argparse.ArgumentParser(prog="python -m talking_head bench-liveportrait")
    p.add_argument("--device", default="auto")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32,bf16,fp16")
    p.add_argument("--batches", default="1", help="comma-separated batch sizes, e.g. 1,8,32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--e2e-seconds", type=float, default=0.0, help="also time animate() on this much of a clip")
    p.add_argument("--compile", default="", help="torch.compile W and G with this mode (e.g. max-autotune); "
                   "not used by the product until measured on a GPU")
    a = p.parse_args(argv)
    device = best_device() if a.device == "auto" else a.device
    name = torch.cuda.get_device_name() if device == "cuda" else machine()
    print(f"liveportrait on {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians of {a.repeats}")
    rows, models = [], {}
    for prec in a.precisions.split(","):
        model, which = models[prec] = get_model(device, prec)
        if a.compile:
            model.warping = torch.compile(model.warping, mode=a.compile)
            model.generator = torch.compile(model.generator, mode=a.compile)
            which += f", W and G compiled ({a.compile})"
        err = fast_mode_error(device, prec) if prec != "fp32" else 0.0
        for b in (int(x) for x in a.batches.split(",")):
            r = network_pass(model, b, a.repeats)
            rows.append((prec, b, r, err))
    print(f"weights: {which}")
    stages = list(rows[0][2])
    print("| precision | batch | " + " | ".join(f"{s} ms" for s in stages) + " | frames/s | max err vs fp32 |")
    print("|---|---|" + "---|" * len(stages) + "---|---|")
    for prec, b, r, err in rows:
        fps = 1000 / r["frame (M+S+W+G)"]
        print(f"| {prec} | {b} | " + " | ".join(f"{r[s]:.1f}" for s in stages) + f" | {fps:.2f} | {err:.2e} |")
    if a.e2e_seconds:
        print("\nEnd to end (animate: decode -> networks -> paste -> mp4; weights loaded, clip motion cached):")
        print("| precision | batch | clip s | frames | median s | x clip length | frames/s |")
        print("|---|---|---|---|---|---|---|")
        for prec, (model, _) in models.items():
            for b in (int(x) for x in a.batches.split(",")):
                r = end_to_end(model, device, prec, a.e2e_seconds, a.repeats, batch=b)
                print(f"| {prec} | {b} | {r['clip_s']:.1f} | {r['frames']} | {r['median_s']:.2f} | "
                      f"{r['median_s'] / r['clip_s']:.2f} | {r['frames'] / r['median_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
