"""How much memory the encoder's ffmpeg takes in a render, by the kind of sound the clip carries.

    python scripts/encoder_memory.py --portrait gallery:mona_lisa --clip gallery/clips/talking_01.mp4 --repeats 3

The clip is re-encoded once into each container below (as an upload would come), then rendered
``--repeats`` times onto the portrait through ``talking_head.animate``; the clip's motion is cached after
the first render of each, as for a visitor who renders the same upload again. The encoder (the ffmpeg that
runs libx264) is sampled every 50 ms; the table gives the median wall time and the median of its peak
resident memory:

* ``mp4`` / AAC: the sound is copied as it is;
* ``webm`` / Opus (what a browser records) and ``mpg`` / MP2 (a camcorder's MPEG-PS): the sound is re-encoded.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from talking_head import animate
from talking_head.video import ffmpeg_exe

CONTAINERS = {
    "mp4": ["-c:v", "libx264", "-c:a", "aac"],
    "webm": ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "1M", "-c:a", "libopus"],
    "mpg": ["-c:v", "mpeg2video", "-q:v", "3", "-c:a", "mp2"],
}


class EncoderWatch:
    """The peak resident memory (kB) of this process's ffmpeg children that run libx264."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        parent = f"PPid:\t{os.getpid()}\n"
        while not self._stop.wait(0.05):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    status = (proc / "status").read_text()
                    if parent not in status or b"libx264" not in (proc / "cmdline").read_bytes():
                        continue
                except OSError:
                    continue  # gone meanwhile
                rss = status.split("VmRSS:")[1].split()[0] if "VmRSS:" in status else "0"
                self.peak = max(self.peak, int(rss))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portrait", default="gallery:mona_lisa")
    ap.add_argument("--clip", default=str(REPO / "gallery" / "clips" / "talking_01.mp4"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'container':<10} {'sound':<8} {'render (s)':>10} {'encoder peak RSS (MB)':>22}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, codecs in CONTAINERS.items():
            clip = Path(tmp) / f"upload.{kind}"
            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", args.clip, *codecs, str(clip)], check=True)
            walls, peaks = [], []
            for _ in range(args.repeats):
                with EncoderWatch() as watch:
                    t = time.perf_counter()
                    animate(args.portrait, clip, Path(tmp) / "out.mp4")
                    walls.append(time.perf_counter() - t)
                peaks.append(watch.peak / 1024)
            sound = codecs[codecs.index("-c:a") + 1]
            print(f"{kind:<10} {sound:<8} {statistics.median(walls):>10.2f} {statistics.median(peaks):>22.0f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
