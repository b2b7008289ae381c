"""The page in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Screenshots go to test-artifacts/screenshots/ for a person to look at.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from demo.strings import STRINGS
from demo.ui import AppConfig

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium (.ci/run does)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


# Each test's pages close when it ends: a page left open goes on running (a kiosk's start screen plays its
# videos and reloads itself when idle, every page keeps a connection to its app) and slows the tests after it.
_PAGES: list = []


@pytest.fixture(autouse=True)
def _close_pages():
    yield
    while _PAGES:
        _PAGES.pop().close()


def new_page(browser, **ctx):
    page = browser.new_page(**ctx)
    _PAGES.append(page)
    return page


def network(page):
    """A CDP session on ``page`` with its network domain on (see throttle_uploads)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    return cdp


def throttle_uploads(cdp, bytes_per_s: int) -> None:
    """The page's uploads at ``bytes_per_s`` (a slow connection); -1: at full speed again."""
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                 "uploadThroughput": bytes_per_s})


def wait_until(page, condition, what: str, timeout_s: float = 10.0) -> None:
    """Poll ``condition()`` (a test's own record, not the page's) until it holds; fail saying ``what``."""
    for _ in range(int(timeout_s * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"waited {timeout_s} s for {what}")


def open_page(browser, url, viewport=None, **ctx):
    page = new_page(browser, viewport=viewport or {"width": 1440, "height": 1000}, **ctx)
    outside = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith((url.rstrip("/"), "data:", "blob:")) else None)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    # (attached: a kiosk's page is hidden under its start screen until it is touched)
    page.locator("#lp-portraits .thumbnail-item").first.wait_for(state="attached", timeout=30000)
    # The page's load event fills in the galleries; until it ends every block shows a loading timer, and
    # then fades in (endless animations, like the kiosk's pulsing prompt, are not waited for).
    page.wait_for_function("() => ![...document.querySelectorAll('.progress-text')].some(e => e.offsetParent)"
                           " && document.getAnimations().every(a => a.playState !== 'running'"
                           " || a.effect.getTiming().iterations === Infinity)", timeout=30000)
    return page, outside, errors


class Screencast:
    """What the screen showed: the browser's own frames (CDP screencast) with the time each arrived."""

    def __init__(self, page):
        self.frames: list[tuple[float, bytes]] = []
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Page.screencastFrame", self._frame)
        self.cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 40, "maxWidth": 320, "maxHeight": 240})

    def _frame(self, event):
        self.frames.append((time.time(), base64.b64decode(event["data"])))
        self.cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})

    def stop(self):
        self.cdp.send("Page.stopScreencast")

    def bright_since(self, since: float) -> list[float]:
        """Seconds after ``since`` of the frames that were mostly light (the app's page, a white loader)."""
        out = []
        for at, data in self.frames:
            grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
            if at > since and (grey > 200).mean() > 0.3:
                out.append(round(at - since, 2))
        return out


def video_playing(page, selector):
    return page.evaluate(f"""() => {{ const v = document.querySelector('{selector} video');
        return !!v && v.readyState >= 2 && v.currentTime > 0; }}""")


def test_visitor_animates_a_gallery_portrait(browser, launch_app):
    url, demo = launch_app(AppConfig())
    page, outside, errors = open_page(browser, url)
    page.screenshot(path=SHOTS / "1-start.png", full_page=True)
    page.locator("#lp-portraits .thumbnail-item").nth(1).click()   # Girl with a Pearl Earring
    page.locator("#lp-clips .thumbnail-item").first.click()        # the shortest clip
    expect(page.locator("#lp-selection")).to_contain_text("Girl with a Pearl Earring")
    expect(page.locator("#lp-clip-preview video")).to_be_visible()
    page.wait_for_function("() => { const v = document.querySelector('#lp-clip-preview video');"
                           " return v && !v.paused && !v.muted && v.currentTime > 0; }", timeout=30000)  # heard
    page.locator("#lp-animate").click()
    page.locator("#lp-result video").wait_for(timeout=180000)
    deadline = time.time() + 30
    while not video_playing(page, "#lp-result") and time.time() < deadline:
        time.sleep(0.25)
    assert video_playing(page, "#lp-result"), "the result should start playing by itself"
    # The performance's preview, which was playing with the same soundtrack, is paused (one voice at a time).
    assert page.evaluate("() => document.querySelector('#lp-clip-preview video').paused"), "two soundtracks at once"
    expect(page.locator("#lp-label")).to_contain_text("Johannes Vermeer")
    expect(page.locator("#lp-label h3")).to_be_in_viewport(timeout=10000)  # the page scrolled to the result
    expect(page.locator("#lp-label")).to_contain_text("Animated with meshwarp")  # which engine made it
    expect(page.locator("#lp-download")).to_be_visible()
    page.screenshot(path=SHOTS / "2-result.png", full_page=True)
    with page.expect_download() as saved:
        page.locator("#lp-download").click()
    assert saved.value.suggested_filename == "living-portrait_girl-with-a-pearl-earring_glances-and-a-big-smile.mp4"
    assert saved.value.path().stat().st_size > 10_000
    # In French the button says so, and still downloads the video (not its own text).
    page.get_by_label("Français").check()
    expect(page.locator("#lp-download")).to_have_text("Télécharger la vidéo")
    expect(page.locator("#lp-label")).to_contain_text("Animé avec meshwarp")  # the label follows the language
    with page.expect_download() as saved_fr:
        page.locator("#lp-download").click()
    assert saved_fr.value.failure() is None
    assert saved_fr.value.path().stat().st_size == saved.value.path().stat().st_size
    assert outside == [], f"the page must not reach outside the machine: {outside}"
    assert errors == []


