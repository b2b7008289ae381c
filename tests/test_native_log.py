"""The CLI's terminal shows our lines, not MediaPipe's and TensorFlow Lite's start-up chatter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_WRITES = r'''
import os, sys
from talking_head.native_log import filter_native_stderr, terminal
filter_native_stderr()
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"W0000 00:00:1795362424.839012   26326 inference_feedback_manager.cc:114] Feedback manager\n"
            b"I0000 00:00:1795362424.844114   26322 gl_context.cc:357] GL version\n")
os.write(2, b"E0000 00:00:1795362425.070538   26347 graph.cc:9] a native error\n")
print("error: python's own line, after the native error", file=sys.stderr)
os.write(2, b"INFO:     a web server's own line\n")
terminal().write("a progress bar\r")
os.write(2, b"a native line with no end")
'''


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_informational_native_lines_are_dropped_and_everything_else_passes():
    r = _run(_WRITES)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.replace("\r", "\n").splitlines()
    native = next(i for i, line in enumerate(lines) if line.startswith("E0000") and line.endswith("a native error"))
    ours = lines.index("error: python's own line, after the native error")
    assert native < ours, "the native error came after the line that reports its effect"
    assert "INFO:     a web server's own line" in lines and "a progress bar" in lines
    assert "a native line with no end" in lines
    assert not [line for line in lines if line.startswith(("INFO: Created", "WARNING: All", "W0000", "I0000"))], r.stderr


def test_a_native_library_s_last_words_before_it_aborts_the_process_still_show():
    """absl's CHECK writes its F line and stack, then aborts: the filter is a process of its own, so the lines
    are still passed on after this one has died."""
    code = ("import os\nfrom talking_head.native_log import filter_native_stderr\n"
            "filter_native_stderr()\n"
            "os.write(2, b'I0000 00:00:1.5  7 graph.cc:1] chatter\\n'\n"
            "         b'F0000 00:00:1.5  7 calculator_graph.cc:9] Check failed: graph is valid\\n')\n"
            "os.abort()\n")
    r = _run(code)
    assert r.returncode != 0
    assert "Check failed: graph is valid" in r.stderr and "chatter" not in r.stderr, r.stderr


_MEDIAPIPE = r'''
import os, sys
import numpy as np
from talking_head.faces.mediapipe_backend import MediaPipeBackend
from talking_head.native_log import filter_native_stderr
from talking_head.gallery import Gallery
from talking_head.images import load_image

if os.environ.get("FILTER"):
    filter_native_stderr()
MediaPipeBackend().detect(load_image(Gallery.default().portrait_path("mona_lisa"), max_side=480))
print("found", file=sys.stderr)
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
