"""The few-shot talking-head model (issue 5): networks, losses, meta-learning, DDP, fine-tuning, files, engine.

Everything runs on the CPU with one thread (the CI box has two cores and other jobs); the tiny config
trains at about 0.15 s per step.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talking_head.fewshot import FewShotConfig, TalkingHeadModel
from talking_head.fewshot.data import (
    ClipData,
    ClipSource,
    Episode,
    EpisodeDataset,
    make_episode,
    to_tensor,
)
from talking_head.fewshot.finetune import finetune
from talking_head.fewshot.landmarks import (
    MEDIAPIPE_TO_IBUG68,
    PARTS,
    rasterize,
    to_ibug68,
)
from talking_head.fewshot.losses import (
    ContentWeightsMissing,
    PixelContentLoss,
    build_content_loss,
)
from talking_head.fewshot.synthetic import SyntheticSubject
from talking_head.fewshot.train import MetaLearner

pytestmark = pytest.mark.neural

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(**kw) -> FewShotConfig:
    return FewShotConfig.tiny(content_substitute="pixel", num_workers=0, **kw)


def synthetic_clips(n_subjects: int, frames: int = 12, res: int = 64, seed0: int = 0) -> list[ClipData]:
    out = []
    for s in range(n_subjects):
        f, lm = SyntheticSubject(seed0 + s, res).clip(frames)
        out.append(ClipData(ClipSource(f"p{s}", f"p{s}/v0/c.mp4", Path(".")), f, lm))
    return out


# -- networks ----------------------------------------------------------------------------------------
def test_paper_config_shapes_and_parameter_counts():
    cfg = FewShotConfig.paper(num_videos=3)
    torch.manual_seed(0)
    m = TalkingHeadModel(cfg)
    n = m.parameter_counts()
    # The paper quotes about 15M (E), 38M (G, P included) and 20M (D's conv part).
    assert n["embedder"] == 14_907_393 and abs(n["embedder"] / 15e6 - 1) < 0.05
    assert n["generator"] == 38_082_123 and abs(n["generator"] / 38e6 - 1) < 0.05
    conv_d = n["discriminator"] - n["discriminator.W"] - 513  # minus W, w0 and b
    assert conv_d == 19_627_009 and abs(conv_d / 20e6 - 1) < 0.05
    assert n["discriminator.W"] == 3 * 512
    assert m.generator.n_adain == 13_056 and n["generator.project"] == 513 * 13_056
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        e = m.embedder(x, x)
        assert e.shape == (1, 512) and (e >= 0).all()  # sum pooling then ReLU
        y = m.generator(x, m.generator.adain_params(e))
        assert y.shape == (1, 3, 256, 256) and y.abs().max() <= 1
        score, feats = m.discriminator(y, x, torch.tensor([2]))
    assert score.shape == (1,)
    assert [f.shape[-1] for f in feats] == [128, 64, 32, 16, 8, 4, 4]  # every residual block, plus the extra 4x4


def test_rasterizer_draws_each_part_in_its_colour():
    _f, lm = SyntheticSubject(0, 128).clip(1)
    img = rasterize(lm[0], 128)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    for *_, colour in PARTS:
        assert colour in colours
    # Only the iBUG parts are drawn: background stays black.
    assert (img.sum(axis=2) == 0).mean() > 0.8


def test_mediapipe_points_map_onto_the_ibug_layout():
    from talking_head.gallery import Gallery
    from talking_head.topology import IBUG68, MEDIAPIPE
    assert len(MEDIAPIPE_TO_IBUG68) == 68 and len(set(MEDIAPIPE_TO_IBUG68.tolist())) == 68
    assert MEDIAPIPE_TO_IBUG68[IBUG68.chin] == MEDIAPIPE.chin
    assert [MEDIAPIPE_TO_IBUG68[i] for i in (36, 39, 42, 45)] == [33, 133, 362, 263]
    assert [MEDIAPIPE_TO_IBUG68[i] for i in (60, 64)] == [78, 308]
    face = Gallery.default().portrait_face("mona_lisa")
    p = to_ibug68(face.points, face.layout)
    assert p.shape == (68, 3)
    assert p[36:42, 0].mean() < p[42:48, 0].mean()          # right eye on the image's left
    assert p[17:27, 1].mean() < p[36:48, 1].mean() < p[48:68, 1].mean() < p[8, 1]  # brows, eyes, mouth, chin


# -- losses ----------------------------------------------------------------------------------------
def _vgg_files(snapshot: Path) -> None:
    from safetensors.torch import save_file

    from talking_head.fewshot.vgg import vgg19, vggface
    torch.manual_seed(1)
    for name, net in (("vgg19_caffe_rgb", vgg19()), ("vggface_caffe_rgb", vggface())):
        for mod in net.features:
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.normal_(mod.weight, std=0.01)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(snapshot / f"{name}.safetensors"))


def test_content_loss_without_weights_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("LIVING_PORTRAITS_WEIGHTS", raising=False)
    with pytest.raises(ContentWeightsMissing) as e:
        build_content_loss(FewShotConfig.tiny())
    msg = str(e.value)
    assert "VGG19" in msg and "content_substitute" in msg and "pixel" in msg
    assert isinstance(build_content_loss(FewShotConfig.tiny(content_substitute="pixel")), PixelContentLoss)


def test_content_loss_reads_vgg_weights_from_the_hub_cache_and_passes_gradients(monkeypatch, tmp_path):
    from hubcache import snapshot_dir

    from talking_head.fewshot.specs import CONTENT_REPO
    _vgg_files(snapshot_dir(tmp_path, CONTENT_REPO))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("LIVING_PORTRAITS_WEIGHTS", raising=False)
    loss_fn = build_content_loss(FewShotConfig.tiny())
    real = torch.rand(1, 3, 64, 64) * 2 - 1
    fake = (torch.rand(1, 3, 64, 64) * 2 - 1).requires_grad_()
    loss = loss_fn(fake, real)
    loss.backward()
    assert loss.item() > 0 and fake.grad.abs().sum() > 0  # the .data pitfall would leave no gradient
    assert loss_fn(real, real).item() == 0


# -- meta-learning -------------------------------------------------------------------------------
def test_tiny_config_overfits_one_episode():
    """Repeating one episode, the content loss falls at least 4x in 100 steps (about 9x observed)."""
    cfg = tiny(num_videos=1)
    clip = synthetic_clips(1)[0]
    ep = EpisodeDataset([clip], cfg.shots, 10)[0]
    batch = Episode.collate([ep, ep])
    torch.manual_seed(0)
    learner = MetaLearner(TalkingHeadModel(cfg), build_content_loss(cfg))
    first = learner.step(batch)["content"]
    for _ in range(98):
        learner.step(batch)
    last = learner.step(batch)["content"]
    assert last < first / 4, (first, last)


DDP_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
sys.path.insert(0, {tests!r})
from test_fewshot import ddp_setup
from talking_head.fewshot.train import MetaLearner, _setup_distributed
from safetensors.torch import save_file
rank, world, _ = _setup_distributed()
model, loss, batch = ddp_setup()
learner = MetaLearner(model, loss)
learner.step(batch.split(world, rank))
learner.step(batch.split(world, rank))
if rank == 0:
    save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, {out!r})
# As train.main does: a rank that exits with the process group still up can be aborted by gloo's
# threads at interpreter exit ("terminate called without an active exception").
torch.distributed.destroy_process_group()
"""


