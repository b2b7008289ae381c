"""Test set-up: no network, no user cache.

HF_HUB_OFFLINE must be set before huggingface_hub is imported (it reads it once at import).
"""
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Tests never read or write the user's cache.
os.environ["LIVING_PORTRAITS_CACHE"] = tempfile.mkdtemp(prefix="lp-test-cache-")
# Gradio's uploads go to a throwaway folder too (it reads this when imported).
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="lp-test-gradio-")

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _shared() -> Path:
    for cand in (REPO / "shared", REPO.parent / "shared"):
        if (cand / "gallery-src").is_dir():
            return cand
    return REPO.parent / "shared"


SHARED = _shared()


def live_threads(*names: str) -> list[str]:
    """Which of the threads named ``names`` (default: a render's, ``pipeline.RENDER_THREADS``) are running."""
    import threading

    from talking_head.pipeline import RENDER_THREADS
    wanted = names or RENDER_THREADS
    return [t.name for t in threading.enumerate() if t.name in wanted and t.is_alive()]


def gallery_portrait(item_id: str, max_side: int):
    """(image, face) of a gallery portrait, loaded and its stored face scaled as the pipeline does it."""
    from talking_head.cache import DiskCache
    from talking_head.gallery import Gallery
    from talking_head.pipeline import AnimateSettings, resolve_portrait
    img, face, _, _ = resolve_portrait(f"gallery:{item_id}", AnimateSettings(max_side=max_side), Gallery.default(),
                                    DiskCache(enabled=False))
    return img, face


@pytest.fixture(scope="module")
def portrait():
    """The Mona Lisa at 700 px with its stored face (the meshwarp engine tests' sitter)."""
    return gallery_portrait("mona_lisa", 700)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "gallery-src").is_dir():
        pytest.skip("../shared/gallery-src is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def lp_synthetic(shared_dir):
    """LivePortrait weights of ``shared/refcheck/fill.py`` (seed 1, as the reference vectors use)."""
    sys.path.insert(0, str(shared_dir / "refcheck"))
    try:
        from fill import fill_all, load_manifest
    finally:
        sys.path.remove(str(shared_dir / "refcheck"))
    return fill_all(load_manifest(), 1)


@pytest.fixture(scope="session")
def lp_hub_cache(tmp_path_factory, lp_synthetic):
    """A fake hub cache holding all five LivePortrait files in the official layout (written once in each
    worker process that runs a test using it, ~500 MB); returns (cache dir, {path in repo: file})."""
    from hubcache import write_hub_cache
    cache = tmp_path_factory.mktemp("hub")
    return cache, write_hub_cache(cache, lp_synthetic)


@pytest.fixture(scope="module")
def launch_app(tmp_path_factory):
    """Start the app in-process on a free localhost port: ``url, demo = launch_app(AppConfig(...))``.

    Each app gets its own result store and visitors' temporary area; all are closed at the end.
    """
    from demo.ui import AppConfig, build, launch_kwargs
    from demo.visitor_files import VisitorFiles

    started = []

    def start(config: AppConfig | None = None, store=None, gallery=None):
        config = config or AppConfig()
        root = tmp_path_factory.mktemp("app")
        config.results_dir = config.results_dir or root / "results"
        files = VisitorFiles(root / "visitors", ttl_s=config.visitor_ttl_s)
        demo = build(config, files=files, store=store, gallery=gallery)
        demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                                **launch_kwargs(config, demo))
        started.append(demo)
        return url, demo

    yield start
    for demo in started:
        demo.close()
