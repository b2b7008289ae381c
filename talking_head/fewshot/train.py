"""Meta-learning (paper, section 3.2): episodes of K shots + 1 target, E/G/P then D updates.

    python -m talking_head.fewshot.train --config run.json               # one process
    torchrun --nproc_per_node 8 -m talking_head.fewshot.train --config run.json   # DDP, one GPU each

The global batch (``batch_size``) is split across ranks; DistributedDataParallel averages gradients,
so N ranks take the same step as one process with the whole batch. Mixed precision (bf16, or fp16
with a gradient scaler) on GPUs. Every ``checkpoint_every`` steps rank 0 writes
``out_dir/training_state.safetensors`` (networks + Adam moments + step; a run resumes from it) and
``out_dir/model/`` (``save_pretrained``); losses go to ``out_dir/log.jsonl``, sample grids (shot,
target landmarks, generated, real) to ``out_dir/samples/step_XXXXXXX.png``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .config import FewShotConfig
from .data import Episode, EpisodeDataset, StridedSampler, load_clips, to_image
from .losses import (
    build_content_loss,
    discriminator_hinge,
    embedding_match,
    feature_matching,
    generator_adversarial,
)
from .model import TalkingHeadModel

log = logging.getLogger("talking_head.fewshot.train")
STATE_FILE = "training_state.safetensors"


class _EmbedAndGenerate(nn.Module):
    """E and G (with P) as one module, so one DDP wrapper synchronises their gradients."""

    def __init__(self, embedder: nn.Module, generator: nn.Module):
        super().__init__()
        self.embedder, self.generator = embedder, generator

    def forward(self, frames, landmarks, target_landmarks):
        e_hat = self.embedder.embed_person(frames, landmarks)
        return self.generator(target_landmarks, self.generator.adain_params(e_hat)), e_hat


def amp_dtype(cfg: FewShotConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision (always on the CPU: its bf16 is slow there)."""
    if cfg.amp == "off" or device.type != "cuda":
        return None
    if cfg.amp == "fp16":
        return torch.float16
    if cfg.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


class MetaLearner:
    """Optimisers, DDP wrappers and one training step; no files, no data loading."""

    def __init__(self, model: TalkingHeadModel, content_loss: nn.Module, device: torch.device | str = "cpu"):
        self.model = model.to(device)
        self.cfg = cfg = model.cfg
        self.device = torch.device(device)
        self.content = content_loss.to(device)
        self.eg = _EmbedAndGenerate(model.embedder, model.generator)
        self.d = model.discriminator
        self.distributed = dist.is_available() and dist.is_initialized()
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.eg = DDP(self.eg, device_ids=ids)
            self.d = DDP(self.d, device_ids=ids)
        self.opt_g = torch.optim.Adam(self.eg.parameters(), lr=cfg.lr_generator, betas=cfg.betas_generator,
                                      eps=cfg.adam_eps)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_discriminator, betas=cfg.betas_discriminator,
                                      eps=cfg.adam_eps)
        self.dtype = amp_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)
        self.step_count = 0

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, batch: Episode) -> dict[str, float]:
        """One G step then ``d_steps_per_g_step`` D steps on one (local) batch; returns the losses."""
        cfg, b = self.cfg, batch.to(self.device)
        ft = b.target.dtype  # losses in the data's precision, whatever autocast computed in
        disc = self.model.discriminator  # un-wrapped: the G step must not synchronise D's gradients
        disc.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            fake, e_hat = self.eg(b.frames, b.landmarks, b.target_landmarks)
            fake_score, fake_feats = disc(fake, b.target_landmarks, b.video)
            with torch.no_grad():
                _, real_feats = disc(b.target, b.target_landmarks, b.video)
            l_cnt = self.content(fake.to(ft), b.target)
            l_adv = cfg.adversarial_weight * generator_adversarial(fake_score.to(ft))
            l_fm = cfg.feature_matching_weight * feature_matching(fake_feats, real_feats)
            l_mch = cfg.match_weight * embedding_match(disc.W[b.video].detach().to(ft), e_hat.to(ft))
            loss_g = l_cnt + l_adv + l_fm + l_mch
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        disc.requires_grad_(True)

        fake, e_hat = fake.detach(), e_hat.detach()
        for _ in range(cfg.d_steps_per_g_step):
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                # Real and fake in one forward: per-sample networks, and one DDP forward per backward.
                scores, _ = self.d(torch.cat([b.target, fake]), torch.cat([b.target_landmarks] * 2),
                                   torch.cat([b.video] * 2))
                real_score, fake_score_d = scores.to(ft).chunk(2)
                loss_d = discriminator_hinge(real_score, fake_score_d)
                if cfg.match_updates_w:
                    loss_d = loss_d + cfg.match_weight * embedding_match(disc.W[b.video].to(ft), e_hat.to(ft))
            self.scaler.scale(loss_d).backward()
            self.scaler.step(self.opt_d)
        self.scaler.update()
        self.step_count += 1
        return {"g_total": loss_g.item(), "content": l_cnt.item(), "adv": l_adv.item(), "fm": l_fm.item(),
                "match": l_mch.item(), "d_hinge": loss_d.item(), "real_score": real_score.mean().item(),
                "fake_score": fake_score_d.mean().item(), "_fake": fake}

    # -- training state -----------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Everything needed to resume, as flat tensors + string metadata (for safetensors)."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        meta = {"step": str(self.step_count), "config": self.cfg.to_json()}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            sd = opt.state_dict()
            for idx, st in sd["state"].items():
                for k, v in st.items():
                    tensors[f"{name}.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
            meta[f"{name}.param_groups"] = json.dumps(sd["param_groups"])
        if self.scaler.is_enabled():
            meta["scaler"] = json.dumps({k: float(v) if torch.is_tensor(v) else v
                                         for k, v in self.scaler.state_dict().items()})
        return tensors, meta

    def save_state(self, path: Path) -> None:
        from safetensors.torch import save_file
        tensors, meta = self.state_tensors()
        tmp = path.with_name(path.name + ".partial")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)

    def load_state(self, path: Path) -> None:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            state: dict[int, dict] = {}
            for k, v in tensors.items():
                if k.startswith(name + "."):
                    _, idx, field = k.split(".", 2)
                    state.setdefault(int(idx), {})[field] = v
            opt.load_state_dict({"state": state, "param_groups": json.loads(meta[f"{name}.param_groups"])})
        if "scaler" in meta and self.scaler.is_enabled():
            self.scaler.load_state_dict(json.loads(meta["scaler"]))
        self.step_count = int(meta["step"])


