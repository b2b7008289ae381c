import os
import sys

from .allocator import keep_freed_blocks
from .cli import main
from .native_log import filter_native_stderr

if not os.environ.get("LIVING_PORTRAITS_DEBUG"):  # (with it, everything the native libraries say is shown)
    filter_native_stderr()
keep_freed_blocks()  # each render's per-frame arrays reuse freed memory
sys.exit(main())
