"""Training data: a folder of talking-head videos -> face crops with 68-point landmarks -> episodes.

Layouts read (each clip is one "video", i.e. one row of the discriminator's table W):

* VoxCeleb-style ``root/<person>/<video>/<clip>.mp4`` (any depth: the person is the first folder);
* extracted frames ``root/<person>/<video>/<clip>/*.png|jpg`` (a folder of images is one clip);
* flat ``root/<clip>.mp4`` (each file its own person).

Each clip is read once: ``frames_per_video`` frames spread evenly over it, landmarks from the
project's face backends (MediaPipe's mesh is reduced to 68 points), one fixed square crop per clip
around the median face (so head motion stays visible in the landmarks), resized to the model's
resolution. The result is cached in the project's :class:`~talking_head.cache.DiskCache`, keyed by
the clip's bytes and every setting that changes it.

An episode (:class:`Episode`) is K shots plus one target frame of one clip, as in the paper.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cache import DiskCache, bytes_digest, file_digest
from .config import FewShotConfig
from .landmarks import crop_box, crop_image, rasterize, to_crop, to_ibug68

log = logging.getLogger(__name__)
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class ClipSource:
    person: str
    name: str             # path relative to the root, unique
    path: Path            # a video file, or a folder of frames


@dataclass
class ClipData:
    """One prepared clip: crops (T, R, R, 3) uint8 RGB and landmarks (T, 68, 2) in crop pixels."""

    source: ClipSource
    frames: np.ndarray
    landmarks: np.ndarray

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, frames=self.frames, landmarks=self.landmarks.astype(np.float32))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, source: ClipSource, data: bytes) -> ClipData:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(source, z["frames"], z["landmarks"])


def discover(root: str | Path) -> list[ClipSource]:
    """Every clip under ``root`` (sorted, so the video index of a clip is stable)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder {root} does not exist")
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        is_video = p.is_file() and p.suffix.lower() in VIDEO_EXT
        is_frames = p.is_dir() and any(c.suffix.lower() in IMAGE_EXT for c in p.iterdir() if c.is_file())
        if is_video or is_frames:
            person = rel.parts[0] if len(rel.parts) > 1 else (p.stem if is_video else p.name)
            out.append(ClipSource(person, rel.as_posix(), p))
    return out


def _read_clip_frames(src: ClipSource, n: int) -> list[np.ndarray]:
    """``n`` frames spread evenly over the clip (all of them when it has fewer)."""
    if src.path.is_dir():
        from ..images import load_image
        files = sorted(f for f in src.path.iterdir() if f.suffix.lower() in IMAGE_EXT)
        keep = np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int))
        return [load_image(files[i], max_side=None) for i in keep]
    from .. import video
    info = video.probe(src.path)
    keep = set(np.unique(np.linspace(0, info.n_frames - 1, min(n, info.n_frames)).round().astype(int)).tolist())
    frames = []
    for i, f in enumerate(video.read_frames(src.path, info, max_side=720)):
        if i in keep:
            frames.append(f)
    return frames


def _content_key(src: ClipSource) -> str:
    if src.path.is_file():
        return file_digest(src.path)
    listing = "\n".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(src.path.iterdir()))
    return bytes_digest(listing.encode())


def prepare_clip(src: ClipSource, cfg: FewShotConfig, cache: DiskCache | None = None, detect=None) -> ClipData | None:
    """Crops and landmarks of one clip, from the cache or computed now (None: no face found in it).

    ``detect(rgb) -> (N, 3) points, layout`` replaces the face backend (tests, other detectors).
    """
    cache = cache or DiskCache()
    backend_name = cfg.landmark_backend if detect is None else getattr(detect, "__name__", "custom")
    key = cache.key("fewshot-clip", _content_key(src), str(cfg.resolution), str(cfg.frames_per_video),
                    backend_name, f"{cfg.crop_scale}:{cfg.crop_shift}")
    blob = cache.get("fewshot-clip", key)
    if blob is not None:
        return ClipData.from_bytes(src, blob)
    if detect is None:
        from ..faces import choose_face, get_backend
        backend = get_backend(cfg.landmark_backend)

        def detect(rgb):
            faces = backend.detect(rgb)
            if not faces:
                return None, None
            f = choose_face(faces)
            return f.points, f.layout
    images, points = [], []
    for img in _read_clip_frames(src, cfg.frames_per_video):
        pts, layout = detect(img)
        if pts is not None:
            images.append(img)
            points.append(to_ibug68(pts, layout)[:, :2])
    if not images:
        log.warning("no face found in %s; skipped", src.name)
        return None
    pts = np.stack(points)
    boxes = np.array([crop_box(p, cfg.crop_scale, cfg.crop_shift) for p in pts])
    x0, y0, side = np.median(boxes, axis=0)
    box = (float(x0), float(y0), float(side))
    data = ClipData(src, np.stack([crop_image(im, box, cfg.resolution) for im in images]),
                    np.stack([to_crop(p, box, cfg.resolution) for p in pts]))
    cache.put("fewshot-clip", key, data.to_bytes())
    return data