def test_language_switch_to_french(browser, launch_app):
    url, _ = launch_app(AppConfig())
    page, _, errors = open_page(browser, url)
    page.get_by_role("tab", name="Upload").nth(1).click()   # a field drawn in English before the switch
    expect(page.locator("#lp-clip-upload")).to_contain_text(STRINGS["en"]["drop_video"])
    page.get_by_label("Français").check()
    expect(page.locator("#lp-animate")).to_have_text("Animer")
    expect(page.locator("#lp-title")).to_contain_text("Portraits vivants")
    expect(page.locator("#lp-portraits")).to_contain_text("La Jeune Fille à la perle")  # titles too
    page.locator("#lp-portraits .thumbnail-item").first.click()
    expect(page.locator("#lp-selection")).to_contain_text("La Joconde (Mona Lisa)")
    page.screenshot(path=SHOTS / "3-french.png", full_page=True)
    # Gradio's own words follow the page's language, not the browser's (English here); an empty upload field
    # says ours, also where it was drawn before the switch (Gradio draws its words once).
    page.wait_for_function("() => document.documentElement.lang === 'fr'", timeout=10000)  # Gradio's locale
    expect(page.locator("#lp-clip-upload")).to_contain_text(STRINGS["fr"]["drop_video"])
    expect(page.locator("#lp-clip-upload")).to_contain_text(STRINGS["fr"]["drop_click"])
    page.get_by_role("tab", name="Importer").first.click()
    expect(page.locator("#lp-portrait-upload")).to_contain_text(STRINGS["fr"]["drop_image"])
    expect(page.locator("#lp-portrait-upload").get_by_role("button", name=STRINGS["fr"]["drop_image"])).to_have_count(1)
    assert "Drop" not in page.locator("#lp-portrait-upload").inner_text() + page.locator("#lp-clip-upload").inner_text()
    assert errors == []


def test_a_french_browser_on_an_english_page_gets_gradios_words_in_english(browser, launch_app):
    """A kiosk set to English, opened by a browser in French: the page is English, Gradio's prompts too."""
    url, _ = launch_app(AppConfig(uploads=True, language="en", kiosk=True))
    page, _, errors = open_page(browser, url, locale="fr-FR")
    page.locator("#lp-attract").click()
    expect(page.locator("#lp-animate")).to_have_text("Animate")
    page.wait_for_function("() => document.documentElement.lang === 'en'", timeout=10000)  # Gradio's locale
    page.get_by_role("tab", name="Upload").first.click()
    expect(page.locator("#lp-portrait-upload")).to_contain_text(STRINGS["en"]["drop_image"])
    assert errors == []


def test_the_largest_text_still_fits_a_laptop_screen(browser, launch_app):
    """A+ as far as it goes, on a 1440-px laptop: the text is larger, and every painting is still on the
    screen (the fifth column of the gallery was cut at the right), with no sideways scrolling."""
    url, _ = launch_app(AppConfig())
    page, _, _ = open_page(browser, url)
    size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#lp-animate')).fontSize)")
    for _ in range(5):
        page.locator("#lp-text-larger").click()
    page.wait_for_timeout(500)
    zoom = page.evaluate("() => parseFloat(document.querySelector('.gradio-container').style.zoom)")
    assert zoom >= 1.5
    for gallery in ("#lp-portraits", "#lp-clips"):
        right, edge = page.evaluate(f"""() => [Math.max(...[...document.querySelectorAll('{gallery} .thumbnail-item')]
            .map(e => e.getBoundingClientRect().right)), document.querySelector('{gallery}').getBoundingClientRect().right]""")
        assert right <= min(edge, 1440) + 1, (gallery, right, edge)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    page.screenshot(path=SHOTS / "3b-largest-text.png")
    assert size < page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#lp-animate')).fontSize)")\
        * zoom


def assert_label_above_the_picture(page):
    """An uploaded portrait's field shows its label above the picture, not over its top (it covered a sitter's
    hair; on a phone, where the label takes two lines, half the brow)."""
    page.wait_for_function("() => document.querySelector('#lp-portrait-upload img')?.naturalWidth > 0")
    label_bottom, picture_top, picture_bottom, field_bottom = page.evaluate("""() => {
        const img = document.querySelector('#lp-portrait-upload img'), r = img.getBoundingClientRect();
        const k = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight), h = img.naturalHeight * k;
        return [document.querySelector('#lp-portrait-upload label').getBoundingClientRect().bottom,
                r.top + (r.height - h) / 2, r.top + (r.height + h) / 2,
                document.querySelector('#lp-portrait-upload').getBoundingClientRect().bottom]; }""")
    assert label_bottom <= picture_top + 0.5, (label_bottom, picture_top)
    assert picture_bottom <= field_bottom + 0.5, (picture_bottom, field_bottom)   # nor pushed out at the foot