def ddp_setup():
    """The same model (seed 0), content loss and global batch of 2 episodes in every process."""
    cfg = tiny(num_videos=2)
    clips = synthetic_clips(2)
    batch = Episode.collate([make_episode(c, i, np.arange(cfg.shots + 1) + i, 2.0) for i, c in enumerate(clips)])
    dt = torch.get_default_dtype()
    batch = Episode(batch.frames.to(dt), batch.landmarks.to(dt), batch.target.to(dt), batch.target_landmarks.to(dt),
                    batch.video)
    torch.manual_seed(0)
    return TalkingHeadModel(cfg), build_content_loss(cfg), batch


def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    """Two gloo ranks with one episode each take the same two steps as one process with both (float64)."""
    from safetensors.torch import load_file
    script = tmp_path / "ddp_step.py"
    out = tmp_path / "ddp.safetensors"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = load_file(str(out))

    torch.set_default_dtype(torch.float64)
    try:
        model, loss, batch = ddp_setup()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        learner = MetaLearner(model, loss)
        learner.step(batch)
        learner.step(batch)
        single = model.state_dict()
    finally:
        torch.set_default_dtype(torch.float32)
    assert set(ddp) == set(single)
    moved = 0
    for k, v in single.items():
        # Parameters move by about 1e-4 a step; atol 1e-9 leaves room only for the biases that feed an
        # instance norm: their true gradient is 0, Adam turns float64 rounding into ~1e-10 steps.
        torch.testing.assert_close(ddp[k], v, rtol=1e-9, atol=1e-9, msg=lambda m, k=k: f"{k}: {m}")
        moved += int(not torch.equal(v, before[k]))
    assert moved > 50  # the steps really changed the networks


