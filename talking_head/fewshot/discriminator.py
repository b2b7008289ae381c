"""The projection discriminator D(x, y, i) = V(x, y)^T (W_i + w0) + b.

V is the embedder's body (a separate copy) plus one more residual block at the smallest size, sum
pooling and ReLU. W holds one column per training video (here one row of ``W``), initialised
U(-0.1, 0.1) as in the lab's code; w0 and b are shared. :meth:`features` also returns the output of
every residual block, for the feature-matching loss.

For fine-tuning on a new person, :meth:`score` takes any vector w: there it is a trainable
w' initialised to w0 + e_new, and W is not used.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import FewShotConfig
from .layers import ResBlock, SelfAttention, image_and_landmarks_trunk


class Discriminator(nn.Module):
    def __init__(self, cfg: FewShotConfig):
        super().__init__()
        blocks = image_and_landmarks_trunk(cfg)
        blocks.append(ResBlock(cfg.embed_dim, use_sn=cfg.spectral_norm))
        self.blocks = nn.ModuleList(blocks)
        self.W = nn.Parameter(torch.empty(cfg.num_videos, cfg.embed_dim).uniform_(-0.1, 0.1))
        self.w0 = nn.Parameter(torch.empty(cfg.embed_dim).uniform_(-0.1, 0.1))
        self.b = nn.Parameter(torch.zeros(()))

    def features(self, frames: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(V(x, y) as (B, N), outputs of every residual block)."""
        h = torch.cat([frames, landmarks], dim=1)
        feats = []
        for blk in self.blocks:
            h = blk(h)
            if not isinstance(blk, SelfAttention):
                feats.append(h)
        return torch.relu(h.sum(dim=(2, 3))), feats

    def score(self, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Realism r = v . w + b for (B, N) ``v`` and (B or 1, N) ``w``."""
        return (v * w).sum(dim=1) + self.b

    def forward(self, frames: torch.Tensor, landmarks: torch.Tensor, video: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(realism scores (B,), block outputs) for frames of training videos ``video`` (B,) long."""
        v, feats = self.features(frames, landmarks)
        return self.score(v, self.W[video] + self.w0), feats