def test_upload_needs_consent(browser, launch_app, shared_dir):
    url, _ = launch_app(AppConfig())
    page, _, _ = open_page(browser, url)
    selection = page.locator("#lp-selection")
    page.locator("#lp-portraits .thumbnail-item").first.click()
    expect(selection).to_contain_text("Portrait: Mona Lisa")
    page.get_by_role("tab", name="Upload").first.click()
    expect(selection).to_contain_text("Portrait: —")   # an empty field is no choice yet
    page.locator("#lp-portrait-upload input[type=file]").set_input_files(
        str(shared_dir / "gallery-src/paintings/newton_kneller_1702.jpg"))
    expect(selection).to_contain_text("Portrait: your upload")
    assert_label_above_the_picture(page)
    page.locator("#lp-clips .thumbnail-item").first.click()
    expect(selection).to_contain_text(re.compile(r"Portrait: your upload\s*Performance: [^—\s]"))
    page.locator("#lp-animate").click()
    # The sentence stays under Animate (a pop-up fades, and left a bare "Error" badge behind).
    expect(page.locator("#lp-status")).to_contain_text("tick the box", timeout=30000)
    page.screenshot(path=SHOTS / "4-consent-error.png", full_page=False)
    assert "Error" not in page.locator("#lp-result-column").inner_text()
    page.wait_for_timeout(11000)                           # longer than a pop-up stays
    expect(page.locator("#lp-status")).to_contain_text("tick the box")
    page.get_by_label("Français").check()                  # said again in the new language
    expect(page.locator("#lp-status")).to_have_text(STRINGS["fr"]["err_consent"])
    page.get_by_label("English").check()
    expect(page.locator("#lp-status")).to_have_text(STRINGS["en"]["err_consent"])
    # Ticking the box answers it: the line goes (it stayed until the next attempt).
    page.locator("#lp-consent-portrait input[type=checkbox]").check()
    expect(page.locator("#lp-status")).to_be_hidden()
    # The box says "this file": another picture dropped in its place, or the field emptied, needs a new tick.
    box, field = page.locator("#lp-consent-portrait input"), page.locator("#lp-portrait-upload")
    field.locator("input[type=file]").set_input_files(str(shared_dir / "gallery-src/paintings/voltaire_largilliere_1724.jpg"))
    expect(box).not_to_be_checked()
    page.locator("#lp-animate").click()
    expect(page.locator("#lp-status")).to_contain_text("tick the box", timeout=30000)
    box.check()
    expect(page.locator("#lp-status")).to_be_hidden()
    field.locator("button[aria-label='Remove Image']").first.click()
    expect(box).not_to_be_checked()
    # A tick given while a picture put in place of another is still arriving (a slow connection) is the new
    # picture's: the page sends it once the picture is in, and it stays.
    paintings = shared_dir / "gallery-src/paintings"
    field.locator("input[type=file]").set_input_files(str(paintings / "newton_kneller_1702.jpg"))
    expect(field.locator("img")).to_have_count(1, timeout=30000)
    throttle_uploads(network(page), 30000)
    field.locator("input[type=file]").set_input_files(str(paintings / "voltaire_largilliere_1724.jpg"))
    page.wait_for_timeout(1000)
    box.check()
    page.wait_for_function("() => /voltaire/.test(document.querySelector('#lp-portrait-upload img')?.src || '')",
                           timeout=60000)
    page.wait_for_timeout(1500)
    expect(box).to_be_checked()


