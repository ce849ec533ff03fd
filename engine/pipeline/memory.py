"""Memory of long tile loops: recycled tile arrays, and freed heap memory given back to the OS (glibc).

glibc keeps memory freed by the tile loop's threads (GDAL's 256 KB cache blocks, the per-tile arrays) in
its heaps, fragmented, so peak RSS kept growing with the number of tiles (bicubic at 4096²: 1.5 GB against
0.8 GB at 1024², GDAL cache capped at 256 MiB). ``malloc_trim(0)`` every few tiles returns the free pages
(1.06 GB at 4096², no measurable slowdown); fixing glibc's mmap threshold instead made it flat but cost
50 % of the throughput (benchmarks/NOTES.md). A network's tile loop is the other way round: its activations
(tens to hundreds of MB each) are best kept on one shared heap between tiles (:func:`share_one_heap_arena`,
:func:`activations_on_heap`). Elsewhere (macOS, Windows, musl) the glibc settings are no-ops.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import mmap
import sys
import threading
from collections import OrderedDict
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt parameter numbers (glibc malloc.h)
NETWORK_HEAP_ARENAS = 1
# A network tile loop's activations are served from the heap up to this size (SSJCN's 224-band activation of a
# 304² tile is 83 MB; glibc's own threshold stops at 32 MB; larger ones, CoFusion's paper configuration at
# 132 MB, fragmented it to 2.1-2.3 GB) and the heap is trimmed only above this much free top memory.
HEAP_MMAP_THRESHOLD, HEAP_TRIM_THRESHOLD = 128 << 20, 1 << 30
# What glibc's own dynamic thresholds reach once a process has freed a large block (32 MB, twice that): what
# the settings return to after such a loop, since a set threshold stays fixed.
SETTLED_MMAP_THRESHOLD, SETTLED_TRIM_THRESHOLD = 32 << 20, 64 << 20


@functools.lru_cache(maxsize=None)
def _libc() -> Optional[ctypes.CDLL]:
    """Glibc, looked up once; None elsewhere (macOS, Windows, musl: the helpers below are no-ops)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


@functools.lru_cache(maxsize=None)
def share_one_heap_arena(arenas: int = NETWORK_HEAP_ARENAS) -> bool:
    """Make threads created from now on share glibc's heap arenas (at most ``arenas``); once per process.

    A network's tile loop allocates its activations in the compute thread and in torch's worker threads.
    Each thread's own arena kept its high-water mark of freed activations, so the process peaked at 2.25-2.33 GB
    with CoFusion lite, AMSF-Net lite and the CoFusion paper configuration (1024² x 224 bands) against
    1.6-1.8 / 1.9 / 2.0 GB with one arena, at the same speed within run-to-run noise (benchmarks/NOTES.md,
    "Heap arenas"). Trimming after every tile went lower (1.45 GB) but cost 20 % of the speed. Process-wide
    and not undone, like torch's thread count (engine/pipeline/device.py): later threads take the shared
    arena. True when the C library took the setting.
    """
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, int(arenas)) == 1)


def _set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
                and libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1)


@contextlib.contextmanager
def activations_on_heap(enabled: bool = True) -> Iterator[bool]:
    """Within: large allocations come from the heap and freed ones stay there (glibc); yields whether set.

    glibc maps every allocation above 32 MB afresh and unmaps it when freed, so each tile's activations
    faulted in new zeroed pages: 5.2 M page faults and 10-13 s of kernel time in a 20 s SSJCN run at 1024²
    (benchmarks/NOTES.md, "Large activations kept on the heap"). With the heap serving them
    (``M_MMAP_THRESHOLD``) and not trimmed after every free (``M_TRIM_THRESHOLD``) the next tile reuses the
    same pages: 10x fewer faults, 1.14-1.5x the tile speed, for 0.2-0.6 GB more at the peak (fragmentation).
    Needs :func:`share_one_heap_arena` (only the main heap grows past 64 MB). On leaving, the thresholds go to
    the values glibc's own would have settled at and the freed heap goes back to the OS. ``enabled`` False
    (a configuration whose activations fragment the heap too far, ``NetSpec.heap_tiles``): nothing changes.
    """
    done = bool(enabled) and _set_thresholds(HEAP_MMAP_THRESHOLD, HEAP_TRIM_THRESHOLD)
    try:
        yield done
    finally:
        if done:
            _set_thresholds(SETTLED_MMAP_THRESHOLD, SETTLED_TRIM_THRESHOLD)
            release_free_memory()


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """Glibc's ``malloc_trim``, looked up once; None elsewhere."""
    libc = _libc()
    if libc is None:
        return None
    trim = libc.malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the OS now; True when the C library supports it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class TileBuffers:
    """Float32 tile arrays handed back once written, reused for the next tile of the same shape.

    A 224-band 256² tile is 58 MB, above glibc's largest mmap threshold (32 MB): every fresh one is a new
    mapping whose ~14 000 pages fault in one by one, unmapped again when freed -- ~1 s of kernel time per
    64 tiles at 2048², 10 % of the bicubic tile loop (benchmarks/NOTES.md). At most ``limit`` arrays are
    kept (the oldest dropped first), and only of shapes that ``take`` has been asked for: a method whose
    tiles come from elsewhere (CNMF, the networks) does not fill the pool with arrays nobody reuses.
    Only arrays that own their memory are taken back; give back only what nothing else still reads.
    """

    def __init__(self, limit: int = 6) -> None:
        self.limit = int(limit)
        self._free: "OrderedDict[int, Tuple[Tuple[int, ...], np.ndarray]]" = OrderedDict()
        self._wanted: set = set()
        self._lock = threading.Lock()

    def take(self, shape) -> np.ndarray:
        """An uninitialised float32 array of ``shape`` (a returned one when there is one).

        A new one is a mapping of its own, outside the heap: it lives until written, and in the heap it would
        split the free space the next tile's activations reuse (:func:`activations_on_heap`).
        """
        shape = tuple(int(n) for n in shape)
        with self._lock:
            self._wanted.add(shape)
            for key, (s, arr) in self._free.items():
                if s == shape:
                    del self._free[key]
                    return arr
        size = int(np.prod(shape)) * 4
        if size == 0:
            return np.empty(shape, dtype=np.float32)
        try:
            mapping = mmap.mmap(-1, size)
        except OSError as exc:  # as np.empty would say it
            raise MemoryError(f"no memory for a {size / 2**20:.0f} MiB tile array ({exc})") from exc
        return np.ndarray(shape, dtype=np.float32, buffer=mapping)

    def give(self, array: np.ndarray) -> None:
        """Hand ``array`` back for reuse.

        Ignored unless a C-contiguous float32 array owning its data, of a shape ``take`` was asked for.
        """
        if (not isinstance(array, np.ndarray) or array.dtype != np.float32 or not _owns_its_memory(array)
                or not array.flags.c_contiguous or not array.flags.writeable):
            return
        with self._lock:
            if array.shape not in self._wanted:
                return
            self._free[id(array)] = (array.shape, array)
            while len(self._free) > self.limit:
                self._free.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self._wanted.clear()

    def held(self) -> List[Tuple[int, ...]]:
        """Shapes of the arrays kept now (for tests and logs)."""
        with self._lock:
            return [s for s, _ in self._free.values()]


def _owns_its_memory(array: np.ndarray) -> bool:
    """The array owns its data, or is the whole of a mapping :meth:`TileBuffers.take` made (no view)."""
    return array.base is None or (isinstance(array.base, mmap.mmap) and array.nbytes == len(array.base))


TILE_BUFFERS = TileBuffers()
