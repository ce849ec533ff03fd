"""Time budgets of the networks (MAX_SECONDS): what the tiled inference will cost, measured before training.

Training stops when the time left is what inference will take: the inference is extrapolated from timed
forwards of the fit crop and of its 2 x 2 mirror tiling (small inputs cost far more per pixel than tiles
do, so one timing is not enough) to the tiles and pixels of the output, tile margins included.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Sequence, Tuple

from ..pipeline.tile_geometry import AUTO_TILE, edge_pad, tile_geometry

INFERENCE_SAFETY = 1.5  # margin on the extrapolated inference time


def inference_load(method, ratio: int, width: int, height: int, tile: int = AUTO_TILE) -> Tuple[int, int]:
    """(tiles, HR pixels) a tiled inference of a width x height output computes.

    ``tile`` :data:`AUTO_TILE` (TILE_SIZE automatic, the default) is the method's preferred tile, as the
    tile loop takes it.

    Each tile's core plus its context (the margin inside the raster, the tile loop's edge pad at its edges:
    engine/pipeline/tile_geometry.py).
    """
    step, margin, tile = tile_geometry(method, ratio, tile)
    edge = edge_pad(step, margin)
    nx, ny = -(-width // tile), -(-height // tile)
    cols = -(-width // step) * step + 2 * edge + 2 * margin * (nx - 1)
    rows = -(-height // step) * step + 2 * edge + 2 * margin * (ny - 1)
    return nx * ny, cols * rows


def mirror2(t):
    """A (1, C, h, w) tensor mirror-tiled 2 x 2 (2h x 2w): a larger input of the same content."""
    import torch

    t = torch.cat([t, t.flip(-1)], dim=-1)
    return torch.cat([t, t.flip(-2)], dim=-2)


def inference_cost(timed: Sequence[Tuple[int, float]], tiles: int, pixels: int) -> Dict[str, float]:
    """``per_tile + per_px * pixels`` fitted through two (pixels, seconds) timings, small input first.

    Returns ``per_px``, ``per_tile`` and ``seconds`` for ``tiles`` tiles holding ``pixels`` pixels.
    """
    (p0, t0), (p1, t1) = timed
    per_px = max((t1 - t0) / (p1 - p0), 0.0) if p1 != p0 else t1 / max(p1, 1)
    per_tile = max(0.0, t0 - per_px * p0)
    return {"per_px": per_px, "per_tile": per_tile, "seconds": per_tile * tiles + per_px * pixels}


def timed_forwards(forward: Callable[..., object], small: Sequence, large: Sequence,
                   warm_up: bool = True) -> Sequence[Tuple[int, float]]:
    """(output pixels, seconds) of ``forward(*small)`` and ``forward(*large)``, after one warm-up forward.

    ``warm_up=False`` when the caller has just run ``forward(*small)`` itself.
    """
    if warm_up:
        forward(*small)
    timed = []
    for args in (small, large):
        t = time.perf_counter()
        out = forward(*args)
        timed.append((int(out.shape[-1] * out.shape[-2]), time.perf_counter() - t))
    return timed


class Deadline:
    """A feedback whose cancel also fires at a wall-clock deadline (``time.perf_counter`` seconds).

    Stops a fit-once network's stages at the budget; the caller tells a budget stop from a user's cancel by
    asking the inner feedback (:attr:`reached`).
    """

    def __init__(self, feedback, deadline: float) -> None:
        self.inner, self.deadline = feedback, deadline

    def isCanceled(self) -> bool:  # noqa: N802 (QgsProcessingFeedback's name)
        return self.inner.isCanceled() or self.reached

    @property
    def reached(self) -> bool:
        return time.perf_counter() > self.deadline

    def __getattr__(self, name):
        return getattr(self.inner, name)
