"""The single tile loop: read, compute and write overlap (one reader and one writer thread).

GDAL releases the GIL during I/O and torch during compute, so the three stages run concurrently; at
most ``PREFETCH`` tiles are read ahead and ``MAX_PENDING_WRITES`` wait for the writer, so memory is
bounded by the tile size, never by the raster size.
"""
from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np

from .device import is_out_of_memory
from .errors import Cancelled
from .feedback import Feedback, check_cancel, ensure_feedback
from .raster import open_raster
from .scene import Scene, read_pair_window
from .windows import Window, intersection, tiles

T = TypeVar("T")
PREFETCH = 2
MAX_PENDING_WRITES = 2


def pipeline(items: Sequence[T], read: Callable[[T], object], compute: Callable[[T, object], object],
             write: Callable[[T, object], None], feedback: Optional[Feedback] = None,
             progress_span=(0.0, 100.0)) -> int:
    """Run read -> compute -> write over ``items`` with reads ahead and writes behind.

    ``compute`` may return None to skip the write. Cancel is checked before every item; pending work
    is dropped and :class:`Cancelled` raised. Returns the number of items written.
    """
    feedback = ensure_feedback(feedback)
    items = list(items)
    lo, hi = progress_span
    written = 0
    with ThreadPoolExecutor(1, thread_name_prefix="hsif-read") as rpool, \
            ThreadPoolExecutor(1, thread_name_prefix="hsif-write") as wpool:
        reads: deque = deque()
        writes: deque = deque()
        it = iter(items)

        def submit_next() -> None:
            nxt = next(it, None)
            if nxt is not None:
                reads.append((nxt, rpool.submit(read, nxt)))

        try:
            for _ in range(PREFETCH):
                submit_next()
            for k in range(len(items)):
                check_cancel(feedback)
                item, fut = reads.popleft()
                data = fut.result()
                submit_next()
                result = compute(item, data)
                if result is not None:
                    writes.append(wpool.submit(write, item, result))
                    written += 1
                while len(writes) > MAX_PENDING_WRITES:
                    writes.popleft().result()
                feedback.setProgress(lo + (hi - lo) * (k + 1) / len(items))
            while writes:
                writes.popleft().result()
        except BaseException:
            for _, f in reads:
                f.cancel()
            for f in writes:
                f.cancel()
            raise
    return written


def tile_geometry(method, ratio: int, tile_size: int):
    """(step, margin, core tile) in HR pixels: all multiples of the method's alignment and the ratio."""
    step = math.lcm(method.align(ratio), ratio) if hasattr(math, "lcm") else _lcm(method.align(ratio), ratio)
    margin = -(-method.margin(ratio) // step) * step
    tile = max(step, (int(tile_size) // step) * step)
    tile = max(tile, -(-method.min_hr_size(ratio) // step) * step)
    return step, margin, tile


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def apply_with_retry(method, lr: np.ndarray, hr: np.ndarray, ratio: int, step: int, margin: int,
                     feedback: Feedback) -> np.ndarray:
    """``method.apply``; on GPU out-of-memory halve the tile (2x2 sub-tiles with the same margin),
    and when a tile cannot shrink further move the method to the CPU with a warning."""
    try:
        return method.apply(lr, hr, ratio, feedback)
    except Exception as exc:  # noqa: BLE001 - only OOM is handled, everything else re-raised
        if not is_out_of_memory(exc):
            raise
    H, W = hr.shape[1] - 2 * margin, hr.shape[2] - 2 * margin
    if H >= 2 * step and W >= 2 * step:
        hs, ws = (H // 2 // step) * step, (W // 2 // step) * step
        feedback.pushWarning(f"GPU out of memory on a {H}x{W} tile; retrying as tiles of {hs}x{ws}")
        out = np.empty((lr.shape[0], H, W), dtype=np.float32)
        for r0, r1 in ((0, hs), (hs, H)):
            for c0, c1 in ((0, ws), (ws, W)):
                sub_hr = hr[:, r0:r1 + 2 * margin, c0:c1 + 2 * margin]
                sub_lr = lr[:, r0 // ratio:(r1 + 2 * margin) // ratio, c0 // ratio:(c1 + 2 * margin) // ratio]
                res = apply_with_retry(method, sub_lr, sub_hr, ratio, step, margin, feedback)
                out[:, r0:r1, c0:c1] = res[:, margin:margin + r1 - r0, margin:margin + c1 - c0]
        return np.pad(out, ((0, 0), (margin, margin), (margin, margin)))
    if method.fallback_to_cpu():
        feedback.pushWarning("GPU out of memory even on the smallest tile; continuing on the CPU")
        return method.apply(lr, hr, ratio, feedback)
    raise MemoryError("out of memory on the smallest tile")


def fuse_tiles(scene: Scene, method, write_block: Callable[[np.ndarray, Window], None], tile_size: int,
               nodata: float, feedback: Optional[Feedback] = None, progress_span=(0.0, 100.0)) -> int:
    """Tile the output region, apply ``method`` with margins, crop, mask nodata, hand blocks to
    ``write_block(array, window_in_output)``. Returns the number of tiles written."""
    feedback = ensure_feedback(feedback)
    pair = scene.pair
    r = pair.ratio
    step, margin, tile = tile_geometry(method, r, tile_size)
    region = pair.region
    cores = [c for c in tiles(region, tile, step) if not intersection(c, region).empty]
    feedback.pushInfo(f"{len(cores)} tile(s) of up to {tile} px, margin {margin} px, ratio {r}")
    hsi_ds, msi_ds = open_raster(pair.hsi.path), open_raster(pair.msi.path)
    bad_bands = None if pair.hsi.good_bands is None else ~pair.hsi.good_bands

    def read(core: Window):
        padded = core.pad(margin)
        return read_pair_window(scene, padded.scale_down(r), padded, hsi_ds, msi_ds)

    def compute(core: Window, data):
        lr, hr, valid = data
        target = intersection(core, region)
        vs = target.slices_in(core.pad(margin))
        if not valid[vs].any():
            return None
        est = apply_with_retry(method, lr, hr, r, step, margin, feedback)
        out = np.array(est[:, vs[0], vs[1]], dtype=np.float32)
        out[:, ~valid[vs]] = nodata
        if bad_bands is not None and bad_bands.any():
            out[bad_bands] = nodata
        return out

    def write(core: Window, out: np.ndarray) -> None:
        target = intersection(core, region)
        write_block(out, target.shift(-region.col, -region.row))

    n = pipeline(cores, read, compute, write, feedback, progress_span)
    skipped = len(cores) - n
    if skipped:
        feedback.pushInfo(f"{skipped} tile(s) held only nodata and were skipped")
    return n


def iter_cores(region: Window, tile: int, step: int) -> Iterable[Window]:
    """Cores that touch ``region`` (exposed for other loops: simulate, assess)."""
    return (c for c in tiles(region, tile, step) if not intersection(c, region).empty)


__all__ = ["pipeline", "fuse_tiles", "tile_geometry", "apply_with_retry", "iter_cores", "Cancelled"]
