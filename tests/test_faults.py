"""Faults injected into a render, in the library and in the launched app (real ffmpeg, real server,
real gradio_client): the engine raising mid-render, the disk filling while encoding, a corrupt cached
result or motion file, a checkpoint that fails verification, a client that leaves mid-render.

After each: the app still serves, the shared store holds no bad or partial entry, and nothing
half-written or temporary is left. (A GPU running out of memory, retried with a smaller batch and
then on the CPU engine, belongs to the engines and is tested there.)
"""
from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import live_threads
from gradio_client import Client, handle_file
from test_bad_input import _child_ffmpegs, _our_stderr, assert_helpful

from demo.strings import t
from demo.ui import AppConfig
from talking_head import animate
from talking_head.cache import DiskCache
from talking_head.engines.meshwarp import MeshWarpEngine
from talking_head.errors import GalleryError
from talking_head.gallery import Gallery
from talking_head.pipeline import FINISHING_THREAD, AnimateSettings
from talking_head.video import VideoEncodeError, probe

REPO = Path(__file__).resolve().parent.parent
CLIP = "smile_eyes"            # 78 frames
SHORT_CLIP = "smile_eyes"
FAST = AnimateSettings(max_side=480)
UNEXPECTED = t("en", "err_unexpected")


def call(client: Client, portrait="", clip=CLIP, portrait_file=None, clip_file=None, consent=False, engine="auto"):
    return client.submit(portrait, portrait_file, clip, clip_file, consent, False, 1.0, 1.0, True, False, engine,
                         api_name="/animate")


def video_of(value) -> str:
    return value["video"] if isinstance(value, dict) else value


@pytest.fixture(scope="module")
def app(launch_app, tmp_path_factory):
    url, demo = launch_app(AppConfig(queue_size=32))
    client = Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    yield client, demo, url
    client.close()


def leftovers(demo) -> list[str]:
    """Partial or temporary files in the shared store and the visitors' area."""
    roots = [demo.lp_store.root, demo.lp_files.root, demo.lp_files.uploads_root]
    return [str(p) for r in roots if r.is_dir() for p in r.rglob("*")
            if "partial" in p.name or p.name.startswith((".render-", ".tmp")) or p.suffix == ".tmp"]


def session_videos(demo) -> list[Path]:
    root = demo.lp_files.sessions_root
    return sorted(root.rglob("*.mp4")) if root.is_dir() else []


def still_serves(client: Client, demo, portrait: str) -> None:
    """A gallery request renders, is stored once, and the stored entry is whole."""
    out = video_of(call(client, portrait=portrait, clip=SHORT_CLIP).result(timeout=300))
    assert probe(out).n_frames == demo.lp_store.gallery.clip(SHORT_CLIP)["n_frames"]
    assert [r.portrait for r in demo.lp_store.stored() if r.portrait == portrait] == [portrait]
    assert not leftovers(demo)


class EngineFault:
    """Patches MeshWarpEngine.render: counts frames, optionally sleeps per frame, raises at frame ``fail_at``."""

    def __init__(self, monkeypatch, fail_at: int | None = None, exc: BaseException | None = None, sleep_s: float = 0):
        self.frames = 0
        self.fail_at, self.exc, self.sleep_s = fail_at, exc, sleep_s
        real = MeshWarpEngine.render

        def render(engine, prepared, frames):
            if self.fail_at is not None and self.frames >= self.fail_at:
                raise self.exc
            if self.sleep_s:
                time.sleep(self.sleep_s * len(frames))
            self.frames += len(frames)
            return real(engine, prepared, frames)

        monkeypatch.setattr(MeshWarpEngine, "render", render)


# ---------------------------------------------------------------------------------------------
# the engine raising mid-render
# ---------------------------------------------------------------------------------------------

def test_engine_raising_mid_render_library(tmp_path, monkeypatch):
    before = set(_child_ffmpegs())
    fault = EngineFault(monkeypatch, fail_at=20, exc=RuntimeError("CUDA error: an illegal memory access"))
    out = tmp_path / "result.mp4"
    with pytest.raises(RuntimeError, match="illegal memory access"):
        animate("gallery:mona_lisa", f"gallery:{CLIP}", out, settings=FAST)
    assert fault.frames == 20
    assert list(tmp_path.iterdir()) == [], "the failed render left files"
    assert set(_child_ffmpegs()) <= before, "ffmpeg left running after the engine failed"
    monkeypatch.undo()
    res = animate("gallery:mona_lisa", f"gallery:{CLIP}", out, settings=FAST)
    assert probe(out).n_frames == res.n_frames == 78


