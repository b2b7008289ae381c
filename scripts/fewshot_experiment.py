"""A small real experiment with the few-shot talking-head model (issue 5): meta-train, then K-shot fine-tuning.

1. Meta-train on the driving clips of a folder (default ``../shared/gallery-src/clips``), holding
   one clip's person out.
2. On the held-out person: shots are frames from the first half of the clip (K = 1, 8, 32; K = 1 is
   frame 0), evaluation frames come from the second half (never seen). For each K: the feed-forward
   model (no fine-tuning, psi = P e) and the fine-tuned one, each driven by the evaluation frames'
   own landmarks (self-reenactment), scored with L1 and SSIM (talking_head.metrics) on the model's
   face crop; beside them the static baseline (frame 0 copied to every evaluation frame).

This is a toy-scale reproduction of the paper's Table 1 protocol, **not** its numbers.

    # tiny, on a CPU (minutes; pixel-L1 substitute for the content loss unless VGG weights are present)
    python scripts/fewshot_experiment.py --preset tiny --steps 2000 --content-substitute pixel --set embedder_relu=false
    # larger, on one GPU or several (same script)
    torchrun --nproc_per_node 1 scripts/fewshot_experiment.py --preset paper --resolution 128 --steps 20000

(``--set embedder_relu=false``: with the paper's ReLU after the embedder's sum pooling, the tiny run's
embedder died, every embedding exactly 0; see FewShotConfig.embedder_relu.)

Writes ``OUT/results.json``, ``OUT/results.md`` and ``OUT/heldout_grid.png`` (rows: real, static,
FF and FT for each K), plus the training run's log, samples and checkpoint under ``OUT/train``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from talking_head import metrics
from talking_head.fewshot.config import FewShotConfig
from talking_head.fewshot.data import (
    discover,
    load_clips,
    prepare_clip,
    to_image,
    to_tensor,
)
from talking_head.fewshot.finetune import finetune
from talking_head.fewshot.landmarks import rasterize
from talking_head.fewshot.losses import build_content_loss
from talking_head.fewshot.train import train, write_png

log = logging.getLogger("fewshot_experiment")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", default=str(REPO.parent / "shared" / "gallery-src" / "clips"))
    p.add_argument("--holdout", default="clip_talking_02", help="person id (a flat clip's file stem) to hold out")
    p.add_argument("--preset", choices=("tiny", "paper"), default="tiny")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--steps", type=int, default=1500, help="meta-learning steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--frames-per-video", type=int, default=48)
    p.add_argument("--finetune-steps", type=int, default=None)
    p.add_argument("--shots", default="1,8,32")
    p.add_argument("--eval-frames", type=int, default=32)
    p.add_argument("--content-substitute", choices=("none", "pixel"), default="none",
                   help="'pixel' trains with the documented pixel-L1 substitute when the VGG weights are absent")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a busy 2-core box)")
    p.add_argument("--out", default="runs/fewshot_experiment")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="any other FewShotConfig field")
    return p.parse_args(argv)


def score(pred: np.ndarray, real: np.ndarray) -> dict[str, float]:
    return {"l1": float(np.mean([metrics.l1(a, b) for a, b in zip(pred, real)])),
            "ssim": float(np.mean([metrics.ssim(a, b) for a, b in zip(pred, real)]))}


def main(argv=None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    base = FewShotConfig.tiny if args.preset == "tiny" else FewShotConfig.paper
    overrides = {"data_root": args.clips, "holdout": (args.holdout,), "steps": args.steps,
                 "frames_per_video": args.frames_per_video, "content_substitute": args.content_substitute,
                 "out_dir": str(out / "train"), "seed": args.seed, "num_workers": 0, "checkpoint_every": args.steps,
                 "sample_every": max(1, args.steps // 5), "log_every": max(1, args.steps // 30)}
    if args.resolution:
        overrides["resolution"] = args.resolution
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.finetune_steps is not None:
        overrides["finetune_steps"] = args.finetune_steps
    for item in args.set:
        k, _, v = item.partition("=")
        overrides[k] = json.loads(v)
    cfg = base(**overrides).validate()
    shots = [int(k) for k in args.shots.split(",")]

    t0 = time.perf_counter()
    train_clips = load_clips(cfg)
    names = [c.source.name for c in train_clips]
    log.info("training clips: %s", names)
    held_src = [s for s in discover(cfg.data_root) if s.person == args.holdout or s.name == args.holdout]
    if not held_src:
        raise SystemExit(f"error: no clip of {args.holdout!r} under {cfg.data_root}")
    pool = max(shots) + args.eval_frames
    held = prepare_clip(held_src[0], dataclasses.replace(cfg, frames_per_video=2 * max(max(shots), args.eval_frames)))
    half = len(held.frames) // 2
    prep_s = time.perf_counter() - t0
    log.info("held-out %s: %d frames (%d shot pool, %d evaluation), need %d", held.source.name, len(held.frames),
             half, len(held.frames) - half, pool)

    t0 = time.perf_counter()
    model = train(cfg, clips=train_clips)
    train_s = time.perf_counter() - t0
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return 0
    device = next(model.parameters()).device
    content = build_content_loss(cfg).to(device)

    r = cfg.resolution
    x_all = to_tensor(held.frames)
    y_all = to_tensor(np.stack([rasterize(lm, r, cfg.landmark_thickness) for lm in held.landmarks]))
    eval_ids = np.linspace(half, len(held.frames) - 1, min(args.eval_frames, len(held.frames) - half)).round().astype(int)
    real = held.frames[eval_ids]
    results = {"static": score(np.repeat(held.frames[:1], len(eval_ids), axis=0), real)}
    rows = [real[:6], np.repeat(held.frames[:1], min(6, len(eval_ids)), axis=0)]
    timings = {}
    for k in shots:
        ids = np.linspace(0, half - 1, min(k, half)).round().astype(int)
        for variant, steps in (("FF", 0), ("FT", cfg.finetune_steps)):
            t = time.perf_counter()
            tuned = finetune(model, x_all[ids], y_all[ids], steps=steps, content_loss=content, seed=args.seed)
            pred = to_image(torch.cat([tuned.render(y_all[eval_ids[i:i + 16]].to(device))
                                       for i in range(0, len(eval_ids), 16)]))
            timings[f"{variant}-K{k}"] = round(time.perf_counter() - t, 2)
            results[f"{variant} K={k}"] = {**score(pred, real), "shots_used": len(ids), "finetune_steps": steps}
            rows.append(pred[:6])
    write_png(out / "heldout_grid.png", np.concatenate([np.concatenate(list(row), axis=1) for row in rows]))

    counts = model.parameter_counts()
    summary = {"note": "toy-scale reproduction of the paper's protocol on a few clips; not the paper's numbers",
               "device": str(device), "threads": args.threads, "config": cfg.to_dict(), "train_clips": names,
               "heldout": held.source.name, "eval_frames": len(eval_ids), "params": counts,
               "seconds": {"prepare_data": round(prep_s, 1), "meta_train": round(train_s, 1), **timings},
               "results": results}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    lines = [(f"Held-out person: {held.source.name}; {len(eval_ids)} unseen frames (second half of the clip); "
             f"{cfg.resolution} px, {args.steps} meta-learning steps on {len(names)} clips, "
             f"{cfg.finetune_steps} fine-tuning steps; content loss: "
             f"{'pixel-L1 substitute' if cfg.content_substitute == 'pixel' else 'VGG19 + VGGFace'}; {device}."),
             "", "| variant | L1 (lower is better) | SSIM (higher is better) |", "|---|---|---|"]
    for name, v in results.items():
        lines.append(f"| {name} | {v['l1']:.4f} | {v['ssim']:.4f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
