"""The app through its public API, with gradio_client against a launched server (no browser)."""
from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from demo.strings import LANGUAGE_NAMES, STRINGS, pick_language
from demo.ui import AppConfig
from demo.visitor_files import VisitorFiles
from talking_head import video

REPO = Path(__file__).resolve().parent.parent
CLIP = "smile_eyes"  # the shortest gallery clip: 78 frames, 3.1 s


def call(client: Client, portrait="", clip=CLIP, portrait_file=None, clip_file=None, consent=False, **opts):
    return client.predict(portrait, portrait_file, clip, clip_file, consent, opts.get("side_by_side", False),
                          opts.get("strength", 1.0), opts.get("smoothing", 1.0), opts.get("head_motion", True),
                          opts.get("crop_only", False), opts.get("engine", "auto"), api_name="/animate")


def result_path(value) -> str:
    """The endpoint's answer as the README shows it: the downloaded mp4's path."""
    assert isinstance(value, str), f"the README says /animate gives a path, not {value!r}"
    return value


@pytest.fixture(scope="module")
def app(launch_app):
    url, demo = launch_app(AppConfig())
    return Client(url, verbose=False), demo


def test_one_named_endpoint(app):
    client, _ = app
    info = client.view_api(return_format="dict", print_info=False)
    assert list(info["named_endpoints"]) == ["/animate"]


def test_the_readmes_api_example_runs_as_written(launch_app, capsys):
    """The README's gradio_client example, pointed at an app of its own: it prints the path of a playable mp4
    (it printed video["video"], a TypeError with the pinned gradio_client, which gives the path itself)."""
    url, _ = launch_app(AppConfig())
    client = Client(url, verbose=False)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    [example] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "client.predict" in b]
    assert 'Client("http://127.0.0.1:7860/")' in example
    exec(example.replace('Client("http://127.0.0.1:7860/")', "given_client"), {"given_client": client})  # noqa: S102
    printed = capsys.readouterr().out.strip()
    assert printed.endswith(".mp4") and video.probe(printed).n_frames > 0, printed


def test_the_page_is_rendered_in_the_browser_as_tested_even_where_a_space_asks_for_ssr(app, monkeypatch):
    """page.js finds Gradio's locale switch among the client-rendered page's modules; server-side rendering
    (which a Space may ask for with GRADIO_SSR_MODE) serves them from elsewhere."""
    from demo.ui import launch_kwargs
    _, demo = app
    monkeypatch.setenv("GRADIO_SSR_MODE", "true")
    kwargs = launch_kwargs(AppConfig(), demo)
    assert demo._resolve_ssr_mode(kwargs["ssr_mode"]) is False


def test_gallery_portrait_with_gallery_clip(app):
    client, demo = app
    out = result_path(call(client, portrait="mona_lisa"))
    info = video.probe(out)
    clip = video.probe(demo.lp_store.gallery.clip_path(CLIP))
    assert (info.n_frames, info.fps) == (clip.n_frames, clip.fps)
    assert info.has_audio == clip.has_audio
    # Stored for everyone: the next visitor gets it without a render.
    assert [r.portrait for r in demo.lp_store.stored()] == ["mona_lisa"]


def test_cached_result_is_served_without_rendering(app, monkeypatch):
    client, demo = app
    demo.lp_store.get_or_render("voltaire", CLIP, settings=demo.lp_studio.settings())
    calls = []

    def no_render(*a, **k):
        calls.append(a)
        raise AssertionError("the engine was called for a stored result")

    monkeypatch.setattr("talking_head.results.animate", no_render)
    monkeypatch.setattr("demo.studio.animate", no_render)
    monkeypatch.setattr("talking_head.engines.meshwarp.MeshWarpEngine.render", no_render)
    out = result_path(call(client, portrait="voltaire"))
    assert video.probe(out).n_frames == 78
    assert calls == []