def test_engine_raising_mid_render_app(app, monkeypatch):
    client, demo, _ = app
    fault = EngineFault(monkeypatch, fail_at=15, exc=RuntimeError("engine exploded"))
    with pytest.raises(Exception) as e:
        call(client, portrait="voltaire", clip=SHORT_CLIP).result(timeout=300)
    msg = str(e.value)
    assert msg == UNEXPECTED or UNEXPECTED in msg, msg
    assert "engine exploded" not in msg and "Traceback" not in msg
    assert fault.frames == 15
    assert [r for r in demo.lp_store.stored() if r.portrait == "voltaire"] == [], "a failed render was stored"
    assert not leftovers(demo)
    # An upload fails the same way and leaves nothing in the visitor's folder.
    img = demo.lp_store.gallery.portrait_path("gogol")
    with pytest.raises(Exception, match="Something went wrong"):
        call(client, portrait_file=handle_file(str(img)), clip=SHORT_CLIP, consent=True).result(timeout=300)
    assert session_videos(demo) == []
    monkeypatch.undo()
    still_serves(client, demo, "voltaire")


# ---------------------------------------------------------------------------------------------
# the disk filling while encoding
# ---------------------------------------------------------------------------------------------

def _limit_file_size(limit: int, signal_too: bool):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        if not signal_too:  # a write past the limit then fails with EFBIG, as a full disk fails with ENOSPC
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return preexec


def test_disk_full_while_encoding_cli(tmp_path):
    """The whole CLI under a 100 kB file-size limit (RLIMIT_FSIZE; the finished mp4 is ~200 kB): ffmpeg is
    stopped by the kernel part-way through the mp4; the user reads one line saying the disk is full, and
    nothing is left."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = subprocess.run([sys.executable, "-m", "talking_head", "animate", "--portrait", "gallery:mona_lisa",
                        "--clip", f"gallery:{CLIP}", "--out", str(out_dir / "mona.mp4"), "--max-side", "480"],
                       cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                       preexec_fn=_limit_file_size(100_000, signal_too=True),
                       env={**os.environ, "TMPDIR": str(tmp_path)})
    lines = _our_stderr(r.stderr)
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "disk is full" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert list(out_dir.iterdir()) == [], list(out_dir.iterdir())
    assert [p for p in tmp_path.iterdir() if p != out_dir] == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_render_stopped_from_outside_leaves_nothing(tmp_path, stop):
    """`kill`, a service manager's stop, `timeout`, or the terminal closing, mid-render: Python died at once
    and left the .partial.mp4 behind. It ends as Ctrl-C does: one line, status 130, nothing in the folder."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "talking_head", "animate", "--portrait", "gallery:newton",
                             "--clip", "gallery:expressive", "--out", str(out_dir / "newton.mp4")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".partial.mp4") for p in out_dir.iterdir()):  # (the encoder has started)
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=60)
    lines = _our_stderr(stderr)
    assert proc.returncode == 130 and lines == ["error: interrupted; nothing was written."], stderr
    assert list(out_dir.iterdir()) == []


@pytest.fixture
def full_disk(monkeypatch):
    """Every encoder ffmpeg started from now on may write at most 150 kB per file (then EFBIG)."""
    import talking_head.video as video_mod

    real = subprocess.Popen
    started = []

    def popen(cmd, *a, **kw):
        if "libx264" in cmd:
            kw["preexec_fn"] = _limit_file_size(150_000, signal_too=False)
            started.append(cmd)
        return real(cmd, *a, **kw)

    monkeypatch.setattr(video_mod.subprocess, "Popen", popen)
    return started


def test_disk_full_while_encoding_library(tmp_path, full_disk):
    with pytest.raises(VideoEncodeError) as e:
        animate("gallery:mona_lisa", f"gallery:{CLIP}", tmp_path / "result.mp4", settings=FAST)
    assert full_disk, "the encoder was not started under the limit"
    msg = assert_helpful(e.value, VideoEncodeError)
    assert "disk is full" in msg and "free some disk space" in msg, msg
    assert list(tmp_path.iterdir()) == []
    assert not live_threads(FINISHING_THREAD), "the encoding thread outlived the failure"


