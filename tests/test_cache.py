"""The disk cache keeps itself under its size limit: the entries used longest ago go first."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from talking_head.cache import DEFAULT_LIMIT_MB, DiskCache, size_limit
from talking_head.cli import main
from talking_head.gallery import Gallery
from talking_head.pipeline import AnimateSettings, animate

KB = 1024


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _put(cache: DiskCache, kind: str, name: str, data: bytes) -> str:
    key = cache.key(kind, name)
    cache.put(kind, key, data)
    return key


def _age(cache: DiskCache, kind: str, key: str, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(cache.root / kind / f"{key}.bin", (t, t))


def test_past_the_limit_the_entries_used_longest_ago_are_removed(tmp_path):
    cache = DiskCache(tmp_path, limit=100 * KB)
    keys = {}
    for i, name in enumerate("abcdefgh"):
        keys[name] = _put(cache, "motion", name, bytes([i]) * 10 * KB)
        _age(cache, "motion", keys[name], 1000 - i)  # put in this order, a second apart
    assert cache.get("motion", keys["a"]) == bytes([0]) * 10 * KB  # a is used again: now the newest
    cache.trim()  # 80 KB of 100: nothing to do
    assert cache.usage().entries == 8
    for name in "ijklm":
        _put(cache, "face", name, b"x" * 10 * KB)
    usage = cache.usage()
    assert usage.bytes <= 100 * KB
    kept = {name for name, key in keys.items() if (tmp_path / "motion" / f"{key}.bin").exists()}
    assert "a" in kept, "an entry just used was removed before older ones"
    assert not {"b", "c", "d"} & kept, "the entries used longest ago were kept"
    assert "h" in kept and len(list((tmp_path / "face").glob("*.bin"))) == 5
    assert cache.get("motion", keys["b"]) is None  # removed entries are simply not found
    # Past a limit, down to 0.9 of it, so that the next few entries do not each start a trim.
    cache.trim(limit=85 * KB)
    assert 60 * KB < cache.usage().bytes <= 0.9 * 85 * KB


def test_a_trim_removes_only_what_the_cache_wrote(tmp_path):
    """Prerendered results, a write in progress, and the files of a folder the cache was pointed at by
    mistake (LIVING_PORTRAITS_CACHE=$HOME) all stay."""
    cache = DiskCache(tmp_path, limit=10 * KB)
    results = tmp_path / "results"
    results.mkdir()
    (results / "abc.mp4").write_bytes(b"v" * 50 * KB)
    (results / "abc.json").write_text("{}")
    (tmp_path / "Downloads").mkdir()
    theirs = [tmp_path / "Downloads" / n for n in ("firmware.bin", "notes.tmp", "0" * 40 + ".txt", "a" * 40 + ".bin")]
    for f in theirs:
        f.write_bytes(b"u" * 30 * KB)
        os.utime(f, (time.time() - 10**6,) * 2)
    (tmp_path / "motion").mkdir()
    stale, fresh = tmp_path / "motion" / ".killed1.bin.tmp", tmp_path / "motion" / ".writing.bin.tmp"
    stale.write_bytes(b"t" * KB)
    fresh.write_bytes(b"t" * KB)
    os.utime(stale, (time.time() - 7200,) * 2)  # left by a write killed two hours ago
    _put(cache, "motion", "small", b"m" * KB)  # its trim removes the stale temporary file
    _put(cache, "motion", "big", b"m" * 20 * KB)  # over the limit on its own: not written at all
    assert not list((tmp_path / "motion").glob("*.bin"))[1:]
    assert cache.clear() == KB + 36  # the small one, with its header
    assert (results / "abc.mp4").stat().st_size == 50 * KB and (results / "abc.json").exists()
    assert all(f.stat().st_size == 30 * KB for f in theirs)
    assert not stale.exists() and fresh.exists()
    assert cache.usage().entries == 0


def test_the_limit_comes_from_the_environment_and_a_bad_value_does_not_stop_anything(monkeypatch):
    monkeypatch.delenv("LIVING_PORTRAITS_CACHE_MAX_MB", raising=False)
    assert size_limit() == (DEFAULT_LIMIT_MB << 20, None)
    monkeypatch.setenv("LIVING_PORTRAITS_CACHE_MAX_MB", "300")
    assert size_limit() == (300 << 20, None)
    monkeypatch.setenv("LIVING_PORTRAITS_CACHE_MAX_MB", "1.5")
    assert size_limit() == (1536 * KB, None)
    for bad in ("two gigabytes", "-5", "0", "0.0000001", "inf", "nan"):
        monkeypatch.setenv("LIVING_PORTRAITS_CACHE_MAX_MB", bad)
        limit, problem = size_limit()
        assert limit == DEFAULT_LIMIT_MB << 20
        assert "LIVING_PORTRAITS_CACHE_MAX_MB" in problem and repr(bad) in problem and "megabytes" in problem


def test_the_training_sets_prepared_clips_are_not_limited_but_cleared_on_request(tmp_path):
    """A training run reads its whole data set every epoch: past the limit it would never find a clip it
    prepared, so those entries are neither counted nor removed by the limit; --clear removes them."""
    cache = DiskCache(tmp_path, limit=50 * KB)
    clips = [_put(cache, "fewshot-clip", str(i), b"c" * 20 * KB) for i in range(5)]
    for i in range(5):
        _put(cache, "motion", str(i), b"m" * 20 * KB)
    clips.append(_put(cache, "fewshot-clip", "long", b"c" * 60 * KB))  # larger than the limit: written all the same
    assert all(cache.get("fewshot-clip", k) for k in clips)
    usage = cache.usage()
    assert usage.kinds["fewshot-clip"] == (6, 5 * (20 * KB + 36) + 60 * KB + 36) and usage.kinds["motion"][1] <= 45 * KB
    cache.clear()
    assert cache.usage().entries == 0


def test_uploads_rendered_one_after_another_keep_the_cache_under_its_limit(tmp_path):
    """A teacher animates a new clip every week: what the renders store must stay under the limit, and a
    render whose earlier entries were removed still comes out whole."""
    g = Gallery.default()
    settings = AnimateSettings(max_side=480)
    limit = 6 << 20
    sizes = []
    for i in range(3):
        clip = tmp_path / f"week{i}.mp4"
        shutil.copyfile(g.clip_path("smile_eyes"), clip)
        with open(clip, "ab") as f:
            f.write(bytes([i]))  # another file each week (mp4 readers ignore trailing bytes)
        res = animate("gallery:mona_lisa", clip, tmp_path / "out.mp4", settings=settings,
                      cache=DiskCache(tmp_path / "cache", limit=limit))
        assert res.n_frames == g.clip("smile_eyes")["n_frames"]
        sizes.append(DiskCache(tmp_path / "cache").usage().bytes)
    assert sizes[0] > limit / 3, "the renders stored too little for this test to mean anything"
    assert max(sizes) <= limit


def test_the_cache_command_shows_the_use_and_clears_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LIVING_PORTRAITS_CACHE", str(tmp_path))
    monkeypatch.setenv("LIVING_PORTRAITS_CACHE_MAX_MB", "64")
    cache = DiskCache(tmp_path)
    _put(cache, "motion", "a", b"m" * 300 * KB)
    _put(cache, "face", "b", b"f" * 100 * KB)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.mp4").write_bytes(b"v" * KB)
    code, out, err = run_cli(capsys, "cache")
    assert code == 0, err
    assert "2 entries" in out and "0.4 MB under the limit (at most 64.0 MB" in out
    assert "motion" in out and "face" in out and "1 video," in out
    code, out, err = run_cli(capsys, "cache", "--clear")
    assert code == 0, err
    assert "Removed 0.4 MB" in out and "0 entries" in out
    assert (tmp_path / "results" / "r.mp4").exists()


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_the_cache_command_warns_about_a_limit_it_cannot_read(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv("LIVING_PORTRAITS_CACHE", str(tmp_path))
    monkeypatch.setenv("LIVING_PORTRAITS_CACHE_MAX_MB", value)
    code, out, err = run_cli(capsys, "cache")
    assert code == 0
    assert f"LIVING_PORTRAITS_CACHE_MAX_MB='{value}' is not a number of megabytes of at least 1" in err
    assert f"at most {DEFAULT_LIMIT_MB:.1f} MB" in out


def test_a_cache_whose_files_cannot_be_removed_is_still_read_and_written(tmp_path, monkeypatch):
    """A kind folder of another user's (a kiosk's cache shared by staff and the app): a torn entry or a killed
    write's temporary file that this process may not remove must not fail a render."""
    from pathlib import Path
    cache = DiskCache(tmp_path, limit=100 * KB)
    torn = _put(cache, "face", "torn", b"f" * KB)
    (tmp_path / "face" / f"{torn}.bin").write_bytes(b"LPC1 torn")
    stale = tmp_path / "face" / ".killed.bin.tmp"
    stale.write_bytes(b"t")
    os.utime(stale, (time.time() - 7200,) * 2)

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    assert cache.get("face", torn) is None
    _put(cache, "face", "new", b"n" * KB)  # its trim meets the temporary file
    assert cache.get("face", cache.key("face", "new")) == b"n" * KB
    assert stale.exists()
