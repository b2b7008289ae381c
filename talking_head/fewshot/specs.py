"""Checkpoint specs of the few-shot model: the content-loss networks and trained model files.

Specs are :class:`talking_head.checkpoints.FileSpec` objects, read through the project's checkpoint
module (download per file, size/sha256 checks, safetensors loading). Repos and revisions are
configurable, because nobody publishes these files yet:

* content-loss networks: ``$LIVING_PORTRAITS_FEWSHOT_CONTENT_REPO`` (default
  :data:`CONTENT_REPO`) holding ``vgg19_caffe_rgb.safetensors`` and ``vggface_caffe_rgb.safetensors``
  in our layout (see :mod:`talking_head.fewshot.vgg` and ``python -m talking_head.fewshot.convert``);
* a trained model: ``$LIVING_PORTRAITS_FEWSHOT_REPO`` (+ ``_REVISION``), or a folder in
  ``$LIVING_PORTRAITS_FEWSHOT_DIR``, holding the files of :data:`MODEL_FILES`.
"""
from __future__ import annotations

import os

from ..checkpoints import FileSpec

CONTENT_REPO = "living-portraits/fewshot-content-networks"   # to be created by the project (see README)
CONTENT_ENGINE = "fewshot_content"
MODEL_ENGINE = "fewshot"
MODEL_FILES = ("config.json", "embedder.safetensors", "generator.safetensors", "discriminator.safetensors")
NETWORKS = ("embedder", "generator", "discriminator")


def content_specs(repo_id: str | None = None, revision: str | None = None) -> tuple[FileSpec, ...]:
    """VGG19 and VGGFace for the content loss (no digest pinned: the project publishes them)."""
    repo = repo_id or os.environ.get("LIVING_PORTRAITS_FEWSHOT_CONTENT_REPO") or CONTENT_REPO
    rev = revision or os.environ.get("LIVING_PORTRAITS_FEWSHOT_CONTENT_REVISION") or None
    note = "converted from the Caffe models (RGB input, 0..255 minus mean); no digest pinned yet"
    return (
        FileSpec(CONTENT_ENGINE, "VGG19 (ImageNet, Caffe) content-loss network", "vgg19_caffe_rgb.safetensors",
                 fmt="safetensors", repo_id=repo, revision=rev, networks=("vgg19",), note=note),
        FileSpec(CONTENT_ENGINE, "VGGFace (Caffe) content-loss network", "vggface_caffe_rgb.safetensors",
                 fmt="safetensors", repo_id=repo, revision=rev, networks=("vggface",), note=note),
    )


def configured_model_repo() -> tuple[str | None, str | None]:
    """(Hub repo, revision) from the environment, or (None, None)."""
    return (os.environ.get("LIVING_PORTRAITS_FEWSHOT_REPO") or None,
            os.environ.get("LIVING_PORTRAITS_FEWSHOT_REVISION") or None)


def model_specs(repo_id: str, revision: str | None = None) -> tuple[FileSpec, ...]:
    """The files of a trained few-shot model in ``repo_id``; ``config.json`` is read as JSON, not weights."""
    note = "trained with talking_head.fewshot; digest not pinned"
    out = [FileSpec(MODEL_ENGINE, "few-shot model config", "config.json", fmt="json", repo_id=repo_id,
                    revision=revision, note=note)]
    for net in NETWORKS:
        out.append(FileSpec(MODEL_ENGINE, f"few-shot {net}", f"{net}.safetensors", fmt="safetensors",
                            repo_id=repo_id, revision=revision, networks=(net,), note=note))
    return tuple(out)
