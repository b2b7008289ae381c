"""Keep the native libraries' start-up chatter off a terminal.

MediaPipe's C++ graph and TensorFlow Lite write informational lines straight to file descriptor 2
("INFO: Created TensorFlow Lite XNNPACK delegate", "W0000 ... Feedback manager requires a model with a
single signature", "WARNING: All log messages before absl::InitializeLog() ..."). absl's logger reads no
environment variable that silences them, so a teacher running the CLI saw a screen of warnings above the
progress bar for a render that went well.

``filtered_native_stderr`` points descriptor 2 at a pipe while the command runs; a thread passes on every
line except those informational ones. Python's own ``sys.stderr`` (the progress bar, our error line) is
pointed at the real terminal directly, so it is neither delayed nor filtered. Native errors (absl's ``E``
and ``F`` lines) and anything unknown still come through.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

# absl's format: severity letter, MMDD (0000 before absl::InitializeLog), time, thread id, file:line].
_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\]"
    rb"|INFO: \S.*(?:TensorFlow Lite|XNNPACK|TfLite)"  # (not "INFO:     ...", a web server's own log)
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)")


def is_native_noise(line: bytes) -> bool:
    """True for an informational line from absl, glog or TensorFlow Lite."""
    return _NOISE.match(line) is not None


def _pass_on(read_fd: int, write_fd: int) -> None:
    pending = b""
    try:
        while True:
            try:
                chunk = os.read(read_fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_noise(line))
            if kept:
                with contextlib.suppress(OSError):
                    os.write(write_fd, kept)
        if pending and not is_native_noise(pending):
            with contextlib.suppress(OSError):
                os.write(write_fd, pending)
    finally:
        # However this thread ends, descriptor 2 must not stay a pipe nobody reads: a server's next
        # lines would fill it and stop the process. (After the command it is the terminal already.)
        with contextlib.suppress(OSError):
            os.dup2(write_fd, 2)
        os.close(read_fd)


def _writes_to_descriptor_2(stream) -> bool:
    """A caller that captures ``sys.stderr`` itself (a test, a notebook) keeps its stream."""
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def filtered_native_stderr():
    """While inside, native informational lines on descriptor 2 are dropped; everything else passes."""
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to filter
        yield
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    reader = threading.Thread(target=_pass_on, args=(read_fd, terminal), name="native-stderr", daemon=True)
    reader.start()
    python_stderr = sys.stderr
    try:
        with contextlib.ExitStack() as stack:
            if _writes_to_descriptor_2(python_stderr):
                sys.stderr = stack.enter_context(open(
                    os.dup(terminal), "w", buffering=1, errors="backslashreplace",
                    encoding=getattr(python_stderr, "encoding", None) or "utf-8"))
                stack.callback(setattr, sys, "stderr", python_stderr)  # put back before ours is closed
            yield
    finally:
        os.dup2(terminal, 2)  # the pipe's only writer is closed: the reader sees its end
        # A child process still holding the pipe (none should) must not keep the command from exiting.
        reader.join(timeout=2.0)
        if not reader.is_alive():
            os.close(terminal)
