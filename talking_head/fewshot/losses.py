"""The paper's losses: content (VGG19 + VGGFace), adversarial hinge with feature matching, embedding match.

E and G minimise L_CNT + L_ADV + L_MCH; D minimises the hinge L_DSC. Every weight is a config field
with the paper's value as default. The content loss needs the two feature networks' weights
(:mod:`.specs`); without them :func:`build_content_loss` raises :class:`ContentWeightsMissing`
unless the config asks for the documented substitute (``content_substitute="pixel"``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, TalkingHeadError
from .config import FewShotConfig
from .vgg import VGGFeatures, load_features, vgg19, vggface

log = logging.getLogger(__name__)


class ContentWeightsMissing(TalkingHeadError):
    """The content loss's feature networks are not available and no substitute was asked for."""


class PerceptualLoss(nn.Module):
    """L_CNT: weighted L1 between VGG19 and VGGFace activations of the generated and the real frame."""

    def __init__(self, cfg: FewShotConfig, nets: dict[str, VGGFeatures]):
        super().__init__()
        self.vgg19, self.vggface = nets["vgg19"], nets["vggface"]
        self.w19, self.wface = cfg.content_vgg19_weight, cfg.content_vggface_weight

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        # Real features need no graph; the fake's keep theirs (an early reimplementation cut them with .data).
        total = fake.new_zeros(())
        for net, w in ((self.vgg19, self.w19), (self.vggface, self.wface)):
            with torch.no_grad():
                target = net(real)
            for a, b in zip(net(fake), target):
                total = total + w * F.l1_loss(a, b)
        return total


class PixelContentLoss(nn.Module):
    """The documented substitute: L1 on pixels at full, 1/2 and 1/4 size, times ``pixel_substitute_weight``.

    Not the paper's loss (which is perceptual); for runs without the VGG weights, asked for explicitly.
    """

    def __init__(self, cfg: FewShotConfig):
        super().__init__()
        self.weight = cfg.pixel_substitute_weight

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        total = fake.new_zeros(())
        for _ in range(3):
            total = total + F.l1_loss(fake, real)
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        return self.weight * total / 3


def load_content_networks(cfg: FewShotConfig, *, local_dir: Path | str | None = None,
                          download: bool = False, repo_id: str | None = None) -> dict[str, VGGFeatures]:
    """VGG19 and VGGFace with weights read through the checkpoint module (never downloaded unless asked)."""
    from .. import checkpoints
    from .specs import content_specs
    sds = checkpoints.load_state_dicts("fewshot_content", local_dir=local_dir, download=download,
                                       file_specs=content_specs(repo_id))
    return {"vgg19": load_features(vgg19(cfg.vgg19_layers), sds["vgg19"]),
            "vggface": load_features(vggface(cfg.vggface_layers), sds["vggface"])}


def build_content_loss(cfg: FewShotConfig, *, local_dir: Path | str | None = None, download: bool = False,
                       repo_id: str | None = None, nets: dict[str, VGGFeatures] | None = None) -> nn.Module:
    """L_CNT as the paper has it, or the pixel substitute when ``cfg.content_substitute == "pixel"``.

    With ``content_substitute="none"`` (the default) missing weights are an error that says what to do.
    """
    if cfg.content_substitute == "pixel":
        log.warning("content loss: using the pixel substitute (multi-scale L1), not the paper's VGG19/VGGFace loss")
        return PixelContentLoss(cfg)
    if nets is None:
        try:
            nets = load_content_networks(cfg, local_dir=local_dir, download=download, repo_id=repo_id)
        except CheckpointError as e:
            raise ContentWeightsMissing(
                f"The content loss needs the VGG19 and VGGFace weights, and they are not available: {e} "
                "Convert and publish them (python -m talking_head.fewshot.convert), point "
                "LIVING_PORTRAITS_FEWSHOT_CONTENT_REPO at them, or set content_substitute = \"pixel\" in the "
                "config to train with the documented pixel-L1 substitute instead.") from None
    return PerceptualLoss(cfg, nets)


# -- adversarial ------------------------------------------------------------------------------------
def generator_adversarial(fake_score: torch.Tensor) -> torch.Tensor:
    """-D(x_hat): the generator raises the realism score."""
    return -fake_score.mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between D's block outputs for fake and (detached) real, summed over blocks."""
    total = fake_feats[0].new_zeros(())
    for a, b in zip(fake_feats, real_feats):
        total = total + F.l1_loss(a, b.detach())
    return total


def discriminator_hinge(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """L_DSC = max(0, 1 + D(x_hat)) + max(0, 1 - D(x))."""
    return F.relu(1 + fake_score).mean() + F.relu(1 - real_score).mean()


def embedding_match(w: torch.Tensor, e_hat: torch.Tensor) -> torch.Tensor:
    """L_MCH before its weight: mean |W_i - e_hat_i| (the reimplementations' L1Loss)."""
    return F.l1_loss(w, e_hat)
