"""How the C library's allocator treats the large arrays a render makes and frees on every frame.

A render allocates several arrays of megabytes per frame (the canvas, the remap tables, the layers).
glibc maps such blocks fresh from the kernel and, depending on what the process happened to allocate
and free before, either keeps freed ones for reuse or hands them back, so that the next frame faults
every page in again. A small change elsewhere can tip a command from one to the other: with the
background plate of meshwarp v9, Newton and Walt Whitman x ``talking_02`` (7.3 s) took 7.54 and 4.38 s
in a fresh process, 1.4-2.2 s of it in the kernel, and 6.20 and 3.65 s with this setting (BENCHMARKS.md,
nineteenth session). :func:`keep_freed_blocks` fixes the choice: blocks up to 32 MB come from the heap,
and up to 64 MB of freed memory is kept. That is per memory pool, and glibc gives threads pools of their
own, so a server rendering on several threads keeps somewhat more: a review's script with four threads
rendering at once levelled off at 186 MB against about 150 MB without it.
"""
from __future__ import annotations

import ctypes
import sys

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Larger than any per-frame array at the default render size (1280 px: a float32 remap table is 13 MB),
# and what glibc's own adaptive threshold would at most rise to; freed memory kept is twice that, as glibc does.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20


def keep_freed_blocks() -> bool:
    """Serve blocks up to MMAP_THRESHOLD from the heap and keep up to TRIM_THRESHOLD of freed memory, for
    the rest of the process. True when glibc took both settings; False elsewhere (other systems, or another
    C library: musl has a mallopt that does nothing), which changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mapped = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    trimmed = bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return mapped and trimmed
