"""Appearance feature extractor F: (B,3,256,256) image in [0,1] -> (B,32,16,64,64) volume."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct


class ResBlock3d(nn.Module):
    """Pre-activation 3-D residual block: BN-ReLU-conv3^3-BN-ReLU-conv3^3, + input."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv3d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv3d(ch, ch, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(ch)
        self.norm2 = nn.BatchNorm3d(ch)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class AppearanceFeatureExtractor(nn.Module):
    def __init__(self, image_channel=3, block_expansion=64, num_down_blocks=2, max_features=512,
                 reshape_channel=32, reshape_depth=16, num_resblocks=6):
        super().__init__()
        self.first = ConvNormAct(image_channel, block_expansion)
        chans = [min(max_features, block_expansion * 2 ** i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            ConvNormAct(chans[i], chans[i + 1], pool=True) for i in range(num_down_blocks))
        self.second = nn.Conv2d(chans[-1], max_features, 1)
        self.reshape_channel, self.reshape_depth = reshape_channel, reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))

    def forward(self, x):
        out = self.first(x)
        for blk in self.down_blocks:
            out = blk(out)
        out = self.second(out)
        b, _, h, w = out.shape
        out = out.view(b, self.reshape_channel, self.reshape_depth, h, w)  # channel = c*16 + d
        return self.resblocks_3d(out)