def test_disk_full_while_encoding_app(app, full_disk, monkeypatch):
    client, demo, _ = app
    with pytest.raises(Exception, match="disk is full") as e:
        call(client, portrait="rousseau", clip=SHORT_CLIP).result(timeout=300)
    assert "Traceback" not in str(e.value)
    assert full_disk
    assert [r for r in demo.lp_store.stored() if r.portrait == "rousseau"] == []
    img = demo.lp_store.gallery.portrait_path("gogol")
    with pytest.raises(Exception, match="disk is full"):
        call(client, portrait_file=handle_file(str(img)), clip=SHORT_CLIP, consent=True).result(timeout=300)
    assert session_videos(demo) == []
    assert not leftovers(demo)
    monkeypatch.undo()  # space is freed
    still_serves(client, demo, "rousseau")


# ---------------------------------------------------------------------------------------------
# corrupt cached files: detected by checksum, recomputed
# ---------------------------------------------------------------------------------------------

def _flip_bytes(path: Path, at: float = 0.5, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i:i + n] = bytes(b ^ 0xFF for b in data[i:i + n])
    path.write_bytes(bytes(data))


def test_corrupt_stored_result_is_rendered_again_not_served(app, monkeypatch):
    client, demo, _ = app
    store = demo.lp_store
    first = Path(video_of(call(client, portrait="newton", clip=SHORT_CLIP).result(timeout=300)))
    (entry,) = [r for r in store.stored() if r.portrait == "newton"]
    good = entry.path.read_bytes()
    _flip_bytes(entry.path)  # same size: only the checksum can tell
    assert entry.path.stat().st_size == len(good)
    fault = EngineFault(monkeypatch)
    second = Path(video_of(call(client, portrait="newton", clip=SHORT_CLIP).result(timeout=300)))
    assert fault.frames > 0, "the corrupt stored result was served instead of being rendered again"
    assert second.read_bytes() == first.read_bytes() == good  # x264 is deterministic here
    (again,) = [r for r in store.stored() if r.portrait == "newton"]
    assert again.path.read_bytes() == good
    # Truncated (a torn write) and a record that lies: the same.
    entry.path.write_bytes(good[: len(good) // 2])
    assert store.lookup(entry.path.stem) is None
    assert not entry.path.exists() and not entry.path.with_suffix(".json").exists()
    assert not leftovers(demo)


def test_corrupt_motion_cache_is_detected_and_recomputed(tmp_path):
    cache = DiskCache(tmp_path / "cache")
    clip = tmp_path / "clip.mp4"
    shutil.copy(Gallery.default().clip_path(SHORT_CLIP), clip)
    first = animate("gallery:mona_lisa", clip, tmp_path / "a.mp4", settings=FAST, cache=cache)
    assert not first.motion_cached
    (motion,) = (tmp_path / "cache" / "motion").glob("*.bin")
    _flip_bytes(motion, at=0.7, n=16)
    again = animate("gallery:mona_lisa", clip, tmp_path / "b.mp4", settings=FAST, cache=cache)
    assert not again.motion_cached, "a corrupt motion cache entry was used"
    assert again.n_frames == first.n_frames == probe(tmp_path / "b.mp4").n_frames
    third = animate("gallery:mona_lisa", clip, tmp_path / "c.mp4", settings=FAST, cache=cache)
    assert third.motion_cached, "the recomputed motion was not cached again"
    # The other cached kinds (probe, face) are checksummed the same way.
    for kind in ("probe", "motion"):
        for f in (tmp_path / "cache" / kind).glob("*.bin"):
            f.write_bytes(f.read_bytes()[:10])
    fourth = animate("gallery:mona_lisa", clip, tmp_path / "d.mp4", settings=FAST, cache=cache)
    assert fourth.n_frames == first.n_frames and not fourth.motion_cached
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]


def test_corrupt_gallery_motion_file_is_detected_and_recomputed(tmp_path):
    root = tmp_path / "gallery"
    shutil.copytree(Gallery.default().root, root, ignore=shutil.ignore_patterns("portraits"))
    shutil.copytree(Gallery.default().root / "portraits", root / "portraits",
                    ignore=lambda d, names: [n for n in names if not n.startswith("mona_lisa")])
    _flip_bytes(root / "motion" / f"{SHORT_CLIP}.npz")
    res = animate("gallery:mona_lisa", f"gallery:{SHORT_CLIP}", tmp_path / "r.mp4", settings=FAST,
                  gallery=Gallery(root), cache=DiskCache(tmp_path / "cache"))
    assert res.n_frames == probe(tmp_path / "r.mp4").n_frames
    assert not res.motion_cached


# ---------------------------------------------------------------------------------------------
# the disk filling while a museum adds to its gallery
# ---------------------------------------------------------------------------------------------

def _small_gallery(root: Path) -> None:
    """A gallery of one portrait and one clip (copies of the shipped ones)."""
    shipped = Gallery.default()
    for sub, keep in (("portraits", "mona_lisa"), ("clips", SHORT_CLIP), ("motion", SHORT_CLIP)):
        (root / sub).mkdir(parents=True)
        for p in (shipped.root / sub).glob(f"{keep}.*"):
            shutil.copyfile(p, root / sub / p.name)
    m = shipped.manifest()
    (root / "manifest.json").write_text(json.dumps(
        {"portraits": {"mona_lisa": m["portraits"]["mona_lisa"]}, "clips": {SHORT_CLIP: m["clips"][SHORT_CLIP]}}))


NEWTON_INFO = {"title": "Newton", "artist": "Kneller", "year": "1702", "label": "-", "provenance": "-", "licence": "-"}


def _listing(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_replaced_work_leaves_the_start_screen(tmp_path, shared_dir):
    """After `gallery add-portrait --replace`, the results rendered from the old picture are no longer stored
    results: the kiosk's start screen went on playing the painting that had been replaced."""
    from talking_head.results import ResultStore
    root = tmp_path / "gallery"
    _small_gallery(root)
    store = ResultStore(tmp_path / "results", gallery=Gallery(root))
    store.get_or_render("mona_lisa", SHORT_CLIP, settings=AnimateSettings(max_side=320), cache=DiskCache(enabled=False))
    assert [r.portrait for r in store.stored()] == ["mona_lisa"]
    Gallery(root).add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "mona_lisa",
                               NEWTON_INFO, replace=True)
    assert store.stored() == []


def test_disk_full_while_adding_a_clip_cli(tmp_path, shared_dir):
    """`gallery add-clip` under a 100 kB file-size limit (the clip is 187 kB): the copy fails part-way; one line
    says to free disk space, and the gallery is exactly as it was (no part of the clip, no motion, no
    temporary file, the same manifest)."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    before = _listing(root)
    r = subprocess.run([sys.executable, "-m", "talking_head", "gallery", "add-clip",
                        str(shared_dir / "gallery-src/clips/clip_mouth_open_01.mp4"), "--id", "our_greeting",
                        "--title", "A greeting", "--shows", "an open mouth", "--provenance", "test copy",
                        "--licence", "test", "--consent", "test footage"],
                       cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                       preexec_fn=_limit_file_size(100_000, signal_too=False),
                       env={**os.environ, "LIVING_PORTRAITS_GALLERY": str(root)})
    lines = _our_stderr(r.stderr)
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "free some disk space" in lines[0].lower(), r.stderr
    assert _listing(root) == before
    assert Gallery(root).manifest()["clips"].keys() == {SHORT_CLIP}


def _gallery_whose_manifest_cannot_be_written(tmp_path, monkeypatch):
    """(root, its files' contents, the Gallery) for a small gallery whose manifest write hits a full disk."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    g = Gallery(root)

    def disk_full(manifest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(g, "_write", disk_full)
    return root, _listing(root), g


def test_a_failed_manifest_write_takes_the_new_files_back_out(tmp_path, monkeypatch, shared_dir):
    """The files are written, then the manifest: when the manifest cannot be written, the portrait copied
    in a moment ago is removed again, so the gallery holds no file its manifest does not list."""
    root, before, g = _gallery_whose_manifest_cannot_be_written(tmp_path, monkeypatch)
    with pytest.raises(GalleryError) as e:
        g.add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "newton_copy",
                       NEWTON_INFO)
    assert "No space left on device" in str(e.value) and "free some disk space" in str(e.value).lower()
    assert _listing(root) == before


def test_a_failed_manifest_write_puts_back_the_work_it_was_replacing(tmp_path, monkeypatch, shared_dir):
    """Adding Newton under the id of the Mona Lisa, the manifest write fails: her picture is back in its
    file (not Newton's under her title and landmarks), and nothing else is left beside it."""
    root, before, g = _gallery_whose_manifest_cannot_be_written(tmp_path, monkeypatch)
    with pytest.raises(GalleryError):
        g.add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "mona_lisa",
                       NEWTON_INFO, replace=True)
    assert _listing(root) == before
    monkeypatch.undo()
    g.add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "mona_lisa",
                   NEWTON_INFO, replace=True)  # when it succeeds, only the new work is left
    assert sorted(p.name for p in (root / "portraits").iterdir()) == ["mona_lisa.jpg"]
    assert Gallery(root).portrait("mona_lisa")["title"] == "Newton"


