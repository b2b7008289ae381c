"""Checkpoints: synthetic LivePortrait weights in the official layout, loaded offline through the real
``hf_hub_download`` path; missing / truncated / corrupt / wrong-digest / unsafe files give clear errors."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
from hubcache import (
    STITCH_FILE,
    digest_of,
    matching_specs,
    official_files,
    offline_env,
    write_files,
    write_hub_cache,
)

from talking_head import checkpoints as ck
from talking_head.errors import CheckpointError, EngineUnavailableError

APPEARANCE = "liveportrait/base_models/appearance_feature_extractor.pth"


@pytest.fixture
def synthetic(lp_synthetic):
    return lp_synthetic


@pytest.fixture
def full_cache(lp_hub_cache):
    return lp_hub_cache


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty fake hub cache with the network forbidden; returns its path."""
    cache = tmp_path / "hub"
    cache.mkdir()
    offline_env(monkeypatch, cache)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return cache


def spec_for(filename: str, **changes) -> ck.FileSpec:
    return dataclasses.replace(next(s for s in ck.SPECS if s.filename == filename), **changes)


def small_cache(cache: Path, synthetic) -> Path:
    """Only the (3.4 MB) appearance extractor in the cache; returns its file."""
    return write_hub_cache(cache, {"appearance_feature_extractor": synthetic["appearance_feature_extractor"]})[APPEARANCE]


def _assert_clear(e: CheckpointError, filename: str) -> None:
    msg = str(e)
    assert Path(filename).name in msg and "python -m talking_head prefetch" in msg, msg
    assert msg.count(". ") == 0 and msg.endswith("."), f"not one sentence: {msg}"
    assert isinstance(e, EngineUnavailableError)


# ------------------------------------------------------------------------------------------ happy path

def test_loads_official_layout_through_hf_hub_download(monkeypatch, full_cache, synthetic):
    cache, paths = full_cache
    offline_env(monkeypatch, cache)
    sds = ck.load_state_dicts("liveportrait", file_specs=matching_specs(paths))
    assert set(sds) == set(synthetic)
    for name, sd in synthetic.items():
        assert list(sds[name]) == list(sd), name  # same keys, same order, `module.` gone
        for k, v in sd.items():
            assert sds[name][k].dtype == v.dtype and torch.equal(sds[name][k], v), (name, k)


def test_files_come_from_the_hub_cache_snapshot(monkeypatch, full_cache):
    cache, paths = full_cache
    offline_env(monkeypatch, cache)
    found = ck.ensure("liveportrait", file_specs=matching_specs(paths))
    assert {p.resolve() for p in found.values()} == {p.resolve() for p in paths.values()}


def test_status_reports_ready_and_missing(monkeypatch, full_cache, tmp_path):
    cache, _ = full_cache
    offline_env(monkeypatch, cache)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # Real specs know the real sizes, so the (smaller) synthetic base models count as incomplete.
    st = ck.status()
    assert sorted(st) == ["face_alignment", "liveportrait"]
    assert all(x.endswith("incomplete") for x in st["liveportrait"]) and len(st["liveportrait"]) == 4
    assert st["face_alignment"] == [f"{s.filename} missing" for s in ck.specs("face_alignment")]
    monkeypatch.setattr(ck, "SPECS", tuple(dataclasses.replace(s, size=None) for s in ck.SPECS))
    assert ck.status()["liveportrait"] == []
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    offline_env(monkeypatch, empty)
    assert len(ck.status()["liveportrait"]) == 5


def test_stitching_file_is_split_and_cleaned(hub, synthetic):
    parts = {k: v for k, v in synthetic.items() if k.startswith("stitching")}
    files = official_files(parts)
    files[STITCH_FILE]["extra_unused"] = {"module.x": torch.zeros(3)}  # the real file holds more than the MLPs
    paths = write_files(hub / "models--KwaiVGI--LivePortrait" / "snapshots" / "c0ffee", files)
    (hub / "models--KwaiVGI--LivePortrait" / "refs").mkdir()
    (hub / "models--KwaiVGI--LivePortrait" / "refs" / "main").write_text("c0ffee")
    spec = spec_for(STITCH_FILE, sha256=digest_of(paths[STITCH_FILE]))
    sds = ck.load_state_dicts(file_specs=[spec])
    assert set(sds) == {f"stitching_retargeting_module.{p}" for p in ck.STITCHING_PARTS}
    assert list(sds["stitching_retargeting_module.retarget_eye"])[-1] == "mlp.10.bias"
    for name, sd in parts.items():
        assert all(torch.equal(sds[name][k], v) for k, v in sd.items())


