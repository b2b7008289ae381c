"""Test set-up: no network, no user cache, quiet native libraries.

HF_HUB_OFFLINE must be set before huggingface_hub is imported (it reads it once at import).
"""
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests never read or write the user's cache.
os.environ["LIVING_PORTRAITS_CACHE"] = tempfile.mkdtemp(prefix="lp-test-cache-")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _shared() -> Path:
    for cand in (REPO / "shared", REPO.parent / "shared"):
        if (cand / "gallery-src").is_dir():
            return cand
    return REPO.parent / "shared"


SHARED = _shared()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "gallery-src").is_dir():
        pytest.skip("../shared/gallery-src is not beside the checkout")
    return SHARED
