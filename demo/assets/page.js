() => {
  // Text size buttons (every page), and in kiosk mode: the attract loop and the idle reset.
  const root = () => document.querySelector(".gradio-container") || document.body;
  let zoom = 1;
  window.lpTextSize = (step) => {
    zoom = Math.min(1.6, Math.max(0.8, zoom + 0.15 * step));
    root().style.zoom = zoom;
  };

  const start = () => {
    const cfgEl = document.getElementById("lp-config");
    if (!cfgEl) { setTimeout(start, 200); return; }
    const cfg = JSON.parse(cfgEl.dataset.cfg);
    if (!cfg.kiosk) return;
    document.body.classList.add("lp-kiosk");
    const overlay = document.getElementById("lp-attract");
    const video = document.getElementById("lp-attract-video");
    const text = overlay.querySelector(".lp-attract-text");
    let next = 0;
    let last = Date.now();

    const playNext = () => {
      if (!cfg.videos.length || overlay.hidden) return;
      video.src = cfg.videos[next % cfg.videos.length];
      next += 1;
      video.play().catch(() => {});
    };
    video.addEventListener("ended", playNext);
    video.addEventListener("error", () => setTimeout(playNext, 1000));

    const showAttract = () => {
      const lang = (document.querySelector("#lp-lang input:checked") || {}).value || "en";
      text.textContent = cfg.touch[lang] || cfg.touch.en;
      overlay.hidden = false;
      document.body.dataset.lpState = "attract";
      playNext();
    };
    const hideAttract = () => {
      overlay.hidden = true;
      video.pause();
      video.removeAttribute("src");
      document.body.dataset.lpState = "active";
    };
    const resultPlaying = () => {
      const v = document.querySelector("#lp-result video");
      return v && !v.paused && !v.ended;
    };
    const busy = () => !!document.querySelector("#lp-result-column .progress-text, #lp-result-column .eta-bar");

    const touched = () => { last = Date.now(); };
    ["pointerdown", "keydown", "touchstart", "wheel"].forEach((e) =>
      document.addEventListener(e, touched, { capture: true, passive: true }));
    overlay.addEventListener("pointerdown", (e) => { e.preventDefault(); hideAttract(); touched(); });

    setInterval(() => {
      if (!overlay.hidden) return;                 // the idle timer sleeps in the attract state
      if (resultPlaying() || busy()) { touched(); return; }  // and while a result plays or renders
      if (Date.now() - last > cfg.idleMs) {
        const reset = document.getElementById("lp-reset");
        if (reset) reset.click();
        window.scrollTo(0, 0);
        showAttract();
      }
    }, 500);
    showAttract();
  };
  start();
}
