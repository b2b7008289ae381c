"""The generator G(y, e): a landmark image and a person embedding to a frame.

Johnson et al.'s image-to-image layout with BigGAN-style residual blocks (paper, section 3.2):
downsampling blocks with ordinary (learned-affine) instance norm encode the landmark image;
residual and upsampling blocks use AdaIN whose scales and biases are psi = P e, with P one learned
linear projection; self-attention at ``attention_down`` / ``attention_up`` pixels; then AdaIN,
ReLU, a 3x3 conv and tanh.

Few-shot fine-tuning replaces ``P e`` by a trainable psi' initialised to it, which is why
:meth:`forward` takes the AdaIN parameters rather than the embedding.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import FewShotConfig
from .layers import AdaResBlock, ResBlockDown, SelfAttention, adain, conv, sn


class Generator(nn.Module):
    def __init__(self, cfg: FewShotConfig):
        super().__init__()
        use_sn = cfg.spectral_norm
        down: list[nn.Module] = []
        cin, side = 3, cfg.resolution
        for i, cout in enumerate(cfg.generator_down):
            down.append(ResBlockDown(cin, cout, norm=True, first=i == 0, use_sn=use_sn))
            cin, side = cout, side // 2
            if side == cfg.attention_down:
                down.append(SelfAttention(cin, use_sn=use_sn))
        self.down = nn.Sequential(*down)
        self.res = nn.ModuleList(AdaResBlock(cin, cin, use_sn=use_sn) for _ in range(cfg.generator_res_blocks))
        self.up = nn.ModuleList()
        for cout in cfg.generator_up:
            self.up.append(AdaResBlock(cin, cout, up=True, use_sn=use_sn))
            cin, side = cout, side * 2
            if side == cfg.attention_up:
                self.up.append(SelfAttention(cin, use_sn=use_sn))
        self.out = conv(cin, 3, use_sn=use_sn)
        sizes = [s for blk in list(self.res) + list(self.up) for s in getattr(blk, "adain_sizes", ())] + [2 * cin]
        self.adain_sizes = tuple(sizes)
        self.n_adain = sum(sizes)
        self.project = sn(nn.Linear(cfg.embed_dim, self.n_adain), use_sn)  # P
        with torch.no_grad():  # scales start near 1, biases near 0, so an untrained e does not erase features
            bias = self.project.bias
            bias.zero_()
            at = 0
            for s in sizes:
                bias[at:at + s // 2] = 1.0
                at += s

    def adain_params(self, embedding: torch.Tensor) -> torch.Tensor:
        """psi = P e: (B, N) -> (B, n_adain)."""
        return self.project(embedding)

    def forward(self, landmarks: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) landmark images in [-1, 1] and (B or 1, n_adain) AdaIN parameters -> frames in [-1, 1]."""
        if psi.shape[0] != landmarks.shape[0]:
            psi = psi.expand(landmarks.shape[0], -1)
        chunks = iter(torch.split(psi, self.adain_sizes, dim=1))
        h = self.down(landmarks)
        for blk in list(self.res) + list(self.up):
            h = blk(h) if isinstance(blk, SelfAttention) else blk(h, next(chunks), next(chunks))
        h = torch.relu(adain(h, next(chunks)))
        return torch.tanh(self.out(h))
