"""The single tile loop: read, compute and write overlap (one reader and one writer thread).

GDAL releases the GIL during I/O and torch during compute, so the three stages run concurrently; at
most ``PREFETCH`` tiles are read ahead and ``MAX_PENDING_WRITES`` wait for the writer, so memory is
bounded by the tile size, never by the raster size.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from ..errors import Cancelled
from ..feedback import Feedback, check_cancel, ensure_feedback
from ..io.raster import open_raster
from ..io.scene import Scene, read_pair_window
from ..io.windows import Window, align_outward, intersection, tiles
from .device import is_out_of_memory
from .memory import TILE_BUFFERS, activations_on_heap, release_free_memory
from .tile_geometry import edge_pad, tile_geometry

T = TypeVar("T")
PREFETCH = 2
COMPUTE_WORKERS = 2  # tiles computed at once by methods that declare ``thread_safe`` (numpy, one core each)
MAX_PENDING_WRITES = 2


def pipeline(items: Sequence[T], read: Callable[[T], object], compute: Callable[[T, object], object],
             write: Callable[[T, object], None], feedback: Optional[Feedback] = None,
             progress_span=(0.0, 100.0), compute_workers: int = 1) -> int:
    """Run read -> compute -> write over ``items`` with reads ahead and writes behind.

    ``compute`` may return None to skip the write. With ``compute_workers`` > 1 that many items are
    computed at once in threads (for numpy methods, whose kernels release the GIL but run on one core
    each); results are written in item order either way. Cancel is checked before every item; pending
    work is dropped and :class:`Cancelled` raised. Returns the number of items written.
    """
    feedback = ensure_feedback(feedback)
    items = list(items)
    lo, hi = progress_span
    workers = max(1, int(compute_workers))
    written = done = 0
    with ThreadPoolExecutor(1, thread_name_prefix="hsif-read") as rpool, \
            ThreadPoolExecutor(1, thread_name_prefix="hsif-write") as wpool, \
            ThreadPoolExecutor(workers, thread_name_prefix="hsif-compute") as cpool:
        reads: deque = deque()
        computes: deque = deque()
        writes: deque = deque()
        it = iter(items)

        def submit_next() -> None:
            nxt = next(it, None)
            if nxt is not None:
                reads.append((nxt, rpool.submit(read, nxt)))

        def finish_oldest() -> None:
            nonlocal written, done
            item, fut = computes.popleft()
            result = fut.result()
            if result is not None:
                writes.append(wpool.submit(write, item, result))
                written += 1
            while len(writes) > MAX_PENDING_WRITES:
                writes.popleft().result()
            done += 1
            feedback.setProgress(lo + (hi - lo) * done / len(items))

        try:
            for _ in range(PREFETCH + workers - 1):
                submit_next()
            for _ in range(len(items)):
                check_cancel(feedback)
                item, fut = reads.popleft()
                data = fut.result()
                submit_next()
                computes.append((item, cpool.submit(compute, item, data)))
                if len(computes) >= workers:
                    finish_oldest()
            while computes:
                check_cancel(feedback)
                finish_oldest()
            while writes:
                writes.popleft().result()
        except BaseException:
            for f in [f for _, f in reads] + [f for _, f in computes] + list(writes):
                f.cancel()
            raise
    return written


def apply_with_retry(method, lr: np.ndarray, hr: np.ndarray, ratio: int, step: int, margin: int,
                     pads: Tuple[int, int, int, int], feedback: Feedback) -> np.ndarray:
    """``method.apply``, retried smaller on GPU out-of-memory.

    On out-of-memory the tile is halved (2x2 sub-tiles, each with its margin) and, when a tile cannot shrink
    further, the method moves to the CPU with a warning.

    ``pads`` = (top, bottom, left, right) context around the core in ``hr`` (HR px, multiples of step).
    """
    try:
        return method.apply(lr, hr, ratio, feedback)
    except Exception as exc:  # only OOM is handled, everything else re-raised
        if not is_out_of_memory(exc):
            raise
    top, bottom, left, right = pads
    H, W = hr.shape[1] - top - bottom, hr.shape[2] - left - right
    if H >= 2 * step and W >= 2 * step:
        hs, ws = (H // 2 // step) * step, (W // 2 // step) * step
        feedback.pushWarning(f"GPU out of memory on a {H}x{W} tile; retrying as tiles of {hs}x{ws}")
        out = np.empty((lr.shape[0], H, W), dtype=np.float32)
        for r0, r1 in ((0, hs), (hs, H)):
            for c0, c1 in ((0, ws), (ws, W)):
                a0, a1 = max(r0 - margin, -top), min(r1 + margin, H + bottom)
                b0, b1 = max(c0 - margin, -left), min(c1 + margin, W + right)
                sub_hr = hr[:, a0 + top:a1 + top, b0 + left:b1 + left]
                sub_lr = lr[:, (a0 + top) // ratio:(a1 + top) // ratio, (b0 + left) // ratio:(b1 + left) // ratio]
                res = apply_with_retry(method, sub_lr, sub_hr, ratio, step, margin,
                                       (r0 - a0, a1 - r1, c0 - b0, b1 - c1), feedback)
                out[:, r0:r1, c0:c1] = res[:, r0 - a0:r1 - a0, c0 - b0:c1 - b0]
        return np.pad(out, ((0, 0), (top, bottom), (left, right)))
    if method.fallback_to_cpu():
        feedback.pushWarning("GPU out of memory even on the smallest tile; continuing on the CPU")
        return method.apply(lr, hr, ratio, feedback)
    raise MemoryError("out of memory on the smallest tile")


@dataclass(frozen=True)
class TilePlan:
    """Everything a tile job needs besides the scene and the method (small, picklable)."""

    region: Window
    ratio: int
    step: int
    margin: int
    tile: int
    nodata: float
    bad_bands: Optional[np.ndarray] = None
    edge_pad: int = 0

    def padded(self, core: Window) -> Window:
        """``core`` grown by the margin, but by at most ``edge_pad`` beyond the (step-aligned) region.

        Mirrored context far beyond the raster edge carries no information; the bound is the same for
        every tile, so tiled and untiled runs still see identical context (AMSF-Net's 160-px margin
        no longer makes a small scene 7x bigger).
        """
        outer = align_outward(self.region, self.step).pad(self.edge_pad)
        return intersection(core.pad(self.margin), outer)

    def pads(self, core: Window) -> Tuple[int, int, int, int]:
        p = self.padded(core)
        return core.row - p.row, p.row_end - core.row_end, core.col - p.col, p.col_end - core.col_end

    def target(self, core: Window) -> Window:
        """The part of ``core`` inside the output region, in processing coordinates."""
        return intersection(core, self.region)

    def out_window(self, core: Window) -> Window:
        """The part of ``core`` inside the output region, in output pixel coordinates."""
        return self.target(core).shift(-self.region.col, -self.region.row)


def plan_tiles(scene: Scene, method, tile_size: int, nodata: float) -> Tuple[TilePlan, List[Window]]:
    """The tile plan of a fusion and its core windows (those touching the output region)."""
    pair = scene.pair
    r = pair.ratio
    step, margin, tile = tile_geometry(method, r, tile_size)
    bad = None if pair.hsi.good_bands is None else ~np.asarray(pair.hsi.good_bands)
    plan = TilePlan(pair.region, r, step, margin, tile, float(nodata),
                    bad if bad is not None and bad.any() else None, edge_pad(step, margin))
    return plan, list(iter_cores(pair.region, tile, step))


def read_tile(scene: Scene, core: Window, plan: TilePlan, hsi_ds=None, msi_ds=None):
    """Read and fill the padded LR/HR windows of ``core``: (lr, hr, hr_valid).

    Opens the inputs itself when no datasets are given.
    """
    padded = plan.padded(core)
    return read_pair_window(scene, padded.scale_down(plan.ratio), padded, hsi_ds, msi_ds)


def finish_tile(method, core: Window, data, plan: TilePlan, feedback: Optional[Feedback] = None
                ) -> Optional[np.ndarray]:
    """Apply (with OOM retry) -> crop the margin -> mask nodata; None when the tile holds no valid pixel."""
    lr, hr, valid = data
    vs = plan.target(core).slices_in(plan.padded(core))
    if not valid[vs].any():
        return None
    if getattr(method, "crops_itself", False):
        crop = (vs[0].start, hr.shape[1] - vs[0].stop, vs[1].start, hr.shape[2] - vs[1].stop)
        out = method.apply_cropped(lr, hr, plan.ratio, crop, feedback)
    else:
        est = apply_with_retry(method, lr, hr, plan.ratio, plan.step, plan.margin, plan.pads(core),
                               ensure_feedback(feedback))
        core_est = est[:, vs[0], vs[1]]
        out = TILE_BUFFERS.take(core_est.shape)  # handed back once written (engine/api.py)
        np.copyto(out, core_est, casting="unsafe")  # as np.array(..., dtype=float32) did
        del est, core_est  # a network's padded tile (AMSF-Net: 224 x 576² x 4 B = 300 MB) freed now
    out[:, ~valid[vs]] = plan.nodata
    if plan.bad_bands is not None:
        out[plan.bad_bands] = plan.nodata
    return out


def compute_tile(scene: Scene, method, core: Window, plan: TilePlan, feedback: Optional[Feedback] = None,
                 hsi_ds=None, msi_ds=None) -> Optional[np.ndarray]:
    """The whole per-tile job: read windows -> fill nodata -> apply_with_retry -> crop -> mask.

    Opens its own datasets unless given: what a distributed task runs. Returns the block for
    ``plan.out_window(core)`` or None for an all-nodata tile.
    """
    return finish_tile(method, core, read_tile(scene, core, plan, hsi_ds, msi_ds), plan, feedback)


def fuse_tiles(scene: Scene, method, write_block: Callable[[np.ndarray, Window], None], tile_size: int,
               nodata: float, feedback: Optional[Feedback] = None, progress_span=(0.0, 100.0)) -> int:
    """Tile the output region and fuse it tile by tile.

    Applies ``method`` with margins, crops, masks nodata, and hands blocks to
    ``write_block(array, window_in_output)``. Returns the number of tiles written.

    Local path: :func:`pipeline` runs :func:`read_tile` in its reader thread and :func:`finish_tile`
    here (the two halves of :func:`compute_tile`, which :mod:`.distributed` runs on workers).
    """
    feedback = ensure_feedback(feedback)
    release_free_memory()  # what fit() freed (a network's training graphs) goes back to the OS first
    plan, cores = plan_tiles(scene, method, tile_size, nodata)
    feedback.pushInfo(f"{len(cores)} tile(s) of up to {plan.tile} px, margin {plan.margin} px, ratio {plan.ratio}")
    hsi_ds, msi_ds = open_raster(scene.pair.hsi.path), open_raster(scene.pair.msi.path)
    workers = COMPUTE_WORKERS if getattr(method, "thread_safe", False) else 1
    with activations_on_heap(getattr(method, "keeps_activations_on_heap", False)):
        n = pipeline(cores, lambda core: read_tile(scene, core, plan, hsi_ds, msi_ds),
                     lambda core, data: finish_tile(method, core, data, plan, feedback),
                     lambda core, out: write_block(out, plan.out_window(core)), feedback, progress_span, workers)
    skipped = len(cores) - n
    if skipped:
        feedback.pushInfo(f"{skipped} tile(s) held only nodata and were skipped")
    return n


def iter_cores(region: Window, tile: int, step: int) -> Iterable[Window]:
    """Cores that touch ``region`` (exposed for other loops: simulate, assess)."""
    return (c for c in tiles(region, tile, step) if not intersection(c, region).empty)


__all__ = ["pipeline", "fuse_tiles", "tile_geometry", "apply_with_retry", "iter_cores", "Cancelled", "TilePlan",
           "plan_tiles", "read_tile", "finish_tile", "compute_tile"]
