"""Turn published VGG19 / VGGFace weights into the content-loss files our specs name.

    python -m talking_head.fewshot.convert --net vgg19 --input vgg19_caffe.pth --bgr --out weights/
    python -m talking_head.fewshot.convert --net vggface --input vgg_face_dag.pth --out weights/

Inputs: a torch state dict (read with ``weights_only=True``) or a safetensors file, with torchvision
keys (``features.N.weight``) or MatConvNet "dag" keys (``conv1_1.weight``). ``--bgr`` for weights
whose first conv reads BGR (Caffe originals converted without reordering). The inputs must expect
0..255 pixels minus the Caffe means (see :mod:`.vgg`); torchvision's own ImageNet VGG19 does not
(it expects 0..1 pixels normalised by mean/std) and would mis-scale the paper's loss weights.
Upload the output folder to the repo named by ``LIVING_PORTRAITS_FEWSHOT_CONTENT_REPO``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .vgg import convert_state_dict

FILENAMES = {"vgg19": "vgg19_caffe_rgb.safetensors", "vggface": "vggface_caffe_rgb.safetensors"}


def convert_file(net: str, src: Path, out_dir: Path, *, bgr: bool = False) -> Path:
    from safetensors.torch import load_file, save_file
    sd = load_file(str(src)) if src.suffix == ".safetensors" else torch.load(str(src), map_location="cpu",
                                                                             weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    ours = convert_state_dict(sd, net, bgr=bgr)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / FILENAMES[net]
    save_file(ours, str(dest), metadata={"format": "pt", "input": "RGB, 0..255 minus the Caffe mean", "net": net})
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m talking_head.fewshot.convert", description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=sorted(FILENAMES), required=True)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--bgr", action="store_true", help="the first conv of the input reads BGR")
    p.add_argument("--out", type=Path, default=Path("."))
    a = p.parse_args(argv)
    try:
        print(convert_file(a.net, a.input, a.out, bgr=a.bgr))
    except (KeyError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