def test_a_replace_stopped_by_ctrl_c_puts_back_the_work_it_was_replacing(tmp_path, monkeypatch, shared_dir):
    """Ctrl-C as the manifest was being written, replacing the Mona Lisa by Newton: the CLI said "nothing
    was written", but her file held Newton's picture under her landmarks (an open mouth in his shirt)."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    before, g = _listing(root), Gallery(root)

    def interrupted(manifest):
        raise KeyboardInterrupt

    monkeypatch.setattr(g, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        g.add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "mona_lisa", NEWTON_INFO,
                       replace=True)
    assert _listing(root) == before


def test_a_gallery_whose_files_cannot_be_written_says_so(tmp_path, monkeypatch, shared_dir):
    """A gallery on a read-only disk: the undo's own unlink failed too, and the curator read "an internal
    error ... this is a bug"."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    before = _listing(root)
    real_unlink = Path.unlink

    def read_only(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("talking_head.gallery.copy_file", read_only)
    monkeypatch.setattr(Path, "unlink", lambda p, *a, **k: read_only() if root in p.parents else real_unlink(p, *a, **k))
    with pytest.raises(GalleryError, match="Read-only file system.*check that the folder is writable"):
        Gallery(root).add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "newton_copy",
                                   NEWTON_INFO)
    monkeypatch.undo()
    assert _listing(root) == before


