"""Warping module W: dense motion from implicit keypoints, occlusion, feature warping.

forward(f_s (B,32,16,64,64), kp_driving x_d (B,K,3), kp_source x_s (B,K,3)) -> dict(  [reference order]
    occlusion_map (B,1,64,64), deformation (B,16,64,64,3), mask (B,K+1,16,64,64), out (B,256,64,64)).
Coordinates are (x, y, z) in [-1, 1] over (w, h, d); sampling is trilinear, zero padding,
align_corners=False (as in the reference, although the grid itself spans [-1, 1] inclusive).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct

KP_VARIANCE = 0.01


def coordinate_grid(d: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(d, h, w, 3) grid of (x, y, z) in [-1, 1]."""
    def axis(n):
        return 2 * (torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1)) - 1
    z, y, x = torch.meshgrid(axis(d), axis(h), axis(w), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


class Hourglass3d(nn.Module):
    """U-Net over (d, h, w) pooling only h, w.  Keys ``encoder.down_blocks.*``,
    ``decoder.up_blocks.*``, ``decoder.conv``, ``decoder.norm``."""

    def __init__(self, in_features: int, block_expansion=32, num_blocks=5, max_features=1024):
        super().__init__()
        ch = lambda i: min(max_features, block_expansion * 2 ** i)
        self.encoder = nn.Module()
        self.encoder.down_blocks = nn.ModuleList(
            ConvNormAct(in_features if i == 0 else ch(i), ch(i + 1), dims=3, pool=True)
            for i in range(num_blocks))
        self.decoder = nn.Module()
        ups = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * ch(i + 1)
            ups.append(ConvNormAct(cin, ch(i), dims=3))
        self.decoder.up_blocks = nn.ModuleList(ups)
        self.out_features = block_expansion + in_features
        self.decoder.conv = nn.Conv3d(self.out_features, self.out_features, 3, padding=1)
        self.decoder.norm = nn.BatchNorm3d(self.out_features)

    def forward(self, x):
        skips = [x]
        for blk in self.encoder.down_blocks:
            skips.append(blk(skips[-1]))
        out = skips.pop()
        for blk in self.decoder.up_blocks:
            out = blk(F.interpolate(out, scale_factor=(1, 2, 2)))
            out = torch.cat([out, skips.pop()], dim=1)
        return F.relu(self.decoder.norm(self.decoder.conv(out)))


class DenseMotionNetwork(nn.Module):
    def __init__(self, num_kp=21, feature_channel=32, block_expansion=32, max_features=1024,
                 num_blocks=5, reshape_depth=16, compress=4):
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass3d((num_kp + 1) * (compress + 1), block_expansion, num_blocks,
                                     max_features)
        p = self.hourglass.out_features
        self.mask = nn.Conv3d(p, num_kp + 1, 7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, 1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = nn.Conv2d(p * reshape_depth, 1, 7, padding=3)

    def forward(self, feature, x_d, x_s):
        b, _, d, h, w = feature.shape
        k = self.num_kp
        g = F.relu(self.norm(self.compress(feature)))                       # (B,4,d,h,w)
        grid = coordinate_grid(d, h, w, feature)                            # (d,h,w,3)
        kd = x_d.reshape(b, k, 1, 1, 1, 3)
        ks = x_s.reshape(b, k, 1, 1, 1, 3)
        # sparse motions: background identity, then driving -> source per keypoint
        motions = torch.cat([grid.expand(b, 1, d, h, w, 3), grid - kd + ks], dim=1)
        c = g.shape[1]
        rep = g.unsqueeze(1).expand(b, k + 1, c, d, h, w).reshape(b * (k + 1), c, d, h, w)
        deformed = F.grid_sample(rep, motions.reshape(b * (k + 1), d, h, w, 3),
                                 align_corners=False).view(b, k + 1, c, d, h, w)
        heat = (torch.exp(-0.5 * ((grid - kd) ** 2).sum(-1) / KP_VARIANCE)
                - torch.exp(-0.5 * ((grid - ks) ** 2).sum(-1) / KP_VARIANCE))
        heat = torch.cat([heat.new_zeros(b, 1, d, h, w), heat], dim=1).unsqueeze(2)
        pred = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))
        mask = torch.softmax(self.mask(pred), dim=1)                        # (B,K+1,d,h,w)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)            # (B,d,h,w,3)
        occlusion = torch.sigmoid(self.occlusion(pred.reshape(b, -1, h, w)))
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion}


class WarpingNetwork(nn.Module):
    def __init__(self, num_kp=21, block_expansion=64, max_features=512, num_down_blocks=2,
                 reshape_channel=32, dense_motion_params=None):
        super().__init__()
        dm = {"block_expansion": 32, "max_features": 1024, "num_blocks": 5, "reshape_depth": 16,
              "compress": 4}
        dm.update(dense_motion_params or {})
        self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp,
                                                       feature_channel=reshape_channel, **dm)
        cout = block_expansion * 2 ** num_down_blocks
        self.third = ConvNormAct(max_features, cout, leaky=True)
        self.fourth = nn.Conv2d(cout, cout, 1)

    def forward(self, feature_3d, kp_driving, kp_source):
        dense = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        out = F.grid_sample(feature_3d, dense["deformation"], align_corners=False)
        b, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(b, c * d, h, w)))
        return dict(dense, out=out * dense["occlusion_map"])
