"""The Gradio page: three numbered steps, a result with its museum label, and kiosk mode.

Layout and wiring only: every render goes through :class:`demo.studio.Studio`, which calls the
library's one orchestration path.
"""
from __future__ import annotations

import dataclasses
import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio.context import LocalContext
from gradio.utils import get_upload_folder

from talking_head.engines import engine_names, engine_status
from talking_head.engines.fewshot import SHOT_CHOICES
from talking_head.gallery import Gallery
from talking_head.results import ResultStore

from .consent import arrived_js, beside_js, box_js, cleared_js, given_for
from .strings import LANGUAGE_NAMES, STRINGS, localize, pick_language, say, t
from .studio import Choice, Studio, VisitorError
from .thumbnails import clip_posters, portrait_thumbs, thumbs_dir
from .visitor_files import VisitorFiles, download_name

ASSETS = Path(__file__).resolve().parent / "assets"
log = logging.getLogger("living_portraits.app")


def _status_html(message: str = "", alert: bool = True) -> str:
    """A message that stays (a pop-up fades): under Animate, what went wrong and what to do, until the
    next attempt; under an upload, what the visitor should know about that file."""
    if not message:
        return ""
    role, kind = ("alert", "") if alert else ("status", " lp-info")
    return f'<div class="lp-status{kind}" role="{role}">{html.escape(message)}</div>'


def _said_html(said, lang: str) -> str:
    """The line under Animate for what it says (a key or the library's error: strings.say), in ``lang``."""
    return "" if said is None else _status_html(say(lang, said))


def _check_html(check, lang: str) -> str:
    """An upload's ``studio.UploadCheck`` under its field, in ``lang``."""
    return "" if check is None else _status_html(check.message(lang), alert=not check.ok)


@dataclass
class AppConfig:
    kiosk: bool = False
    uploads: bool | None = None          # None: on, except in kiosk mode
    idle_timeout_s: float = 90.0         # kiosk: back to the start screen after this long untouched
    language: str = "en"                 # start language when the browser asks for none we have
    engine: str = "auto"
    concurrency: int = 1                 # renders at once per device
    queue_size: int = 12                 # requests waiting beyond that get "busy, try again"
    max_upload_mb: int = 50
    max_clip_s: float = 30.0
    visitor_ttl_s: float = 3600.0
    results_dir: Path | None = None
    visitor_dir: Path | None = None
    attract: list[Path] = field(default_factory=list)  # filled from the result store when empty

    @property
    def uploads_enabled(self) -> bool:
        return (not self.kiosk) if self.uploads is None else self.uploads


def _label_markdown(entry: dict | None, lang: str, done=None) -> str:
    """The museum label beside a result; ``done`` (a studio ``Rendered``) adds which engine made it."""
    made = ""
    if done is not None:
        key = "engine_" + done.engine
        engine = t(lang, key) if key in STRINGS["en"] else done.engine
        made = f"\n\n<small>{html.escape(t(lang, 'made_with', engine=engine))}</small>"
        made += "".join(f"\n\n**{html.escape(localize(lang, n))}**" for n in done.notes)
    if entry is None:
        return f"### {t(lang, 'upload_label_title')}\n\n_{t(lang, 'ai_notice')}_{made}"
    title, artist, year = (_localized(entry, k, lang) for k in ("title", "artist", "year"))
    return (f"### {title}\n**{artist}**, {year}\n\n{_localized(entry, 'label', lang)}\n\n"
            f"<small>{html.escape(entry.get('source', ''))}</small>\n\n_{t(lang, 'ai_notice')}_{made}")


def _localized(entry: dict, key: str, lang: str) -> str:
    """A manifest field in the page's language: ``key + "_fr"`` in French where the entry has it."""
    return (lang != "en" and entry.get(f"{key}_{lang}")) or entry.get(key, "")


def _short_title(entry: dict, lang: str) -> str:
    return (_localized(entry, "short_title", lang) or _localized(entry, "title", lang).split(" (")[0])