def load_clips(cfg: FewShotConfig, cache: DiskCache | None = None, *, holdout: bool = False,
               progress=None) -> list[ClipData]:
    """Prepared clips of ``cfg.data_root``: the training ones, or (``holdout``) those of ``cfg.holdout``."""
    sources = discover(cfg.data_root)
    held = set(cfg.holdout)
    chosen = [s for s in sources if (s.person in held or s.name in held) == holdout]
    out = []
    for i, s in enumerate(chosen):
        if progress:
            progress(i, len(chosen), s.name)
        d = prepare_clip(s, cfg, cache)
        if d is not None and len(d.frames) >= 2:
            out.append(d)
    return out


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(images)).float().div(127.5).sub(1)
    return t.movedim(-1, -3)


def to_image(t: torch.Tensor) -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
    return t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().movedim(-3, -1).cpu().numpy()


@dataclass
class Episode:
    """K shots + 1 target of one clip; a batch when every tensor has a leading batch dimension."""

    frames: torch.Tensor            # (K, 3, R, R)
    landmarks: torch.Tensor         # (K, 3, R, R) landmark images
    target: torch.Tensor            # (3, R, R)
    target_landmarks: torch.Tensor  # (3, R, R)
    video: torch.Tensor             # () long: the clip's row in W

    @staticmethod
    def collate(items: list[Episode]) -> Episode:
        return Episode(*(torch.stack([getattr(e, f) for e in items]) for f in
                         ("frames", "landmarks", "target", "target_landmarks", "video")))

    def to(self, device) -> Episode:
        return Episode(*(getattr(self, f).to(device) for f in
                         ("frames", "landmarks", "target", "target_landmarks", "video")))

    def split(self, parts: int, index: int) -> Episode:
        """The ``index``-th of ``parts`` equal slices of a batch (what one DDP rank sees)."""
        n = self.video.shape[0] // parts
        return Episode(*(getattr(self, f)[index * n:(index + 1) * n] for f in
                         ("frames", "landmarks", "target", "target_landmarks", "video")))


def make_episode(clip: ClipData, video_index: int, frame_ids: np.ndarray, thickness: float) -> Episode:
    """Episode from frames ``frame_ids[:-1]`` (shots) and ``frame_ids[-1]`` (target) of ``clip``."""
    r = clip.frames.shape[1]
    lm_imgs = np.stack([rasterize(clip.landmarks[i], r, thickness) for i in frame_ids])
    imgs = to_tensor(clip.frames[frame_ids])
    lms = to_tensor(lm_imgs)
    return Episode(imgs[:-1], lms[:-1], imgs[-1], lms[-1], torch.tensor(video_index, dtype=torch.long))


class EpisodeDataset(torch.utils.data.Dataset):
    """Sample ``i`` is a deterministic function of (seed, i): any rank or worker can draw any index."""

    def __init__(self, clips: list[ClipData], shots: int, length: int, seed: int = 0, thickness: float = 2.0):
        if not clips:
            raise ValueError("no training clips: check data_root and holdout")
        self.clips, self.shots, self.length, self.seed, self.thickness = clips, shots, length, seed, thickness

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Episode:
        rng = np.random.default_rng([self.seed, i])
        v = int(rng.integers(len(self.clips)))
        clip = self.clips[v]
        n = len(clip.frames)
        ids = rng.choice(n, self.shots + 1, replace=n < self.shots + 1)
        return make_episode(clip, v, ids, self.thickness)


class StridedSampler(torch.utils.data.Sampler):
    """Indices ``start*B + rank, + world, ...``: the union over ranks of step s is exactly [s*B, (s+1)*B)."""

    def __init__(self, length: int, start: int, rank: int, world: int):
        self.indices = range(start + rank, length, world)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