def sample_grid(batch: Episode, fake: torch.Tensor, rows: int = 4) -> np.ndarray:
    """Per episode one row: first shot, target landmarks, generated, real target (uint8 RGB)."""
    n = min(rows, fake.shape[0])
    cols = [batch.frames[:n, 0], batch.target_landmarks[:n], fake[:n], batch.target[:n]]
    img = to_image(torch.stack(cols, dim=1).cpu())           # (n, 4, R, R, 3)
    return np.concatenate([np.concatenate(list(row), axis=1) for row in img], axis=0)


def write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def _setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def train(cfg: FewShotConfig, *, clips=None, content_loss: nn.Module | None = None, progress=None) -> TalkingHeadModel:
    """Meta-train on ``cfg.data_root`` (or the prepared ``clips``) for ``cfg.steps`` steps; returns the model.

    Resumes from ``cfg.out_dir/training_state.safetensors`` when ``cfg.resume`` and the file exists.
    """
    cfg.validate()
    rank, world, device = _setup_distributed()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if clips is None:
        # Rank 0 extracts landmarks and fills the disk cache; the other ranks then read the cache.
        if world > 1 and rank != 0:
            dist.barrier()
        clips = load_clips(cfg, progress=(lambda i, n, name: log.info("preparing %d/%d %s", i + 1, n, name))
                           if rank == 0 else None)
        if world > 1 and rank == 0:
            dist.barrier()
    import dataclasses
    cfg = dataclasses.replace(cfg, num_videos=len(clips))
    torch.manual_seed(cfg.seed)
    model = TalkingHeadModel(cfg)
    if content_loss is None:
        content_loss = build_content_loss(cfg)
    learner = MetaLearner(model, content_loss, device)
    state = out / STATE_FILE
    if cfg.resume and state.is_file():
        learner.load_state(state)
        if rank == 0:
            log.info("resumed from %s at step %d", state, learner.step_count)
    local_batch = cfg.batch_size // world
    dataset = EpisodeDataset(clips, cfg.shots, cfg.steps * cfg.batch_size, cfg.seed, cfg.landmark_thickness)
    sampler = StridedSampler(len(dataset), learner.step_count * cfg.batch_size, rank, world)
    loader = torch.utils.data.DataLoader(dataset, batch_size=local_batch, sampler=sampler,
                                         collate_fn=Episode.collate, num_workers=cfg.num_workers,
                                         persistent_workers=cfg.num_workers > 0, drop_last=True)
    if rank == 0:
        (out / "config.json").write_text(cfg.to_json())
        counts = model.parameter_counts()
        log.info("parameters: %s", ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items()))
    t0, sums, n_sum = time.perf_counter(), {}, 0
    for batch in loader:
        if learner.step_count >= cfg.steps:
            break
        losses = learner.step(batch)
        fake = losses.pop("_fake")
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        n_sum += 1
        s = learner.step_count
        if s % cfg.log_every == 0 or s == cfg.steps:
            avg = torch.tensor([sums[k] / n_sum for k in sorted(sums)], dtype=torch.float64)
            if learner.distributed:
                dist.all_reduce(avg)
                avg /= world
            if rank == 0:
                rec = {"step": s, "time_s": round(time.perf_counter() - t0, 2),
                       **{k: round(float(v), 6) for k, v in zip(sorted(sums), avg)}}
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")
                log.info("step %d %s", s, " ".join(f"{k}={v:.4f}" for k, v in rec.items() if k not in ("step",)))
                if progress:
                    progress(rec)
            sums, n_sum = {}, 0
        if rank == 0 and (s % cfg.sample_every == 0 or s == cfg.steps):
            write_png(out / "samples" / f"step_{s:07d}.png", sample_grid(batch, fake))
        if s % cfg.checkpoint_every == 0 or s == cfg.steps:
            if rank == 0:
                learner.save_state(state)
                model.save_pretrained(out / "model", card_fields={"training_steps": str(s)})
            if learner.distributed:
                dist.barrier()
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m talking_head.fewshot.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="JSON or TOML file of FewShotConfig fields (\"preset\": paper|tiny)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                   help="override one field, e.g. --set steps=1000 --set data_root='\"clips\"'")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from ..errors import TalkingHeadError
    try:
        raw = json.loads(Path(args.config).read_text()) if not args.config.endswith(".toml") else None
        if raw is None:
            import tomllib
            raw = tomllib.loads(Path(args.config).read_text())
        for item in args.set:
            k, _, v = item.partition("=")
            try:
                raw[k] = json.loads(v)
            except json.JSONDecodeError:
                raw[k] = v
        cfg = FewShotConfig.from_dict(raw)
        train(cfg)
    except (TalkingHeadError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
