"""Security promises as tests: gallery ids stay in the gallery, upload names are sanitised, image limits
hold before decoding, no visitor file is unpickled, the server binds to localhost unless told, and one
visitor's files are not served to another.
"""
from __future__ import annotations

import ast
import os
import pickle
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import badinput
import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image, ImageFile

from demo.ui import AppConfig
from talking_head import animate
from talking_head.errors import GalleryError, ImageError, TalkingHeadError
from talking_head.gallery import Gallery, check_id
from talking_head.images import load_image
from talking_head.pipeline import AnimateSettings

REPO = Path(__file__).resolve().parent.parent
CLIP = "smile_eyes"
FAST = AnimateSettings(max_side=480)

HOSTILE_IDS = ["../../etc/passwd", "/etc/passwd", "..", ".", "mona_lisa/../../secret", "mona_lisa\x00.jpg",
               "..%2f..%2fetc%2fpasswd", "~root", "MONA_LISA", "mona lisa", "mona_lisa.jpg", "a" * 65, "",
               "mona_lisa\n",
               "C:\\Windows\\win.ini", "file:///etc/passwd", "${HOME}", "-rf"]


@pytest.fixture(scope="module")
def app(launch_app, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")
        url, demo = launch_app(AppConfig())
        yield url, demo


def client_for(url: str, tmp_path: Path) -> Client:
    return Client(url, verbose=False, download_files=str(tmp_path / f"dl-{time.monotonic_ns()}"))


def animate_api(client: Client, portrait="", portrait_file=None, clip=CLIP, clip_file=None, consent=True):
    return client.predict(portrait, portrait_file, clip, clip_file, consent, False, 1.0, 1.0, True, False, "auto",
                          api_name="/animate")


# ---------------------------------------------------------------------------------------------
# gallery ids
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_gallery_ids_cannot_name_a_path(bad):
    with pytest.raises(GalleryError):
        check_id(bad)
    g = Gallery.default()
    for lookup in (g.portrait_path, g.clip_path, g.motion_path, g.portrait, g.clip):
        with pytest.raises(GalleryError):
            lookup(bad)


def test_every_gallery_file_is_inside_the_gallery():
    g = Gallery.default()
    root = g.root.resolve()
    m = g.manifest()
    for pid in m["portraits"]:
        assert g.portrait_path(pid).resolve().is_relative_to(root / "portraits")
    for cid in m["clips"]:
        assert g.clip_path(cid).resolve().is_relative_to(root / "clips")
        assert g.motion_path(cid).resolve().is_relative_to(root / "motion")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "mona_lisa/../../x"])
