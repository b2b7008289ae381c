import signal
import sys

from .allocator import keep_freed_blocks
from .cli import main
from .native_log import filter_native_stderr


def _stop(signum, frame):
    # A stop asked from outside (`kill`, a service manager, `timeout`, the terminal closing) ends the command as
    # Ctrl-C does, through the same clean-up: by default Python died at once and left a render's
    # .partial.mp4 or a gallery file's temporary copy behind.
    raise KeyboardInterrupt


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _stop)
filter_native_stderr()  # (LIVING_PORTRAITS_DEBUG=1 shows everything the native libraries say)
keep_freed_blocks()  # each render's per-frame arrays reuse freed memory
sys.exit(main())
