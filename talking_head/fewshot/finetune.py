"""Few-shot fine-tuning (paper, section 3.3): a new person from K images, a bounded number of steps.

The person embedding e_new is the mean of E over the K shots. The generator G' keeps G's weights
but replaces P e by trainable AdaIN parameters psi' initialised to P e_new (P itself is dropped);
the discriminator D' keeps V and b and uses a trainable w' initialised to w0 + e_new. Then G' and
psi' minimise L_CNT + L_ADV (no embedding match) and D' the hinge loss, on the K shots only.

With ``steps=0`` this is the paper's feed-forward (FF) model: psi = P e_new, nothing trained.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .discriminator import Discriminator
from .generator import Generator
from .losses import discriminator_hinge, feature_matching, generator_adversarial
from .model import TalkingHeadModel


@dataclass
class FineTuned:
    """A person-specific generator: G' and its AdaIN parameters psi' (and D', w' for more steps)."""

    generator: Generator
    psi: nn.Parameter
    discriminator: Discriminator
    w: nn.Parameter
    steps_done: int = 0
    losses: list = dataclasses.field(default_factory=list)

    @torch.no_grad()
    def render(self, landmark_images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) landmark images in [-1, 1] -> generated frames in [-1, 1]."""
        self.generator.eval()
        return self.generator(landmark_images, self.psi)


def _copy(model: TalkingHeadModel) -> tuple[Generator, Discriminator]:
    cfg = dataclasses.replace(model.cfg, num_videos=0)
    g = Generator(cfg)
    g.load_state_dict(model.generator.state_dict())
    d = Discriminator(cfg)
    sd = dict(model.discriminator.state_dict())
    sd["W"] = torch.empty(0, cfg.embed_dim)
    d.load_state_dict(sd)
    device = next(model.parameters()).device
    return g.to(device), d.to(device)


def finetune(model: TalkingHeadModel, frames: torch.Tensor, landmarks: torch.Tensor, *, steps: int,
             content_loss: nn.Module | None = None, batch_size: int | None = None, lr_generator: float | None = None,
             lr_discriminator: float | None = None, adversarial: bool | None = None, seed: int = 0,
             progress=None) -> FineTuned:
    """Fine-tune on K shots: ``frames`` and ``landmarks`` (K, 3, H, W) in [-1, 1]; ``steps`` bounded.

    ``content_loss`` is required when ``steps > 0`` (see :func:`.losses.build_content_loss`).
    ``progress(step, steps)`` is called after each step.
    """
    cfg = model.cfg
    batch_size = batch_size or cfg.finetune_batch_size
    adversarial = cfg.finetune_adversarial if adversarial is None else adversarial
    device = next(model.parameters()).device
    frames, landmarks = frames.to(device), landmarks.to(device)
    model.eval()
    with torch.no_grad():
        e_new = model.embedder(frames, landmarks).mean(dim=0, keepdim=True)
        psi0 = model.generator.adain_params(e_new)
    g, d = _copy(model)
    psi = nn.Parameter(psi0.clone())
    w = nn.Parameter((d.w0.detach() + e_new[0]).clone())
    tuned = FineTuned(g, psi, d, w)
    if steps <= 0:
        return tuned
    if content_loss is None:
        raise ValueError("fine-tuning needs a content loss (build_content_loss(cfg))")
    content_loss = content_loss.to(device)
    g.project.requires_grad_(False)  # P is dropped: psi' replaces P e
    g_params = [p for n, p in g.named_parameters() if not n.startswith("project.")] + [psi]
    opt_g = torch.optim.Adam(g_params, lr=lr_generator or cfg.finetune_lr_generator, betas=cfg.betas_generator,
                             eps=cfg.adam_eps)
    d_params = [p for n, p in d.named_parameters() if n not in ("W", "w0")] + [w]
    opt_d = torch.optim.Adam(d_params, lr=lr_discriminator or cfg.finetune_lr_discriminator,
                             betas=cfg.betas_discriminator, eps=cfg.adam_eps)
    rng = np.random.default_rng(seed)
    k = frames.shape[0]
    g.train()
    d.train()
    for step in range(steps):
        idx = torch.as_tensor(rng.choice(k, batch_size, replace=k < batch_size), device=device)
        x, y = frames[idx], landmarks[idx]
        fake = g(y, psi)
        loss = content_loss(fake, x)
        rec = {"content": loss.item()}
        if adversarial:
            d.requires_grad_(False)
            v_fake, fake_feats = d.features(fake, y)
            with torch.no_grad():
                _, real_feats = d.features(x, y)
            l_adv = cfg.adversarial_weight * generator_adversarial(d.score(v_fake, w[None]))
            l_fm = cfg.feature_matching_weight * feature_matching(fake_feats, real_feats)
            loss = loss + l_adv + l_fm
            rec.update(adv=l_adv.item(), fm=l_fm.item())
            d.requires_grad_(True)
            d.W.requires_grad_(False)
            d.w0.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if adversarial:
            v, _ = d.features(torch.cat([x, fake.detach()]), torch.cat([y, y]))
            real_score, fake_score = d.score(v, w[None]).chunk(2)
            loss_d = discriminator_hinge(real_score, fake_score)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            rec["d_hinge"] = loss_d.item()
        tuned.losses.append(rec)
        tuned.steps_done = step + 1
        if progress:
            progress(step + 1, steps)
    g.eval()
    return tuned