def test_local_dir_works_offline(monkeypatch, hub, synthetic, tmp_path):
    local = tmp_path / "weights"
    p = write_files(local, official_files({"appearance_feature_extractor": synthetic["appearance_feature_extractor"]}))
    spec = spec_for(APPEARANCE, sha256=digest_of(p[APPEARANCE]), size=p[APPEARANCE].stat().st_size)
    sds = ck.load_state_dicts(file_specs=[spec], local_dir=local)
    assert torch.equal(sds["appearance_feature_extractor"]["first.conv.weight"],
                       synthetic["appearance_feature_extractor"]["first.conv.weight"])
    monkeypatch.setenv("LIVING_PORTRAITS_WEIGHTS", str(local))  # what the app uses after prefetch --local-dir
    assert ck.ensure(file_specs=[spec])[APPEARANCE] == local / APPEARANCE


# ------------------------------------------------------------------------------------------ failures

def test_missing_file(hub):
    with pytest.raises(CheckpointError) as e:
        ck.load_state_dicts("liveportrait")
    assert e.value.reason == "missing"
    _assert_clear(e.value, APPEARANCE)
    assert "KwaiVGI/LivePortrait" in str(e.value)


def _refused(reason: str, **spec_changes) -> CheckpointError:
    """Loading the appearance file with these spec changes fails for ``reason``, naming the file and the fix."""
    with pytest.raises(CheckpointError) as e:
        ck.load_state_dicts(file_specs=[spec_for(APPEARANCE, **spec_changes)])
    assert e.value.reason == reason
    _assert_clear(e.value, APPEARANCE)
    return e.value


