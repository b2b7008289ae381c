"""One config dataclass for the few-shot talking-head model: networks, losses, training, fine-tuning.

Defaults are the paper's (Zakharov et al., ICCV 2019, camera-ready v2 where v1 and v2 differ); see
``shared/research/seed_paper.md`` for how sure each number is. ``FewShotConfig.tiny()`` is a
small model for tests and CPU runs; ``from_file`` reads JSON (or TOML) holding any subset of fields.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

# Caffe means (RGB order) of the two content-loss networks; the paper used the Caffe models.
VGG19_CAFFE_MEAN = (123.68, 116.779, 103.939)
VGGFACE_CAFFE_MEAN = (129.1863, 104.7624, 93.5940)


@dataclass
class FewShotConfig:
    # -- networks ---------------------------------------------------------------------------
    resolution: int = 256                  # square frames and landmark images, pixels
    embed_dim: int = 512                   # N: size of the person embedding e
    # ReLU after the embedder's sum pooling (paper). In a toy CPU run it died (all embeddings exactly 0,
    # so the feed-forward model ignored the shots); False keeps the pooled sum as it is.
    embedder_relu: bool = True
    # One BigGAN-style downsampling residual block per entry (out channels); 256 -> 4 at the paper's size.
    embedder_channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512)
    generator_down: tuple[int, ...] = (64, 128, 256, 512)   # IN-normalised downsampling blocks
    generator_res_blocks: int = 4                            # AdaIN residual blocks at the bottleneck
    generator_up: tuple[int, ...] = (512, 256, 128, 64)     # AdaIN upsampling blocks
    attention_down: int = 32               # self-attention where the downsampling path reaches this side
    attention_up: int = 64                 # ... and where the upsampling path reaches this side
    spectral_norm: bool = True             # on every conv and linear layer (paper)
    num_videos: int = 1                    # rows of the discriminator's per-video embedding table W
    landmark_thickness: float = 2.0        # line width at 256 px (lab convention), scaled with resolution
    crop_scale: float = 1.8                # square crop side / landmark bounding-box side
    crop_shift: float = 0.12               # crop centre moved up by this share of the side (room for hair)

    # -- losses (paper v2 weights; v1: vgg19 1e-2, vggface 2e-3, mch 80) ----------------------
    content_vgg19_weight: float = 1.5e-1
    content_vggface_weight: float = 2.5e-2
    vgg19_layers: tuple[int, ...] = (1, 6, 11, 20, 29)     # indices into VGG19 ``features`` (relu1_1..relu5_1)
    vggface_layers: tuple[int, ...] = (1, 6, 11, 18, 25)   # indices into VGG16 ``features`` (relu1_1..relu5_1)
    # "none": the VGG19/VGGFace weights must be present (the paper). "pixel": a documented substitute
    # (multi-scale L1 on pixels, weight below) for runs without them; only used when set explicitly.
    content_substitute: str = "none"
    pixel_substitute_weight: float = 10.0
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 10.0   # lambda_FM
    match_weight: float = 10.0              # lambda_MCH (v2; v1 used 80)
    # False (the paper): only E minimises L_MCH, W learns from the hinge loss alone. True also pulls W_i
    # towards the detached embedding in the D step; in a toy run that let both collapse to ~0 (FF identical for all K).
    match_updates_w: bool = False

    # -- meta-learning ------------------------------------------------------------------------
    shots: int = 8                          # K frames for the embedder per episode (+1 target)
    batch_size: int = 2                     # episodes per step, global (split across DDP ranks)
    lr_generator: float = 5e-5              # E, G and P
    lr_discriminator: float = 2e-4          # D, W, w0, b
    betas_generator: tuple[float, float] = (0.5, 0.999)
    betas_discriminator: tuple[float, float] = (0.0, 0.999)
    adam_eps: float = 1e-8
    d_steps_per_g_step: int = 2
    steps: int = 100_000
    amp: str = "auto"                       # "auto" (bf16 on a GPU that has it, else off), "bf16", "fp16", "off"
    seed: int = 0
    num_workers: int = 2

    # -- data -----------------------------------------------------------------------------
    data_root: str = ""                     # folder of id/video/clip.mp4, or of frame folders
    frames_per_video: int = 32              # frames kept per video when it is read the first time
    landmark_backend: str = "auto"
    holdout: tuple[str, ...] = ()           # person ids (top folder names) or video names left out

    # -- logging and checkpoints --------------------------------------------------------------
    out_dir: str = "runs/fewshot"
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 2000
    resume: bool = True                     # continue from out_dir/training_state.safetensors when present

    # -- few-shot fine-tuning -----------------------------------------------------------------
    finetune_steps: int = 40                # bounded, per new person
    finetune_batch_size: int = 2
    finetune_lr_generator: float = 5e-5
    finetune_lr_discriminator: float = 2e-4
    finetune_adversarial: bool = True       # False: content loss only (faster, for a CPU preview)

    extra: dict = field(default_factory=dict)  # free-form notes carried into the checkpoint

    # ------------------------------------------------------------------------------------------
    @classmethod
    def paper(cls, **overrides) -> FewShotConfig:
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides) -> FewShotConfig:
        """A few-hundred-thousand-parameter model at 64 px that trains on a 2-core CPU."""
        base = {"resolution": 64, "embed_dim": 64, "embedder_channels": (16, 32, 64, 64), "generator_down": (16, 32, 64),
                    "generator_res_blocks": 2, "generator_up": (64, 32, 16), "attention_down": 16, "attention_up": 32,
                    "shots": 4, "batch_size": 2, "lr_generator": 2e-4, "lr_discriminator": 4e-4, "frames_per_video": 24,
                    "log_every": 10, "sample_every": 100, "checkpoint_every": 200, "finetune_steps": 60,
                    "finetune_lr_generator": 5e-4, "finetune_lr_discriminator": 8e-4}
        base.update(overrides)
        return cls(**base)

    def validate(self) -> FewShotConfig:
        r = self.resolution
        for name, chans in (("embedder_channels", self.embedder_channels), ("generator_down", self.generator_down)):
            if r % (2 ** len(chans)):
                raise ValueError(f"resolution {r} is not divisible by 2**len({name}) = {2 ** len(chans)}")
        if len(self.generator_up) != len(self.generator_down):
            raise ValueError("generator_up must have as many blocks as generator_down (the output is full size)")
        if self.content_substitute not in ("none", "pixel"):
            raise ValueError(f"content_substitute must be 'none' or 'pixel', not {self.content_substitute!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be auto, bf16, fp16 or off, not {self.amp!r}")
        return self

    # -- files ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> FewShotConfig:
        """Fields from ``d``; ``preset`` ("paper" or "tiny") picks the base; unknown keys are an error."""
        d = dict(d)
        preset = d.pop("preset", "paper")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        for k, v in list(d.items()):
            if isinstance(v, list):
                d[k] = tuple(v)
        base = {"paper": cls.paper, "tiny": cls.tiny}.get(preset)
        if base is None:
            raise ValueError(f"unknown preset {preset!r}; use 'paper' or 'tiny'")
        return base(**d).validate()

    @classmethod
    def from_file(cls, path: str | Path) -> FewShotConfig:
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib
            return cls.from_dict(tomllib.loads(text))
        return cls.from_dict(json.loads(text))
