"""Build the LivePortrait networks at the official configuration and load state dicts.

``load_network(name, state_dict)`` returns an eval-mode module; loading is ``strict=True``
so key names and shapes must be exactly those of the official checkpoint files.
Names are the manifest's network names: appearance_feature_extractor, motion_extractor,
warping_module, spade_generator, and (stitching_retargeting_module.)retarget_shoulder /
retarget_mouth / retarget_eye.
"""
from __future__ import annotations

from torch import nn

from .appearance import AppearanceFeatureExtractor
from .generator import SPADEDecoder
from .mlp import MLP_SIZES, build_mlp
from .motion import MotionExtractor
from .warping import WarpingNetwork

BUILDERS = {
    "appearance_feature_extractor": AppearanceFeatureExtractor,
    "motion_extractor": MotionExtractor,
    "warping_module": WarpingNetwork,
    "spade_generator": SPADEDecoder,
}


def build_network(name: str) -> nn.Module:
    if name in BUILDERS:
        return BUILDERS[name]()
    if name.rsplit(".", 1)[-1] in MLP_SIZES:
        return build_mlp(name)
    raise KeyError(f"unknown LivePortrait network {name!r}")


def load_network(name: str, state_dict) -> nn.Module:
    net = build_network(name)
    net.load_state_dict(state_dict, strict=True)
    return net.eval().requires_grad_(False)