def test_a_render_uses_an_upload_only_with_a_tick_given_for_that_very_file(browser, launch_app, shared_dir, tmp_path):
    """The consent box says "I may use this file". The page's requests are answered in no set order, and
    events may be held while a file arrives; whatever the order, the studio is asked to use an upload only
    with a tick given for the file it uses, and a tick given for the file in the field is honoured. Found
    in earlier versions: Animate pressed while a picture was still arriving in place of an unticked one
    rendered the old picture with the tick; a picture dropped onto one still being taken in was never
    taken in, so the one before it was rendered with the tick given for the one shown (both fail here on
    the two versions before the record moved into the page); after that, the next picture dropped on top
    kept the tick; and a tick recorded (on the server) after its field was emptied cleared the next clip's
    tick (seen once in a full run of the suite). The renders themselves are not run: the studio records
    what it was asked."""
    import badinput

    from demo.studio import VisitorError
    url, demo = launch_app(AppConfig())
    asked = []

    def asked_to_render(portrait, clip, settings, *, consent=False, lang="en", **_):
        asked.append((Path(portrait.upload).name if portrait.upload else portrait.gallery_id,
                      Path(clip.upload).name if clip.upload else clip.gallery_id, consent))
        raise VisitorError("err_unexpected" if consent else "err_consent", lang)

    demo.lp_studio.run = asked_to_render
    page, _, errors = open_page(browser, url)
    held, holding = [], []

    def hold(route):   # the page's events, held back while ``holding`` has a test in it
        body = route.request.post_data or ""
        if any(test(body) for test in holding):
            held.append(route)
        else:
            route.continue_()

    def release():
        holding.clear()
        while held:
            held.pop(0).continue_()

    def animate(expected):
        count = len(asked)
        page.locator("#lp-animate").click()
        wait_until(page, lambda: len(asked) > count, "the studio to be asked", timeout_s=30)
        assert asked[count:] == [expected]

    def shown(name):
        page.wait_for_function("(name) => new RegExp(name).test(document.querySelector('#lp-portrait-upload img')?.src"
                               " || '')", arg=name, timeout=60000)

    page.route("**/gradio_api/run/predict", hold)
    cdp = network(page)
    paintings = shared_dir / "gallery-src/paintings"
    field, box = page.locator("#lp-portrait-upload"), page.locator("#lp-consent-portrait input")

    page.locator("#lp-clips .thumbnail-item").first.click()
    page.get_by_role("tab", name="Upload").first.click()
    field.locator("input[type=file]").set_input_files(str(paintings / "newton_kneller_1702.jpg"))
    shown("newton")
    box.check()
    box.uncheck()
    # Animate pressed while a picture is still arriving in place of one not ticked, the box ticked meanwhile.
    throttle_uploads(cdp, 30000)
    field.locator("input[type=file]").set_input_files(str(paintings / "voltaire_largilliere_1724.jpg"))
    page.wait_for_timeout(700)
    box.check()
    animate(("newton_kneller_1702.jpg", "smile_eyes", False))
    shown("voltaire")
    throttle_uploads(cdp, -1)
    page.wait_for_timeout(1000)
    expect(box).to_be_checked()                        # the tick given while it arrived is the new picture's
    animate(("voltaire_largilliere_1724.jpg", "smile_eyes", True))
    # A picture dropped onto one whose taking-in is held back: the one shown is the one used.
    holding.append(lambda body: body.startswith('{"data":[{"path":') and "rousseau" in body)
    field.locator("input[type=file]").set_input_files(str(paintings / "rousseau_la_tour_1753.jpg"))
    wait_until(page, lambda: held, "the request to hold back")
    field.locator("input[type=file]").set_input_files(str(paintings / "gogol_moller_1840.jpg"))
    shown("gogol")
    page.wait_for_timeout(500)
    release()
    expect(box).not_to_be_checked()                    # (ticked for another picture)
    page.wait_for_timeout(1500)
    box.check()
    animate(("gogol_moller_1840.jpg", "smile_eyes", True))
    # ... and the next picture dropped on top does not keep that tick.
    field.locator("input[type=file]").set_input_files(str(paintings / "diderot_van_loo_1767.jpg"))
    shown("diderot")
    expect(box).not_to_be_checked()
    animate(("diderot_van_loo_1767.jpg", "smile_eyes", False))
    expect(page.locator("#lp-status")).to_contain_text("tick the box")
    # A tick given on the empty field is the next picture's, and only its.
    field.locator("button[aria-label='Remove Image']").first.click()
    expect(field.locator("img")).to_have_count(0)
    box.check()
    field.locator("input[type=file]").set_input_files(str(paintings / "newton_kneller_1702.jpg"))
    shown("newton")
    page.wait_for_timeout(1000)
    expect(box).to_be_checked()
    animate(("newton_kneller_1702.jpg", "smile_eyes", True))
    field.locator("input[type=file]").set_input_files(str(paintings / "voltaire_largilliere_1724.jpg"))
    shown("voltaire")
    expect(box).not_to_be_checked()
    animate(("voltaire_largilliere_1724.jpg", "smile_eyes", False))
    # A tick taken back and given again while another picture arrives: the old picture's tick is withdrawn at
    # once, and the new tick is the new picture's (the untick, held back with the picture, did not count).
    box.check()
    throttle_uploads(cdp, 30000)
    field.locator("input[type=file]").set_input_files(str(paintings / "mona_lisa.jpg"))
    page.wait_for_timeout(700)
    box.uncheck()
    box.check()
    animate(("voltaire_largilliere_1724.jpg", "smile_eyes", False))
    shown("mona_lisa")
    throttle_uploads(cdp, -1)
    page.wait_for_timeout(1000)
    expect(box).to_be_checked()
    animate(("mona_lisa.jpg", "smile_eyes", True))
    # A picture removed while its taking-in is held back, then the box ticked for the next one: the removed
    # picture, taken in late by the server, is not used.
    field.locator("button[aria-label='Remove Image']").first.click()
    expect(field.locator("img")).to_have_count(0)
    box.check()
    holding.append(lambda body: body.startswith('{"data":[{"path":') and "girl_with" in body)
    field.locator("input[type=file]").set_input_files(str(paintings / "girl_with_a_pearl_earring.jpg"))
    wait_until(page, lambda: held, "the request to hold back")
    field.locator("button[aria-label='Remove Image']").first.click()
    expect(field.locator("img")).to_have_count(0)
    box.focus()
    page.keyboard.press("Space")                       # (the box sits under a loading cover meanwhile)
    expect(box).to_be_checked()
    release()
    page.wait_for_timeout(1000)
    animate(("girl_with_a_pearl_earring.jpg", "smile_eyes", False))

    # The clip: a tick given for one clip, whose events are answered only after its field was emptied; the
    # next clip ticked while it arrives.
    page.get_by_role("tab", name="Gallery").first.click()
    page.locator("#lp-portraits .thumbnail-item").first.click()
    page.get_by_role("tab", name="Upload").nth(1).click()
    field, box = page.locator("#lp-clip-upload"), page.locator("#lp-consent-clip input")
    camera, phone = badinput.make_camera_avi(tmp_path), badinput.make_hevc_clip(tmp_path)
    field.locator("input[type=file]").set_input_files(str(camera))
    expect(page.locator("#lp-clip-note")).to_contain_text("MPEG-4", timeout=30000)
    holding.append(lambda body: True)
    box.check()
    page.wait_for_timeout(300)
    holding.clear()
    field.locator("button[aria-label='Clear']").first.click()
    expect(box).not_to_be_checked()
    page.wait_for_timeout(500)
    release()
    page.wait_for_timeout(500)
    throttle_uploads(cdp, 20000)
    field.locator("input[type=file]").set_input_files(str(phone))
    page.wait_for_timeout(700)
    box.check()
    expect(page.locator("#lp-clip-note")).to_contain_text("HEVC", timeout=60000)
    throttle_uploads(cdp, -1)
    page.wait_for_timeout(1500)
    expect(box).to_be_checked()
    animate(("mona_lisa", phone.name, True))
    assert errors == []


def test_the_page_keeps_its_width_whichever_tabs_are_open(browser, launch_app):
    """Opening both Upload tabs (narrower than the galleries) narrowed and re-centred the whole page."""
    url, _ = launch_app(AppConfig())
    page, _, _ = open_page(browser, url, viewport={"width": 1366, "height": 900})
    width = "() => document.querySelector('.gradio-container').getBoundingClientRect().width"
    galleries = page.evaluate(width)
    page.get_by_role("tab", name="Upload").nth(0).click()
    page.get_by_role("tab", name="Upload").nth(1).click()
    expect(page.locator("#lp-clip-upload")).to_be_visible()
    assert page.evaluate(width) == galleries == 1366