def test_a_replace_that_fills_the_disk_while_copying_leaves_nothing_beside_the_work(tmp_path, monkeypatch, shared_dir):
    """The disk full while the new picture was being copied (the old one not yet replaced): the old picture
    stayed, and so did its second name, `.mona_lisa.jpg.previous`: renaming a file onto another link to
    itself does nothing."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    before = _listing(root)

    def disk_full(src, dest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("talking_head.gallery.copy_file", disk_full)
    with pytest.raises(GalleryError, match="Free some disk space"):
        Gallery(root).add_portrait(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", "mona_lisa",
                                   NEWTON_INFO, replace=True)
    assert _listing(root) == before


def test_two_curators_adding_at_once_both_find_their_work_listed(tmp_path, monkeypatch, shared_dir):
    """Two `gallery add-portrait` at the same time each read the manifest, added their work and wrote it
    back: both said "Added", and only the last one was listed (its picture file stayed, listed nowhere)."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    real_write = Gallery._write

    def slow_write(self, manifest):  # each takes a while between reading the manifest and writing it back
        time.sleep(1.5)
        real_write(self, manifest)

    monkeypatch.setattr(Gallery, "_write", slow_write)
    src = shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg"
    errors: list[BaseException] = []

    def add(item_id):
        try:
            Gallery(root).add_portrait(src, item_id, NEWTON_INFO)
        except Exception as e:  # noqa: BLE001 (each thread's error is reported below)
            errors.append(e)

    threads = [threading.Thread(target=add, args=(f"newton_{i}",)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    listed = json.loads((root / "manifest.json").read_text())["portraits"]
    assert set(listed) == {"mona_lisa", "newton_0", "newton_1"}
    assert sorted(p.name for p in (root / "portraits").iterdir()) == ["mona_lisa.jpg", "newton_0.jpg", "newton_1.jpg"]


def _gallery_cli(root: Path, *args: str) -> tuple[int, str, list[str]]:
    r = subprocess.run([sys.executable, "-m", "talking_head", "gallery", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=120, check=False, env={**os.environ, "LIVING_PORTRAITS_GALLERY": str(root)})
    return r.returncode, r.stdout, _our_stderr(r.stderr)


def test_a_manifest_broken_by_hand_is_named_with_its_line(tmp_path):
    """One comma too many in manifest.json (a hand edit to remove a clip): every command said "an internal
    error ... this is a bug"."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    text = (root / "manifest.json").read_text()
    (root / "manifest.json").write_text(text[:-1] + ",}")
    rc, _, lines = _gallery_cli(root, "list")
    assert rc == 2, lines
    assert len(lines) == 1 and "manifest.json" in lines[0] and "line 1" in lines[0] and "bug" not in lines[0], lines


def test_a_curator_removes_a_work_and_is_told_of_one_whose_file_went(tmp_path):
    """Taking a work out meant editing a 34,000-line manifest by hand; a file deleted without its entry
    stopped the app with a FileNotFoundError traceback."""
    root = tmp_path / "gallery"
    _small_gallery(root)
    rc, out, err = _gallery_cli(root, "remove-clip", SHORT_CLIP)
    assert rc == 0 and f"Removed clip '{SHORT_CLIP}'" in out, err
    assert Gallery(root).manifest()["clips"] == {}
    assert list((root / "clips").iterdir()) == [] and list((root / "motion").iterdir()) == []
    rc, _, err = _gallery_cli(root, "remove-clip", SHORT_CLIP)
    assert rc == 2 and len(err) == 1 and f"no gallery clip '{SHORT_CLIP}'" in err[0], err
    # An empty title, licence or consent record is refused before anything is read.
    rc, _, err = _gallery_cli(root, "add-clip", str(Gallery.default().clip_path(SHORT_CLIP)), "--id", "x",
                              "--title", "x", "--shows", "x", "--provenance", "x", "--licence", "x", "--consent", " ")
    assert rc == 2 and "--consent: must not be empty" in err[-1], err

    # A group: the largest face is taken, and the curator is told how to take another.
    import badinput
    rc, out, err = _gallery_cli(root, "add-portrait", str(badinput.make_group(tmp_path)), "--id", "group",
                                *[x for k in ("title", "artist", "year", "label", "provenance", "licence")
                                  for x in (f"--{k}", "x")])
    assert rc == 0 and "Added portrait 'group'" in out, err
    assert f"note: The portrait has {len(badinput.GROUP_MEMBERS)} faces; the largest was animated" in out, out
    assert Gallery(root).portrait("group")["faces_found"] == len(badinput.GROUP_MEMBERS)
    # A clip of two people: the curator is told whom the portraits follow (visitors are not: their choice).
    rc, out, err = _gallery_cli(root, "add-clip", str(badinput.make_two_people_clip(tmp_path)), "--id", "two",
                                *[x for k in ("title", "shows", "provenance", "licence", "consent") for x in (f"--{k}", "x")])
    assert rc == 0 and "Added clip 'two'" in out, err
    assert "note: The driving clip shows 2 faces; the portrait follows the one that was largest" in out, out

    (root / "portraits" / "mona_lisa.jpg").unlink()  # by hand, the entry left
    with pytest.raises(GalleryError, match=r"lists the portrait 'mona_lisa', but its file .* is not there"):
        Gallery(root).portrait_path("mona_lisa")
    rc, out, err = _gallery_cli(root, "remove-portrait", "mona_lisa")
    assert rc == 0 and set(Gallery(root).manifest()["portraits"]) == {"group"}, err


# ---------------------------------------------------------------------------------------------
# a checkpoint that fails verification
# ---------------------------------------------------------------------------------------------

def test_checkpoint_failing_verification_in_the_app(app, tmp_path, monkeypatch):
    """LivePortrait's weights present at the right sizes but with the wrong bytes (sparse files): the
    engine reports itself ready (sizes match), the request fails its sha256 check with a message that
    says to run prefetch, and the app goes on serving with the CPU engine."""
    from talking_head import checkpoints

    client, demo, _ = app
    weights = tmp_path / "weights"
    for spec in checkpoints.specs("liveportrait"):
        p = weights / spec.filename
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            f.truncate(spec.size or 1024)
    monkeypatch.setenv("LIVING_PORTRAITS_WEIGHTS", str(weights))
    assert checkpoints.status()["liveportrait"] == [], "the planted files should look complete"
    with pytest.raises(Exception) as e:
        call(client, portrait="diderot", clip=SHORT_CLIP, engine="liveportrait").result(timeout=300)
    msg = str(e.value)
    assert "sha256" in msg and "python -m talking_head prefetch" in msg, msg
    assert "Traceback" not in msg
    assert [r for r in demo.lp_store.stored() if r.portrait == "diderot"] == []
    assert not leftovers(demo)
    still_serves(client, demo, "diderot")


# ---------------------------------------------------------------------------------------------
# the client leaving mid-render
# ---------------------------------------------------------------------------------------------

def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _assert_stops(fault: EngineFault, ffmpeg_before: set[int], what: str) -> int:
    """The render stops within a few seconds of the client leaving; returns the frames it did."""
    time.sleep(3)
    settled = fault.frames
    time.sleep(2)
    assert fault.frames == settled, f"{what}: the render went on after the client left"
    assert settled < 78, f"{what}: the render ran to the end"
    _wait(lambda: set(_child_ffmpegs()) <= ffmpeg_before, 10, f"{what}: ffmpeg to stop")
    return settled


@pytest.mark.parametrize("what", ["gallery", "upload"])
def test_client_cancelling_mid_render_stops_the_work_and_removes_its_files(app, monkeypatch, what):
    client, demo, _ = app
    ffmpeg_before = set(_child_ffmpegs())
    stored_before = len(demo.lp_store.stored())
    fault = EngineFault(monkeypatch, sleep_s=0.15)  # ~12 s for 78 frames: time to leave half-way
    if what == "gallery":
        job = call(client, portrait="walt_whitman", clip=CLIP)
    else:
        img = demo.lp_store.gallery.portrait_path("mark_twain")
        job = call(client, portrait_file=handle_file(str(img)), clip=CLIP, consent=True)
    _wait(lambda: fault.frames >= 10, 120, "the render to start")
    job.cancel()
    _assert_stops(fault, ffmpeg_before, what)
    assert session_videos(demo) == []
    assert len(demo.lp_store.stored()) == stored_before, "a cancelled render was stored"
    assert not leftovers(demo)
    monkeypatch.undo()
    still_serves(client, demo, "walt_whitman" if what == "gallery" else "mark_twain")


def test_client_disconnecting_mid_render_stops_the_work(app, monkeypatch):
    """A raw client joins the queue, reads the event stream until its render is running, then drops the
    connection without a word (a closed laptop, a lost network)."""
    client, demo, url = app
    ffmpeg_before = set(_child_ffmpegs())
    fault = EngineFault(monkeypatch, sleep_s=0.15)
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == "animate")
    session = "disconnect-test-session"
    body = {"data": ["evelyn_nesbit", None, CLIP, None, False, False, 1.0, 1.0, True, False, "auto"],
            "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/gradio_api/queue/join", json=body)
        assert r.status_code == 200, r.text
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            lines = stream.iter_lines()
            deadline = time.time() + 120
            while fault.frames < 10 and time.time() < deadline:
                next(lines)
            assert fault.frames >= 10, "the render did not start"
        # leaving the with-block closes the connection mid-render
    _assert_stops(fault, ffmpeg_before, "disconnect")
    assert [r for r in demo.lp_store.stored() if r.portrait == "evelyn_nesbit"] == []
    assert not leftovers(demo)
    monkeypatch.undo()
    still_serves(client, demo, "evelyn_nesbit")


def test_nothing_pending_after_the_faults(app):
    """The queue is empty and the store holds only whole results after all of the above."""
    _, demo, _ = app
    _wait(lambda: len(demo._queue) == 0, 30, "the queue to empty")
    for r in demo.lp_store.stored():
        meta = json.loads(r.path.with_suffix(".json").read_text())
        assert r.path.stat().st_size == meta["bytes"]
        assert probe(r.path).n_frames > 0
    assert not leftovers(demo)
