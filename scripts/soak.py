"""Soak test: launch the real app and drive it with concurrent gradio_client clients for a bounded time.

    python scripts/soak.py --clients 16 --minutes 4 --json soak.json

Each client is a separate visitor (its own session) that loops until the time is up, picking:

* ``cached``   a gallery portrait x clip stored before the run (answered from the result store),
* ``render``   a gallery combination never asked before (a new expression strength: a new render),
* ``upload``   an uploaded portrait or an uploaded clip (rendered in the visitor's folder, never stored),
* ``bad``      a broken upload (text named .jpg, truncated PNG, no face, noise named .mp4, a bomb header).

The app runs with one render at a time and a short queue, so a full queue is part of the run: a
request refused with "queue is full" / "busy" is counted as ``busy``, not as a failure. Every good
request must come back as a valid H.264 video with the clip's frame count; every bad one with its
own message and no traceback. Anything else is an unexpected error. Afterwards every client leaves,
and the visitors' area must empty; the app's memory (RSS, sampled every half second) is reported at
the start, at its peak and at the end. Prints a JSON summary (and writes it with ``--json``); exits 1
if any promise failed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

CLIP = "smile_eyes"                     # 78 frames, 3.1 s: the shortest gallery clip
CACHED = ("mona_lisa", "gogol")         # prerendered before the run
RENDERED = ("voltaire", "rousseau", "newton", "diderot", "van_gogh_self_portrait", "walt_whitman", "mark_twain",
            "evelyn_nesbit", "girl_with_a_pearl_earring", "la_velata", "lady_agnew", "difficult_lesson")
MIX = (("cached", 0.35), ("render", 0.2), ("upload", 0.25), ("bad", 0.2))
BUSY = re.compile(r"(?i)queue is full|busy|try again in a minute")


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> int:
    """RSS of the app and its children (ffmpeg encoders and decoders)."""
    total = rss_kb(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2:].split()[1] == str(pid):
                total += rss_kb(int(entry.name))
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, round(q * (len(values) - 1)))], 2)


def make_inputs(work: Path) -> dict[str, tuple[str, Path, str]]:
    """{name: (role, path, expected message regex or "" for a good input)}."""
    import badinput

    d = work / "inputs"
    d.mkdir()
    good_portrait = d / "visitor_portrait.jpg"
    badinput._base_image().save(good_portrait, "JPEG", quality=90)
    return {
        "portrait": ("portrait", good_portrait, ""),
        "clip": ("clip", badinput.make_short_no_audio(d), ""),
        "text_as_jpg": ("portrait", badinput.make_text_as_jpg(d), r"not an image"),
        "truncated_png": ("portrait", badinput.make_truncated_png(d), r"damaged or incomplete"),
        "no_face": ("portrait", badinput.make_no_face(d), r"No face was found"),
        "bomb": ("portrait", badinput.make_bomb_header(d), r"megapixels"),
        "noise_mp4": ("clip", badinput.make_random_bytes(d), r"not a video file"),
    }


class Soak:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.records: list[dict] = []
        self.rss: list[tuple[float, int, int]] = []  # (t, app kB, app + children kB)
        self.stop_sampling = threading.Event()

    # -- the app ---------------------------------------------------------------------------------
    def launch(self, work: Path) -> None:
        self.port = free_port()
        self.visitors = work / "visitors"
        self.cache = work / "cache"
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("GRADIO_TEMP_DIR", "SPACE_ID")},
                    "LIVING_PORTRAITS_TMP": str(self.visitors), "LIVING_PORTRAITS_CACHE": str(work / "cache"),
                    "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                    # Sessions end within ~2 s of a client leaving; the sweeper passes every 10 s.
                    "GRADIO_HEARTBEAT_INTERVAL": "2", "LP_SWEEP_EVERY_S": "10"}
        subprocess.run([sys.executable, "-m", "talking_head", "prerender", "--portraits", ",".join(CACHED),
                        "--clips", CLIP], cwd=REPO, env=self.env, check=True, capture_output=True, timeout=600)
        self.log = open(work / "app.log", "w")  # noqa: SIM115 - closed in run()
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port), "--concurrency", "1",
                                      "--queue-size", str(self.args.queue_size)], cwd=REPO, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + 180
        import httpx
        while True:
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the app did not start; see {work / 'app.log'}")
            time.sleep(0.5)

    def sample(self) -> None:
        t0 = time.time()
        while not self.stop_sampling.wait(0.5):
            self.rss.append((time.time() - t0, rss_kb(self.proc.pid), tree_rss_kb(self.proc.pid)))

    def visitor_files(self) -> tuple[list[Path], list[Path]]:
        """(files of visitors with content, empty upload temporaries) in the app's temporary area."""
        sessions = self.visitors / "sessions"
        found = [p for p in sessions.rglob("*") if p.is_file()] if sessions.is_dir() else []
        gradio = self.visitors / "gradio"
        # Gradio's copies of stored gallery results are shared, not a visitor's (named by their store key).
        shared = {p.name for p in (self.cache / "results").glob("*.mp4")}
        empty = []
        if gradio.is_dir():
            for p in gradio.rglob("*"):
                if not p.is_file() or p.name in self.page_files or p.name in shared:
                    continue
                (empty if p.stat().st_size == 0 else found).append(p)
        return found, empty

    # -- one visitor ------------------------------------------------------------------------------
    def visitor(self, n: int, inputs: dict, deadline: float, only: str | None = None) -> None:
        from gradio_client import Client, handle_file

        from talking_head.video import probe

        rng = random.Random(self.args.seed * 1000 + n)
        downloads = Path(tempfile.mkdtemp(prefix=f"soak-client{n}-"))
        client = Client(self.url, verbose=False, download_files=str(downloads))
        try:
            while time.time() < deadline or only:
                kind = only or rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
                portrait, pfile, clip, cfile, strength, expect, frames = "", None, CLIP, None, 1.0, "", 78
                if kind == "cached":
                    portrait = rng.choice(CACHED)
                elif kind == "render":
                    portrait, strength = rng.choice(RENDERED), rng.choice([0.6, 0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4])
                elif kind == "upload":
                    which = rng.choice(["portrait", "clip"])
                    if which == "portrait":
                        pfile = handle_file(str(inputs["portrait"][1]))
                    else:
                        portrait, clip, cfile, frames = "mona_lisa", "", handle_file(str(inputs["clip"][1])), 25
                else:
                    name = rng.choice([k for k, v in inputs.items() if v[2]])
                    role, path, expect = inputs[name]
                    if role == "portrait":
                        pfile = handle_file(str(path))
                    else:
                        portrait, clip, cfile = "mona_lisa", "", handle_file(str(path))
                t = time.perf_counter()
                rec = {"client": n, "kind": kind, "t": round(time.time(), 2)}
                try:
                    value = client.predict(portrait, pfile, clip, cfile, pfile is not None or cfile is not None,
                                           False, strength, 1.0, True, False, "auto", api_name="/animate")
                    out = value["video"] if isinstance(value, dict) else value
                    info = probe(out)
                    ok = kind != "bad" and info.codec == "h264" and info.n_frames == frames
                    rec.update(outcome="ok" if ok else "unexpected",
                               detail="" if ok else f"{kind}: {info.n_frames} frames, {info.codec}")
                    Path(out).unlink(missing_ok=True)
                except Exception as e:  # noqa: BLE001 - classified below; anything unforeseen is a failure
                    msg = str(e)
                    if BUSY.search(msg):
                        rec["outcome"] = "busy"
                    elif kind == "bad" and re.search(expect, msg) and "Traceback" not in msg and "\n" not in msg:
                        rec["outcome"] = "refused"
                    else:
                        rec.update(outcome="unexpected", detail=f"{kind}: {type(e).__name__}: {msg[:300]}")
                rec["latency_s"] = round(time.perf_counter() - t, 3)
                with self.lock:
                    self.records.append(rec)
                if only:
                    break
                if rec["outcome"] == "busy":
                    time.sleep(rng.uniform(0.5, 2.0))  # as a visitor told "try again" would
        finally:
            client.close()
            shutil.rmtree(downloads, ignore_errors=True)

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> dict:
        work = Path(tempfile.mkdtemp(prefix="lp-soak-"))
        inputs = make_inputs(work)
        self.launch(work)
        try:
            gradio = self.visitors / "gradio"
            self.page_files = {p.name for p in gradio.rglob("*")} if gradio.is_dir() else set()
            sampler = threading.Thread(target=self.sample, daemon=True)
            sampler.start()
            self.rss_cold = rss_kb(self.proc.pid)
            # Warm up (one visitor, one request of each kind) so that "start" means a loaded app, not an idle one.
            warm = Soak(self.args)
            warm.url, warm.lock = self.url, threading.Lock()
            for kind in ("cached", "render", "upload", "bad"):
                warm.visitor(0, inputs, time.time() + 0.1, only=kind)
            time.sleep(2)
            rss_start = rss_kb(self.proc.pid)
            t0 = time.time()
            deadline = t0 + self.args.minutes * 60
            threads = [threading.Thread(target=self.visitor, args=(i, inputs, deadline)) for i in range(self.args.clients)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.time() - t0
            # Every client has left: sessions end (heartbeat), then the sweeper's next pass.
            settle_deadline = time.time() + 60
            while time.time() < settle_deadline:
                found, empty = self.visitor_files()
                if not found and not empty:
                    break
                time.sleep(1)
            found, empty = self.visitor_files()
            time.sleep(3)
            rss_end = rss_kb(self.proc.pid)
            self.stop_sampling.set()
            alive = self.proc.poll() is None
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
        return self.summary(elapsed, rss_start, rss_end, found, empty, alive, work)

    def summary(self, elapsed, rss_start, rss_end, found, empty, alive, work) -> dict:
        recs = self.records
        by_kind = {}
        for kind, _ in MIX:
            rs = [r for r in recs if r["kind"] == kind]
            done = [r["latency_s"] for r in rs if r["outcome"] in ("ok", "refused")]
            by_kind[kind] = {"requests": len(rs), "ok": sum(r["outcome"] == "ok" for r in rs),
                             "refused_as_expected": sum(r["outcome"] == "refused" for r in rs),
                             "busy": sum(r["outcome"] == "busy" for r in rs),
                             "unexpected": sum(r["outcome"] == "unexpected" for r in rs),
                             "p50_s": pct(done, 0.5), "p95_s": pct(done, 0.95)}
        answered = [r["latency_s"] for r in recs if r["outcome"] in ("ok", "refused")]
        unexpected = [r for r in recs if r["outcome"] == "unexpected"]
        peak_app = max((a for _, a, _ in self.rss), default=0)
        peak_tree = max((b for _, _, b in self.rss), default=0)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
                       f"Python {platform.python_version()}",
            "clients": self.args.clients, "minutes": self.args.minutes, "elapsed_s": round(elapsed, 1),
            "queue_size": self.args.queue_size, "concurrency": 1,
            "requests": len(recs), "ok": sum(r["outcome"] == "ok" for r in recs),
            "refused_as_expected": sum(r["outcome"] == "refused" for r in recs),
            "busy": sum(r["outcome"] == "busy" for r in recs), "unexpected_errors": len(unexpected),
            "p50_s": pct(answered, 0.5), "p95_s": pct(answered, 0.95), "by_kind": by_kind,
            "rss_idle_before_warmup_mb": round(self.rss_cold / 1024, 1), "rss_start_mb": round(rss_start / 1024, 1), "rss_peak_mb": round(peak_app / 1024, 1),
            "rss_peak_with_ffmpeg_mb": round(peak_tree / 1024, 1), "rss_end_mb": round(rss_end / 1024, 1),
            "visitor_files_left": [str(p) for p in found], "empty_upload_temps_left": len(empty),
            "app_alive_at_end": alive, "unexpected": unexpected[:20], "work_dir": str(work),
        }
        result["passed"] = bool(alive and not unexpected and not found and not empty and result["ok"] > 0
                                and result["refused_as_expected"] > 0)
        return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--queue-size", type=int, default=8, help="the app's queue (kept short so it fills)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the summary here")
    a = p.parse_args(argv)
    result = Soak(a).run()
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n", encoding="utf-8")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
