() => {
  // Text size buttons and a new result scrolled into view (every page), and in kiosk mode: the attract
  // loop and the idle reset.
  // Gradio may re-render the config and overlay after load, so elements are looked up on each use.
  let zoom = 1;
  window.lpTextSize = (step) => {
    zoom = Math.min(1.6, Math.max(0.8, zoom + 0.15 * step));
    (document.querySelector(".gradio-container") || document.body).style.zoom = zoom;
  };
  const $ = (id) => document.getElementById(id);
  let cfgText = null, cfgParsed = null;    // (read often: parsed again only when the server changed it)
  const config = () => {
    const el = $("lp-config");
    if (!el) return null;
    if (el.dataset.cfg !== cfgText) { cfgText = el.dataset.cfg; cfgParsed = JSON.parse(cfgText); }
    return cfgParsed;
  };

  const language = (cfg) => (document.querySelector("#lp-lang input:checked") || {}).value || cfg.lang;

  // An uploaded clip whose video the browser cannot play (a phone's HEVC or a camera's ProRes or MPEG-4 in
  // Chromium, an AVI, or a file that is not a video), though the server may read it well. Either the player
  // fails, and Gradio answers with its own English pop-up titled "Error" (held back here: a listener on the
  // way down stops the event before the player's own), or it plays the sound over a black picture. Either
  // way the field says there is no preview, in the page's language, and the note under it says what the
  // server found.
  // A gallery clip in such a format (a museum's own ProRes or HEVC recording) is told the same way.
  const clipField = (e) => e.target instanceof HTMLVideoElement && e.target.closest("#lp-clip-upload, #lp-clip-preview");
  const noPreview = (field, none) => {
    const cfg = config();
    if (none && cfg) field.dataset.lpNoPreview = cfg.noPreview[language(cfg)] || cfg.noPreview.en;
    else delete field.dataset.lpNoPreview;
  };
  document.addEventListener("error", (e) => {
    const field = clipField(e);
    if (!field) return;
    e.stopPropagation();
    noPreview(field, true);
  }, { capture: true });
  document.addEventListener("loadeddata", (e) => {
    const field = clipField(e);
    if (field) noPreview(field, e.target.videoWidth === 0);
  }, { capture: true });
  document.addEventListener("change", (e) => {   // a language switch says it again in the new language
    if (!(e.target.closest && e.target.closest("#lp-lang"))) return;
    ["lp-clip-upload", "lp-clip-preview"].map($).forEach((field) => {
      if (field && field.dataset.lpNoPreview) noPreview(field, true);
    });
  });

  // Gradio's own words (an upload field's "Drop Image Here") follow the browser's language. They are set to
  // the page's through the locale switch of Gradio's own settings panel (`changeLocale`, exported by its core
  // module, which the page has loaded); where that is not found they stay in the browser's language. Gradio
  // writes the locale it has applied to <html lang>: the page's language is asked for again until it is there
  // (a language whose words are still loading can land after a later switch).
  let gradioCore = null;
  const gradioSpeaks = async (lang) => {
    gradioCore = gradioCore || (async () => {
      const urls = [...document.querySelectorAll("link[rel=modulepreload], script[type=module]")]
        .map((e) => e.href || e.src).concat(performance.getEntriesByType("resource").map((r) => r.name));
      const url = urls.find((u) => /\/assets\/core-[\w-]+\.js$/.test(u));
      return url ? import(url) : null;
    })().catch(() => null);
    const core = await gradioCore;
    if (core && typeof core.changeLocale === "function") core.changeLocale(lang);
  };
  const speakPageLanguage = (cfg) => {
    const lang = language(cfg);
    if (document.documentElement.lang !== lang) gradioSpeaks(lang).catch(() => {});
  };

  // An empty upload field's prompt ("Drop Image Here - or - Click to Upload") is drawn once by Gradio, in
  // its language of that moment, and stays so after a switch. It says our own words (cfg.drop), in the
  // page's language: put in as Gradio draws a field (before it is painted) and again on a switch.
  const dropFields = [["#lp-portrait-upload", "image"], ["#lp-clip-upload", "video"]];
  const ourDropWords = () => {
    const cfg = config();
    const words = cfg && cfg.drop && (cfg.drop[language(cfg)] || cfg.drop.en);
    if (!words) return;
    for (const [field, kind] of dropFields) {
      const box = document.querySelector(`${field} [data-testid="upload-text"]`);
      const or = box && box.querySelector(".or");
      if (!or) continue;
      const nearestText = (step) => {   // the first text with words beside the "or", on one side
        for (let n = or[step]; n; n = n[step]) if (n.nodeType === Node.TEXT_NODE && n.nodeValue.trim()) return n;
        return null;
      };
      const before = nearestText("previousSibling"), after = nearestText("nextSibling");
      if (!before || !after || (before.nodeValue === `${words[kind]} ` && after.nodeValue === ` ${words.click}`)) continue;
      before.nodeValue = `${words[kind]} `;
      if (or.firstChild && or.firstChild.nodeType === Node.TEXT_NODE) or.firstChild.nodeValue = words.or;
      after.nodeValue = ` ${words.click}`;
      const button = box.closest("button");
      if (button) button.setAttribute("aria-label", words[kind]);
    }
  };
  new MutationObserver(ourDropWords).observe(document.body, { childList: true, subtree: true });

  // One voice at a time: a video that starts playing with its sound (the performance's preview, an uploaded
  // clip, the result) pauses the page's others. They carry the same soundtrack, out of step.
  // (A video unmuted while playing counts as starting to be heard.)
  const voices = "#lp-result video, #lp-clip-preview video, #lp-clip-upload video";
  const heard = (e) => {
    const v = e.target;
    if (!(v instanceof HTMLVideoElement) || v.muted || v.paused || !v.matches(voices)) return;
    document.querySelectorAll(voices).forEach((other) => { if (other !== v && !other.paused) other.pause(); });
  };
  ["play", "volumechange"].forEach((e) => document.addEventListener(e, heard, { capture: true }));

  const start = () => {
    const cfg0 = config();
    if (!cfg0) { setTimeout(start, 200); return; }
    let shown = "";
    speakPageLanguage(cfg0);
    setInterval(() => {
      const v = document.querySelector("#lp-result video");   // a new result: bring it and the top of its
      const src = (v && v.currentSrc) || "";                   // label into view
      if (src && src !== shown) $("lp-result").scrollIntoView({ block: "start", behavior: "smooth" });
      shown = src;
      speakPageLanguage(config() || cfg0);  // the page's language, set by the server on load or by a switch
      ourDropWords();
    }, 500);
    if (!cfg0.kiosk) return;
    document.body.classList.add("lp-kiosk");
    let next = 0;
    let playlist = null;                     // the playlist being played (its items' text)
    let last = Date.now();
    let attractOn = false;
    let stillTimer = null;
    let leaving = false;

    // The start screen's playlist (built by the server): stored results, and paintings shown still with
    // their titles between them while few results are stored. The page's load puts in the playlist as it is
    // now where that has changed: a changed playlist starts from its beginning, a stored result.
    const playNext = () => {
      const cfg = config(), video = $("lp-attract-video"), img = $("lp-attract-still");
      clearTimeout(stillTimer);              // (the page's load may swap in a new playlist)
      if (!attractOn || !cfg || !video || !img || !cfg.items.length) return;
      const items = JSON.stringify(cfg.items);
      if (items !== playlist) { playlist = items; next = 0; }
      const item = cfg.items[next % cfg.items.length], caption = $("lp-attract-caption");
      next += 1;
      video.hidden = !item.video;
      img.hidden = !!item.video;
      if (caption) caption.textContent = item.title || "";
      if (!item.video) { img.src = item.still; stillTimer = setTimeout(playNext, 7000); return; }
      video.muted = true;                    // muted video may autoplay without a gesture
      video.playsInline = true;
      video.onended = playNext;
      video.onerror = () => setTimeout(playNext, 1000);
      video.src = item.video;
      video.play().catch(() => {});
    };
    const showAttract = () => {
      const overlay = $("lp-attract"), cfg = config();
      if (!overlay) { setTimeout(showAttract, 200); return; }
      const lang = language(cfg);
      document.querySelectorAll(voices).forEach((v) => v.pause());  // nothing is heard under the start screen
      overlay.querySelector(".lp-attract-text").textContent = cfg.touch[lang] || cfg.touch.en;
      overlay.hidden = false;
      attractOn = true;
      document.body.dataset.lpState = "attract";
      playNext();
    };
    const hideAttract = () => {
      const overlay = $("lp-attract"), video = $("lp-attract-video");
      attractOn = false;
      clearTimeout(stillTimer);
      if (overlay) overlay.hidden = true;
      if (video) { video.pause(); video.removeAttribute("src"); video.load(); }
      document.body.dataset.lpState = "active";
    };
    // A result plays again each time it ends (a visitor may have looked away), but only its first play holds
    // off the idle reset: a kiosk left with a result on repeat still goes back to its start screen.
    const firstPlay = (v) => v.dataset.lpPlayed !== v.currentSrc;
    // Not under the start screen (a reset that found the server away leaves the page as it was) nor while the
    // next one renders: there it stops at its end, as before.
    document.addEventListener("ended", (e) => {
      const v = e.target;
      if (!(v instanceof HTMLVideoElement) || !v.closest("#lp-result")) return;
      if (firstPlay(v)) { v.dataset.lpPlayed = v.currentSrc; last = Date.now(); }
      if (attractOn || leaving || rendering()) return;
      v.currentTime = 0;
      v.play().catch(() => {});
    }, { capture: true });
    const resultPlaying = () => {
      const v = document.querySelector("#lp-result video");
      return v && !v.paused && !v.ended && firstPlay(v);
    };
    const rendering = () => !!document.querySelector("#lp-result-column .eta-bar, #lp-result-column .progress-text");

    // The touch that wakes the kiosk only wakes it: a finger's tap goes on to send its mouse events and its
    // click to whatever is under it once the start screen has gone (a painting, chosen and left with a
    // focus ring), so the rest of that gesture is swallowed, up to its click (or for a second at most).
    let waking = 0;
    const touched = (e) => {
      last = Date.now();
      if (attractOn && e && e.type === "pointerdown") {
        e.preventDefault(); e.stopPropagation(); waking = Date.now();
        if (!leaving) hideAttract();          // (leaving: the new page, with its own start screen, is coming)
      }
    };
    ["pointerdown", "keydown", "touchstart", "wheel"].forEach((e) =>
      document.addEventListener(e, touched, { capture: true }));
    const swallow = (e) => {
      if (!waking || Date.now() - waking > 1000) { waking = 0; return; }
      e.preventDefault(); e.stopPropagation();
      if (e.type === "click") waking = 0;
    };
    ["pointerup", "mousedown", "mouseup", "click", "touchend"].forEach((e) =>
      document.addEventListener(e, swallow, { capture: true }));

    setInterval(() => {
      if (attractOn) {                        // the idle timer sleeps in the attract state,
        const overlay = $("lp-attract");      // but a re-rendered overlay must come back
        if (overlay && overlay.hidden) showAttract();
        return;
      }
      if (resultPlaying() || rendering()) { last = Date.now(); return; }  // and while a result first plays or renders
      if (Date.now() - last > config().idleMs && !leaving) {
        // The server forgets the visitor (their uploads, results and choices), then the page starts afresh
        // for the next one: a new page has nothing of the last visitor's (highlighted thumbnails, text
        // size, language, scroll), and opens on the start screen.
        // Reloaded only when the server answers: a kiosk must not be left on the browser's "cannot reach this
        // page" while the app restarts (an update); it shows the start screen instead and tries next time.
        // The start screen comes at once, and stays over the page until the new one has put up its own
        // (the new page is dark until then: see kiosk-head.css and ui.launch_kwargs), so a passer-by sees no flash of the app.
        leaving = true;
        const reset = $("lp-reset");
        if (reset) reset.click();
        showAttract();
        setTimeout(async () => {
          try {
            if ((await fetch(window.location.href, { cache: "no-store" })).ok) { window.location.reload(); return; }
          } catch (e) { /* the server is away */ }
          leaving = false;
        }, 1500);
      }
    }, 500);
    showAttract();
  };
  start();
}
