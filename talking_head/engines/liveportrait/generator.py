"""SPADE decoder G: warped feature (B,256,64,64) -> image (B,3,512,512) in (0,1)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .layers import SNConv2d


class SPADE(nn.Module):
    """Parameter-free InstanceNorm modulated by (1 + gamma(seg)) and beta(seg)."""

    def __init__(self, channels: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, seg):
        normalized = F.instance_norm(x, eps=1e-5)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_nc: int):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SNConv2d(fin, fmid, 3, 1)
        self.conv_1 = SNConv2d(fmid, fout, 3, 1)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmid, label_nc)
        if self.learned_shortcut:
            self.conv_s = SNConv2d(fin, fout, 1, 0, bias=False)
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x, seg):
        xs = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return xs + dx


class SPADEDecoder(nn.Module):
    def __init__(self, upscale=2, max_features=512, block_expansion=64, num_down_blocks=2):
        super().__init__()
        label_nc = block_expansion * 2 ** num_down_blocks   # 256: the input is its own seg map
        self.fc = nn.Conv2d(label_nc, 2 * label_nc, 3, padding=1)
        c = 2 * label_nc
        for i in range(6):
            setattr(self, f"G_middle_{i}", SPADEResnetBlock(c, c, label_nc))
        self.up_0 = SPADEResnetBlock(c, c // 2, label_nc)
        self.up_1 = SPADEResnetBlock(c // 2, block_expansion, label_nc)
        self.upscale = upscale
        self.conv_img = nn.Sequential(
            nn.Conv2d(block_expansion, 3 * upscale * upscale, 3, padding=1),
            nn.PixelShuffle(upscale))

    def forward(self, feature):
        seg = feature
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2), seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return x.sigmoid()
