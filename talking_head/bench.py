"""Benchmarks that print tables: ``python -m talking_head bench [--quality]``.

Speed: the engine alone on a 512x512 face crop, and end to end (gallery portrait x gallery clip with
cached motion, and with an 'uploaded' clip whose motion must be extracted), medians over repeats.
Quality: self-reenactment (DESIGN.md): frame 0 of a real clip drives itself; each generated frame is
compared with the real one on the face crop (L1, PSNR, SSIM) and by AKD, measured with dlib's
68-point model (not the mediapipe mesh that drives the engine), beside the static baseline.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .cache import DiskCache
from .engines import Engine
from .gallery import Gallery
from .pipeline import DRIVE_MAX_SIDE, AnimateSettings, animate, resolve_clip


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def engine_speed(repeats: int = 5, clip_id: str = "talking_01", engine_name: str = "meshwarp") -> dict:
    """Frames/s of the engine alone on a 512x512 crop: a clip's own frame 0 as the portrait."""
    from .engines import DrivingFrame, create_engine
    from .faces import detect_face
    from .motion import decompose, retarget
    g = Gallery.default()
    path, info, track, _ = resolve_clip(f"gallery:{clip_id}", AnimateSettings(), g, DiskCache(enabled=False), None, None)
    frames = _clip_frames(path, info)
    # Upscale frame 0 so the engine's crop is exactly 512 px, the size the goal is stated at.
    portrait = frames[0]
    face = detect_face(portrait)
    eng = create_engine(engine_name)
    prepared = eng.prepare(portrait, face)
    k = 512 / max(prepared.crop.shape[:2])
    if abs(k - 1) > 1e-3:
        import cv2
        portrait = cv2.resize(portrait, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
        face = detect_face(portrait)
        prepared = eng.prepare(portrait, face)
    sm = track.smoothed(1.0)
    mot = retarget(decompose(sm), face.points, face.layout)
    drv = [DrivingFrame(i, frames[i], sm.landmarks[i], mot.targets[i], mot.head[i]) for i in range(len(frames))]
    out = {"crop": prepared.crop.shape[:2], "frames": len(drv)}
    # The variants take turns within each repeat, so a busy moment on a shared machine hits them alike.
    variants = {"fps_full": {}, "fps_one_layer": {"layered": False}, "fps_refine": {"refine": True},
                "fps_detail": {"detail": True}, "fps_warp_only": {"fill_mouth": False, "layered": False}}
    engines = {}
    for key, options in variants.items():
        e = create_engine(engine_name, **options) if engine_name == "meshwarp" else eng
        p = e.prepare(portrait, face)
        e.render(p, drv[:5])  # JIT and caches
        engines[key] = (e, p)
    times: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(repeats):
        for key, (e, p) in engines.items():
            t = time.perf_counter()
            e.render(p, drv)
            times[key].append(time.perf_counter() - t)
    out.update({key: len(drv) / statistics.median(t) for key, t in times.items()})
    return out


def _cached_render(pid: str, clip_id: str, out: Path, repeats: int, settings: AnimateSettings | None = None):
    """(the warm-up render's result, the median wall time of ``repeats`` more): a gallery portrait with a
    gallery clip, motion cached. The warm-up pays for the JIT, MediaPipe, the prepared source and the
    page cache, which a kiosk pays once."""
    def render():
        return animate(f"gallery:{pid}", f"gallery:{clip_id}", out, settings=settings)

    warm = render()
    return warm, _median_time(render, repeats)


def end_to_end(repeats: int = 3, portraits=("mona_lisa", "girl_with_a_pearl_earring"), clip_id: str = "expressive") -> list[dict]:
    g = Gallery.default()
    clip = g.clip(clip_id)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        for pid in portraits:
            _, cached = _cached_render(pid, clip_id, out, repeats)
            upload = g.clip_path(clip_id)
            # An uploaded clip: a path, with the motion cache off, so its motion is extracted every time.
            fresh = _median_time(lambda pid=pid, upload=upload: animate(f"gallery:{pid}", upload, out,
                                                                      cache=DiskCache(enabled=False)), repeats)
            _, side = _cached_render(pid, clip_id, out, repeats, AnimateSettings(side_by_side=True))
            rows.append({"portrait": pid, "clip": clip_id, "duration": clip["duration"],
                         "cached_s": cached, "upload_s": fresh, "side_by_side_s": side})
    return rows


def upload_checks(repeats: int = 5, portraits=("mona_lisa", "newton"), clips=("smile_eyes", "talking_01")) -> list[dict]:
    """How long a file's check takes when it arrives (``check_portrait`` / ``check_clip``, what the app runs
    on each upload), on gallery files taken as uploads: median seconds, after one check to start the
    face detector."""
    from .images import load_image
    from .pipeline import check_clip, check_portrait
    g = Gallery.default()
    rows = []
    for pid in portraits:
        path = g.portrait_path(pid)
        check_portrait(path)
        h, w = load_image(path).shape[:2]
        rows.append({"kind": "portrait", "id": pid, "size": f"{w}x{h}",
                     "s": _median_time(lambda p=path: check_portrait(p), repeats)})
    for cid in clips:
        path = g.clip_path(cid)
        info = check_clip(path)
        rows.append({"kind": "clip", "id": cid, "size": f"{info.width}x{info.height}, {info.duration:.1f} s",
                     "s": _median_time(lambda p=path: check_clip(p), repeats)})
    return rows


def gallery_speed(repeats: int = 2, clip_id: str = "expressive", portraits: list[str] | None = None) -> list[dict]:
    """Every gallery portrait with one gallery clip, motion cached: median wall time and the sizes it
    depends on (the output canvas, which x264 encodes whole, and the animated crop, which is rendered,
    composited and pasted back every frame)."""
    g = Gallery.default()
    duration = g.clip(clip_id)["duration"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        for pid in portraits or sorted(g.manifest()["portraits"]):
            warm, wall = _cached_render(pid, clip_id, out, repeats)
            x0, y0, x1, y1 = warm.crop_box
            rows.append({"portrait": pid, "clip": clip_id, "duration": duration, "canvas": warm.size,
                         "crop": (x1 - x0, y1 - y0), "cached_s": wall})
    return rows


def _clip_frames(path, info=None) -> list[np.ndarray]:
    """Every frame of a clip, at the size the pipeline tracks a driving clip (DRIVE_MAX_SIDE)."""
    from . import video
    return list(video.read_frames(path, info or video.probe(path), max_side=DRIVE_MAX_SIDE))


def self_reenactment(clip_ids: list[str] | None = None, stride: int = 2, engine_name: str | Engine = "meshwarp",
                     settings: AnimateSettings | None = None) -> list[dict]:
    """Per clip: engine and static baseline scores, means over every ``stride``-th frame."""
    from .metrics import Dlib68, akd, crop, face_crop_box, l1, psnr, ssim
    g = Gallery.default()
    det = Dlib68()
    ids = clip_ids or sorted(g.manifest()["clips"])
    rows = []
    for cid in ids:
        path = g.clip_path(cid)
        real = _clip_frames(path)
        gen: dict[int, np.ndarray] = {}
        animate(real[0], f"gallery:{cid}", None, engine=engine_name,
                settings=settings or AnimateSettings(max_side=4096), label=" ",
                on_frame=lambda i, frame, c, gen=gen: gen.__setitem__(i, frame.copy()) if i % stride == 0 else None)
        acc = {k: [] for k in ("l1", "psnr", "ssim", "akd", "s_l1", "s_psnr", "s_ssim", "s_akd")}
        static = real[0]
        s_det = det.detect(static)
        for i in range(0, len(real), stride):
            r = real[i]
            rd = det.detect(r)
            if rd is None or i not in gen:
                continue
            box = face_crop_box(rd.landmarks, r.shape)
            for prefix, img, d in (("", gen[i], det.detect(gen[i], hint_box=rd.box)), ("s_", static, s_det)):
                a, b = crop(img, box), crop(r, box)
                acc[prefix + "l1"].append(l1(a, b))
                acc[prefix + "psnr"].append(psnr(a, b))
                acc[prefix + "ssim"].append(ssim(a, b))
                if d is not None:
                    acc[prefix + "akd"].append(akd(d.landmarks, rd.landmarks))
        row = {"clip": cid, "frames": len(acc["l1"])}
        row.update({k: float(np.mean(v)) if v else float("nan") for k, v in acc.items()})
        row["akd_ratio"] = row["akd"] / row["s_akd"] if row["s_akd"] > 0 else float("nan")
        row["ssim_gain"] = row["ssim"] - row["s_ssim"]
        rows.append(row)
    return rows


def tracker_ceiling(clip_ids: list[str] | None = None, stride: int = 2) -> list[dict]:
    """Per clip: how well the landmark tracker's own motion predicts where dlib sees the face.

    dlib's 68 points on the real frame 0, moved by the smoothed track's motion (mediapipe -> 68 points)
    as the engine gets it (pose and expression, the jaw corrected), against dlib on real frame t, in
    inter-ocular distances; no image is rendered. An engine that warps exactly as the tracker says cannot
    be expected to score much below this.
    """
    from .metrics import Dlib68, inter_ocular
    from .motion import MotionTrack, decompose
    from .topology import MEDIAPIPE_TO_IBUG68
    g = Gallery.default()
    det = Dlib68()
    rows = []
    for cid in clip_ids or sorted(g.manifest()["clips"]):
        path = g.clip_path(cid)
        real = _clip_frames(path)
        track = MotionTrack.load(g.motion_path(cid))
        if track.layout != "mediapipe478":
            continue
        k = real[0].shape[1] / track.frame_size[0]
        moved = decompose(track.smoothed(1.0)).rebuilt()[:, MEDIAPIPE_TO_IBUG68, :2] * k
        d0 = det(real[0])
        if d0 is None:
            continue
        pred, stat = [], []
        for i in range(0, len(real), stride):
            d = det(real[i])
            if d is None:
                continue
            iod = inter_ocular(d)
            pred.append(np.linalg.norm(d0 + moved[i] - moved[0] - d, axis=1).mean() / iod)
            stat.append(np.linalg.norm(d0 - d, axis=1).mean() / iod)
        rows.append({"clip": cid, "akd": float(np.mean(pred)), "s_akd": float(np.mean(stat)),
                     "akd_ratio": float(np.mean(pred) / np.mean(stat))})
    return rows


# The portraits `bench --cross` drives by default: two frontal paintings (one a small face), a turned one,
# and one with heavy brushwork. Not Walt Whitman: dlib cannot see his lips in the beard (BENCHMARKS.md).
CROSS_PORTRAITS = ("mona_lisa", "lady_agnew", "girl_with_a_pearl_earring", "van_gogh_self_portrait")
# A face is looked for around where it was in the frame before, scaled to about this width (dlib's HOG
# finds faces from about 80 px; larger only costs time).
_FOLLOW_WIDTH = 180


def _follow_face(frames, det, box):
    """dlib's Detection on each of ``frames``, each looked for in a window three times the size of the face's
    last box (``box`` for the first), scaled down to _FOLLOW_WIDTH. Where the HOG detector finds no face
    there, the points are predicted from the last box (``hinted``; see Dlib68.detect)."""
    import cv2

    from .metrics import Detection
    out = []
    for img in frames:
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        H, W = img.shape[:2]
        wx0, wy0 = max(0, int(x0 - w)), max(0, int(y0 - h))
        wx1, wy1 = min(W, int(x1 + w)), min(H, int(y1 + h))
        s = min(1.0, _FOLLOW_WIDTH / max(w, 1))
        window = img[wy0:wy1, wx0:wx1]
        if s < 1:
            window = cv2.resize(window, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        d = det.detect(np.ascontiguousarray(window), hint_box=((x0 - wx0) * s, (y0 - wy0) * s,
                                                              (x1 - wx0) * s, (y1 - wy0) * s))
        box = tuple(v / s + o for v, o in zip(d.box, (wx0, wy0, wx0, wy0)))
        out.append(Detection(landmarks=d.landmarks / s + (wx0, wy0), box=box, hinted=d.hinted))
    return out


def cross_reenactment(portrait_ids=None, clip_ids=None, stride: int = 3,
                      engine_name: str | Engine = "meshwarp") -> list[dict]:
    """Per gallery portrait x gallery clip: how closely the result follows the driver, and whether the
    portrait stays itself (talking_head.cross_reenactment), on every ``stride``-th frame.

    Keys: ``portrait``, ``clip``, ``frames`` (scored: dlib's detector found the face in the driver's and the
    result's frame), one correlation per signal (``SIGNALS``; NaN where the driver hardly makes that movement),
    ``identity`` / ``identity_max`` (the result frames' descriptor distance from the portrait's: mean,
    largest) and ``driver_identity`` (the driver's own distance from the portrait: a result that took on
    the driver's face would score about this). A pair that cannot be scored has ``skipped``: why.
    """
    from .cross_reenactment import FaceDescriptor
    from .images import load_image
    from .metrics import Dlib68
    if stride < 1:
        raise ValueError(f"stride must be 1 or more, not {stride}")
    g = Gallery.default()
    det, desc = Dlib68(), FaceDescriptor()
    drivers = {}  # clip: (its scored frames' detections, the first frame's face descriptor), or why not
    for cid in clip_ids or sorted(g.manifest()["clips"]):
        path = g.clip_path(cid)
        real = _clip_frames(path)[::stride]
        first = det.detect(real[0])
        if first is None:
            drivers[cid] = "dlib finds no face in the clip's first frame"
            continue
        driven = _follow_face(real, det, first.box)
        drivers[cid] = (driven, desc.describe(real[0], driven[0]))
    rows = []
    for pid in portrait_ids or CROSS_PORTRAITS:
        canvas = load_image(g.portrait_path(pid), max_side=AnimateSettings().max_side)
        found = det.detect(canvas)
        # The portrait's own descriptor from the same search as the result frames', so that an unmoved
        # frame scores 0, not the difference between two ways of finding one face.
        reference = desc.describe(canvas, _follow_face([canvas], det, found.box)[0]) if found is not None else None
        for cid, driver in drivers.items():
            why = ("dlib finds no face in the portrait" if reference is None else
                   driver if isinstance(driver, str) else None)
            if why is None:
                row = _cross_pair(pid, cid, driver, found.box, reference, stride, engine_name, det, desc)
            else:
                row = {"portrait": pid, "clip": cid, "frames": 0, "skipped": why}
            rows.append(row)
    return rows


def _cross_pair(pid, cid, driver, face_box, reference, stride, engine_name, det, desc) -> dict:
    """One row of :func:`cross_reenactment`: ``pid`` (its face at ``face_box``, its descriptor ``reference``)
    rendered with ``cid`` and scored against the driver."""
    from .cross_reenactment import (
        SIGNALS,
        expression_signals,
        following,
        identity_distance,
    )
    driven, driver_descriptor = driver
    gen: dict[int, np.ndarray] = {}
    animate(f"gallery:{pid}", f"gallery:{cid}", None, engine=engine_name, label=" ",
            on_frame=lambda i, frame, c: gen.__setitem__(i // stride, frame.copy()) if i % stride == 0 else None)
    ks = [k for k in range(len(driven)) if k in gen]  # a render may stop at the shorter of clip and motion
    result = dict(zip(ks, _follow_face([gen[k] for k in ks], det, face_box)))
    # Only frames where dlib's detector found both faces: points predicted from the last frame's box
    # (a turned painting defeats the detector now and then) put single wild frames into the series.
    keep = [k for k in ks if not driven[k].hinted and not result[k].hinted]
    row = {"portrait": pid, "clip": cid, "frames": len(keep)}
    if len(keep) < 3:
        return {**row, "skipped": f"dlib's detector found both faces in {len(keep)} of {len(ks)} frames"}
    follows = following(expression_signals(np.stack([driven[k].landmarks for k in keep])),
                        expression_signals(np.stack([result[k].landmarks for k in keep])))
    distances = [identity_distance(desc.describe(gen[k], result[k]), reference) for k in keep]
    row.update({name: follows[name] for name in SIGNALS})
    row.update(identity=float(np.mean(distances)), identity_max=float(np.max(distances)),
               driver_identity=identity_distance(driver_descriptor, reference))
    return row


def main(args) -> int:
    print(f"Machine: {machine()}\n")
    if not (args.no_speed and (args.quality or args.cross)):
        _print_speed(args)
    if args.quality:
        _print_quality(args)
    if args.cross:
        _print_cross(cross_reenactment(_portrait_ids(args.portraits), _clip_ids(args.clips), stride=args.cross_stride))
    return 0


def _print_speed(args) -> None:
    es = engine_speed(args.repeats)
    print(f"Engine alone (meshwarp, {es['crop'][1]}x{es['crop'][0]} crop, {es['frames']} frames, median of {args.repeats}):")
    print("| variant | frames/s |\n|---|---|")
    print(f"| warp + mouth fill (default) | {es['fps_full']:.0f} |\n"
          f"| one layer (layered=False: the background moves with the head) | {es['fps_one_layer']:.0f} |\n"
          f"| warp + mouth fill + residual flow (refine=True) | {es['fps_refine']:.0f} |\n"
          f"| warp + mouth fill + expression detail (detail=True) | {es['fps_detail']:.0f} |\n"
          f"| warp only (one layer, no mouth fill) | {es['fps_warp_only']:.0f} |\n")
    rows = end_to_end(max(1, args.repeats // 2 + 1))
    print("End to end (decode, motion, render, paste-back, label, H.264 + audio), median wall time:")
    print("| portrait | clip | clip s | cached motion s | ratio | uploaded clip s | ratio | side by side (cached) s "
          "| ratio |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['portrait']} | {r['clip']} | {r['duration']:.2f} | {r['cached_s']:.2f} | {r['cached_s'] / r['duration']:.3f} "
              f"| {r['upload_s']:.2f} | {r['upload_s'] / r['duration']:.3f} "
              f"| {r['side_by_side_s']:.2f} | {r['side_by_side_s'] / r['duration']:.3f} |")
    checks = upload_checks(args.repeats)
    print(f"\nAn upload's check when it arrives (the app's message under the field), median of {args.repeats}:")
    print("| file | size | check s |\n|---|---|---|")
    for r in checks:
        print(f"| {r['kind']} {r['id']} | {r['size']} | {r['s']:.3f} |")
    if args.all_portraits:
        rows = gallery_speed(max(1, args.repeats // 2))
        print(f"\nEvery gallery portrait x {rows[0]['clip']} ({rows[0]['duration']:.2f} s), cached motion, median wall time "
              "(canvas and animated crop in pixels, width x height):")
        print("| portrait | canvas | crop | cached motion s | ratio |\n|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: r["cached_s"]):
            (cw, ch), (kw, kh) = r["canvas"], r["crop"]
            print(f"| {r['portrait']} | {cw}x{ch} | {kw}x{kh} | {r['cached_s']:.2f} | {r['cached_s'] / r['duration']:.3f} |")


def _print_quality(args) -> None:
    ids = _clip_ids(args.clips)
    stride = args.stride
    q = self_reenactment(ids, stride=stride)
    print("\nSelf-reenactment (face crop; AKD / inter-ocular distance, dlib 68 points), meshwarp vs static:")
    print("| clip | frames | L1 | static L1 | PSNR | static PSNR | SSIM | static SSIM | SSIM gain | AKD | static AKD | AKD ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in q:
        print(f"| {r['clip']} | {r['frames']} | {r['l1']:.4f} | {r['s_l1']:.4f} | {r['psnr']:.2f} | {r['s_psnr']:.2f} "
              f"| {r['ssim']:.4f} | {r['s_ssim']:.4f} | {r['ssim_gain']:+.4f} | {r['akd']:.4f} | {r['s_akd']:.4f} | {r['akd_ratio']:.3f} |")
    print(f"| **mean** | | | | | | | | **{np.mean([r['ssim_gain'] for r in q]):+.4f}** | | | "
          f"**{np.mean([r['akd_ratio'] for r in q]):.3f}** |")
    tc = tracker_ceiling(ids, stride=stride)
    print("\nThe tracker's own motion as a predictor (dlib frame 0 + mediapipe motion vs dlib frame t), AKD / ratio:")
    print(" ".join(f"{r['clip']} {r['akd']:.4f}/{r['akd_ratio']:.3f}" for r in tc))
    if args.no_refine:
        return
    from .engines import create_engine
    for option, what in (("refine", "the residual-flow refinement"), ("detail", "the expression detail")):
        qr = self_reenactment(ids, stride=stride, engine_name=create_engine("meshwarp", **{option: True}))
        print(f"\nThe same with {what} on ({option}=True), per clip AKD ratio / SSIM gain:")
        print(" ".join(f"{r['clip']} {r['akd_ratio']:.3f}/{r['ssim_gain']:+.4f}" for r in qr))
        print(f"mean AKD ratio {np.mean([r['akd_ratio'] for r in qr]):.3f}, "
              f"mean SSIM gain {np.mean([r['ssim_gain'] for r in qr]):+.4f}")


def _clip_ids(arg: str) -> list[str] | None:
    """--clips: "all" (None: every gallery clip) or comma-separated ids."""
    return None if arg == "all" else arg.split(",")


def _portrait_ids(arg: str) -> list[str]:
    """--portraits: "default" (CROSS_PORTRAITS), "all" (the gallery's), or comma-separated ids."""
    if arg == "default":
        return list(CROSS_PORTRAITS)
    if arg == "all":
        return sorted(Gallery.default().manifest()["portraits"])
    return arg.split(",")


def _print_cross(rows: list[dict]) -> None:
    from .cross_reenactment import SIGNALS
    scored = [r for r in rows if "skipped" not in r]
    print("\nCross-reenactment (dlib's 68 points and face descriptors, not the engine's MediaPipe): per movement, the "
          "correlation of the result with its driver (- where the driver hardly makes it); the result's face "
          "distance from the portrait's, mean / largest, and the driver's own distance from it:")
    print("| portrait | clip | frames | " + " | ".join(SIGNALS) + " | identity | driver's |")
    print("|---|---|---|" + "---|" * len(SIGNALS) + "---|---|")
    for r in scored:
        cells = " | ".join("-" if np.isnan(r[n]) else f"{r[n]:.2f}" for n in SIGNALS)
        print(f"| {r['portrait']} | {r['clip']} | {r['frames']} | {cells} | {r['identity']:.2f} / "
              f"{r['identity_max']:.2f} | {r['driver_identity']:.2f} |")
    if scored:
        means = []
        for n in SIGNALS:
            values = [r[n] for r in scored if not np.isnan(r[n])]
            means.append(f"**{np.mean(values):.2f}**" if values else "-")
        print("| **mean** | | | " + " | ".join(means) + f" | **{np.mean([r['identity'] for r in scored]):.2f}** | "
              f"{np.mean([r['driver_identity'] for r in scored]):.2f} |")
    for r in rows:
        if "skipped" in r:
            print(f"Not scored: {r['portrait']} x {r['clip']}: {r['skipped']}.")