def build(config: AppConfig, *, gallery: Gallery | None = None, store: ResultStore | None = None,
          files: VisitorFiles | None = None) -> gr.Blocks:
    gallery = gallery or Gallery.default()
    store = store or ResultStore(config.results_dir, gallery)
    store.prune()  # results an older version stored are never asked for again
    files = files or VisitorFiles(config.visitor_dir, ttl_s=config.visitor_ttl_s)
    files.bind_gradio(get_upload_folder())  # visitors' results live where Gradio serves them from, uncopied
    studio = Studio(gallery, store, files, engine=config.engine, uploads=config.uploads_enabled,
                    max_clip_s=config.max_clip_s)
    manifest = gallery.manifest()
    portrait_ids = list(manifest["portraits"])
    clip_ids = list(manifest["clips"])
    p_thumbs, c_posters = portrait_thumbs(gallery), clip_posters(gallery)
    lang0 = config.language
    status = engine_status()
    engines = ["auto"] + [n for n in engine_names() if status[n] is None]

    def portrait_items(lang):
        return [(str(p_thumbs[p]), _short_title(manifest["portraits"][p], lang)) for p in portrait_ids]

    def clip_items(lang):
        return [(str(c_posters[c]), _localized(manifest["clips"][c], "title", lang)) for c in clip_ids]

    translated: list[tuple[gr.components.Component, str, str]] = []  # (component, property, string key)

    def tr(component, key, prop="label"):
        translated.append((component, prop, key))
        return component

    with gr.Blocks(title=t(lang0, "title"), analytics_enabled=False,
                   delete_cache=(300, int(config.visitor_ttl_s))) as demo:
        lang = gr.State(lang0)
        portrait_src, clip_src = gr.State("gallery"), gr.State("gallery")
        portrait_id, clip_id = gr.State(None), gr.State(None)

        with gr.Row(elem_id="lp-header"):
            with gr.Column(scale=4):
                tr(gr.Markdown(f"# {t(lang0, 'title')}", elem_id="lp-title"), "title", "value")
                tr(gr.Markdown(t(lang0, "subtitle"), elem_id="lp-subtitle"), "subtitle", "value")
            with gr.Column(scale=2, min_width=260):
                lang_pick = tr(gr.Radio([(n, c) for c, n in LANGUAGE_NAMES.items()], value=lang0,
                                        label=t(lang0, "language"), elem_id="lp-lang"), "language")
                with gr.Row():
                    smaller = gr.Button("A−", elem_id="lp-text-smaller", size="sm", min_width=56)
                    larger = gr.Button("A+", elem_id="lp-text-larger", size="sm", min_width=56)

        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                tr(gr.Markdown(t(lang0, "step1"), elem_classes="lp-step"), "step1", "value")
                tabs_class = None if config.uploads_enabled else "lp-one-tab"  # (style.css: no lone tab bar)
                with gr.Tabs(elem_classes=tabs_class):
                    with tr(gr.Tab(t(lang0, "tab_gallery"), id="p-gallery"), "tab_gallery") as p_tab_gallery:
                        p_gallery = tr(gr.Gallery(portrait_items(lang0), label=t(lang0, "portrait_gallery"),
                                                  columns=5, height="auto", allow_preview=False, object_fit="cover",
                                                  show_label=False, elem_id="lp-portraits", buttons=[], interactive=False),
                                       "portrait_gallery")
                    if config.uploads_enabled:
                        with tr(gr.Tab(t(lang0, "tab_upload"), id="p-upload"), "tab_upload") as p_tab_upload:
                            # image_mode=None: the visitor's own file reaches load_image (Gradio's default "RGB" re-saved
                            # a CMYK or grey upload without its colour profile, so the web render's colours differed).
                            p_upload = tr(gr.Image(type="filepath", sources=["upload"], label=t(lang0, "portrait_upload"),
                                                   elem_id="lp-portrait-upload", height=360, image_mode=None),
                                          "portrait_upload")
                            p_note = gr.HTML("", elem_id="lp-portrait-note", padding=False)
                            # Shown when the picture has several faces: which one comes to life (-1: the largest).
                            face_pick = gr.Radio([(t(lang0, "face_largest"), -1)], value=-1, elem_id="lp-face-pick",
                                                 label=t(lang0, "which_face"), visible=False)
                            p_consent = tr(gr.Checkbox(False, label=t(lang0, "consent"), elem_id="lp-consent-portrait"),
                                           "consent")
                            # The page's record of the box (demo.consent): the file it was ticked for, the file shown.
                            p_tick, p_shown = gr.Textbox("", visible=False), gr.Textbox("", visible=False)

                tr(gr.Markdown(t(lang0, "step2"), elem_classes="lp-step"), "step2", "value")
                with gr.Tabs(elem_classes=tabs_class):
                    with tr(gr.Tab(t(lang0, "tab_gallery"), id="c-gallery"), "tab_gallery") as c_tab_gallery:
                        with gr.Row(equal_height=False):
                            c_gallery = tr(gr.Gallery(clip_items(lang0), label=t(lang0, "clip_gallery"), columns=3,
                                                      height="auto", allow_preview=False, object_fit="cover",
                                                      show_label=False, elem_id="lp-clips", buttons=[],
                                                      interactive=False, scale=3), "clip_gallery")
                            c_preview = tr(gr.Video(label=t(lang0, "clip_preview"), interactive=False, autoplay=True,
                                                    loop=True, elem_id="lp-clip-preview", scale=2,
                                                    buttons=[]), "clip_preview")
                    if config.uploads_enabled:
                        with tr(gr.Tab(t(lang0, "tab_upload"), id="c-upload"), "tab_upload") as c_tab_upload:
                            c_upload = tr(gr.Video(sources=["upload"],
                                                   label=t(lang0, "clip_upload", seconds=int(config.max_clip_s)),
                                                   elem_id="lp-clip-upload", height=300), "clip_upload")
                            c_note = gr.HTML("", elem_id="lp-clip-note", padding=False)
                            c_consent = tr(gr.Checkbox(False, label=t(lang0, "consent"), elem_id="lp-consent-clip"),
                                           "consent")
                            c_tick, c_shown = gr.Textbox("", visible=False), gr.Textbox("", visible=False)

            with gr.Column(scale=2, elem_id="lp-result-column"):
                tr(gr.Markdown(t(lang0, "step3"), elem_classes="lp-step"), "step3", "value")
                selection = gr.Markdown(t(lang0, "nothing_selected"), elem_id="lp-selection")
                go = tr(gr.Button(t(lang0, "animate"), variant="primary", size="lg", elem_id="lp-animate"), "animate", "value")
                status = gr.HTML("", elem_id="lp-status", padding=False)
                ok = gr.State(True)
                result = tr(gr.Video(label=t(lang0, "result"), show_label=False, interactive=False, autoplay=True,
                                     elem_id="lp-result",
                                     buttons=[]), "result")
                side = tr(gr.Checkbox(False, label=t(lang0, "side_by_side"), elem_id="lp-side-by-side"), "side_by_side")
                # (A DownloadButton's text is its label; its value is the file.)
                download = tr(gr.DownloadButton(t(lang0, "download"), visible=False, elem_id="lp-download"), "download")
                # (a kiosk's visitors cannot take a file away, and its options stay as the museum set them)
                museum_label = gr.Markdown("", elem_id="lp-label")
                shown = gr.State(None)  # (manifest entry or None, studio.Rendered) of the result on show
                with tr(gr.Accordion(t(lang0, "advanced"), open=False, elem_id="lp-advanced", visible=not config.kiosk),
                        "advanced"):
                    engine = tr(gr.Dropdown(engines, value=config.engine if config.engine in engines else "auto",
                                            label=t(lang0, "engine"), elem_id="lp-engine"), "engine")
                    strength = tr(gr.Slider(0.0, 2.0, value=1.0, step=0.1, label=t(lang0, "strength"),
                                            elem_id="lp-strength"), "strength")
                    smoothing = tr(gr.Slider(0.0, 2.0, value=1.0, step=0.1, label=t(lang0, "smoothing"),
                                             elem_id="lp-smoothing"), "smoothing")
                    head_motion = tr(gr.Checkbox(True, label=t(lang0, "head_motion"), elem_id="lp-head-motion"),
                                     "head_motion")
                    crop_only = tr(gr.Checkbox(False, label=t(lang0, "crop_only"), elem_id="lp-crop-only"), "crop_only")
                    # The few-shot engine learns the face from K pictures: the portrait plus more of the same face.
                    fewshot_ready = "fewshot" in engines
                    shots = tr(gr.Radio(list(SHOT_CHOICES), value=1, label=t(lang0, "shots"), elem_id="lp-shots",
                                        visible=fewshot_ready), "shots")
                    more_faces = tr(gr.File(file_count="multiple", label=t(lang0, "more_faces"), elem_id="lp-more-faces",
                                            visible=fewshot_ready and config.uploads_enabled), "more_faces")

        tr(gr.Markdown(t(lang0, "footer_note"), elem_id="lp-footer-note"), "footer_note", "value")
        reset_btn = gr.Button("reset", visible="hidden", elem_id="lp-reset")

        def attract_html():  # read on every page load, so newly stored results join the loop
            videos = config.attract or [r.path for r in store.stored() if not r.settings.get("side_by_side")]
            stills = [(gallery.portrait_path(p), _short_title(manifest["portraits"][p], lang0)) for p in portrait_ids]
            return _attract_html(videos, stills, config, lang0)

        if config.kiosk and not (config.attract or store.stored()):
            log.warning("kiosk: no stored results yet, so the start screen shows the paintings still; "
                        "`python -m talking_head prerender` renders them for the attract loop")

        attract_box = gr.HTML(attract_html(), elem_id="lp-attract-host", padding=False)
        demo.load(attract_html, None, attract_box, api_visibility="private", queue=False)

        # -- events -------------------------------------------------------------------------------
        # The portrait upload reaches the render as the file's path, kept when it arrives (see below).
        portrait_file = gr.State(None)
        # What the selection line reads: the choices, and the visitor's files (none where uploads are off).
        uploaded = [portrait_file, c_upload] if config.uploads_enabled else [gr.State(None), gr.State(None)]
        p_file_in, c_file_in = uploaded
        chosen = [portrait_id, clip_id, lang, portrait_src, clip_src, *uploaded]

        def describe(pid, cid, lang_, psrc, csrc, pfile=None, cfile=None):
            """The line under "3": what will be animated. An Upload tab with no file in it yet is not a choice."""
            if psrc == "gallery" and pid:
                p = t(lang_, "selected_portrait", title=_localized(manifest["portraits"][pid], "title", lang_))
            elif psrc == "upload" and pfile:
                p = t(lang_, "selected_portrait", title=t(lang_, "your_upload"))
            else:
                p = t(lang_, "selected_portrait", title="—")
            if csrc == "gallery" and cid:
                c = t(lang_, "selected_clip", title=_localized(manifest["clips"][cid], "title", lang_))
            elif csrc == "upload" and cfile:
                c = t(lang_, "selected_clip", title=t(lang_, "your_upload"))
            else:
                c = t(lang_, "selected_clip", title="—")
            return f"{p}  \n{c}"

        def pick_portrait(evt: gr.SelectData, cid, lang_, csrc, cfile):
            pid = portrait_ids[evt.index]
            return pid, "gallery", describe(pid, cid, lang_, "gallery", csrc, None, cfile)

        p_gallery.select(pick_portrait, [clip_id, lang, clip_src, c_file_in], [portrait_id, portrait_src, selection],
                         api_visibility="private", queue=False)

        def pick_clip(evt: gr.SelectData, pid, lang_, psrc, pfile):
            cid = clip_ids[evt.index]
            return cid, "gallery", str(gallery.clip_path(cid)), describe(pid, cid, lang_, psrc, "gallery", pfile)

        c_gallery.select(pick_clip, [portrait_id, lang, portrait_src, p_file_in],
                         [clip_id, clip_src, c_preview, selection], api_visibility="private", queue=False)

        def source_switcher(which, value):
            def switch(pid, cid, lang_, psrc, csrc, pfile, cfile):
                psrc, csrc = (value, csrc) if which == "portrait" else (psrc, value)
                return psrc, csrc, describe(pid, cid, lang_, psrc, csrc, pfile, cfile)
            return switch

        tab_events = [(p_tab_gallery, "portrait", "gallery"), (c_tab_gallery, "clip", "gallery")]
        if config.uploads_enabled:
            tab_events += [(p_tab_upload, "portrait", "upload"), (c_tab_upload, "clip", "upload")]
        for tab, which, value in tab_events:
            tab.select(source_switcher(which, value), chosen, [portrait_src, clip_src, selection],
                       api_visibility="private", queue=False)

        def busy_check(lang_):
            """Clears the last attempt's message; says so (and stops the render) when the queue is full."""
            q = getattr(demo, "_queue", None)
            full = q is not None and q.max_size is not None and len(q) >= q.max_size
            said = "err_busy" if full else None
            return _said_html(said, lang_), not full, said

        def gate(ok_):
            if not ok_:  # the status line said why; nothing else to show
                raise gr.Error("busy", visible=False, print_exception=False)

        def render(portrait, clip, settings, lang_, consent, engine_, request, progress, shots_=1, faces_=None):
            """One request through the studio, in this visitor's session (raises VisitorError)."""
            session = request.session_hash if request else None
            done = studio.run(portrait, clip, settings, lang=lang_, consent=consent, engine=engine_,
                              session_id=session, progress=lambda f, m: progress(f, desc=m),
                              cancel=_client_gone(demo), shots=int(shots_ or 1), more_faces=faces_ or ())
            path = done.path
            if files.sessions_root in path.parents:
                # Gradio serves files from copies in its own folder: make the copy now, so that it is
                # known and deleted with the session's other files.
                path = Path(demo.move_resource_to_block_cache(path))
                files.remember_upload(session, path)
            return dataclasses.replace(done, path=path)

        def run(psrc, pid, pfile, pconsent, ptick, pshown, face_, csrc, cid, cfile, cconsent, ctick, cshown, side_,
                engine_, strength_, smoothing_, head_, crop_, shots_, faces_, lang_, request: gr.Request,
                progress=gr.Progress()):
            """Animate for the page: the video, its label and its download, or the reason in the status line."""
            try:
                portrait = Choice(gallery_id=pid) if psrc == "gallery" else Choice(upload=pfile)
                clip = Choice(gallery_id=cid) if csrc == "gallery" else Choice(upload=cfile)
                # An upload is used only with a tick given for that very file, the one the page shows (see
                # demo.consent): the box alone could be a tick given for another, or the server's file stale.
                p_agreed = given_for(pconsent, ptick, pshown, pfile)
                c_agreed = given_for(cconsent, ctick, cshown, cfile)
                consent = (not portrait.is_upload or p_agreed) and (not clip.is_upload or c_agreed)
                settings = studio.settings(strength=strength_, smoothing=smoothing_, head_motion=head_,
                                           side_by_side=side_, crop_only=crop_,
                                           face=face_ if portrait.is_upload else None)
                faces = [f if isinstance(f, str) else getattr(f, "name", f) for f in (faces_ or [])]
                # (More pictures of the face come with an upload in use that has its tick.)
                consent = consent and (not faces or (portrait.is_upload and p_agreed) or (clip.is_upload and c_agreed))
                done = render(portrait, clip, settings, lang_, consent, engine_, request, progress, shots_, faces)
                entry = manifest["portraits"][pid] if not portrait.is_upload else None
                name = download_name(entry and _short_title(entry, lang_),
                                     None if clip.is_upload else _localized(manifest["clips"][cid], "title", lang_))
                session = request.session_hash if request else None
                keep = Path(demo.move_resource_to_block_cache(files.keepsake(session, done.path, name)))
                files.remember_upload(session, keep)
            except VisitorError as e:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), _said_html(e.said, lang_), e.said
            except Exception:
                log.exception("the page's render failed after the studio")
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), _said_html("err_unexpected", lang_), "err_unexpected"
            return (str(done.path), _label_markdown(entry, lang_, done),
                    gr.update(value=str(keep), visible=not config.kiosk), (entry, done), _status_html(), None)

        p_check, c_check = gr.State(None), gr.State(None)  # studio.UploadCheck of each upload
        status_said = gr.State(None)  # what the line under Animate says, unsaid (see strings.say), or None
        upload_inputs = ([portrait_file, p_consent, p_tick, p_shown, face_pick] if config.uploads_enabled
                         else [gr.State(None), gr.State(False), gr.State(""), gr.State(""), gr.State(-1)])
        clip_upload_inputs = ([c_upload, c_consent, c_tick, c_shown] if config.uploads_enabled
                              else [gr.State(None), gr.State(False), gr.State(""), gr.State("")])
        run_inputs = ([portrait_src, portrait_id, *upload_inputs, clip_src, clip_id, *clip_upload_inputs, side, engine,
                       strength, smoothing, head_motion, crop_only, shots, more_faces, lang])
        for trigger in (go.click, side.input):
            trigger(busy_check, [lang], [status, ok, status_said], queue=False, api_visibility="private").success(
                gate, [ok], None, queue=False, api_visibility="private").success(
                run, run_inputs, [result, museum_label, download, shown, status, status_said], api_visibility="private",
                concurrency_id="render", concurrency_limit=config.concurrency, show_progress_on=[result])

        # The one public API endpoint: gallery ids or files, plus options.
        with gr.Column(visible=False):
            api_portrait = gr.Textbox(label="portrait")
            # No file_types: every upload reaches the studio, which says what is wrong with it in its
            # own words, and remembers it so that it is deleted when the session ends.
            api_portrait_file = gr.File(label="portrait_file")
            api_clip = gr.Textbox(label="clip")
            api_clip_file = gr.File(label="clip_file")
            api_consent = gr.Checkbox(False, label="consent")
            api_side = gr.Checkbox(False, label="side_by_side")
            api_strength = gr.Number(1.0, label="strength")
            api_smoothing = gr.Number(1.0, label="smoothing")
            api_head = gr.Checkbox(True, label="head_motion")
            api_crop = gr.Checkbox(False, label="crop_only")
            api_engine = gr.Textbox(config.engine, label="engine")
            api_out = gr.Video(label="result")
            api_button = gr.Button("api")

        def api_animate(portrait, portrait_file, clip, clip_file, consent, side_by_side, strength, smoothing,
                        head_motion, crop_only, engine_, request: gr.Request, progress=gr.Progress()):
            """Animate a portrait with a driving clip. portrait/clip: a gallery id (see the page) or empty with a
            file in portrait_file/clip_file; files need consent=True. Returns the mp4."""
            p = Choice(upload=portrait_file) if portrait_file else Choice(gallery_id=(portrait or None))
            c = Choice(upload=clip_file) if clip_file else Choice(gallery_id=(clip or None))
            for choice in (p, c):
                if choice.gallery_id and choice.gallery_id not in manifest["portraits"] | manifest["clips"]:
                    raise gr.Error(f"{choice.gallery_id!r} is not in the gallery.")
            if p.gallery_id and p.gallery_id not in manifest["portraits"]:
                raise gr.Error(f"{p.gallery_id!r} is a clip, not a portrait.")
            if c.gallery_id and c.gallery_id not in manifest["clips"]:
                raise gr.Error(f"{c.gallery_id!r} is a portrait, not a clip.")
            try:
                settings = studio.settings(strength=strength, smoothing=smoothing, head_motion=head_motion,
                                           side_by_side=side_by_side, crop_only=crop_only)
                return str(render(p, c, settings, "en", bool(consent), engine_ or config.engine, request, progress).path)
            except VisitorError as e:
                raise gr.Error(str(e)) from None

        api_button.click(api_animate, [api_portrait, api_portrait_file, api_clip, api_clip_file, api_consent, api_side,
                                       api_strength, api_smoothing, api_head, api_crop, api_engine], api_out,
                         api_name="animate", concurrency_id="render", concurrency_limit=config.concurrency)

        # -- language ------------------------------------------------------------------------------
        def relabel(lang_):
            updates = []
            for comp, prop, key in translated:
                text = t(lang_, key, seconds=int(config.max_clip_s)) if key == "clip_upload" else t(lang_, key)
                if key == "title":
                    text = f"# {text}"
                updates.append(gr.update(**{prop: text}))
            return updates

        # The uploads' messages and the last attempt's are said again in the new language.
        upload_in = [face_pick, p_check, c_check, *uploaded] if config.uploads_enabled else []
        upload_out = [face_pick, p_note, c_note] if config.uploads_enabled else []

        def set_language(lang_, pid, cid, psrc, csrc, shown_=None, said_=None, *uploads):
            label = gr.skip() if shown_ is None else _label_markdown(shown_[0], lang_, shown_[1])
            status_ = _said_html(said_, lang_)
            said, files_ = [], ()
            if uploads:  # the face choice (keeping the visitor's pick) and the uploads' messages
                face_, p_chk, c_chk, *files_ = uploads
                said = [face_choices(p_chk.faces if p_chk else 0, lang_, face_), _check_html(p_chk, lang_),
                        _check_html(c_chk, lang_)]
            return ([lang_, describe(pid, cid, lang_, psrc, csrc, *files_), gr.update(value=portrait_items(lang_)),
                     gr.update(value=clip_items(lang_)), label, status_] + said + relabel(lang_))

        lang_outputs = ([lang, selection, p_gallery, c_gallery, museum_label, status, *upload_out]
                        + [c for c, _, _ in translated])
        lang_pick.input(set_language, [lang_pick, portrait_id, clip_id, portrait_src, clip_src, shown, status_said,
                                       *upload_in],
                        lang_outputs,
                        api_visibility="private", queue=False)

        def on_load(request: gr.Request):
            lang_ = pick_language(request.headers.get("accept-language") if request else None, lang0)
            if config.kiosk:
                lang_ = lang0  # a kiosk speaks the language it was set up in until a visitor switches
            nothing_uploaded = [-1] + [None] * (len(upload_in) - 1) if upload_in else []  # (the largest face)
            return [gr.update(value=lang_)] + set_language(lang_, None, None, "gallery", "gallery", None, None,
                                                           *nothing_uploaded)

        demo.load(on_load, None, [lang_pick] + lang_outputs, api_visibility="private", queue=False)

        # -- kiosk reset (the page's idle timer presses the hidden reset button, then reloads the page) ----
        # The next visitor starts from nothing: the last visitor's files are deleted now (their uploads and
        # results), as when a visitor leaves the page, and the reloaded page has none of their choices.
        def end_session(request: gr.Request):
            studio.end_session(request.session_hash if request else None)

        reset_btn.click(end_session, None, None, api_visibility="private", queue=False)

        # -- a visitor's uploads are theirs from the moment they arrive ------------------------------
        # (so they are deleted when the visitor leaves even if nothing was rendered from them, and a file
        # two visitors uploaded stays for the one who has not left)
        def keep_uploads(value, request: gr.Request):
            for path in value if isinstance(value, list) else [value]:
                path = path if isinstance(path, str) or path is None else getattr(path, "name", None)
                if path:
                    files.remember_upload(request.session_hash if request else None, path)

        # Each is checked as it arrives, and the visitor told at once what is wrong with it, if anything.
        # The portrait is taken as uploaded (preprocess=False): Gradio's image field would open it with
        # Pillow first and refuse a text file named .jpg with its own error, before our sentence could
        # say what to do; the library's loader checks and converts every file itself.
        def take_portrait(payload, request: gr.Request):
            path = (payload or {}).get("path")
            keep_uploads(path, request)
            # (The last attempt's message no longer holds.)
            return path, None, "", face_choices(0, lang0), "", None

        def check_portrait(path, lang_, request: gr.Request):
            checked = studio.check_upload(path, "portrait", request.session_hash if request else None)
            # A file that is not a picture (or not a video, below) would stay in the field as a broken one:
            # the field is emptied, and the sentence under it says why.
            return (checked, _check_html(checked, lang_), face_choices(checked.faces, lang_),
                    *((None, None, False) if checked.unreadable else (gr.skip(),) * 3))

        def check_clip(path, lang_, request: gr.Request):
            checked = studio.check_upload(path, "clip", request.session_hash if request else None)
            return checked, _check_html(checked, lang_), *((None, False) if checked.unreadable else (gr.skip(),) * 2)

        def face_choices(count, lang_, value=-1):
            largest = [(t(lang_, "face_largest"), -1)]  # (a radio's value must be one of its choices)
            if count < 2:
                return gr.update(choices=largest, value=-1, visible=False, label=t(lang_, "which_face"))
            return gr.update(choices=largest + [(t(lang_, "face_from_left", n=i + 1), i) for i in range(count)],
                             value=value if value is not None and -1 <= value < count else -1, visible=True,
                             label=t(lang_, "which_face"))

        if config.uploads_enabled:
            # Which file each box was ticked for, kept in the page (demo.consent). Registered first: a listener
            # registered before them whose inputs include a field still uploading held them back with it (the
            # clip's read-ahead did). A file refused is emptied from its field by the server: its path is no
            # longer the server's file, so no tick counts for it.
            for which, box, upload, tick, shown in (("portrait", p_consent, p_upload, p_tick, p_shown),
                                                    ("clip", c_consent, c_upload, c_tick, c_shown)):
                box.input(None, box, [tick, shown], js=box_js(which))
                box.input(None, [box, upload], [tick, shown], js=beside_js(which))
                upload.upload(None, upload, [box, tick, shown], js=arrived_js(which))
                upload.clear(None, None, [box, tick, shown], js=cleared_js(which))
            more_faces.upload(keep_uploads, more_faces, None, api_visibility="private", queue=False)
            # (Not queued: a check takes under a second, and a queue full of renders must not refuse it.)
            private = {"api_visibility": "private", "queue": False}
            # The selection line follows the files: a file in the field is the choice, an emptied field is none.
            # (always_last: a picture dropped onto one still being taken in is taken in after it, not dropped.)
            p_upload.upload(take_portrait, p_upload, [portrait_file, p_check, p_note, face_pick, status, status_said],
                            preprocess=False, trigger_mode="always_last",
                            **private).then(check_portrait, [portrait_file, lang],
                                            [p_check, p_note, face_pick, p_upload, portrait_file, p_consent],
                                            **private).then(
                describe, chosen, selection, **private)
            p_upload.clear(lambda: (None, None, "", face_choices(0, lang0)), None,
                           [portrait_file, p_check, p_note, face_pick], **private).then(
                describe, chosen, selection, **private)
            # Once a good clip is there and the visitor has agreed to its use, its motion is read ahead while
            # they choose a painting (studio.read_ahead): their render then starts as a gallery clip's does.
            def read_ahead(checked, agreed, path, request: gr.Request):
                if checked is not None and checked.ok and agreed and path:
                    studio.read_ahead(path, request.session_hash if request else None)

            c_upload.upload(keep_uploads, c_upload, None, trigger_mode="always_last", **private).then(
                lambda: (None, "", "", None), None, [c_check, c_note, status, status_said], **private).then(
                check_clip, [c_upload, lang], [c_check, c_note, c_upload, c_consent], **private).then(
                describe, chosen, selection, **private).then(
                read_ahead, [c_check, c_consent, c_upload], None, **private)
            c_consent.input(read_ahead, [c_check, c_consent, c_upload], None, **private)

            # The line under Animate that asked for a tick goes once every upload in use has its box ticked
            # (it said so until the next attempt, to a visitor who had done what it asked).
            # (A box unticked answers nothing.)
            def consent_given(own: int):
                def answer(pconsent, cconsent, psrc, csrc, said_):
                    if (said_ == "err_consent" and (pconsent, cconsent)[own] and (psrc != "upload" or pconsent)
                            and (csrc != "upload" or cconsent)):
                        return "", None
                    return gr.skip(), gr.skip()
                return answer

            for own, box in enumerate((p_consent, c_consent)):
                box.input(consent_given(own), [p_consent, c_consent, portrait_src, clip_src, status_said],
                          [status, status_said], **private)
            c_upload.clear(lambda: (None, ""), None, [c_check, c_note], **private).then(
                describe, chosen, selection, **private)

        smaller.click(None, js="() => window.lpTextSize && window.lpTextSize(-1)")
        larger.click(None, js="() => window.lpTextSize && window.lpTextSize(1)")

        demo.unload(end_session)
    files.keep_current_uploads()  # the page's thumbnails are Gradio copies too: not a visitor's
    demo.lp_files = files
    demo.lp_store = store
    demo.lp_studio = studio
    return demo