def test_truncated_file(hub, synthetic):
    p = small_cache(hub, synthetic)
    good_size, digest = p.stat().st_size, digest_of(p)
    p.write_bytes(p.read_bytes()[: good_size // 2])
    assert "incomplete" in str(_refused("size", sha256=digest, size=good_size))
    # With no size or digest known, the truncation is caught when reading.
    _refused("unreadable", sha256=None, size=None)


def test_corrupt_bytes(hub, synthetic):
    p = small_cache(hub, synthetic)
    good_size, digest = p.stat().st_size, digest_of(p)
    data = bytearray(p.read_bytes())
    data[good_size // 2: good_size // 2 + 64] = os.urandom(64)
    p.write_bytes(bytes(data))
    _refused("sha256", sha256=digest, size=good_size)
    # A damaged header is unreadable even where no digest is known.
    data[:64] = b"\0" * 64
    p.write_bytes(bytes(data))
    _refused("unreadable", sha256=None, size=None)


def test_wrong_sha256(hub, synthetic):
    p = small_cache(hub, synthetic)
    spec = spec_for(APPEARANCE, sha256="0" * 64, size=p.stat().st_size)
    with pytest.raises(CheckpointError) as e:
        ck.ensure(file_specs=[spec])
    assert e.value.reason == "sha256" and "sha256" in str(e.value)
    _assert_clear(e.value, APPEARANCE)


def test_real_specs_reject_synthetic_files(monkeypatch, full_cache):
    cache, _ = full_cache
    offline_env(monkeypatch, cache)
    with pytest.raises(CheckpointError) as e:
        ck.load_state_dicts("liveportrait")
    assert e.value.reason == "size"


class _Payload:
    """Pickles as a call to ``open(marker, 'w')``: unpickling it unrestricted would create the marker."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_refuses_a_pickle_that_runs_code(hub, tmp_path, how):
    import pickle
    marker = tmp_path / "pwned"
    obj = {"first.conv.weight": torch.zeros(1), "evil": _Payload(marker)}
    snap = hub / "models--KwaiVGI--LivePortrait" / "snapshots" / "abc"
    (snap / APPEARANCE).parent.mkdir(parents=True)
    (hub / "models--KwaiVGI--LivePortrait" / "refs").mkdir()
    (hub / "models--KwaiVGI--LivePortrait" / "refs" / "main").write_text("abc")
    if how == "torch.save":
        torch.save(obj, snap / APPEARANCE)
    else:
        (snap / APPEARANCE).write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(CheckpointError) as e:
        ck.load_state_dicts(file_specs=[spec_for(APPEARANCE, sha256=None, size=None)])
    assert not marker.exists()
    assert e.value.reason == "unsafe" and "could run code" in str(e.value)
    _assert_clear(e.value, APPEARANCE)


# ------------------------------------------------------------------------------------------ prefetch

def _fake_fan_weights(torch_home: Path) -> None:
    d = torch_home / "hub" / "checkpoints"
    d.mkdir(parents=True, exist_ok=True)
    for s in ck.specs("face_alignment"):
        torch.save({"w": torch.ones(2)}, d / s.filename)


def test_prefetch_cli_offline_prints_table(monkeypatch, full_cache, tmp_path, capsys):
    from talking_head.cli import main
    cache, paths = full_cache
    offline_env(monkeypatch, cache)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _fake_fan_weights(tmp_path / "torch")
    monkeypatch.setattr(ck, "SPECS", matching_specs(paths) + ck.specs("face_alignment"))
    assert main(["prefetch"]) == 0
    out = capsys.readouterr().out
    for s in ck.SPECS:
        assert Path(s.filename).name in out
    assert "NOT READY" not in out and "sha256 ok" in out
    # A missing file cannot be fetched offline: the table says so and the exit code is not 0.
    (tmp_path / "torch" / "hub" / "checkpoints" / ck.specs("face_alignment")[0].filename).unlink()
    assert main(["prefetch"]) != 0
    out = capsys.readouterr().out
    assert "NOT READY" in out and "python -m talking_head prefetch" in out


def test_prefetch_replaces_a_corrupt_file(monkeypatch, hub, synthetic):
    """Online, a file that fails its check is downloaded again with force_download."""
    import huggingface_hub
    from huggingface_hub import constants
    p = small_cache(hub, synthetic)
    good = p.read_bytes()
    spec = spec_for(APPEARANCE, sha256=digest_of(p), size=len(good))
    p.write_bytes(good[:-10] + b"\0" * 10)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    real = huggingface_hub.hf_hub_download
    calls = []

    def fake_download(repo_id, filename, **kw):  # stands in for the network
        calls.append(kw.get("force_download"))
        if kw.get("force_download"):
            p.write_bytes(good)
        return real(repo_id, filename, **{**kw, "local_files_only": True, "force_download": False})

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    row = ck.prefetch_one(spec)
    assert row.ok and row.message.startswith("downloaded"), row.message
    assert calls == [False, True]


def test_prefetch_without_a_connection_tries_the_hub_once_and_says_so(monkeypatch, hub):
    """With no connection, huggingface_hub retried each file for about 25 s and then said only that the file
    was not in the cache: two minutes for five files. The first says the Hub could not be reached, and
    the others are looked for where they are kept, not fetched again."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    tries = []

    def no_connection(repo_id, filename, **kw):  # what huggingface_hub raises after its retries
        if not kw.get("local_files_only"):
            tries.append(filename)
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub and we cannot "
                                      "find the requested files in the local cache. Please check your connection")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_connection)
    rows = ck.prefetch(engines=["liveportrait"])
    assert len(rows) >= 5 and not any(r.ok for r in rows)
    assert tries == [rows[0].spec.filename]
    assert all("the Hugging Face Hub could not be reached" in r.message for r in rows), [r.message for r in rows]
    assert "for an earlier file" in rows[1].message and "python -m talking_head prefetch" in rows[1].message


def test_face_alignment_specs_match_the_installed_package():
    from face_alignment import api
    from face_alignment.detection.sfd import sfd_detector

    from talking_head.faces.fan_backend import WEIGHT_FILES
    urls = {s.filename: s.url for s in ck.specs("face_alignment")}
    assert set(urls) == set(WEIGHT_FILES)
    assert sfd_detector.models_urls["s3fd"] in urls.values()
    assert api.models_urls["2DFAN-4"] in urls.values()


def test_every_spec_is_complete():
    for s in ck.SPECS:
        assert s.fmt in {"torch", "safetensors"} and s.layout in {"state_dict", "stitching"}
        assert (s.repo_id is None) != (s.url is None)
        assert s.sha256 is None or len(s.sha256) == 64
        if s.sha256 is None or s.size is None or s.revision is None:
            assert s.note, f"{s.filename}: unverified fields must be explained"


def test_fewshot_files_go_through_the_same_module(monkeypatch, hub, capsys):
    from talking_head import cli
    content = ck.specs("fewshot_content")
    assert {s.filename for s in content} == {"vgg19_caffe_rgb.safetensors", "vggface_caffe_rgb.safetensors"}
    assert all(s.fmt == "safetensors" for s in content)
    monkeypatch.delenv("LIVING_PORTRAITS_FEWSHOT_REPO", raising=False)
    with pytest.raises(CheckpointError, match="LIVING_PORTRAITS_FEWSHOT_REPO"):
        ck.specs("fewshot")
    monkeypatch.setenv("LIVING_PORTRAITS_FEWSHOT_REPO", "someone/fewshot-model")
    assert [s.filename for s in ck.specs("fewshot")][0] == "config.json"
    # offline and not cached: one NOT READY row per file, exit code 2, no traceback
    assert cli.main(["prefetch", "--engines", "fewshot_content"]) == 2
    out = capsys.readouterr().out
    assert out.count("NOT READY") == 2 and "not ready: fewshot_content" in out
    assert "run `python -m talking_head prefetch --engines fewshot_content`" in out  # prefetch skips it otherwise


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "~/th"}, {"XDG_CACHE_HOME": "xdg"},
                                 {"TORCH_HOME": "th", "XDG_CACHE_HOME": "xdg"}])
def test_torch_hub_dir_is_worked_out_as_torch_does(monkeypatch, tmp_path, env):
    """Checking for face-alignment's files must not import torch, and must look where torch would."""
    for k in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v if v.startswith("~") else str(tmp_path / v))
    assert ck._torch_hub_dir_from_env() == Path(torch.hub.get_dir())
