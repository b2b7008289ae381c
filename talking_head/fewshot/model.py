"""The three networks together, and their files: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

A saved model is a folder (or a Hub repo) with ``config.json`` and one safetensors file per network
(:data:`.specs.MODEL_FILES`). The discriminator's per-video table W (one row per *training* video:
72M numbers at VoxCeleb2's size, and identity information about the people in the training set) is
left out by default; fine-tuning needs only V, w0 and b.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from .config import FewShotConfig
from .discriminator import Discriminator
from .embedder import Embedder
from .generator import Generator
from .specs import MODEL_FILES, NETWORKS, model_specs

MODEL_CARD = Path(__file__).with_name("model_card_template.md")


class TalkingHeadModel(nn.Module):
    def __init__(self, cfg: FewShotConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.embedder = Embedder(cfg)
        self.generator = Generator(cfg)
        self.discriminator = Discriminator(cfg)

    def parameter_counts(self) -> dict[str, int]:
        n = {name: sum(p.numel() for p in getattr(self, name).parameters()) for name in NETWORKS}
        n["generator.project"] = sum(p.numel() for p in self.generator.project.parameters())
        n["discriminator.W"] = self.discriminator.W.numel()
        return n

    # -- inference helpers ------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, frames: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """(K, 3, H, W) shots of one person -> (1, N) mean embedding."""
        return self.embedder(frames, landmarks).mean(dim=0, keepdim=True)

    @torch.no_grad()
    def feed_forward(self, landmarks: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The paper's FF model: frames for landmark images (B, 3, H, W), no fine-tuning."""
        return self.generator(landmarks, self.generator.adain_params(embedding))

    # -- files ------------------------------------------------------------------------------
    def state_dicts(self, include_video_embeddings: bool = False) -> dict[str, dict[str, torch.Tensor]]:
        out = {}
        for name in NETWORKS:
            sd = {k: v.detach().cpu().contiguous() for k, v in getattr(self, name).state_dict().items()}
            if name == "discriminator" and not include_video_embeddings:
                sd.pop("W")
            out[name] = sd
        return out

    def save_pretrained(self, directory: str | Path, *, include_video_embeddings: bool = False,
                        card: bool = True, card_fields: dict | None = None) -> Path:
        """Write config.json, the three safetensors files and (``card``) a README.md model card, atomically."""
        from safetensors.torch import save_file
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".fewshot-", dir=directory.parent))
        try:
            cfg = self.cfg.to_dict()
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
            for name, sd in self.state_dicts(include_video_embeddings).items():
                save_file(sd, str(tmp / f"{name}.safetensors"), metadata={"format": "pt", "network": name})
            if card:
                (tmp / "README.md").write_text(render_model_card(self, card_fields or {}))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def from_state_dicts(cls, cfg: FewShotConfig, sds: dict[str, dict]) -> TalkingHeadModel:
        disc = dict(sds["discriminator"])
        n_videos = disc["W"].shape[0] if "W" in disc else 0
        cfg = dataclasses.replace(cfg, num_videos=n_videos)
        model = cls(cfg)
        if "W" not in disc:
            disc["W"] = torch.empty(0, cfg.embed_dim)
        model.embedder.load_state_dict(sds["embedder"], strict=True)
        model.generator.load_state_dict(sds["generator"], strict=True)
        model.discriminator.load_state_dict(disc, strict=True)
        return model.eval()

    @classmethod
    def from_pretrained(cls, source: str | Path, *, revision: str | None = None, download: bool = False,
                        local_dir: str | Path | None = None) -> TalkingHeadModel:
        """Load from a folder written by :meth:`save_pretrained`, or from a Hub repo id through the
        checkpoint module (``download=False``: only the local Hugging Face cache is used)."""
        from .. import checkpoints
        p = Path(source)
        if p.is_dir():
            from safetensors.torch import load_file
            missing = [f for f in MODEL_FILES if not (p / f).is_file()]
            if missing:
                from ..errors import CheckpointError
                raise CheckpointError(f"The few-shot model folder {p} lacks {', '.join(missing)}; "
                                      "write it with save_pretrained (or train one).", reason="missing")
            cfg = FewShotConfig.from_dict(json.loads((p / "config.json").read_text()))
            sds = {n: load_file(str(p / f"{n}.safetensors"), device="cpu") for n in NETWORKS}
            return cls.from_state_dicts(cfg, sds)
        specs = model_specs(str(source), revision)
        paths = checkpoints.ensure("fewshot", local_dir=local_dir, download=download, file_specs=specs)
        cfg = FewShotConfig.from_dict(json.loads(Path(paths["config.json"]).read_text()))
        sds = {}
        for spec in specs[1:]:
            sds.update(checkpoints.state_dicts_from(spec, Path(paths[spec.filename])))
        return cls.from_state_dicts(cfg, sds)

    def push_to_hub(self, repo_id: str, *, private: bool = True, token: str | None = None,
                    commit_message: str = "Upload few-shot talking-head model", card_fields: dict | None = None,
                    api=None) -> str:
        """Create ``repo_id`` (private by default) and upload the saved files; returns the commit id."""
        from huggingface_hub import HfApi
        api = api or HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", card_fields=card_fields)
            info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
        return getattr(info, "oid", None) or str(info)


def render_model_card(model: TalkingHeadModel, fields: dict) -> str:
    """The model card template filled with this model's facts; ``fields`` adds or overrides entries."""
    counts = model.parameter_counts()
    values = {
        "resolution": model.cfg.resolution,
        "embed_dim": model.cfg.embed_dim,
        "params_embedder": f"{counts['embedder'] / 1e6:.2f}M",
        "params_generator": f"{counts['generator'] / 1e6:.2f}M",
        "params_discriminator": f"{(counts['discriminator'] - counts['discriminator.W']) / 1e6:.2f}M",
        "training_data": "(fill in: dataset, number of videos and people, licence)",
        "training_steps": "(fill in)",
        "content_loss": ("pixel-L1 substitute (NOT the paper's perceptual loss)"
                         if model.cfg.content_substitute == "pixel" else "VGG19 + VGGFace perceptual loss"),
        "evaluation": "(fill in: self-reenactment L1/SSIM per K, static baseline, from scripts/fewshot_experiment.py)",
    }
    values.update(fields)
    text = MODEL_CARD.read_text()
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", str(v))
    return text
