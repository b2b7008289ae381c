"""VGG19 and VGGFace feature networks for the content loss, written here (no torchvision).

Both keep torchvision's ``features`` indexing (conv, ReLU, pool in one ``nn.Sequential``), so the
paper's layer numbers (VGG19 1, 6, 11, 20, 29; VGGFace 1, 6, 11, 18, 25: relu1_1 ... relu5_1) index
them directly, and only the layers up to the deepest one used are built.

Our weight files (safetensors, ``features.N.weight`` / ``features.N.bias``) take **RGB** input in
0..255 minus the network's RGB mean, as the paper's Caffe models do after their BGR order is undone:
:func:`convert_state_dict` turns the common published layouts into ours (Caffe-converted VGG19 in
torchvision key layout with BGR first conv; VGGFace "vgg_face_dag" keys ``conv1_1.weight`` ...).
"""
from __future__ import annotations

import torch
from torch import nn

# Channels per conv, "M" a 2x2 max pool (Simonyan & Zisserman configurations E and D).
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGGFeatures(nn.Module):
    """``features`` of a VGG up to index ``max(layers)``; :meth:`forward` returns the outputs at ``layers``."""

    def __init__(self, cfg: tuple, layers: tuple[int, ...], mean_rgb: tuple[float, float, float]):
        super().__init__()
        mods: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
            if len(mods) > max(layers):
                break
        self.features = nn.Sequential(*mods[: max(layers) + 1])
        self.layers = tuple(layers)
        self.register_buffer("mean", torch.tensor(mean_rgb).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (RGB) -> 0..255 minus the mean, as the Caffe models were trained."""
        return (x + 1) * 127.5 - self.mean

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.preprocess(x)
        out = []
        for i, m in enumerate(self.features):
            h = m(h)
            if i in self.layers:
                out.append(h)
        return out

    def train(self, mode: bool = True):  # always frozen and in eval mode
        return super().train(False)


def vgg19(layers=(1, 6, 11, 20, 29)) -> VGGFeatures:
    from .config import VGG19_CAFFE_MEAN
    return VGGFeatures(VGG19_CFG, layers, VGG19_CAFFE_MEAN)


def vggface(layers=(1, 6, 11, 18, 25)) -> VGGFeatures:
    from .config import VGGFACE_CAFFE_MEAN
    return VGGFeatures(VGG16_CFG, layers, VGGFACE_CAFFE_MEAN)


def _conv_indices(cfg: tuple) -> list[int]:
    out, i = [], 0
    for v in cfg:
        if v == "M":
            i += 1
        else:
            out.append(i)
            i += 2
    return out


def _dag_names(cfg: tuple) -> list[str]:
    names, block, k = [], 1, 0
    for v in cfg:
        if v == "M":
            block, k = block + 1, 0
        else:
            k += 1
            names.append(f"conv{block}_{k}")
    return names


def convert_state_dict(sd: dict, net: str, *, bgr: bool = False) -> dict[str, torch.Tensor]:
    """A published VGG state dict -> our layout (``features.N.*``, RGB first conv), convs only.

    ``net`` is ``vgg19`` or ``vggface``. Keys may be torchvision's (``features.N.weight``) or the
    MatConvNet/"dag" names (``conv1_1.weight``). ``bgr=True`` for weights whose first conv reads BGR
    (Caffe originals): its input channels are flipped.
    """
    cfg = VGG19_CFG if net == "vgg19" else VGG16_CFG
    idx = _conv_indices(cfg)
    out = {}
    for name, i in zip(_dag_names(cfg), idx):
        for part in ("weight", "bias"):
            t = sd.get(f"features.{i}.{part}", sd.get(f"{name}.{part}"))
            if t is None:
                raise KeyError(f"{net}: neither features.{i}.{part} nor {name}.{part} in the state dict")
            out[f"features.{i}.{part}"] = t.detach().float().contiguous()
    if bgr:
        out["features.0.weight"] = out["features.0.weight"].flip(1).contiguous()
    return out


def load_features(model: VGGFeatures, sd: dict[str, torch.Tensor]) -> VGGFeatures:
    """Load our layout, keeping only the layers ``model`` builds (the file may hold all convs)."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise KeyError(f"the weights lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    model.load_state_dict({k: sd[k] for k in own}, strict=True)
    return model