def test_kiosk_attract_loop_and_idle_reset(browser, launch_app):
    config = AppConfig(kiosk=True, idle_timeout_s=3)
    url, demo = launch_app(config)
    demo.lp_store.get_or_render("mona_lisa", "smile_eyes", settings=demo.lp_studio.settings())
    page, outside, errors = open_page(browser, url, has_touch=True)   # the attract list is read when the page opens
    page.reload(wait_until="load")
    attract = page.locator("#lp-attract")
    expect(attract).to_be_visible(timeout=10000)
    # The start screen opens with a stored result, also when the page's load brings a playlist that has one
    # the page was built without (rendered after the app started). Before, the load's playlist was taken up
    # at its second item, and the result came after 21 s of stills (one plays between every third painting).
    deadline = time.time() + 15
    while not video_playing(page, "#lp-attract") and time.time() < deadline:
        time.sleep(0.25)
    assert video_playing(page, "#lp-attract"), "the start screen does not open with a stored result"
    page.screenshot(path=SHOTS / "5-kiosk-attract.png")
    attract.click()
    expect(attract).to_be_hidden()
    assert page.get_by_role("tab", name="Upload").count() == 0, "no uploads in kiosk mode"
    expect(page.get_by_role("tab", name="Gallery").first).to_be_hidden()   # nor a bar with one lone tab
    expect(page.locator("footer")).to_be_hidden()
    page.locator("#lp-portraits .thumbnail-item").nth(4).click()
    expect(page.locator("#lp-selection")).to_contain_text("Gogol")
    page.get_by_label("Français").check()
    expect(page.locator("#lp-portraits")).to_contain_text("La Joconde")
    expect(page.locator("#lp-advanced")).to_be_hidden()   # the kiosk's options are the museum's
    for sel in ("#lp-animate", "#lp-text-larger", "#lp-portraits .thumbnail-item >> nth=0"):
        box = page.locator(sel).bounding_box()
        assert box["height"] >= 48 and box["width"] >= 48, sel
    page.locator("#lp-text-larger").click()
    # The stored result comes at once, with its museum label's title in view, and nothing to download.
    page.locator("#lp-portraits .thumbnail-item").first.click()
    page.locator("#lp-clips .thumbnail-item").first.click()
    page.locator("#lp-animate").click()
    page.locator("#lp-result video").wait_for(timeout=60000)
    expect(page.locator("#lp-label h3")).to_be_in_viewport(timeout=10000)
    expect(page.locator("#lp-download")).to_be_hidden()
    page.screenshot(path=SHOTS / "6-kiosk-active.png")
    # The result plays again each time it ends; only its first play holds the idle timer, so a kiosk left with
    # a result on repeat goes back to its start screen (the result is 3 s, the timeout 3 s).
    peak, restarted, deadline = 0.0, False, time.time() + 20
    while not restarted and time.time() < deadline:
        now = page.evaluate("() => { const v = document.querySelector('#lp-result video');"
                            " return v && !v.paused ? v.currentTime : -1; }")  # (-1: paused, or gone)
        restarted = 0 <= now < peak - 1
        peak = max(peak, now)
        time.sleep(0.1)
    assert restarted, f"the result did not play again after it ended (it got to {peak:.1f} s)"
    # Idle: back to the start screen at once, then on a new page for the next visitor. The screen stays dark
    # all along: the new page showed the app in its light colours (and a white loader first) for a second or
    # more before its start screen, a flash at every reset in a dim gallery.
    screen = Screencast(page)
    with page.expect_navigation(timeout=30000):
        expect(attract).to_be_visible(timeout=20000)
        covered = time.time() + 0.3                       # (a frame or two on its way when it came)
    expect(attract).to_be_visible(timeout=10000)
    page.wait_for_timeout(1000)
    screen.stop()
    assert screen.bright_since(covered) == [], "the app flashed up between the reset and the new start screen"
    # The touch that wakes the kiosk lands where a painting is under the start screen: it only wakes it (no
    # painting chosen, no focus ring left on it).
    gogol = page.locator("#lp-portraits .thumbnail-item").nth(4).bounding_box()
    page.touchscreen.tap(gogol["x"] + gogol["width"] / 2, gogol["y"] + gogol["height"] / 2)
    expect(attract).to_be_hidden()
    page.wait_for_timeout(500)
    assert page.evaluate("() => !document.activeElement.closest('.thumbnail-item')"), "a focus ring on a painting"
    assert page.locator("#lp-portraits .thumbnail-item.selected").count() == 0, "the tap chose the painting"
    expect(page.locator("#lp-selection")).not_to_contain_text("Gogol")
    # The next visitor starts in the kiosk's language, captions too, at the normal text size, with no work
    # highlighted and no result.
    expect(page.locator("#lp-portraits")).not_to_contain_text("La Joconde")
    expect(page.locator("#lp-portraits")).to_contain_text("Mona Lisa")
    expect(page.locator("#lp-portraits .thumbnail-item.selected")).to_have_count(0)
    expect(page.locator("#lp-result video")).to_have_count(0)
    assert page.evaluate("() => document.querySelector('.gradio-container').style.zoom") in ("", "1")
    assert outside == [] and errors == []


def test_kiosk_with_uploads_gives_the_next_visitor_a_clean_page(browser, launch_app, shared_dir):
    """A visitor uploads a photo, ticks consent and walks away; after the idle reset the next visitor finds
    no photo, no tick, and the first visitor's upload is gone from the disk (nothing was rendered from it)."""
    url, demo = launch_app(AppConfig(kiosk=True, uploads=True, idle_timeout_s=3))
    page, _, errors = open_page(browser, url)
    attract = page.locator("#lp-attract")
    expect(attract).to_be_visible(timeout=10000)
    # Nothing stored yet: the start screen shows the paintings themselves, not a black screen.
    expect(page.locator("#lp-attract-still")).to_be_visible(timeout=10000)
    assert page.evaluate("() => document.getElementById('lp-attract-still').naturalWidth") > 100
    page.screenshot(path=SHOTS / "5b-kiosk-attract-stills.png")
    attract.click()
    page.get_by_role("tab", name="Upload").first.click()
    # (a file no other test uploads: Gradio keeps identical uploads in one place)
    page.locator("#lp-portrait-upload input[type=file]").set_input_files(
        str(shared_dir / "gallery-src/paintings/rousseau_la_tour_1753.jpg"))
    page.locator("#lp-portrait-upload img").first.wait_for(timeout=20000)
    page.locator("#lp-consent-portrait input").check()
    deadline = time.time() + 10
    while not demo.lp_files.visitor_files() and time.time() < deadline:
        time.sleep(0.2)
    assert demo.lp_files.visitor_files(), "the upload is on the server"
    with page.expect_navigation(timeout=30000):          # idle: the reset, and a new page
        expect(attract).to_be_visible(timeout=20000)
    expect(attract).to_be_visible(timeout=10000)
    attract.click()
    page.get_by_role("tab", name="Upload").first.click()
    expect(page.locator("#lp-consent-portrait input")).not_to_be_checked()
    expect(page.locator("#lp-portrait-upload img")).to_have_count(0)
    assert demo.lp_files.visitor_files() == []
    page.screenshot(path=SHOTS / "7-kiosk-after-reset.png")
    assert errors == []


