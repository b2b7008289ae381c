"""Living Portraits app: ``python app.py`` (museum/teacher), ``python app.py --kiosk`` (gallery screen).

On a Hugging Face Space this file is the ``app_file``; the Space's README front matter points here.
"""
from __future__ import annotations

import argparse
import os
import sys

# Before gradio or huggingface_hub are imported: no telemetry, and no Hub lookups at start-up.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Living Portraits: make portrait paintings perform a driving clip.")
    p.add_argument("--kiosk", action="store_true", help="gallery-only touch screen with an attract loop and idle reset")
    p.add_argument("--uploads", choices=("on", "off"), default=None,
                   help="allow visitors to upload images and clips (default: on, off in kiosk mode)")
    p.add_argument("--idle-timeout", type=float, default=90.0, help="kiosk: seconds untouched before the start screen")
    p.add_argument("--language", default="en", help="start language (en, fr) when the browser asks for none we have")
    p.add_argument("--engine", default="auto", help="animation engine (see `python -m talking_head engines`)")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("LP_CONCURRENCY", "1")),
                   help="renders at once (per device)")
    p.add_argument("--queue-size", type=int, default=int(os.environ.get("LP_QUEUE_SIZE", "12")),
                   help="requests allowed to wait; beyond that visitors are told to try again")
    p.add_argument("--max-clip-seconds", type=float, default=30.0,
                   help="longest uploaded driving clip accepted, 0.1 to 3600 seconds (default 30)")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 on a Hugging Face Space)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    a = p.parse_args(argv)
    from talking_head.errors import SettingsError
    from talking_head.pipeline import AnimateSettings
    try:  # checked once here: out of range, every visitor's upload and render would be refused
        AnimateSettings(max_duration=a.max_clip_seconds)
    except SettingsError as e:
        p.error(f"--max-clip-seconds: {e}")
    return a


def server_host(args: argparse.Namespace, environ=os.environ) -> str:
    """The address to listen on: localhost unless ``--host``, ``GRADIO_SERVER_NAME`` or a Hugging Face Space
    (which must listen on every interface to be reached) says otherwise."""
    return args.host or environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if environ.get("SPACE_ID") else "127.0.0.1")


def started(host: str, port: int) -> str:
    """The line that tells whoever started the app where to open it (Gradio's own pointed at a ``share=True``
    that is not ours to set, and a kiosk must not be shared)."""
    if host in ("0.0.0.0", "::"):
        where = (f"on port {port} of every network address of this machine "
                 f"(here: http://127.0.0.1:{port}; from another device: http://<this machine's address>:{port})")
    else:
        where = f"at http://{'[' + host + ']' if ':' in host else host}:{port}"
    return f"Living Portraits is running {where}. Open it in a browser; Ctrl+C stops it."


def main(argv=None):
    a = parse_args(argv)
    from talking_head.native_log import filter_native_stderr
    filter_native_stderr()  # MediaPipe's start-up lines are not the staff's to read (LIVING_PORTRAITS_DEBUG=1 shows them)
    from talking_head.allocator import keep_freed_blocks
    keep_freed_blocks()  # each render's per-frame arrays reuse freed memory (talking_head/allocator.py)
    from demo.visitor_files import VisitorFiles, default_root
    files = VisitorFiles(default_root())
    # Gradio keeps uploads under GRADIO_TEMP_DIR: point it into the visitors' temporary area.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(files.gradio_dir))
    from demo.ui import AppConfig, build, launch_kwargs
    config = AppConfig(kiosk=a.kiosk, uploads=None if a.uploads is None else a.uploads == "on",
                       idle_timeout_s=a.idle_timeout, language=a.language, engine=a.engine,
                       concurrency=a.concurrency, queue_size=a.queue_size, max_clip_s=a.max_clip_seconds)
    from talking_head.errors import TalkingHeadError
    try:
        demo = build(config, files=files)
    except TalkingHeadError as e:  # (the gallery cannot be read, say): one line that says what to do
        sys.exit(f"error: {e}")
    from talking_head.segmentation import warm_up
    warm_up()  # meshwarp's person segmenter, started while the server comes up
    files.start_sweeper(every_s=float(os.environ.get("LP_SWEEP_EVERY_S", "300")))
    host = server_host(a)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    demo.launch(server_name=host, server_port=a.port, share=False, quiet=True, prevent_thread_lock=True,
                **launch_kwargs(config, demo))
    print(started(host, demo.server_port), flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
