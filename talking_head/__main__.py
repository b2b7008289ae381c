import sys

from .allocator import keep_freed_blocks
from .cli import main
from .native_log import filter_native_stderr

filter_native_stderr()  # (LIVING_PORTRAITS_DEBUG=1 shows everything the native libraries say)
keep_freed_blocks()  # each render's per-frame arrays reuse freed memory
sys.exit(main())