def test_a_result_stored_by_other_code_is_rendered_again_after_an_update(app, monkeypatch, tmp_path):
    """Results are keyed by the package's source: after any change to it (a fix in the compositor, the
    writer, the audio), what the old code stored is not served, whatever the version number says."""
    from talking_head import cache, results

    # The digest follows every Python file's name and content, and nothing else.
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")
    (root / "sub" / "b.py").write_text("y = 2\n")
    before = results.source_digest(root)
    (root / "notes.txt").write_text("not code")
    monkeypatch.setattr(cache, "_SOURCE_DIGESTS", {})
    assert results.source_digest(root) == before
    (root / "sub" / "b.py").write_text("y = 3\n")
    monkeypatch.setattr(cache, "_SOURCE_DIGESTS", {})
    assert results.source_digest(root) != before

    _, demo = app
    store, settings = demo.lp_store, demo.lp_studio.settings()
    first = store.get_or_render("voltaire", CLIP, settings=settings)
    assert store.get_or_render("voltaire", CLIP, settings=settings).cached
    monkeypatch.setattr(results, "source_digest", lambda: "the code after an update")
    again = store.get_or_render("voltaire", CLIP, settings=settings)
    assert not again.cached and again.path != first.path
    # The attract loop plays only what this code made; pruning deletes the rest, and renders a crash left
    # behind once they are an hour old.
    assert again.path in [r.path for r in store.stored()] and first.path not in [r.path for r in store.stored()]
    old_stray, new_stray = store.root / ".render-crashed.mp4", store.root / ".render-running.mp4"
    for stray in (old_stray, new_stray):
        stray.write_bytes(b"half a video")
    os.utime(old_stray, (time.time() - 7200, time.time() - 7200))
    assert store.prune() >= 3  # the old result's video and record, the old stray
    assert not first.path.exists() and not first.path.with_suffix(".json").exists() and not old_stray.exists()
    assert again.path.exists() and new_stray.exists()
    new_stray.unlink()