def test_the_app_started_as_the_readme_says_serves_its_gallery(browser, tmp_path):
    """`python app.py` started from another folder, with its cache outside the temporary folder (as
    ~/.cache is): the portraits' thumbnails and a clip's preview are served. Gradio serves only files
    under the working or temporary folder unless the app allows more; before it did, every block of this
    page showed an Error badge and the galleries stayed empty."""
    run, tmp, cache = (tmp_path / d for d in ("run", "tmp", "cache"))
    for d in (run, tmp, cache):
        d.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(tmp), "LIVING_PORTRAITS_CACHE": str(cache)}
    env.pop("GRADIO_TEMP_DIR", None)
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port)], cwd=run, env=env,
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert app.poll() is None, (tmp_path / "app.log").read_text()
                time.sleep(0.5)
        page, outside, errors = open_page(browser, url)
        assert page.locator(".error:visible").count() == 0, (tmp_path / "app.log").read_text()[-2000:]
        thumbs = page.locator("#lp-portraits .thumbnail-item img")
        expect(thumbs).to_have_count(14)
        page.wait_for_function("() => [...document.querySelectorAll('#lp-portraits .thumbnail-item img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)", timeout=30000)
        page.locator("#lp-clips .thumbnail-item").first.click()
        page.wait_for_function("() => { const v = document.querySelector('#lp-clip-preview video');"
                               " return !!v && v.readyState >= 1; }", timeout=30000)
        assert "InvalidPathError" not in (tmp_path / "app.log").read_text()
        assert outside == [] and errors == []
        # What the terminal shows the staff: where to open it, and no native start-up chatter (MediaPipe's
        # segmenter has started by now) nor Gradio's advice to set a share=True that is not theirs to set.
        shown = (tmp_path / "app.log").read_text()
        assert f"Living Portraits is running at http://127.0.0.1:{port}. Open it in a browser" in shown, shown
        assert "share=True" not in shown and "absl" not in shown and "XNNPACK" not in shown, shown
    finally:
        app.terminate()
        app.wait(timeout=30)
        log.close()


