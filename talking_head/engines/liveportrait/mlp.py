"""Stitching and eye / lip retargeting MLPs: Linear-ReLU-...-Linear (keys ``mlp.{0,2,...}``)."""
from __future__ import annotations

from itertools import pairwise

from torch import nn

# official sizes: name in the checkpoint file -> (input, hidden, output)
MLP_SIZES = {
    "retarget_shoulder": (126, (128, 128, 64), 65),   # stitching
    "retarget_mouth": (65, (128, 128, 64), 63),       # lip
    "retarget_eye": (66, (256, 256, 128, 128, 64), 63),
}


class RetargetMLP(nn.Module):
    def __init__(self, input_size: int, hidden_sizes, output_size: int):
        super().__init__()
        sizes = [input_size, *hidden_sizes]
        layers = []
        for a, b in pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        return self.mlp(x)


def build_mlp(name: str) -> RetargetMLP:
    """``name``: retarget_shoulder / retarget_mouth / retarget_eye (optionally with a prefix)."""
    i, h, o = MLP_SIZES[name.rsplit(".", 1)[-1]]
    return RetargetMLP(i, h, o)
