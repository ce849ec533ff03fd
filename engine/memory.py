"""Give freed heap memory back to the operating system during long tile loops (glibc only).

glibc keeps memory freed by the tile loop's threads (GDAL's 256 KB cache blocks, the per-tile arrays) in
its heaps, fragmented, so peak RSS kept growing with the number of tiles (bicubic at 4096²: 1.5 GB against
0.8 GB at 1024², GDAL cache capped at 256 MiB). ``malloc_trim(0)`` every few tiles returns the free pages
(1.06 GB at 4096², no measurable slowdown); fixing glibc's mmap threshold instead made it flat but cost
50 % of the throughput (benchmarks/NOTES.md). Elsewhere (macOS, Windows, musl) this is a no-op.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Callable, Optional


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, looked up once; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the OS now; True when the C library supports it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