def test_hostile_gallery_ids_through_library_cli_and_api(bad, app, tmp_path):
    for spec in ((f"gallery:{bad}", f"gallery:{CLIP}"), ("gallery:mona_lisa", f"gallery:{bad}")):
        with pytest.raises(TalkingHeadError):
            animate(*spec, tmp_path / "x.mp4", settings=FAST)
    r = subprocess.run([sys.executable, "-m", "talking_head", "animate", "--portrait", f"gallery:{bad}", "--clip",
                        f"gallery:{CLIP}", "--out", str(tmp_path / "x.mp4")], cwd=REPO, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 2 and "not a gallery id" in r.stderr and "Traceback" not in r.stderr, r.stderr
    url, _ = app
    client = client_for(url, tmp_path)
    with pytest.raises(Exception, match="is not in the gallery"):
        animate_api(client, portrait=bad, consent=False)
    with pytest.raises(Exception, match="is not in the gallery"):
        animate_api(client, portrait="mona_lisa", clip=bad, consent=False)
    client.close()
    assert not (tmp_path / "x.mp4").exists()


# ---------------------------------------------------------------------------------------------
# upload names
# ---------------------------------------------------------------------------------------------

HOSTILE_NAMES = ["../../../../../tmp/lp-escape-{tag}.jpg", "..\\..\\lp-escape-{tag}.jpg", "/tmp/lp-escape-{tag}.jpg",
                 "lp-{tag}\nInjected: header.jpg", "lp-{tag}<script>alert(1)</script>.jpg", "-{tag}.jpg",
                 "lp-{tag}" + "x" * 300 + ".jpg", "lp-{tag}\x00.jpg", "lp-{tag};rm -rf ~.jpg", "lp-{tag}:1 #.mp4"]


@pytest.mark.parametrize("template", HOSTILE_NAMES)
def test_upload_names_are_sanitised(app, template, tmp_path):
    """A raw multipart upload with a hostile file name lands inside the upload folder under a harmless
    name (no folder part, no control characters); the render then works or is refused in one clean line."""
    url, demo = app
    tag = f"{os.getpid()}{time.monotonic_ns()}"
    name = template.format(tag=tag)
    data = badinput.BASE_PORTRAIT.read_bytes()
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/gradio_api/upload", files={"files": (name, data, "image/jpeg")})
    if r.status_code != 200:  # refused outright is fine, as long as it says so without a traceback
        assert r.status_code in (400, 413, 422) and "Traceback" not in r.text, (r.status_code, r.text)
        return
    (stored,) = r.json()
    p = Path(stored).resolve()
    root = demo.lp_files.uploads_root
    assert p.is_relative_to(root), f"upload written outside the upload folder: {p}"
    assert p.parent.parent == root, p
    assert p.is_file() and p.read_bytes() == data
    assert not re.search(r"[\x00-\x1f/\\]", p.name) and ".." not in Path(p.name).parts, p.name
    assert not list(Path("/tmp").glob(f"lp-escape-{tag}*")) and not list(root.parent.glob(f"lp-escape-{tag}*"))
    client = client_for(url, tmp_path)
    try:
        value = animate_api(client, portrait_file=handle_file(str(p)))
        assert Path(value["video"] if isinstance(value, dict) else value).name.startswith("portrait-")
    except Exception as e:  # noqa: BLE001 - an image named .mp4 may be refused in one clean line
        assert "\n" not in str(e) and "Traceback" not in str(e), str(e)
    client.close()


def test_result_names_never_come_from_upload_names(app, tmp_path):
    url, _ = app
    odd = tmp_path / "$(touch pwned);name.jpg"
    odd.write_bytes(badinput.BASE_PORTRAIT.read_bytes())
    client = client_for(url, tmp_path)
    value = animate_api(client, portrait_file=handle_file(str(odd)))
    out = Path(value["video"] if isinstance(value, dict) else value)
    assert re.fullmatch(r"portrait-[a-z0-9_]{8}\.mp4", out.name), out.name
    assert not (REPO / "pwned").exists() and not Path("pwned").exists()
    client.close()


# ---------------------------------------------------------------------------------------------
# image limits hold before decoding
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    return {"header": badinput.make_bomb_header(d), "20000x20000": badinput.make_bomb_1bit(d),
            "64mp": badinput.make_bomb_64mp(d), "huge_file": badinput.make_huge_file(d)}


@pytest.mark.parametrize("case", ["header", "20000x20000", "64mp", "huge_file"])
def test_pixel_and_file_size_limits_hold_before_decoding(bombs, monkeypatch, case):
    decoded, opened = [], []
    real_load, real_open = ImageFile.ImageFile.load, Image.open
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self, *a: decoded.append(self.size) or real_load(self, *a))
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    t = time.perf_counter()
    with pytest.raises(ImageError, match="megapixels|MB limit"):
        load_image(bombs[case])
    assert decoded == [], f"pixels were decoded before the limit was checked: {decoded}"
    if case == "huge_file":
        assert opened == [], "a file over the size limit was opened as an image"
    assert time.perf_counter() - t < 2


def test_server_refuses_an_upload_over_the_size_limit_itself(app, bombs):
    """Not just gradio_client's courtesy check: the server answers 413 to a raw 51 MB upload and keeps nothing."""
    url, demo = app
    before = set(demo.lp_files.uploads_root.rglob("*"))
    with httpx.Client(base_url=url, timeout=120) as http, open(bombs["huge_file"], "rb") as f:
        r = http.post("/gradio_api/upload", files={"files": ("huge.jpg", f, "image/jpeg")})
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert "Traceback" not in r.text
    after = {p for p in demo.lp_files.uploads_root.rglob("*") if p.is_file() and p.stat().st_size > 1_000_000}
    assert not (after - before), f"the refused upload was kept: {after - before}"


# ---------------------------------------------------------------------------------------------
# no visitor file is ever unpickled
# ---------------------------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if re.search(r"(^|\.)(pickle|cPickle|dill|joblib|shelve|marshal)\.(load|loads|open)$", name) \
                or name.endswith(("Unpickler", "pd.read_pickle", "pandas.read_pickle")):
            found.append(name)
        elif re.search(r"(^|\.)np\.load$|numpy\.load$", name) and kw.get("allow_pickle") != "False":
            found.append(f"{name} without allow_pickle=False")
        elif name.endswith("torch.load") and kw.get("weights_only") != "True":
            found.append(f"{name} without weights_only=True")
    return found


def test_no_code_path_can_unpickle():
    """Every loader in the product refuses pickled objects: np.load(allow_pickle=False),
    torch.load(weights_only=True), safetensors; no pickle/dill/joblib/shelve/marshal at all."""
    problems = {}
    for path in [*REPO.glob("talking_head/**/*.py"), *REPO.glob("demo/**/*.py"), REPO / "app.py"]:
        bad = _unsafe_calls(ast.parse(path.read_text(encoding="utf-8")))
        if bad:
            problems[str(path.relative_to(REPO))] = bad
    assert problems == {}


