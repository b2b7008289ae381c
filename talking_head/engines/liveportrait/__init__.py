"""Our own PyTorch implementation of the LivePortrait networks (KwaiVGI/LivePortrait).

Written from the architecture description in shared/research/liveportrait.md and checked
against reference vectors (shared/refcheck).  Every network here loads the official
state dicts with ``strict=True`` (same key names), so the released checkpoints can be used
unchanged.  Nothing here reads files or talks to a UI: callers hand in state dicts.

Modules:
  kpmath     pure functions: pose bins -> degrees, rotation matrices, keypoint transform
  layers     shared building blocks (BatchNorm blocks, channels-first LayerNorm, spectral-norm conv)
  appearance F: image -> 3-D appearance feature volume
  motion     M: image -> pose / expression / keypoint heads (ConvNeXt-V2 tiny)
  warping    W: dense motion (3-D hourglass), occlusion, feature warping
  generator  G: SPADE decoder, warped feature -> 512x512 image
  mlp        stitching and eye / lip retargeting MLPs
"""