def test_training_resumes_exactly_from_its_safetensors_state(tmp_path):
    from talking_head.fewshot.train import STATE_FILE, train
    clips = synthetic_clips(2, frames=8)
    base = {"steps": 4, "checkpoint_every": 2, "log_every": 2, "sample_every": 2, "batch_size": 2, "shots": 2}
    straight = train(tiny(out_dir=str(tmp_path / "a"), **base), clips=clips)
    cut = tiny(out_dir=str(tmp_path / "b"), **{**base, "steps": 2})
    train(cut, clips=clips)
    assert (tmp_path / "b" / STATE_FILE).is_file()
    resumed = train(dataclasses.replace(cut, steps=4), clips=clips)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and "content" in log[0]
    assert (tmp_path / "a" / "samples" / "step_0000004.png").is_file()
    assert (tmp_path / "a" / "model" / "generator.safetensors").is_file()


def test_data_reader_extracts_landmarks_once_and_caches_them(tmp_path):
    import cv2

    from talking_head.cache import DiskCache
    from talking_head.fewshot.data import discover, load_clips
    subject = SyntheticSubject(5, 96)
    truth = {}
    folder = tmp_path / "data" / "person_a" / "video_1" / "clip_0"
    folder.mkdir(parents=True)
    frames, lms = subject.clip(6)
    for i, (f, lm) in enumerate(zip(frames, lms)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f[..., ::-1])
        truth[f.tobytes()[:4096]] = lm
    calls = []

    def detect(rgb):
        calls.append(1)
        return np.pad(truth[rgb.tobytes()[:4096]], ((0, 0), (0, 1))), "ibug68"

    assert [s.person for s in discover(tmp_path / "data")] == ["person_a"]
    cfg = tiny(data_root=str(tmp_path / "data"), frames_per_video=6)
    from talking_head.fewshot.data import prepare_clip
    cache = DiskCache(tmp_path / "cache")
    src = discover(cfg.data_root)[0]
    d1 = prepare_clip(src, cfg, cache, detect=detect)
    assert d1.frames.shape == (6, 64, 64, 3) and d1.landmarks.shape == (6, 68, 2) and len(calls) == 6
    d2 = prepare_clip(src, cfg, cache, detect=detect)
    assert len(calls) == 6 and np.array_equal(d1.frames, d2.frames)
    assert load_clips(dataclasses.replace(cfg, holdout=("person_a",)), cache) == []


# -- fine-tuning -----------------------------------------------------------------------------------
def test_more_shots_reconstruct_a_held_out_frame_better():
    """Fine-tuned on K = 8 frames of a new synthetic person, G' paints unseen poses better than with K = 1.

    The model is meta-trained briefly on other synthetic people; both runs take the same number of steps.
    """
    cfg = tiny(num_videos=4)
    torch.manual_seed(0)
    model = TalkingHeadModel(cfg)
    learner = MetaLearner(model, build_content_loss(cfg))
    ds = EpisodeDataset(synthetic_clips(4, frames=16, seed0=100), cfg.shots, 10_000)
    for s in range(60):
        learner.step(Episode.collate([ds[2 * s], ds[2 * s + 1]]))
    frames, lms = SyntheticSubject(7, 64).clip(40, seed=3)
    x = to_tensor(frames)
    y = to_tensor(np.stack([rasterize(lm, 64) for lm in lms]))
    held_x, held_y = x[32:], y[32:]
    errors = {}
    for k in (1, 8):
        tuned = finetune(model, x[:k], y[:k], steps=80, content_loss=PixelContentLoss(cfg), adversarial=False, seed=0)
        errors[k] = (tuned.render(held_y) - held_x).abs().mean().item()
    assert errors[8] < 0.6 * errors[1], errors  # 0.137 vs 0.392 on the development machine