def _client_gone(demo: gr.Blocks) -> Callable[[], bool] | None:
    """For the running event: a check that is True once its client has cancelled or disconnected.

    Gradio cancels the asyncio task of a cancelled event (and marks a disconnected client's events
    not alive), but the render runs in a worker thread that only stops when it is told to.
    """
    event_id = LocalContext.event_id.get(None)
    if event_id is None:
        return None

    def gone() -> bool:
        queue = getattr(demo, "_queue", None)
        event = queue.event_ids_to_events.get(event_id) if queue is not None else None
        return event is None or not event.alive

    return gone


KIOSK_DARK = "#141210"  # the kiosk's start screen, and its page until the start screen is up
ATTRACT_FULL = 6  # stored results enough for the start screen to show only them


def _attract_items(videos: list[Path], stills: list[tuple[Path, str]]) -> list[dict]:
    """The kiosk start screen's playlist: the stored results; while there are fewer than ATTRACT_FULL, the
    paintings shown still with their titles (``stills``: path, title), a result after every third."""
    if len(videos) >= ATTRACT_FULL:
        return [{"video": f"/gradio_api/file={p}"} for p in videos]
    items = []
    for i, (path, title) in enumerate(stills):
        if videos and i % 3 == 0:
            items.append({"video": f"/gradio_api/file={videos[i // 3 % len(videos)]}"})
        items.append({"still": f"/gradio_api/file={path}", "title": title})
    return items


