"""Command line: ``python -m talking_head animate|gallery|prerender|engines|prefetch|cache|bench``. Thin over the library."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import TalkingHeadError


def _add_animate(sub) -> None:
    p = sub.add_parser("animate", help="make a portrait perform a driving clip and write an mp4")
    p.add_argument("--portrait", required=True, help="image path, or gallery:ID (see `gallery list`)")
    p.add_argument("--clip", required=True, help="video path, or gallery:ID")
    p.add_argument("--out", required=True, help="output .mp4 path")
    p.add_argument("--engine", default="auto", help="auto (default), meshwarp, or another engine from `engines`")
    p.add_argument("--side-by-side", action="store_true", help="driving clip | result in one video")
    p.add_argument("--crop-only", action="store_true", help="output the animated face crop instead of the whole canvas")
    p.add_argument("--strength", type=float, default=1.0, help="expression strength (0 still, 1 as driven, up to 2)")
    p.add_argument("--head-strength", type=float, default=1.0, help="how much of the driver's head motion to use (0 to 2)")
    p.add_argument("--no-head-motion", action="store_true", help="only the face moves; the head stays still")
    p.add_argument("--smoothing", type=float, default=1.0, help="motion smoothing (0 off, 1 default, 2 strong)")
    p.add_argument("--face", type=int, default=None, help="which face, counted from the left from 0 (default: the largest)")
    p.add_argument("--landmarks", default="auto", help="landmark backend: auto, mediapipe, face_alignment")
    p.add_argument("--max-duration", type=float, default=30.0, help="longest driving clip accepted from a file, seconds (default 30; a gallery clip was accepted when added)")
    p.add_argument("--max-side", type=int, default=1280, help="long side of the output canvas in pixels, 240 to 8192 (default 1280)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk cache")


def _run_animate(a) -> int:
    from tqdm import tqdm

    from .cache import DiskCache
    from .pipeline import AnimateSettings, animate
    out = Path(a.out)
    if out.suffix.lower() != ".mp4":
        raise TalkingHeadError(f"The output must be an .mp4 file; got {out.name!r}.")
    if not out.parent.exists():
        raise TalkingHeadError(f"The folder {str(out.parent)!r} does not exist; create it or choose another --out.")
    settings = AnimateSettings(
        expression_strength=a.strength, head_strength=a.head_strength, head_motion=not a.no_head_motion,
        smoothing=a.smoothing, side_by_side=a.side_by_side, crop_only=a.crop_only, max_duration=a.max_duration,
        face_index=a.face, landmarks=a.landmarks, max_side=a.max_side)
    from .native_log import terminal
    shown = terminal()  # (None when the command was started with stderr closed: no bar, the render goes on)
    bar = tqdm(total=1000, unit="", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
               file=shown, disable=None if shown is not None else True)
    state = {"desc": ""}

    def progress(frac: float, message: str) -> None:
        if message != state["desc"].split(" of ")[0] and not message.startswith("Animating frame"):
            state["desc"] = message
        bar.set_description_str(message if not message.startswith("Animating") else "Animating")
        bar.n = int(frac * 1000)
        bar.refresh()

    try:
        result = animate(a.portrait, a.clip, out, engine=a.engine, settings=settings, progress=progress,
                         cache=DiskCache(enabled=not a.no_cache))
    finally:
        bar.close()
    w, h = result.size
    print(f"Wrote {result.path} ({result.n_frames} frames at {float(result.fps):.3f} fps, {w}x{h}, "
          f"engine {result.engine}, {result.timings['total_s']:.1f} s)")
    for note in result.notes:
        print(note)
    return 0


def _add_gallery(sub) -> None:
    p = sub.add_parser("gallery", help="list the gallery or add a portrait or a clip to it")
    gs = p.add_subparsers(dest="gallery_cmd", required=True)
    gs.add_parser("list", help="list portraits and clips with their ids")
    ap = gs.add_parser("add-portrait", help="copy an image in, find its face, write its manifest entry")
    ap.add_argument("path")
    ap.add_argument("--id", required=True, help="short id: lower-case letters, digits, underscores")
    ap.add_argument("--title", required=True, type=_said)
    ap.add_argument("--short-title", default="", help="a few words for the app's gallery grid (default: the title)")
    ap.add_argument("--artist", required=True, type=_said)
    ap.add_argument("--year", required=True, type=_said)
    ap.add_argument("--label", required=True, type=_said, help="2-4 sentence museum label")
    ap.add_argument("--label-fr", default="", help="the label in French")
    for field in ("title", "short-title", "artist", "year"):
        ap.add_argument(f"--{field}-fr", default="", help=f"the {field.replace('-', ' ')} in French (default: as given)")
    ap.add_argument("--provenance", required=True, type=_said, help="where the file comes from")
    ap.add_argument("--licence", required=True, type=_said, help="why the work may be shown (e.g. public domain because ...)")
    ap.add_argument("--source", default="", help="holding museum or collection")
    ap.add_argument("--face", type=int, default=None, help="which face, counted from the left from 0")
    ap.add_argument("--replace", action="store_true", help="replace the work already under this id")
    ac = gs.add_parser("add-clip", help="copy a driving clip in, extract its motion, write its manifest entry")
    ac.add_argument("path")
    ac.add_argument("--id", required=True)
    ac.add_argument("--title", required=True, type=_said)
    ac.add_argument("--title-fr", default="")
    ac.add_argument("--shows", required=True, type=_said, help="what motion the clip shows")
    ac.add_argument("--provenance", required=True, type=_said)
    ac.add_argument("--licence", required=True, type=_said)
    ac.add_argument("--consent", required=True, type=_said, help="how the performer's consent was recorded")
    ac.add_argument("--max-duration", type=float, default=30.0, help="longest clip accepted, seconds (default 30)")
    ac.add_argument("--replace", action="store_true", help="replace the clip already under this id")
    for kind in ("portrait", "clip"):
        rm = gs.add_parser(f"remove-{kind}", help=f"take a {kind} out of the gallery: its manifest entry and its files")
        rm.add_argument("id")
    rt = gs.add_parser("retrack", help="extract the clips' motion again (after the tracking has changed)")
    rt.add_argument("ids", nargs="*", help="clip ids (default: every clip)")


def _run_gallery(a) -> int:
    from .gallery import Gallery
    g = Gallery.default()
    if a.gallery_cmd == "list":
        m = g.manifest()
        print("Portraits (use as --portrait gallery:ID):")
        for pid, e in sorted(m.get("portraits", {}).items()):
            print(f"  {pid:28s} {e.get('title', '')} - {e.get('artist', '')}, {e.get('year', '')}")
        print("Clips (use as --clip gallery:ID):")
        for cid, e in sorted(m.get("clips", {}).items()):
            print(f"  {cid:28s} {e.get('duration', 0):5.1f} s  {e.get('title', '')}: {e.get('shows', '')}")
        return 0
    if a.gallery_cmd == "add-portrait":
        info = {k: getattr(a, k) for k in ("title", "artist", "year", "label", "provenance", "licence", "source")}
        info["label_fr"] = a.label_fr
        if a.short_title:
            info["short_title"] = a.short_title
        # The app shows these in French where they are given, the English ones elsewhere.
        info.update({f"{k}_fr": getattr(a, f"{k}_fr") for k in ("title", "short_title", "artist", "year")
                     if getattr(a, f"{k}_fr")})
        done = "Replaced" if a.id in g.manifest().get("portraits", {}) else "Added"
        e = g.add_portrait(Path(a.path), a.id, info, face_index=a.face, replace=a.replace)
        print(f"{done} portrait {a.id!r} ({e['size'][0]}x{e['size'][1]}, face at {e['face']['box']}); restart the app "
              "to show it.")
        from .pipeline import several_faces_note
        note = several_faces_note(e["faces_found"], a.face)
        if note is not None:
            print(f"note: {note}")
        return 0
    if a.gallery_cmd in ("remove-portrait", "remove-clip"):
        kind = a.gallery_cmd.removeprefix("remove-")
        e = g.remove(f"{kind}s", a.id)
        print(f"Removed {kind} {a.id!r} ({e.get('title', 'untitled')}); restart the app to show the change.")
        return 0
    if a.gallery_cmd == "retrack":
        for cid in a.ids or sorted(g.manifest().get("clips", {})):
            e = g.retrack_clip(cid)
            print(f"Tracked clip {cid!r} again (face in {e['faces_found']} frames)")
            _faces_note(g, cid)
        return 0
    info = {k: getattr(a, k) for k in ("title", "shows", "provenance", "licence", "consent")}
    info["title_fr"] = a.title_fr
    done = "Replaced" if a.id in g.manifest().get("clips", {}) else "Added"
    e = g.add_clip(Path(a.path), a.id, info, max_duration=a.max_duration, replace=a.replace)
    print(f"{done} clip {a.id!r} ({e['duration']} s at {e['fps']} fps, face in {e['faces_found']} frames); restart the "
          "app to show it.")
    _faces_note(g, a.id)
    return 0


def _faces_note(g, clip_id: str) -> None:
    """Tell the staff who added or re-tracked a clip that it shows several faces (visitors are not told)."""
    from .motion import MotionTrack
    from .pipeline import several_faces_in_clip_note
    note = several_faces_in_clip_note(MotionTrack.load(g.motion_path(clip_id)).faces)
    if note is not None:
        print(f"note: {note}")


def _add_prerender(sub) -> None:
    p = sub.add_parser("prerender", help="render every gallery portrait x clip ahead of time, so the app serves them instantly")
    p.add_argument("--portraits", default="", help="comma-separated portrait ids (default: all)")
    p.add_argument("--clips", default="", help="comma-separated clip ids (default: all)")
    p.add_argument("--engine", default="auto")
    p.add_argument("--no-side-by-side", action="store_true", help="skip the side-by-side variant the app can also show")


def _run_prerender(a) -> int:
    import time

    from .pipeline import AnimateSettings
    from .results import ResultStore
    store = ResultStore()
    variants = [AnimateSettings()] + ([] if a.no_side_by_side else [AnimateSettings(side_by_side=True)])
    t0 = time.perf_counter()

    def report(i, n, r):
        how = "already stored" if r.cached else "rendered"
        print(f"[{i}/{n}] {r.portrait} x {r.clip}{' (side by side)' if r.settings['side_by_side'] else ''}: {how}",
              flush=True)

    ids = [x for x in a.portraits.split(",") if x] or None, [x for x in a.clips.split(",") if x] or None
    done = store.prerender(*ids, engine=a.engine, settings=variants, report=report)
    print(f"{len(done)} results in {store.root} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _run_prefetch(a) -> int:
    from . import checkpoints
    print(f"{'engine':15s} {'file':42s} {'size':>11s}  state")
    engines = [e for e in a.engines.split(",") if e] if a.engines else list(checkpoints.ENGINES)
    rows = checkpoints.prefetch(a.local_dir, engines,
                                report=lambda row: print(checkpoints.format_row(row), flush=True))
    by_engine = {e: all(r.ok for r in rows if r.spec.engine == e) for e in engines}
    print("Ready: " + (", ".join(e for e, ok in by_engine.items() if ok) or "nothing") +
          (f"; not ready: {', '.join(e for e, ok in by_engine.items() if not ok)}" if not all(by_engine.values()) else ""))
    if a.local_dir and by_engine["liveportrait"]:
        print(f"Set LIVING_PORTRAITS_WEIGHTS={a.local_dir} where the app runs so it reads the weights from there.")
    return 0 if all(by_engine.values()) else 2


def _run_cache(a) -> int:
    from .cache import KEPT_KINDS, DiskCache, size_limit
    from .results import ResultStore
    cache = DiskCache()
    limit, problem = size_limit()
    if problem:
        print(f"warning: {problem}.", file=sys.stderr)
    if a.clear:
        freed = cache.clear()
        print(f"Removed {_mb(freed)} from {cache.root}; faces, masks and motion are computed again when next needed.")
    usage = cache.usage()
    limited = sum(size for kind, (_, size) in usage.kinds.items() if kind not in KEPT_KINDS)
    print(f"Cache {cache.root}: {_count(usage.entries, 'entry', 'entries')}, {_mb(limited)} under the limit "
          f"(at most {_mb(limit)}: LIVING_PORTRAITS_CACHE_MAX_MB sets it; the entries used longest ago go first)")
    for kind, (n, size) in usage.kinds.items():
        print(f"  {kind:12s} {n:6d} {_mb(size):>10s}" + ("  (training data: not limited)" if kind in KEPT_KINDS else ""))
    results_dir = ResultStore().root
    results = sorted(results_dir.glob("*.mp4"))
    if results:
        print(f"Prerendered results {results_dir}: {_count(len(results), 'video', 'videos')}, "
              f"{_mb(sum(r.stat().st_size for r in results))} (never removed by the limit or --clear; "
              "delete the folder to remove them)")
    return 0


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _run_engines(a) -> int:
    from .engines import auto_engine_name, engine_class, engine_names, engine_status
    from .engines.liveportrait.engine import best_device
    from .faces import available_backends
    status = engine_status()
    chosen = auto_engine_name(status)
    print(f"Engines (device here: {best_device()}; auto picks {chosen or 'nothing'}):")
    for name in engine_names():
        state = "ready" if status[name] is None else "not ready: " + status[name]
        if status[name] is None and name != chosen and not engine_class(name).suits_auto():
            state += " (auto skips it on this device: ask for it with --engine)"
        print(f"  {name:14s} {state}")
    print("Landmark backends:")
    for name, why in available_backends().items():
        print(f"  {name:14s} {'ready' if why is None else 'not ready: ' + why}")
    return 0


def _said(text: str) -> str:
    """A manifest field the visitor reads or the museum answers for (a title, a licence, a consent record)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m talking_head",
                                     description="Living Portraits: make a portrait perform a driving clip.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _add_animate(sub)
    _add_gallery(sub)
    _add_prerender(sub)
    sub.add_parser("engines", help="which engines and landmark backends can run here")
    pp = sub.add_parser("prefetch", help="download and check every learned file, so the app then runs offline")
    pp.add_argument("--local-dir", default=None, help="put the Hub files in this folder instead of the Hugging Face cache")
    pp.add_argument("--engines", default="", help="comma-separated, default liveportrait,face_alignment; also "
                    "fewshot_content (the few-shot model's VGG19/VGGFace) and fewshot (a trained model)")
    cp = sub.add_parser("cache", help="what the on-disk cache holds (faces, masks, clip motion), and --clear to empty it")
    cp.add_argument("--clear", action="store_true", help="remove every cache entry (prerendered results stay)")
    tp = sub.add_parser("train", help="meta-train the few-shot model (Zakharov et al. 2019); run under torchrun for DDP")
    tp.add_argument("--config", required=True, help='JSON or TOML of FewShotConfig fields ("preset": "paper"|"tiny")')
    tp.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="override one config field")
    bp = sub.add_parser("bench", help="measure speed (and with --quality / --cross, self- and cross-reenactment quality)")
    bp.add_argument("--quality", action="store_true", help="also run the self-reenactment quality table")
    bp.add_argument("--cross", action="store_true", help="also run the cross-reenactment table: how closely gallery "
                    "portraits follow the gallery clips, and whether they keep their own faces")
    bp.add_argument("--portraits", default="default", help="comma-separated gallery portrait ids for --cross, or all "
                    "(default: mona_lisa,lady_agnew,girl_with_a_pearl_earring,van_gogh_self_portrait)")
    bp.add_argument("--no-speed", action="store_true", help="skip the speed tables (with --quality or --cross)")
    bp.add_argument("--repeats", type=_positive_int, default=5)
    bp.add_argument("--all-portraits", action="store_true", help="also time a cached render of every gallery portrait")
    bp.add_argument("--clips", default="all", help="comma-separated gallery clip ids for --quality and --cross")
    bp.add_argument("--stride", type=_positive_int, default=2, help="--quality scores every STRIDE-th frame")
    bp.add_argument("--cross-stride", type=_positive_int, default=3, help="--cross scores every CROSS_STRIDE-th frame")
    bp.add_argument("--no-refine", action="store_true", help="--quality without the tables for the optional steps (refine=True, detail=True)")
    sub.add_parser("bench-liveportrait", help="speed of the liveportrait engine (its own --help lists the options)",
                   add_help=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench-liveportrait"]:  # its options are its own
        from .engines.liveportrait import bench as lpbench
        return lpbench.main(argv[1:])
    a = parser.parse_args(argv)
    debug = bool(os.environ.get("LIVING_PORTRAITS_DEBUG"))
    try:
        return _dispatch(a)
    except TalkingHeadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whatever read our output stopped (`gallery list | head -1`): not an error, and nothing to say. The
        # interpreter's last flush must not find the broken pipe again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # (a stdout without a descriptor: a caller's own capture)
            pass
        return 141  # (as a shell reports a command stopped by SIGPIPE)
    except Exception as e:
        # A bug, not something the user can fix: one line that says so; the traceback on request.
        if debug:
            raise
        print(f"error: an internal error stopped this command ({type(e).__name__}: {e}); this is a bug, please "
              "report it with the command you ran (LIVING_PORTRAITS_DEBUG=1 shows the traceback).", file=sys.stderr)
        return 1


def _dispatch(a) -> int:
    if a.cmd == "animate":
        return _run_animate(a)
    if a.cmd == "train":
        from .fewshot.train import main as train_main
        return train_main(["--config", a.config, *[x for s in a.set for x in ("--set", s)]])
    if a.cmd == "gallery":
        return _run_gallery(a)
    if a.cmd == "prerender":
        return _run_prerender(a)
    if a.cmd == "engines":
        return _run_engines(a)
    if a.cmd == "prefetch":
        return _run_prefetch(a)
    if a.cmd == "cache":
        return _run_cache(a)
    if a.cmd == "bench":
        from .bench import main as bench_main
        return bench_main(a)
    return 1
