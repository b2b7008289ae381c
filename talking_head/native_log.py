"""Keep the native libraries' start-up chatter off a terminal.

MediaPipe's C++ graph and TensorFlow Lite write informational lines straight to file descriptor 2
("INFO: Created TensorFlow Lite XNNPACK delegate", "W0000 ... Feedback manager requires a model with a
single signature", "WARNING: All log messages before absl::InitializeLog() ..."). absl's logger reads no
environment variable that silences them, so a teacher running the CLI saw a screen of warnings above the
progress bar for a render that went well.

``filter_native_stderr`` points descriptor 2 at a pipe for the rest of the process; a small process of its
own (this file, run by itself) passes on every line except those informational ones. Being another process,
it still passes on what a native library writes just before it aborts this one (absl's ``F`` line and stack,
a fault handler's dump), and it never waits for this process's interpreter. A progress bar writes to
:func:`terminal`, past the filter. Native errors (absl's ``E`` and ``F`` lines) and anything unknown still
come through.

Only the standard library is imported here: the filter runs as ``python -S -E native_log.py``.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys

# absl's format: severity letter, MMDD (0000 before absl::InitializeLog), time, thread id, file:line].
_NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\]"
    rb"|INFO: \S.*(?:TensorFlow Lite|XNNPACK|TfLite)"  # (not "INFO:     ...", a web server's own log)
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)")


def is_native_noise(line: bytes) -> bool:
    """True for an informational line from absl, glog or TensorFlow Lite."""
    return _NOISE.match(line) is not None


def pass_on(read_fd: int = 0, write_fd: int = 1) -> None:
    """Copy ``read_fd`` to ``write_fd`` line by line until its end, leaving out native noise."""
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        except OSError:
            break
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


_terminal = None  # a text stream on the real descriptor 2 once the filter is installed


def filter_native_stderr() -> None:
    """From now until this process ends, native informational lines on descriptor 2 are dropped.

    For a command line or a server, which install it first thing: MediaPipe's threads still starting
    when a command fails write after it, and their lines are filtered too. Everything written to
    ``sys.stderr`` (our error lines, tracebacks, warnings) goes through the same pipe, so a native error
    comes before the line that reports its effect. Only a progress bar should write to :func:`terminal`.
    Installing it twice does nothing.
    """
    global _terminal
    if _terminal is not None:
        return
    try:
        sys.stderr.flush()
        terminal_fd = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to filter
        return
    read_fd, write_fd = os.pipe()
    try:
        # Ctrl+C reaches the whole foreground group; the filter ignores it and ends with the pipe instead.
        subprocess.Popen([sys.executable, "-S", "-E", os.path.abspath(__file__)], stdin=read_fd,
                         stdout=terminal_fd, stderr=subprocess.DEVNULL, close_fds=True)
    except (OSError, ValueError):  # no interpreter to start (a frozen build): unfiltered, as without this
        for fd in (read_fd, write_fd, terminal_fd):
            os.close(fd)
        return
    os.close(read_fd)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # (When the process ends, its end of the pipe closes; the filter passes on what is left and exits.)
    _terminal = open(terminal_fd, "w", buffering=1, errors="backslashreplace",  # noqa: SIM115 (the process's)
                     encoding=getattr(sys.stderr, "encoding", None) or "utf-8")


def terminal():
    """Where a progress bar writes: the real terminal, past the filter (a line-based filter would hold a
    bar's carriage returns back); ``sys.stderr`` when no filter is installed."""
    return _terminal if _terminal is not None else sys.stderr


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pass_on()