# -- files -----------------------------------------------------------------------------------------
def test_checkpoint_round_trip_through_a_temporary_hub_cache(monkeypatch, tmp_path):
    from hubcache import snapshot_dir
    repo = "someone/fewshot-test"
    torch.manual_seed(0)
    model = TalkingHeadModel(tiny(num_videos=3))
    snap = snapshot_dir(tmp_path / "hub", repo)

    class FakeApi:  # what push_to_hub asks of the Hub, answered by writing into the cache snapshot
        def create_repo(self, repo_id, private, exist_ok):
            assert repo_id == repo and private

        def upload_folder(self, repo_id, folder_path, commit_message):
            for f in Path(folder_path).iterdir():
                shutil.copy(f, snap / f.name)
            return type("Info", (), {"oid": "0123456789abcdef0123456789abcdef01234567"})()

    model.push_to_hub(repo, api=FakeApi())
    assert sorted(p.name for p in snap.iterdir()) == ["README.md", "config.json", "discriminator.safetensors",
                                                       "embedder.safetensors", "generator.safetensors"]
    card = (snap / "README.md").read_text()
    assert "Intended use" in card and "misuse" in card.lower() and "{{" not in card
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = TalkingHeadModel.from_pretrained(repo)
    assert loaded.discriminator.W.shape[0] == 0  # the per-video table of the training set is not shipped
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    model.eval()
    with torch.no_grad():
        e = model.embed(x, x)
        torch.testing.assert_close(loaded.embed(x, x), e)
        torch.testing.assert_close(loaded.feed_forward(x, e), model.feed_forward(x, e))
        torch.testing.assert_close(loaded.discriminator.features(x, x)[0], model.discriminator.features(x, x)[0])


# -- the engine ------------------------------------------------------------------------------------
def test_engine_is_unavailable_without_a_checkpoint(monkeypatch, tmp_path):
    import talking_head.engines.fewshot as fe
    monkeypatch.delenv("LIVING_PORTRAITS_FEWSHOT_DIR", raising=False)
    monkeypatch.delenv("LIVING_PORTRAITS_FEWSHOT_REPO", raising=False)
    assert "LIVING_PORTRAITS_FEWSHOT_REPO" in fe.FewShotEngine.unavailable_reason()
    monkeypatch.setenv("LIVING_PORTRAITS_FEWSHOT_REPO", "someone/not-there")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert "not-there" in fe.FewShotEngine.unavailable_reason()
    TalkingHeadModel(tiny()).save_pretrained(tmp_path / "m")
    monkeypatch.setenv("LIVING_PORTRAITS_FEWSHOT_DIR", str(tmp_path / "m"))
    assert fe.FewShotEngine.unavailable_reason() is None
    from talking_head.engines.base import engine_status
    assert engine_status()["fewshot"] is None


def test_engine_renders_a_short_clip_end_to_end(tmp_path):
    import talking_head
    from talking_head import video
    from talking_head.engines.fewshot import FewShotEngine
    from talking_head.pipeline import AnimateSettings
    torch.manual_seed(0)
    engine = FewShotEngine(TalkingHeadModel(tiny()), finetune_steps=3, content_loss=PixelContentLoss(tiny()),
                           device="cpu")
    crops = []
    out = tmp_path / "fewshot.mp4"
    res = talking_head.animate("gallery:mona_lisa", "gallery:wink", out, engine=engine,
                               settings=AnimateSettings(max_side=480),
                               on_frame=lambda i, frame, crop: crops.append(crop.copy()) if i % 10 == 0 else None)
    assert res.engine == "fewshot" and res.n_frames > 10
    assert video.probe(out).n_frames == res.n_frames
    assert crops[0].shape[2] == 3 and crops[0].shape[:2] == (res.crop_box[3] - res.crop_box[1],
                                                             res.crop_box[2] - res.crop_box[0])
    assert max(np.abs(c.astype(int) - crops[0]).mean() for c in crops) > 0.5  # the face follows the clip


def test_convert_dag_vggface_and_bgr_vgg19_into_our_layout(tmp_path):
    from safetensors.torch import load_file

    from talking_head.fewshot.convert import convert_file
    from talking_head.fewshot.vgg import VGG16_CFG, _dag_names, load_features, vggface
    dag, cin = {}, 3
    for name, c in zip(_dag_names(VGG16_CFG), [v for v in VGG16_CFG if v != "M"]):
        dag[f"{name}.weight"], dag[f"{name}.bias"] = torch.randn(c, cin, 3, 3), torch.randn(c)
        cin = c
    dag["fc8.weight"] = torch.randn(10, 10)  # classifier layers are ignored
    torch.save(dag, tmp_path / "vgg_face_dag.pth")
    out = convert_file("vggface", tmp_path / "vgg_face_dag.pth", tmp_path / "w", bgr=True)
    sd = load_file(str(out))
    assert torch.equal(sd["features.0.weight"], dag["conv1_1.weight"].flip(1))
    assert torch.equal(sd["features.28.bias"], dag["conv5_3.bias"])
    load_features(vggface(), sd)
