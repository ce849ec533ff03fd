"""Tile geometry of a method (pure arithmetic, no GDAL): what the tile loop pads and how far.

Kept apart from :mod:`.tiling` (which reads rasters) so GDAL-free code — the GPU benchmark
(benchmarks/device_speed.py) — reproduces the tile loop's context exactly.
"""
from __future__ import annotations

import math
from typing import Tuple

AUTO_TILE = 0  # TILE_SIZE value meaning "the method's preferred tile" (FusionMethod.preferred_tile)
EDGE_PAD = 16  # HR px of mirrored context kept beyond the region's edge (rounded up to the step)


def tile_geometry(method, ratio: int, tile_size: int) -> Tuple[int, int, int]:
    """(step, margin, core tile) in HR pixels: all multiples of the method's alignment and the ratio.

    ``tile_size`` = :data:`AUTO_TILE` takes the method's preferred tile (a network's is measured per network).
    """
    if int(tile_size) == AUTO_TILE:
        tile_size = method.preferred_tile(ratio)
    step = math.lcm(method.align(ratio), ratio)
    margin = -(-method.margin(ratio) // step) * step
    tile = max(step, (int(tile_size) // step) * step)
    tile = max(tile, -(-method.min_hr_size(ratio) // step) * step)
    return step, margin, tile


def edge_pad(step: int, margin: int) -> int:
    """HR px of mirrored context a tile gets beyond the raster's edge.

    The margin, but at most ``EDGE_PAD`` rounded up to the step (context far beyond the edge carries no
    information).
    """
    return min(margin, -(-EDGE_PAD // step) * step)
