"""Adapter for shared/refcheck/check_vectors.py (``--impl talking_head.engines.liveportrait.refcheck_adapter``).

Each function takes the state dict of one network (as fill.fill() makes it) and numpy or torch
inputs; networks are built once per state dict (cached by object id) and run in fp32 eval mode.
"""
from __future__ import annotations

import numpy as np
import torch

from .mlp import MLP_SIZES
from .nets import load_network

_CACHE: dict = {}


def _net(name, weights):
    key = (name, id(weights))
    if key not in _CACHE:
        _CACHE[key] = (load_network(name, weights), weights)  # keep weights alive: id stays unique
    return _CACHE[key][0]


def _t(a):
    if isinstance(a, torch.Tensor):
        return a.float()
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def appearance(weights, I_s):
    with torch.no_grad():
        return _net("appearance_feature_extractor", weights)(_t(I_s))


def motion(weights, I):
    with torch.no_grad():
        return _net("motion_extractor", weights)(_t(I))


def warp(weights, f_s, x_s, x_d):
    with torch.no_grad():
        return _net("warping_module", weights)(_t(f_s), _t(x_d).reshape(1, -1, 3),
                                               _t(x_s).reshape(1, -1, 3))


def decode(weights, feature):
    with torch.no_grad():
        return _net("spade_generator", weights)(_t(feature))


def mlp(weights, x):
    # the three MLPs share key names; tell them apart by the input width
    width = weights["mlp.0.weight"].shape[1]
    name = next(n for n, (i, _, _) in MLP_SIZES.items() if i == width)
    with torch.no_grad():
        return _net(name, weights)(_t(x))
