"""Keep the download's memory flat: multi-MiB buffers must go back to the OS when freed.

glibc raises its mmap threshold after the first large free, so later 1-8 MiB buffers land in
per-thread heap arenas that are not returned; with several connections and I/O threads peak
RSS then grows with the connection count. A fixed threshold and few arenas keep it flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
_done = False


def tune_malloc() -> bool:
    """Best effort, glibc only; returns whether the allocator accepted the settings."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, 256 * 1024)) and bool(mallopt(M_ARENA_MAX, 2))
    _done = ok
    return ok