def test_uploaded_portrait_needs_consent_and_stays_in_the_visitor_area(app, shared_dir, tmp_path):
    client, demo = app
    img = tmp_path / "my painting.jpg"
    shutil.copy(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg", img)
    with pytest.raises(Exception, match="tick the box"):
        call(client, portrait_file=handle_file(str(img)))
    stored_before = len(demo.lp_store.stored())
    out = result_path(call(client, portrait_file=handle_file(str(img)), consent=True))
    assert video.probe(out).n_frames == 78
    assert len(demo.lp_store.stored()) == stored_before  # uploads are never cached for others
    rendered = list((demo.lp_files.root / "sessions").rglob("*.mp4"))
    assert len(rendered) == 1


def test_a_visitors_clip_is_read_once_for_their_check_and_renders_and_forgotten_with_them(app, monkeypatch):
    """The check's probe of an uploaded clip serves the render, and the clip's motion the next render (side
    by side, another painting), from a cache in the visitor's own folder, which goes when they leave: the
    shared cache and other visitors see nothing of it."""
    from demo.studio import Choice
    from talking_head import pipeline
    from talking_head.cache import DiskCache
    studio, files = app[1].lp_studio, app[1].lp_files
    clip = files.session_dir("visitor-a") / "my clip.mp4"
    shutil.copy(studio.gallery.clip_path(CLIP), clip)  # (an upload: a file of the visitor's, not the gallery's)
    shared = DiskCache()
    shared_before = set(shared.root.rglob("*.bin"))
    probes, tracked = [], []
    real_probe, real_tracking = video.probe, pipeline._LiveTracking
    monkeypatch.setattr(video, "probe", lambda *a, **k: probes.append(a) or real_probe(*a, **k))
    monkeypatch.setattr(pipeline, "_LiveTracking", lambda *a, **k: tracked.append(a) or real_tracking(*a, **k))
    assert studio.check_upload(str(clip), "clip", "visitor-a").ok
    assert len(probes) == 1
    upload = Choice(upload=str(clip))
    first = studio.run(Choice(gallery_id="mona_lisa"), upload, studio.settings(), consent=True, session_id="visitor-a")
    assert (len(probes), len(tracked)) == (1, 1)   # probed once, at the check; tracked by the first render
    side = studio.run(Choice(gallery_id="girl_with_a_pearl_earring"), upload, studio.settings(side_by_side=True),
                      consent=True, session_id="visitor-a")
    assert (len(probes), len(tracked)) == (1, 1)   # the second render read the first one's motion
    assert video.probe(side.path).n_frames == video.probe(first.path).n_frames == 78
    other = studio.run(Choice(gallery_id="mona_lisa"), upload, studio.settings(), consent=True, session_id="visitor-b")
    assert len(tracked) == 2 and other.path.is_file()   # another visitor's render finds nothing of visitor-a's
    cached = list((files.session_dir("visitor-a") / "cache").rglob("*.bin"))
    assert {p.parent.name for p in cached} >= {"probe", "motion"}
    assert set(shared.root.rglob("*.bin")) == shared_before   # nothing of theirs in the shared cache
    files.end_session("visitor-a")
    assert not any(p.exists() for p in cached)


def test_a_visitors_clip_is_read_ahead_once_they_agree_and_the_render_finds_its_motion(app, monkeypatch):
    """Once a visitor has agreed to their clip's use, its motion is tracked while they choose a painting:
    the render tracks nothing. A visitor who leaves meanwhile leaves no folder behind."""
    from demo.studio import Choice
    from talking_head import pipeline
    studio, files = app[1].lp_studio, app[1].lp_files
    clip = files.session_dir("visitor-c") / "my clip.mp4"
    shutil.copy(studio.gallery.clip_path(CLIP), clip)
    extracted, tracked = [], []
    real_extract, real_tracking = pipeline.extract_motion, pipeline._LiveTracking
    monkeypatch.setattr(pipeline, "extract_motion", lambda *a, **k: extracted.append(a) or real_extract(*a, **k))
    monkeypatch.setattr(pipeline, "_LiveTracking", lambda *a, **k: tracked.append(a) or real_tracking(*a, **k))
    assert studio.read_ahead(str(clip), "visitor-c")
    assert not studio.read_ahead(str(clip), "visitor-c")          # under way already
    assert studio.ahead.wait("visitor-c", str(clip), at_least=0)  # (the visitor chooses a painting meanwhile)
    done = studio.run(Choice(gallery_id="mona_lisa"), Choice(upload=str(clip)), studio.settings(), consent=True,
                      session_id="visitor-c")
    assert (len(extracted), len(tracked)) == (1, 0) and video.probe(done.path).n_frames == 78
    # Animate pressed as soon as the reading has begun: it stops, and the render tracks the clip itself while
    # it renders (faster than waiting for the rest of the reading).
    again = files.session_dir("visitor-e") / "clip.mp4"
    shutil.copy(clip, again)
    assert studio.read_ahead(str(again), "visitor-e")
    studio.run(Choice(gallery_id="mona_lisa"), Choice(upload=str(again)), studio.settings(), consent=True,
               session_id="visitor-e")
    assert len(tracked) == 1
    files.end_session("visitor-e")
    # Leaving while a clip is read: the reading stops, and nothing writes the folder back afterwards.
    other = files.session_dir("visitor-d") / "clip.mp4"
    shutil.copy(clip, other)
    assert studio.read_ahead(str(other), "visitor-d")
    studio.end_session("visitor-d")
    time.sleep(0.5)
    assert not other.parent.exists()
    files.end_session("visitor-c")


def test_a_check_that_ends_after_the_visitor_left_leaves_nothing_of_theirs(app, monkeypatch, tmp_path):
    """The tab closed while their clip was being checked: what the check found is not written back into a
    folder that was just deleted (it would stay until the sweeper's hour)."""
    import threading
    studio, files = app[1].lp_studio, app[1].lp_files
    clip = tmp_path / "clip.mp4"  # (where Gradio keeps an upload)
    shutil.copy(studio.gallery.clip_path(CLIP), clip)
    real_probe = video.probe
    monkeypatch.setattr(video, "probe", lambda *a, **k: time.sleep(1.0) or real_probe(*a, **k))
    checked = []
    check = threading.Thread(target=lambda: checked.append(studio.check_upload(str(clip), "clip", "visitor-f")))
    check.start()
    time.sleep(0.3)
    files.end_session("visitor-f")
    check.join()
    assert checked[0].ok
    assert not (files.sessions_root / "visitor-f").exists(), list((files.sessions_root / "visitor-f").rglob("*"))
    assert not studio.visitor_cache("visitor-f").enabled     # nor by anything that still runs for them


def test_read_ahead_runs_one_clip_a_visitor_and_waits_for_a_slot():
    import threading

    from demo.read_ahead import ReadAhead
    ahead, release, stopped = ReadAhead(slots=1), threading.Event(), []

    def work(stop, done):
        done(0.6)
        while not (release.is_set() or stop.is_set()):
            time.sleep(0.01)
        stopped.append(stop.is_set())

    assert ahead.start("a", "one.mp4", work)
    assert not ahead.start("b", "two.mp4", work)               # the one slot is busy: b's render tracks itself
    assert ahead.start("a", "three.mp4", work)                 # a's new clip replaces the last one's reading
    assert stopped == [True]
    time.sleep(0.1)
    release.set()
    assert ahead.wait("a", "three.mp4") and not ahead.wait("a", "one.mp4") and not ahead.wait("b", "two.mp4")
    assert stopped == [True, False]
    # A reading not yet half done when the render wants the clip is stopped: the render tracks it itself.
    release.clear()
    assert ahead.start("b", "two.mp4", lambda stop, done: work(stop, lambda f: None))
    assert not ahead.wait("b", "two.mp4") and stopped == [True, False, True]
    # A reading yields the machine to the renders (Linux: the reading thread's own priority, not the app's).
    if sys.platform.startswith("linux"):
        seen = []
        assert ahead.start("c", "four.mp4", lambda stop, done: seen.append(os.getpriority(os.PRIO_PROCESS, 0)))
        assert ahead.wait("c", "four.mp4", at_least=0)
        assert seen[0] > os.getpriority(os.PRIO_PROCESS, 0)


def test_bad_upload_gets_a_clear_error_while_a_good_request_succeeds(app, tmp_path):
    client, _ = app
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is not a picture at all\n" * 100)
    good_job = client.submit("gogol", None, CLIP, None, False, False, 1.0, 1.0, True, False, "auto",
                             api_name="/animate")
    bad_job = client.submit("", handle_file(str(bad)), CLIP, None, True, False, 1.0, 1.0, True, False, "auto",
                            api_name="/animate")
    with pytest.raises(Exception, match="not an image|could not be read|choose"):
        bad_job.result(timeout=120)
    assert video.probe(result_path(good_job.result(timeout=300))).n_frames == 78


def test_unknown_ids_and_missing_choices_are_explained(app):
    client, _ = app
    with pytest.raises(Exception, match="not in the gallery"):
        call(client, portrait="../../etc/passwd")
    with pytest.raises(Exception, match="Choose a portrait first"):
        call(client, portrait="")
    with pytest.raises(Exception, match="is a clip, not a portrait"):
        call(client, portrait=CLIP)
    # The API's numbers have no slider to keep them in range: a strength of 50 rendered a smear.
    with pytest.raises(Exception, match="from 0 to 2 for the expression strength"):
        call(client, portrait="mona_lisa", strength=50.0)
    with pytest.raises(Exception, match="from 0 to 2 for the smoothing"):
        call(client, portrait="mona_lisa", smoothing=-1.0)


def test_full_queue_says_busy(launch_app, tmp_path):
    url, demo = launch_app(AppConfig(queue_size=1))
    gate, entered = threading.Event(), threading.Event()
    real = demo.lp_studio.run

    def slow_run(*a, **k):
        entered.set()
        gate.wait(60)
        return real(*a, **k)

    demo.lp_studio.run = slow_run
    client = Client(url, verbose=False)
    try:
        first = client.submit("mona_lisa", None, CLIP, None, False, False, 1.0, 1.0, True, False, "auto",
                              api_name="/animate")
        assert entered.wait(60)
        waiting = client.submit("gogol", None, CLIP, None, False, False, 1.0, 1.0, True, False, "auto",
                                api_name="/animate")
        deadline = time.time() + 60
        while waiting.status().code != Status.IN_QUEUE and time.time() < deadline:
            time.sleep(0.1)
        third = client.submit("voltaire", None, CLIP, None, False, False, 1.0, 1.0, True, False, "auto",
                              api_name="/animate")
        with pytest.raises(Exception, match="(?i)queue is full|busy"):
            third.result(timeout=60)
    finally:
        gate.set()
    assert result_path(first.result(timeout=300))
    assert result_path(waiting.result(timeout=300))


def test_visitor_files_are_deleted_after_the_session_or_the_time_limit(tmp_path):
    files = VisitorFiles(tmp_path, ttl_s=60)
    a = files.new_result_path("session-a").parent
    (a / "upload.png").write_bytes(b"x")
    b = files.session_dir("session-b")
    (b / "clip.mp4").write_bytes(b"x")
    files.end_session("session-a")
    assert not a.exists() and b.exists()
    assert files.sweep() == 0
    assert files.sweep(now=time.time() + 61) == 1
    assert not b.exists()
    assert files.session_dir("../../etc").parent == tmp_path / "sessions"


def test_a_download_is_a_session_file_under_its_own_name(tmp_path):
    """The stored gallery result is shared by every visitor; the named file for one visitor's download
    goes with that visitor's session, and the stored result stays."""
    stored = tmp_path / "store" / "3f2a9c.mp4"
    stored.parent.mkdir()
    stored.write_bytes(b"video")
    files = VisitorFiles(tmp_path / "visitors")
    name = "living-portrait_mona-lisa_a-wink.mp4"
    keep = files.keepsake("session-a", stored, name)
    assert keep.name == name and keep.read_bytes() == b"video"
    assert files.keepsake("session-a", stored, "../" + name) == keep  # the same again; never outside the folder
    files.end_session("session-a")
    assert not keep.exists() and stored.read_bytes() == b"video"


def test_every_language_has_every_string():
    """Every language has every English string; besides them only its sentences for the library's errors
    ("err_<reason>"), which English visitors read in the library's own words."""
    assert set(LANGUAGE_NAMES) == set(STRINGS)
    for code, table in STRINGS.items():
        assert set(STRINGS["en"]) <= set(table), code
        assert all(k.startswith("err_") for k in set(table) - set(STRINGS["en"])), code
    assert pick_language("fr-CH, fr;q=0.9, en;q=0.8") == "fr"
    assert pick_language("de-DE") == "en"


def _no_face_png(path):
    import numpy as np
    from PIL import Image
    ramp = np.linspace(0, 255, 640, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (480, 1))] * 3, axis=-1)).save(path)