@pytest.mark.parametrize("name", ["portrait.jpg", "clip.mp4", "motion.npz", "weights.pt", "state.pkl"])
def test_a_pickle_uploaded_as_any_file_is_never_loaded(app, tmp_path, name):
    marker = tmp_path / "pwned"
    payload = tmp_path / name
    if name.endswith(".npz"):
        np.savez(payload, x=np.array([_Payload(marker)], dtype=object))
    else:
        payload.write_bytes(pickle.dumps(_Payload(marker)))
    as_clip = name.endswith((".mp4", ".npz"))
    with pytest.raises(TalkingHeadError):
        animate(*(("gallery:mona_lisa", payload) if as_clip else (payload, f"gallery:{CLIP}")), tmp_path / "o.mp4",
                settings=FAST)
    url, _ = app
    client = client_for(url, tmp_path)
    with pytest.raises(Exception) as e:
        if as_clip:
            animate_api(client, portrait="mona_lisa", clip="", clip_file=handle_file(str(payload)))
        else:
            animate_api(client, portrait_file=handle_file(str(payload)))
    assert "Traceback" not in str(e.value)
    client.close()
    assert not marker.exists(), "a visitor's pickle was executed"


# ---------------------------------------------------------------------------------------------
# the server binds to localhost unless told
# ---------------------------------------------------------------------------------------------

def test_host_defaults_to_localhost():
    import app as app_module

    args = app_module.parse_args([])
    assert app_module.server_host(args, {}) == "127.0.0.1"
    assert app_module.server_host(args, {"SPACE_ID": "museum/living-portraits"}) == "0.0.0.0"
    assert app_module.server_host(args, {"GRADIO_SERVER_NAME": "10.0.0.5"}) == "10.0.0.5"
    assert app_module.server_host(app_module.parse_args(["--host", "0.0.0.0"]), {}) == "0.0.0.0"
    assert app_module.server_host(app_module.parse_args(["--kiosk"]), {}) == "127.0.0.1"


def test_the_start_line_says_where_to_open_the_app():
    import app as app_module
    assert "at http://127.0.0.1:7860." in app_module.started("127.0.0.1", 7860)
    assert "at http://[::1]:8080." in app_module.started("::1", 8080)
    everywhere = app_module.started("0.0.0.0", 8080)
    assert "every network address" in everywhere and "http://127.0.0.1:8080" in everywhere


def test_a_clip_limit_out_of_range_stops_the_app_at_start(capsys):
    """Out of range, --max-clip-seconds made every visitor's upload and render fail once the app was up."""
    import app as app_module
    with pytest.raises(SystemExit) as e:
        app_module.parse_args(["--max-clip-seconds", "7200"])
    assert e.value.code == 2 and "from 0.1 to 3600" in capsys.readouterr().err
    assert app_module.parse_args(["--max-clip-seconds", "600"]).max_clip_seconds == 600


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            addr, p = f[1].split(":")
            if int(p, 16) == port and f[3] == "0A":  # LISTEN
                out.append(addr)
    return out


def test_the_real_app_listens_on_localhost_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_SERVER_NAME", "SPACE_ID", "GRADIO_TEMP_DIR")}
    env.update(LIVING_PORTRAITS_TMP=str(tmp_path / "visitors"), LIVING_PORTRAITS_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not _listening(port):
            assert proc.poll() is None, "the app exited"
            assert time.time() < deadline, "the app did not start listening"
            time.sleep(0.5)
        assert _listening(port) == ["0100007F"], f"listening on {_listening(port)} (0100007F is 127.0.0.1)"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# one visitor's files are not served to another
# ---------------------------------------------------------------------------------------------

def test_a_visitors_files_are_not_served_to_others(app, tmp_path):
    url, demo = app
    files = demo.lp_files
    alice = client_for(url, tmp_path)
    img = tmp_path / "alice.jpg"
    img.write_bytes(badinput.BASE_PORTRAIT.read_bytes())
    animate_api(alice, portrait_file=handle_file(str(img)))
    # The session's folder: the result, and the cache of what was found in her upload (its face).
    originals = [p for p in files.sessions_root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".mp4" for p in originals) and any(p.suffix == ".bin" for p in originals), originals
    # (Gradio's upload parser also leaves an empty tmpXXXX beside each upload: nothing of anyone, swept.)
    served = [p for p in files.visitor_files() if p not in originals and p.parent != files.uploads_root]
    assert originals and served, (originals, served)
    with httpx.Client(base_url=url, timeout=30) as bob:
        def fetch(p) -> int:
            return bob.get(f"/gradio_api/file={p}").status_code

        # Nothing outside Gradio's own folders: not the session folders, not the visitors' root, not the store's
        # parent, not a system file.
        for p in [*originals, files.sessions_root, files.root, demo.lp_store.root.parent, "/etc/passwd",
                  f"{files.uploads_root}/../{files.root.name}"]:
            assert fetch(p) in (403, 404), p
        # The copies Gradio serves carry a 64-hex content digest in their path: not guessable, not listed.
        for p in served:
            assert re.fullmatch(r"[0-9a-f]{64}", p.parent.name), p
            assert fetch(p.parent) in (403, 404)
        assert all(fetch(p) == 200 for p in served)  # with the exact path (what Alice's page holds) ...
        alice.close()
        deadline = time.time() + 30
        while any(p.exists() for p in served + originals) and time.time() < deadline:
            time.sleep(0.2)
        assert all(fetch(p) in (403, 404) for p in served), "served after the visitor left"  # ... and then gone
    assert not [p for p in originals + served if p.exists()]
    # Never in the shared store or the kiosk's attract loop.
    assert all("alice" not in r.path.name for r in demo.lp_store.stored())