def _attract_html(videos: list[Path], stills: list[tuple[Path, str]], config: AppConfig, lang: str) -> str:
    """The kiosk's start screen (see _attract_items) and the page script's settings."""
    cfg = {"kiosk": config.kiosk, "idleMs": int(config.idle_timeout_s * 1000), "lang": lang,
           "items": _attract_items(videos, stills),
           "touch": {code: t(code, "touch_to_start") for code in LANGUAGE_NAMES},
           "noPreview": {code: t(code, "no_preview") for code in LANGUAGE_NAMES},
           "drop": {code: {"image": t(code, "drop_image"), "video": t(code, "drop_video"), "or": t(code, "drop_or"),
                           "click": t(code, "drop_click")} for code in LANGUAGE_NAMES}}
    return (f'<div id="lp-config" data-cfg="{html.escape(json.dumps(cfg))}"></div>'
            f'<div id="lp-attract" role="button" aria-label="{html.escape(t(lang, "touch_to_start"))}" hidden>'
            '<video id="lp-attract-video" muted playsinline></video>'
            '<img id="lp-attract-still" alt="" hidden><div id="lp-attract-caption"></div>'
            f'<div class="lp-attract-text">{html.escape(t(lang, "touch_to_start"))}</div></div>')


def launch_kwargs(config: AppConfig, demo: gr.Blocks) -> dict:
    """Arguments for ``demo.launch`` that belong to the page: theme, CSS, kiosk script, limits."""
    store: ResultStore = demo.lp_store
    css = (ASSETS / "style.css").read_text(encoding="utf-8")
    js = (ASSETS / "page.js").read_text(encoding="utf-8")
    theme = gr.themes.Soft(primary_hue="amber", neutral_hue="stone", font=[gr.themes.Font("Georgia"), gr.themes.Font("serif")],
                           font_mono=[gr.themes.Font("monospace")],
                           text_size=gr.themes.sizes.text_lg if config.kiosk else gr.themes.sizes.text_md)
    head = None
    if config.kiosk:
        # Dark until the start screen is up (kiosk-head.css): the page Gradio serves is painted in the theme's
        # page colour before any of Gradio's code or css (the head's included) has run.
        light = theme._get_computed_value("body_background_fill")  # (what Gradio itself writes into the page)
        theme = theme.set(body_background_fill=KIOSK_DARK, body_background_fill_dark=KIOSK_DARK)
        head = f"<style>:root {{ --lp-page: {light}; }}\n{(ASSETS / 'kiosk-head.css').read_text(encoding='utf-8')}</style>"
    return dict(theme=theme, css=css, js=js, footer_links=[] if config.kiosk else ["api", "settings"], head=head,
                # Gradio serves only files under the working folder or the temporary folder unless told:
                # the stored results, the thumbnails (in the cache, ~/.cache by default) and the gallery's
                # clips (the preview) wherever the app is started from.
                allowed_paths=[str(store.root), str(thumbs_dir()), str(store.gallery.root)],
                # Visitors see our own sentences (gr.Error) only: an internal error's text (Gradio's own
                # component errors name the server's upload paths) becomes Gradio's plain "Error".
                max_file_size=f"{config.max_upload_mb}mb", show_error=False,
                # The page as tested: rendered in the browser. (A Space may turn on server-side rendering with
                # GRADIO_SSR_MODE; it serves Gradio's code from elsewhere, and page.js would not find the
                # locale switch that puts Gradio's own words in the page's language.)
                ssr_mode=False)