@pytest.mark.parametrize("case,field,match", [
    ("no_face.png", "portrait_file", "(?i)no face"),
    ("broken.mp4", "clip_file", "(?i)video|decode|read"),
    ("notes.mp4", "clip_file", "(?i)not a video|video"),
])
def test_bad_uploads_say_what_to_do(app, tmp_path, case, field, match):
    client, _ = app
    path = tmp_path / case
    if case == "no_face.png":
        _no_face_png(path)
    elif case == "broken.mp4":
        good = app[1].lp_store.gallery.clip_path(CLIP).read_bytes()
        path.write_bytes(good[: len(good) // 3])  # cut mid-file, as an interrupted upload would be
    else:
        path.write_text("shopping list: bread, milk\n")
    kwargs = {"portrait": "mona_lisa", "clip": ""} if field == "clip_file" else {"portrait": "", "clip": CLIP}
    with pytest.raises(Exception, match=match) as err:
        call(client, consent=True, **{field: handle_file(str(path))}, **kwargs)
    assert "Traceback" not in str(err.value)


def test_zero_gpu_duration_follows_the_clip_length():
    from demo.studio import gpu_seconds
    from talking_head.pipeline import AnimateSettings
    short = gpu_seconds("gallery:mona_lisa", f"gallery:{CLIP}", None, "auto", AnimateSettings())
    longer = gpu_seconds("gallery:mona_lisa", "gallery:talking_01", None, "auto", AnimateSettings())
    assert 20 < short < longer <= 120
    assert gpu_seconds("gallery:mona_lisa", "/nonexistent.mp4", None, "auto", AnimateSettings(max_duration=600)) == 120


def test_label_says_which_engine_rendered_and_any_fallback():
    from demo.studio import Rendered
    from demo.ui import _label_markdown
    entry = {"title": "Mona Lisa", "artist": "Leonardo da Vinci", "year": "c. 1503", "label": "A story."}
    md = _label_markdown(entry, "en", Rendered(Path("x.mp4"), "meshwarp"))
    assert "Animated with meshwarp" in md
    note = "The liveportrait engine ran out of device memory; this result was rendered on the CPU with meshwarp instead."
    md = _label_markdown(None, "fr", Rendered(Path("x.mp4"), "meshwarp", (note,)))
    assert "Animé avec meshwarp" in md and "ran out of device memory" in md
    assert "Animated with my_engine" in _label_markdown(entry, "en", Rendered(Path("x.mp4"), "my_engine"))


def test_download_names_are_plain_and_say_what_the_video_is():
    from demo.visitor_files import download_name
    assert download_name("La Jeune Fille à la perle", "Un clin d'œil") == \
        "living-portrait_la-jeune-fille-a-la-perle_un-clin-d-oeil.mp4"
    assert download_name(None, "Glances and a big smile") == "living-portrait_glances-and-a-big-smile.mp4"
    assert download_name("../../etc/passwd", None) == "living-portrait_etc-passwd.mp4"


def test_gallery_labels_speak_the_page_language():
    from demo.ui import _label_markdown, _short_title
    from talking_head.gallery import Gallery
    entry = Gallery.default().portrait("girl_with_a_pearl_earring")
    en, fr = _label_markdown(entry, "en"), _label_markdown(entry, "fr")
    assert "### Girl with a Pearl Earring" in en and "c. 1665" in en and "turban" in en
    assert "### La Jeune Fille à la perle" in fr and "vers 1665" in fr and "turban" in fr
    assert "Pearl" not in fr
    mona = Gallery.default().portrait("mona_lisa")
    assert (_short_title(mona, "en"), _short_title(mona, "fr")) == ("Mona Lisa", "La Joconde")
    # An entry with no French fields (a painting a museum added) shows its own text.
    assert _short_title({"title": "Portrait of X (detail)"}, "fr") == "Portrait of X"


def test_fewshot_engine_is_offered_with_shots_when_a_checkpoint_is_present(monkeypatch, tmp_path):
    """With a trained few-shot model configured, the page offers the engine and its K; a request with extra
    pictures of the face renders with it, in the visitor's own folder (never the shared store)."""
    from demo.studio import Choice
    from demo.ui import build
    from talking_head.fewshot.config import FewShotConfig
    from talking_head.fewshot.model import TalkingHeadModel
    model_dir = tmp_path / "fewshot-model"
    TalkingHeadModel(FewShotConfig.tiny(finetune_steps=0)).save_pretrained(model_dir)  # feed-forward: no VGG needed
    monkeypatch.setenv("LIVING_PORTRAITS_FEWSHOT_DIR", str(model_dir))
    demo = build(AppConfig(results_dir=str(tmp_path / "results"), visitor_dir=str(tmp_path / "visitors")))
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"] if c["props"].get("elem_id")}
    assert any("fewshot" in str(c) for c in props["lp-engine"]["choices"])
    assert props["lp-shots"]["visible"] is True and props["lp-more-faces"]["visible"] is True

    studio = demo.lp_studio
    from gradio.utils import get_upload_folder
    extra = Path(get_upload_folder()) / "fewshot-test" / "another_picture.jpg"  # where Gradio keeps an upload
    extra.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "gallery" / "portraits" / "mona_lisa.jpg", extra)
    done = studio.run(Choice(gallery_id="mona_lisa"), Choice(gallery_id=CLIP), studio.settings(), consent=True,
                      engine="fewshot", shots=8, more_faces=[str(extra)], session_id="visitor-1")
    assert done.engine == "fewshot"
    assert video.probe(done.path).n_frames == 78
    assert studio.files.sessions_root in done.path.parents      # personal: not in the shared store
    assert not list(Path(tmp_path / "results").glob("*.mp4"))
    studio.files.end_session("visitor-1")
    assert not extra.exists() and not done.path.exists()          # both deleted with the session


def test_an_upload_is_checked_the_moment_it_arrives_in_the_visitors_language(app, tmp_path, shared_dir):
    """What a render would end with (not an image, no face, a clip too long), or that the picture has
    several faces to choose from, is said as soon as the file arrives, in the page's language."""
    import badinput

    from demo.studio import UploadCheck
    studio = app[1].lp_studio
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are my notes, not a picture\n")
    no_face = tmp_path / "no_face.png"
    _no_face_png(no_face)
    group = badinput.make_group(tmp_path)
    painting = shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg"

    def said(path, kind, lang="en"):
        return studio.check_upload(str(path), kind).message(lang)

    # In English the library's own sentence; in French ours for the same reason.
    assert said(fake, "portrait") == "This file is not an image we can read; choose a JPEG, PNG or WebP portrait."
    assert said(fake, "portrait", "fr") == STRINGS["fr"]["err_not_image"]
    assert said(no_face, "portrait", "fr").startswith("Aucun visage")
    assert studio.check_upload(str(group), "portrait").faces == 3
    assert said(group, "portrait").startswith("This picture has 3 faces: the largest will come to life")
    assert "3 visages" in said(group, "portrait", "fr")
    assert studio.check_upload(str(painting), "portrait") == UploadCheck(None, 1)
    assert UploadCheck(None, 1).message("fr") == "" and UploadCheck(None, 1).ok
    clip = studio.gallery.clip_path(CLIP)
    assert said(clip, "clip") == ""
    assert said(fake, "clip", "fr") == STRINGS["fr"]["err_not_video"]
    # A phone's HEVC clip renders, though a browser may not preview it: the visitor is told both.
    phone = studio.check_upload(str(badinput.make_hevc_clip(tmp_path)), "clip")
    assert phone.ok and not phone.unreadable
    assert phone.message("en") == ("This clip is in HEVC (H.265), a format some browsers cannot play, so it may "
                                   "show no preview here; it can still be animated.")
    assert "HEVC (H.265)" in phone.message("fr")
    # A format browsers play inside a file they do not (Chromium plays no AVI): said too.
    avi = tmp_path / "h264.avi"
    badinput.ff("-i", str(clip), "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-an", str(avi))
    assert "H.264 (AVI)" in said(avi, "clip")
    assert "MPEG-4 Part 2 (AVI)" in said(badinput.make_camera_avi(tmp_path), "clip")
    short = type(studio)(studio.gallery, studio.store, studio.files, max_clip_s=2.0)
    assert short.check_upload(str(clip), "clip").message("fr") == (
        "La vidéo dure plus de 2 secondes ; coupez-la à 2 secondes au plus et réessayez.")


def test_a_refusal_is_kept_unsaid_to_be_said_again_in_another_language(app, tmp_path):
    """The line under Animate is said again after a language switch: a refusal keeps what it says (our
    sentence's key, or the library's error with its facts), not only its words."""
    from demo.strings import say
    from demo.studio import Choice, VisitorError
    studio = app[1].lp_studio
    no_face = tmp_path / "no_face.png"
    _no_face_png(no_face)
    with pytest.raises(VisitorError) as refused:
        studio.run(Choice(upload=str(no_face)), Choice(gallery_id=CLIP), studio.settings(), consent=True)
    assert refused.value.said.reason == "no_face"
    assert str(refused.value) == say("en", refused.value.said) == str(refused.value.said)  # the library's own
    assert say("fr", refused.value.said).startswith("Aucun visage")
    with pytest.raises(VisitorError) as refused:
        studio.run(Choice(), Choice(gallery_id=CLIP), studio.settings(), lang="fr")
    assert str(refused.value) == STRINGS["fr"]["err_choose_portrait"]
    assert say("en", refused.value.said) == STRINGS["en"]["err_choose_portrait"]


def test_progress_steps_and_notes_speak_the_page_language():
    from demo.strings import localize
    from talking_head.errors import Note
    from talking_head.pipeline import STEP_DONE, STEP_FACE, STEP_MOTION
    for step in (STEP_FACE, STEP_MOTION, STEP_DONE):
        assert localize("en", step) and localize("fr", step) != str(step)
    frames = Note("Animating frame 3 of 78", reason="frames", done=3, total=78)
    assert localize("fr", frames) == "Animation de l'image 3 sur 78"
    oom = Note("The liveportrait engine ran out of device memory (...); ...", reason="out_of_memory",
               engine="liveportrait", fallback="meshwarp")
    assert "processeur avec meshwarp" in localize("fr", oom)
    assert localize("fr", "a sentence with no reason") == "a sentence with no reason"
    from talking_head.pipeline import several_faces_in_clip_note
    two = several_faces_in_clip_note(2)
    assert localize("fr", two).startswith("Cette vidéo montre 2 visages")
    assert localize("en", two).startswith("This performance shows 2 faces") and "upload a clip" in localize("en", two)


def test_a_visitors_error_crosses_the_gpu_process_whole(tmp_path):
    """On ZeroGPU the render runs in another process and only a gr.Error comes back out with its words
    (anything else arrives as "ZeroGPU worker error"): the device call returns the visitor's error as a
    value, which survives pickling with its reason and facts, for the studio to say in French."""
    import pickle

    from demo.strings import localize
    from demo.studio import render_on_device
    from talking_head.errors import TalkingHeadError
    from talking_head.pipeline import AnimateSettings
    fake = tmp_path / "notes.mp4"
    fake.write_text("shopping list: bread, milk\n")
    got = render_on_device("gallery:mona_lisa", str(fake), tmp_path / "out.mp4", "meshwarp", AnimateSettings())
    assert isinstance(got, TalkingHeadError) and got.reason == "not_video"
    back = pickle.loads(pickle.dumps(got))
    assert (type(back), back.reason, str(back)) == (type(got), got.reason, str(got))
    assert localize("fr", back) == STRINGS["fr"]["err_not_video"]
    assert not (tmp_path / "out.mp4").exists()


def test_the_kiosk_start_screen_shows_the_paintings_between_few_stored_results():
    """One stored result must not become the whole start screen: while fewer than ATTRACT_FULL results are
    stored, every painting is shown with its title, a result after every third; then only results."""
    from demo.ui import ATTRACT_FULL, _attract_items
    stills = [(Path(f"/g/p{i}.jpg"), f"Work {i}") for i in range(14)]
    items = _attract_items([Path("/r/a.mp4")], stills)
    assert [i["title"] for i in items if "still" in i] == [f"Work {i}" for i in range(14)]
    assert [i.get("video") for i in items[:5]] == ["/gradio_api/file=/r/a.mp4", None, None, None,
                                                  "/gradio_api/file=/r/a.mp4"]
    assert all("still" in i for i in _attract_items([], stills))
    many = [Path(f"/r/{i}.mp4") for i in range(ATTRACT_FULL)]
    assert [i["video"] for i in _attract_items(many, stills)] == [f"/gradio_api/file={p}" for p in many]
