"""The embedder E(x, y) -> R^N: a frame and its landmark image to a person-embedding vector.

BigGAN-style downsampling residual blocks without normalisation on the 6-channel concatenation of
frame and landmark image, self-attention where the feature map is ``attention_down`` pixels wide,
global sum pooling, ReLU (paper, section 3.2). A person's embedding is the mean over K frames.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import FewShotConfig
from .layers import image_and_landmarks_trunk


class Embedder(nn.Module):
    def __init__(self, cfg: FewShotConfig):
        super().__init__()
        self.blocks = nn.Sequential(*image_and_landmarks_trunk(cfg))
        self.relu = cfg.embedder_relu

    def forward(self, frames: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) frames and landmark images in [-1, 1] -> (B, N) embeddings."""
        e = self.blocks(torch.cat([frames, landmarks], dim=1)).sum(dim=(2, 3))
        return torch.relu(e) if self.relu else e

    def embed_person(self, frames: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, H, W) K shots per person -> (B, N) mean embeddings e_hat."""
        b, k = frames.shape[:2]
        e = self(frames.flatten(0, 1), landmarks.flatten(0, 1))
        return e.view(b, k, -1).mean(dim=1)
