"""Building blocks shared by the embedder, generator and discriminator (BigGAN-style residual blocks).

Every conv and linear layer goes through :func:`sn`, so the config's ``spectral_norm`` switch holds
for all three networks (the paper puts spectral norm everywhere).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn(module: nn.Module, enabled: bool = True) -> nn.Module:
    return spectral_norm(module) if enabled else module


def conv(cin: int, cout: int, k: int = 3, *, use_sn: bool = True) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, k, padding=k // 2), use_sn)


class SelfAttention(nn.Module):
    """SAGAN/BigGAN self-attention; keys and values pooled 2x, output gate starts at 0 (identity)."""

    def __init__(self, c: int, *, use_sn: bool = True):
        super().__init__()
        self.query = conv(c, c // 8, 1, use_sn=use_sn)
        self.key = conv(c, c // 8, 1, use_sn=use_sn)
        self.value = conv(c, c // 2, 1, use_sn=use_sn)
        self.out = conv(c // 2, c, 1, use_sn=use_sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)                          # (b, c/8, hw)
        k = F.max_pool2d(self.key(x), 2).flatten(2)           # (b, c/8, hw/4)
        v = F.max_pool2d(self.value(x), 2).flatten(2)         # (b, c/2, hw/4)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)   # (b, hw, hw/4)
        o = (v @ attn.transpose(1, 2)).view(b, c // 2, h, w)
        return x + self.gamma * self.out(o)


class ResBlockDown(nn.Module):
    """relu-conv-relu-conv, then 2x average pooling; 1x1 conv on the skip. ``norm``: instance norm (G's encoder)."""

    def __init__(self, cin: int, cout: int, *, norm: bool = False, first: bool = False, use_sn: bool = True):
        super().__init__()
        self.first = first  # no ReLU on raw pixels
        self.conv1, self.conv2 = conv(cin, cout, use_sn=use_sn), conv(cout, cout, use_sn=use_sn)
        self.skip = conv(cin, cout, 1, use_sn=use_sn)
        self.norm1 = nn.InstanceNorm2d(cin, affine=True) if norm else nn.Identity()
        self.norm2 = nn.InstanceNorm2d(cout, affine=True) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        h = h if self.first else F.relu(h)
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        return F.avg_pool2d(h, 2) + F.avg_pool2d(self.skip(x), 2)


class ResBlock(nn.Module):
    """Same-size residual block without normalisation (the discriminator's extra block at 4x4)."""

    def __init__(self, c: int, *, use_sn: bool = True):
        super().__init__()
        self.conv1, self.conv2 = conv(c, c, use_sn=use_sn), conv(c, c, use_sn=use_sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def adain(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Instance-normalise ``x`` (B, C, H, W), then scale and shift by ``params`` (B, 2C): [scales, biases]."""
    c = x.shape[1]
    scale, bias = params[:, :c, None, None], params[:, c:, None, None]
    return F.instance_norm(x, eps=1e-5) * scale + bias


class AdaResBlock(nn.Module):
    """AdaIN-relu-(upsample)-conv-AdaIN-relu-conv with a (1x1) skip; ``up`` doubles the size.

    ``adain_sizes`` are the lengths of the AdaIN parameter vectors it takes, in the order it uses them.
    """

    def __init__(self, cin: int, cout: int, *, up: bool = False, use_sn: bool = True):
        super().__init__()
        self.up = up
        self.conv1, self.conv2 = conv(cin, cout, use_sn=use_sn), conv(cout, cout, use_sn=use_sn)
        self.skip = conv(cin, cout, 1, use_sn=use_sn) if (cin != cout or up) else None
        self.adain_sizes = (2 * cin, 2 * cout)

    def forward(self, x: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
        h = F.relu(adain(x, p1))
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(adain(self.conv1(h), p2)))
        return h + (self.skip(x) if self.skip is not None else x)


def image_and_landmarks_trunk(cfg) -> list[nn.Module]:
    """The downsampling trunk shared by E and D (the paper gives them the same architecture): the frame
    and its landmark image (6 channels) through residual down blocks, self-attention at
    ``cfg.attention_down``, ending at ``cfg.embed_dim`` channels."""
    use_sn = cfg.spectral_norm
    blocks: list[nn.Module] = []
    cin, side = 6, cfg.resolution
    for i, cout in enumerate(cfg.embedder_channels[:-1]):
        blocks.append(ResBlockDown(cin, cout, first=i == 0, use_sn=use_sn))
        cin, side = cout, side // 2
        if side == cfg.attention_down:
            blocks.append(SelfAttention(cin, use_sn=use_sn))
    blocks.append(ResBlockDown(cin, cfg.embed_dim, use_sn=use_sn))
    return blocks
