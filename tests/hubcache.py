"""Test helper: write LivePortrait weights in the official file layout into a fake Hugging Face cache.

The layout is what ``huggingface_hub`` itself leaves behind, so the real ``hf_hub_download`` finds the
files with ``HF_HUB_OFFLINE=1``: ``<cache>/models--KwaiVGI--LivePortrait/refs/main`` holds a commit id,
``snapshots/<commit>/<path in repo>`` holds the files.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

REPO_ID = "KwaiVGI/LivePortrait"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
BASE = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")
STITCH_FILE = "liveportrait/retargeting_models/stitching_retargeting_module.pth"


def official_files(state_dicts: dict[str, dict]) -> dict[str, object]:
    """``{path in repo: object to torch.save}`` in the official layout.

    Base models are plain state dicts; the stitching file is a dict of three sub-dicts whose keys carry
    DDP's ``module.`` prefix. Networks absent from ``state_dicts`` are left out.
    """
    files: dict[str, object] = {}
    for name in BASE:
        if name in state_dicts:
            files[f"liveportrait/base_models/{name}.pth"] = state_dicts[name]
    parts = {}
    for sub in ("retarget_shoulder", "retarget_mouth", "retarget_eye"):
        sd = state_dicts.get(f"stitching_retargeting_module.{sub}")
        if sd is not None:
            parts[sub] = {"module." + k: v for k, v in sd.items()}
    if parts:
        files[STITCH_FILE] = parts
    return files


def snapshot_dir(cache: Path, repo_id: str = REPO_ID, commit: str = FAKE_COMMIT) -> Path:
    """Create the cache skeleton (refs/main -> commit) and return the snapshot folder."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_files(root: Path, files: dict[str, object]) -> dict[str, Path]:
    """``torch.save`` each object at ``root/<path>``; returns the paths."""
    out = {}
    for rel, obj in files.items():
        p = Path(root) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, p)
        out[rel] = p
    return out


def write_hub_cache(cache: Path, state_dicts: dict[str, dict], repo_id: str = REPO_ID) -> dict[str, Path]:
    """Official-layout files for ``state_dicts`` in a fake hub cache at ``cache``; ``{path in repo: file}``."""
    return write_files(snapshot_dir(cache, repo_id), official_files(state_dicts))


def offline_env(monkeypatch, cache: Path) -> None:
    """Point huggingface_hub at ``cache`` with the network forbidden (for one test)."""
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(cache.parent / "hf-home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("LIVING_PORTRAITS_WEIGHTS", raising=False)


def digest_of(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def matching_specs(paths: dict[str, Path]):
    """The real LivePortrait specs with size + sha256 of the synthetic files instead of the real ones."""
    from talking_head import checkpoints as ck
    return tuple(dataclasses.replace(s, sha256=digest_of(paths[s.filename]), size=paths[s.filename].stat().st_size)
                 for s in ck.specs("liveportrait"))
