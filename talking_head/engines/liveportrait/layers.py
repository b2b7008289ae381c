"""Building blocks shared by the LivePortrait networks (key names follow the checkpoints)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNormAct(nn.Module):
    """conv -> BatchNorm -> ReLU (or LeakyReLU 0.01) -> optional 2x2 average pool.

    Keys: ``conv.*``, ``norm.*``.  ``dims`` 2 or 3; in 3-D the pool is (1, 2, 2) (depth kept).
    """

    def __init__(self, cin: int, cout: int, k: int = 3, pad: int = 1, dims: int = 2,
                 leaky: bool = False, pool: bool = False):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.conv = conv(cin, cout, k, padding=pad)
        self.norm = norm(cout)
        self.leaky = leaky
        self.pool = pool
        self.dims = dims

    def forward(self, x):
        x = self.norm(self.conv(x))
        x = F.leaky_relu(x, 0.01) if self.leaky else F.relu(x)
        if self.pool:
            x = F.avg_pool2d(x, 2) if self.dims == 2 else F.avg_pool3d(x, (1, 2, 2))
        return x


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of an NCHW tensor (biased variance, eps inside the sqrt)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class SNConv2d(nn.Module):
    """Conv2d whose weight is spectrally normalised with the *stored* singular vectors.

    Keys as written by ``torch.nn.utils.spectral_norm``: ``weight_orig``, ``weight_u``,
    ``weight_v`` (+ ``bias``).  Effective weight = weight_orig / sigma with
    sigma = u . (W_mat v) — no power iteration (inference only).
    """

    def __init__(self, cin: int, cout: int, k: int, pad: int, bias: bool = True):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("weight_u", torch.empty(cout))
        self.register_buffer("weight_v", torch.empty(cin * k * k))
        self.pad = pad

    def weight(self) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def forward(self, x):
        return F.conv2d(x, self.weight(), self.bias, padding=self.pad)