def test_on_a_phone_the_page_fits_the_screen_and_shows_every_work(browser, launch_app):
    """A 390-px-wide phone: no sideways scrolling, and every portrait and clip is on the page within the
    screen's width (three a row), none hidden inside a gallery that scrolls on its own."""
    url, _ = launch_app(AppConfig())
    page, _, _ = open_page(browser, url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Targets a finger can hit: the text-size buttons and the tabs were 26 and 32 px tall.
    heights = page.evaluate("""() => [...document.querySelectorAll('#lp-text-smaller, #lp-text-larger, [role=tab]')]
        .filter(e => e.offsetParent).map(e => e.getBoundingClientRect().height)""")
    assert len(heights) >= 4 and min(heights) >= 48, heights
    page.get_by_role("tab", name="Upload").first.click()
    page.locator("#lp-portrait-upload input[type=file]").set_input_files(str(REPO / "gallery/portraits/gogol.jpg"))
    assert_label_above_the_picture(page)
    page.get_by_role("tab", name="Gallery").first.click()
    for gallery, n in (("#lp-portraits", 14), ("#lp-clips", 7)):
        boxes = page.evaluate(f"""() => [...document.querySelectorAll('{gallery} .thumbnail-item')].map(e => {{
            const r = e.getBoundingClientRect(); return [r.left, r.right, r.top + scrollY, r.bottom + scrollY]; }})""")
        wrap = page.evaluate(f"""() => {{ const r = document.querySelector('{gallery}').getBoundingClientRect();
            return [r.top + scrollY, r.bottom + scrollY]; }}""")
        assert len(boxes) == n
        assert all(left >= 0 and right <= 390 for left, right, _, _ in boxes), boxes
        assert all(top >= wrap[0] - 1 and bottom <= wrap[1] + 1 for _, _, top, bottom in boxes), (boxes, wrap)
        assert len({round(left) for left, _, _, _ in boxes}) == 3
        # Captions are at most two small lines at the foot of each thumbnail, not over the sitter's face.
        covered = page.evaluate(f"""() => [...document.querySelectorAll('{gallery} .thumbnail-item')].map(e =>
            e.querySelector('.caption-label').offsetHeight / e.offsetHeight)""")
        assert max(covered) < 0.3, covered
    page.screenshot(path=SHOTS / "8-phone.png", full_page=True)


def test_a_text_file_named_jpg_is_refused_with_what_to_do(browser, launch_app, tmp_path):
    """Gradio's own image field refused a text file named .jpg with its internal message, which named the
    file's path on the server (then, hidden, a bare "Error"). The visitor is told what to do the moment the
    file arrives, under the field, which is emptied; pressing Animate anyway asks for a portrait."""
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are my notes, not a picture\n")
    url, _ = launch_app(AppConfig())
    page, _, _ = open_page(browser, url)
    page.get_by_role("tab", name="Upload").first.click()
    page.locator("#lp-consent-portrait input").check()                # (given for the file about to arrive)
    page.locator("#lp-portrait-upload input[type=file]").set_input_files(str(fake))
    sentence = "This file is not an image we can read; choose a JPEG, PNG or WebP portrait."
    expect(page.locator("#lp-portrait-note")).to_have_text(sentence, timeout=30000)   # under the field
    expect(page.locator("#lp-portrait-upload img")).to_have_count(0)  # (not left there as a broken picture)
    expect(page.locator("#lp-consent-portrait input")).not_to_be_checked()   # a refused file takes its tick away
    page.locator("#lp-consent-portrait input").check()
    page.locator("#lp-clips .thumbnail-item").first.click()
    page.locator("#lp-animate").click()
    expect(page.locator("#lp-status")).to_contain_text("Choose a portrait first", timeout=30000)
    expect(page.locator("#lp-portrait-note")).to_have_text(sentence)
    assert "Error" not in page.locator("body").inner_text()
    # A clip that is not one is said under its own field, and leaves the portrait's message alone. (Gradio's
    # video field also shows its own "Video not playable" pop-up for it, titled "Error".)
    fake_clip = tmp_path / "notes.mp4"
    fake_clip.write_text("these are my notes, not a video\n")
    page.get_by_role("tab", name="Upload").nth(1).click()
    page.locator("#lp-clip-upload input[type=file]").set_input_files(str(fake_clip))
    expect(page.locator("#lp-clip-note")).to_contain_text("video", timeout=30000)
    expect(page.locator("#lp-portrait-note")).to_have_text(sentence)
    expect(page.locator("#lp-clip-upload video")).to_have_count(0)   # taken out of the field, as the picture
    expect(page.locator("#lp-selection")).to_contain_text("Performance: —")   # and no longer the choice
    expect(page.locator("#lp-status")).to_be_hidden()                 # a new file: the last attempt's line goes
    page.screenshot(path=SHOTS / "9-not-an-image.png")
    shown = page.locator("body").inner_text()
    assert "Could not preprocess" not in shown and "UnidentifiedImageError" not in shown
    assert "not playable" not in shown     # Gradio's English pop-up for the player's error is held back
    assert str(tmp_path.parent.parent) not in shown and "/visitors/" not in shown  # no server path


def test_a_clip_the_browser_cannot_play_is_still_animated(browser, launch_app, tmp_path):
    """Clips whose video the browser cannot play, which the server reads well: an older camera's AVI (the
    player fails, and Gradio answered with an English pop-up titled "Error", "Video not playable") and a
    phone's HEVC (Chromium plays its sound over a black picture, and said nothing). The field says there
    is no preview, in the page's language, the note under it says the clip can still be animated, and it
    is."""
    import badinput
    camera, phone = badinput.make_camera_avi(tmp_path), badinput.make_hevc_clip(tmp_path)
    url, _ = launch_app(AppConfig())
    page, _, errors = open_page(browser, url)
    page.get_by_label("Français").check()
    page.wait_for_function("() => document.documentElement.lang === 'fr'", timeout=10000)  # Gradio's locale
    page.get_by_role("tab", name="Importer").nth(1).click()
    field, note = page.locator("#lp-clip-upload"), page.locator("#lp-clip-note")
    for clip, codec in ((camera, "MPEG-4 Part 2"), (phone, "HEVC (H.265)")):
        if clip is phone:
            page.locator("#lp-consent-clip input").check()      # (given for the camera's clip: not for the next)
            field.get_by_role("button", name="Effacer").click()   # (Gradio's own words follow the page's)
            expect(note).to_be_hidden()
            expect(page.locator("#lp-consent-clip input")).not_to_be_checked()
            expect(page.locator("#lp-selection")).to_contain_text("Interprétation : —")
        if clip is phone:  # on a slow connection, the box ticked while the clip is still arriving
            cdp = network(page)
            throttle_uploads(cdp, 20000)
            field.locator("input[type=file]").set_input_files(str(clip))
            page.wait_for_timeout(700)
            page.locator("#lp-consent-clip input").check()
        else:
            field.locator("input[type=file]").set_input_files(str(clip))
        expect(note).to_contain_text(codec, timeout=30000)
        expect(page.locator("#lp-selection")).to_contain_text("Interprétation : votre fichier")
        if clip is phone:  # ... is that clip's (a first version cleared it: the emptied field's tick was remembered)
            throttle_uploads(cdp, -1)
            page.wait_for_timeout(1000)
            expect(page.locator("#lp-consent-clip input")).to_be_checked()
        expect(note).to_contain_text("il peut être animé")
        expect(field).to_have_attribute("data-lp-no-preview", "Pas d'aperçu dans ce navigateur", timeout=30000)
        page.wait_for_timeout(1000)        # (a pop-up would have had its time to appear)
        assert "not playable" not in page.locator("body").inner_text()
        if clip is camera:
            page.screenshot(path=SHOTS / "11-clip-without-preview.png", full_page=True)
    page.get_by_label("English").check()
    expect(field).to_have_attribute("data-lp-no-preview", "No preview in this browser")
    expect(page.locator("#lp-selection")).to_contain_text("Performance: your upload")
    page.locator("#lp-consent-clip input").check()
    page.locator("#lp-portraits .thumbnail-item").first.click()
    page.locator("#lp-animate").click()
    page.locator("#lp-result video").wait_for(timeout=180000)
    expect(page.locator("#lp-status")).to_be_hidden()
    page.wait_for_function("() => document.querySelector('#lp-result video').videoWidth > 0", timeout=30000)
    assert page.evaluate("document.querySelector('#lp-result video').duration") == pytest.approx(1.0, abs=0.1)
    assert errors == []


def test_a_gallery_clip_the_browser_cannot_play_says_so(browser, launch_app, tmp_path):
    """A museum's own recording added to the gallery as a phone made it (HEVC): picked, its preview played
    the sound over a black picture without a word, where an upload in that format said there was no
    preview. Picking a clip the browser plays takes the notice away."""
    import badinput

    from talking_head.gallery import Gallery
    from talking_head.results import ResultStore

    shipped, root = Gallery.default(), tmp_path / "gallery"
    m = shipped.manifest()
    for sub, keep in (("portraits", "mona_lisa"), ("clips", "smile_eyes"), ("motion", "smile_eyes")):
        (root / sub).mkdir(parents=True)
        for p in (shipped.root / sub).glob(f"{keep}.*"):
            shutil.copyfile(p, root / sub / p.name)
    (root / "manifest.json").write_text(json.dumps({"portraits": {"mona_lisa": m["portraits"]["mona_lisa"]},
                                                    "clips": {"smile_eyes": m["clips"]["smile_eyes"]}}))
    gallery = Gallery(root)
    gallery.add_clip(badinput.make_hevc_clip(tmp_path), "phone_hello",
                     {"title": "Hello from a phone", "shows": "a greeting", "provenance": "test", "licence": "test",
                      "consent": "test footage"})
    url, _ = launch_app(AppConfig(), store=ResultStore(tmp_path / "results", gallery), gallery=gallery)
    page, _, errors = open_page(browser, url)
    preview, clips = page.locator("#lp-clip-preview"), page.locator("#lp-clips .thumbnail-item")
    clips.nth(1).click()  # (the manifest's order: smile_eyes, then phone_hello)
    expect(preview).to_have_attribute("data-lp-no-preview", "No preview in this browser", timeout=30000)
    page.screenshot(path=SHOTS / "12-gallery-clip-without-preview.png", full_page=True)
    page.get_by_label("Français").check()
    expect(preview).to_have_attribute("data-lp-no-preview", "Pas d'aperçu dans ce navigateur")
    clips.nth(0).click()
    page.wait_for_function("() => document.querySelector('#lp-clip-preview video')?.videoWidth > 0", timeout=30000)
    expect(preview).not_to_have_attribute("data-lp-no-preview", re.compile(".*"))
    page.wait_for_timeout(500)
    assert "not playable" not in page.locator("body").inner_text()
    assert errors == []


def test_a_picture_with_several_faces_lets_the_visitor_choose_one(browser, launch_app, tmp_path):
    """A group photo: the visitor is told it has three faces the moment it arrives, picks the second from
    the left, and the result's label says that one was animated."""
    import badinput
    group = badinput.make_group(tmp_path)
    url, _ = launch_app(AppConfig())
    page, _, errors = open_page(browser, url)
    page.get_by_role("tab", name="Upload").first.click()
    page.locator("#lp-portrait-upload input[type=file]").set_input_files(str(group))
    expect(page.locator("#lp-portrait-note")).to_contain_text("This picture has 3 faces", timeout=30000)
    pick = page.locator("#lp-face-pick")
    expect(pick).to_be_visible()
    expect(pick.locator("label")).to_have_count(4)      # the largest, or each from the left
    pick.get_by_label("No. 2 from the left").check()
    page.locator("#lp-consent-portrait input").check()
    page.locator("#lp-clips .thumbnail-item").first.click()
    page.screenshot(path=SHOTS / "10-several-faces.png")
    page.locator("#lp-animate").click()
    expect(page.locator("#lp-label")).to_contain_text("face no. 2 from the left was animated", timeout=180000)
    page.get_by_label("Français").check()           # the upload's message and the choice follow the language
    expect(page.locator("#lp-portrait-note")).to_contain_text("Cette image contient 3 visages")
    expect(pick.get_by_label("N° 2 en partant de la gauche")).to_be_checked()
    page.locator("#lp-portrait-upload button[aria-label='Remove Image']").first.click()
    expect(pick).to_be_hidden()
    expect(page.locator("#lp-portrait-note")).to_be_hidden()
    assert errors == []


def test_kiosk_idle_reset_while_the_app_is_away_keeps_the_start_screen(browser, launch_app):
    """The idle reset reloads the page only when the server answers: while the app restarts (an update),
    a kiosk shows its start screen, not the browser's "cannot reach this page"."""
    url, demo = launch_app(AppConfig(kiosk=True, idle_timeout_s=3))
    demo.lp_store.get_or_render("mona_lisa", "smile_eyes", settings=demo.lp_studio.settings())
    page, _, _ = open_page(browser, url)
    attract = page.locator("#lp-attract")
    expect(attract).to_be_visible(timeout=10000)
    attract.click()
    expect(attract).to_be_hidden()
    page.locator("#lp-portraits .thumbnail-item").first.click()   # a visitor's result, on repeat
    page.locator("#lp-clips .thumbnail-item").first.click()
    page.locator("#lp-animate").click()
    page.locator("#lp-result video").wait_for(timeout=60000)
    demo.close()                                           # the app goes away
    expect(attract).to_be_visible(timeout=20000)           # idle: the start screen, on the same page
    # The result left on the page is stopped as the start screen comes, and is not played (nor heard) again
    # under it. (Whether it was stopped mid-play or at its end depends on where the reset fell in a replay.)
    result = "document.querySelector('#lp-result video')"
    assert page.evaluate(f"() => {result}.paused")
    at = page.evaluate(f"() => {result}.currentTime")
    page.wait_for_timeout(4000)                            # (longer than the 3-s result)
    assert page.evaluate(f"() => {result}.paused && {result}.currentTime === {at}")
    assert page.url.rstrip("/") == url.rstrip("/")
    assert page.locator("#lp-portraits .thumbnail-item").count() == 14  # still the app's page
