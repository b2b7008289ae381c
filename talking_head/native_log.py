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

Only the standard library is imported here: the filter runs as ``python -I -S native_log.py``.
"""
from __future__ import annotations

import atexit
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


def pass_on(read_fd: int = 0, write_fd: int = 1, marker: bytes | None = None, ack_fd: int | None = None) -> None:
    """Copy ``read_fd`` to ``write_fd`` line by line until its end, leaving out native noise. A line that
    ends with ``marker`` is copied without it: a byte on ``ack_fd`` says that everything before has been."""
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)  # (a signal's interruption is retried by Python itself)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = []
        for line in lines:
            if marker is not None and line.endswith(marker):
                head = line[: -len(marker)]  # (a line left without its end before the marker keeps none)
                if head and not is_native_noise(head):
                    kept.append(head)
                _write(write_fd, b"".join(kept))
                kept = []
                if ack_fd is not None:
                    _write(ack_fd, b"k")
            elif not is_native_noise(line):
                kept.append(line + b"\n")
        _write(write_fd, b"".join(kept))
    if pending and not is_native_noise(pending):
        _write(write_fd, pending)


def _write(fd: int, data: bytes) -> None:
    if data:
        with contextlib.suppress(OSError):
            os.write(fd, data)


_terminal = None  # a text stream on the real descriptor 2 once the filter is installed
_filter = None    # the filter's process (kept, so that it is not reported as left running)


def filter_native_stderr() -> None:
    """From now until this process ends, native informational lines on descriptor 2 are dropped.

    For a command line or a server, which install it first thing: MediaPipe's threads still starting
    when a command fails write after it, and their lines are filtered too. Everything written to
    ``sys.stderr`` (our error lines, tracebacks, warnings) goes through the same pipe, so among themselves
    the lines keep their order: a native error comes before the line that reports its effect. Only a
    progress bar should write to :func:`terminal`. Installing it twice does nothing. At exit, this process
    waits (up to a second) until the filter has passed on everything written before. With
    ``LIVING_PORTRAITS_DEBUG`` set, nothing is filtered: everything the native libraries say is shown.
    """
    global _terminal, _filter
    if _terminal is not None or os.environ.get("LIVING_PORTRAITS_DEBUG"):
        return
    if getattr(sys, "frozen", False) or not sys.executable:
        return  # (a frozen build has no interpreter to run the filter with: unfiltered, as without this)
    try:
        sys.stderr.flush()
        terminal_fd = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (an embedding host): nothing to filter
        return
    read_fd, write_fd = os.pipe()
    ack_r, ack_w = os.pipe() if os.name == "posix" else (None, None)
    marker = b"living-portraits-drained-" + os.urandom(16).hex().encode()
    args = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
    if ack_w is not None:
        args += [marker.decode(), str(ack_w)]
    try:
        # Ctrl+C reaches the whole foreground group; the filter ignores it and ends with the pipe instead.
        _filter = subprocess.Popen(args, stdin=read_fd, stdout=terminal_fd, stderr=subprocess.DEVNULL,
                                   close_fds=True, pass_fds=() if ack_w is None else (ack_w,))
    except (OSError, ValueError, TypeError):  # no interpreter to start: unfiltered, as without this
        for fd in (read_fd, write_fd, terminal_fd, ack_r, ack_w):
            if fd is not None:
                os.close(fd)
        return
    os.close(read_fd)
    if ack_w is not None:
        os.close(ack_w)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    # (When the process ends, its end of the pipe closes; the filter passes on what is left and exits.)
    _terminal = open(terminal_fd, "w", buffering=1, errors="backslashreplace",  # noqa: SIM115 (the process's)
                     encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
    if ack_r is not None:
        atexit.register(_drain, marker, ack_r)


def _drain(marker: bytes, ack_r: int, timeout: float = 1.0) -> None:
    """Wait until the filter has passed on everything written so far (a shell reading ``2>file`` right
    after the command must find the last line there)."""
    import select
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
        os.write(2, marker + b"\n")
        select.select([ack_r], [], [], timeout)
    os.close(ack_r)


def terminal():
    """Where a progress bar writes: the real terminal, past the filter (a line-based filter would hold a
    bar's carriage returns back); ``sys.stderr`` when no filter is installed."""
    return _terminal if _terminal is not None else sys.stderr


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(sys.argv) == 3:  # the marker that asks for an acknowledgement, and where to send it
        pass_on(0, 1, sys.argv[1].encode(), int(sys.argv[2]))
    else:
        pass_on()
