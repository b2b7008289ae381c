"""The CLI's terminal shows our lines, not MediaPipe's and TensorFlow Lite's start-up chatter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_WRITES = r'''
import os, sys
from talking_head.native_log import filtered_native_stderr
with filtered_native_stderr():
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"W0000 00:00:1795362424.839012   26326 inference_feedback_manager.cc:114] Feedback manager\n"
                b"I0000 00:00:1795362424.844114   26322 gl_context.cc:357] GL version\n")
    os.write(2, b"E0000 00:00:1795362425.070538   26347 graph.cc:9] a native error\n")
    print("python's own line", file=sys.stderr)
    os.write(2, b"INFO:     a web server's own line\n")
    os.write(2, b"a native line with no end")
os.write(2, b"\nafter the command\n")
'''


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_informational_native_lines_are_dropped_and_everything_else_passes():
    r = _run(_WRITES)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "python's own line" in lines
    assert any(line.startswith("E0000") and line.endswith("a native error") for line in lines)
    assert "a native line with no end" in lines and lines[-1] == "after the command"
    assert "INFO:     a web server's own line" in lines
    assert not [line for line in lines if line.startswith(("INFO: Created", "WARNING: All", "W0000", "I0000"))], r.stderr


_MEDIAPIPE = r'''
import os, sys
import numpy as np
from talking_head.faces.mediapipe_backend import MediaPipeBackend
from talking_head.native_log import filtered_native_stderr
from talking_head.gallery import Gallery
from talking_head.images import load_image

def find():
    MediaPipeBackend().detect(load_image(Gallery.default().portrait_path("mona_lisa"), max_side=480))
    print("found", file=sys.stderr)

if os.environ.get("FILTER"):
    with filtered_native_stderr():
        find()
else:
    find()
'''


def test_mediapipe_s_real_start_up_lines_are_the_ones_dropped():
    """The patterns are checked against what this mediapipe really prints, not only against our copies."""
    from talking_head.native_log import is_native_noise
    plain, filtered = _run(_MEDIAPIPE), _run(_MEDIAPIPE, FILTER="1")
    assert plain.returncode == 0 and filtered.returncode == 0, plain.stderr + filtered.stderr
    noise = [line for line in plain.stderr.splitlines() if is_native_noise(line.encode())]
    assert noise, "mediapipe printed nothing at start-up: this test no longer checks anything"
    assert filtered.stderr.splitlines() == [line for line in plain.stderr.splitlines() if line not in noise]
    assert "found" in filtered.stderr.splitlines()
