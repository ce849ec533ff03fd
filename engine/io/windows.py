"""Frozen pixel windows and pure functions on them (no I/O), in the spirit of rasterio.windows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Tuple


@dataclass(frozen=True)
class Window:
    """Pixel window: column/row offset and size, on some grid (which one is the caller's business)."""

    col: int
    row: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0:
            raise ValueError(f"negative window size {self.width}x{self.height}")

    @property
    def col_end(self) -> int:
        return self.col + self.width

    @property
    def row_end(self) -> int:
        return self.row + self.height

    @property
    def empty(self) -> bool:
        return self.width == 0 or self.height == 0

    def shift(self, dcol: int, drow: int) -> "Window":
        return Window(self.col + dcol, self.row + drow, self.width, self.height)

    def pad(self, margin: int) -> "Window":
        """Grow by ``margin`` pixels on every side."""
        return Window(self.col - margin, self.row - margin, self.width + 2 * margin, self.height + 2 * margin)

    def scale_down(self, ratio: int) -> "Window":
        """The window on a grid ``ratio`` times coarser; the window must be aligned to ``ratio``."""
        if self.col % ratio or self.row % ratio or self.width % ratio or self.height % ratio:
            raise ValueError(f"window {self} not aligned to ratio {ratio}")
        return Window(self.col // ratio, self.row // ratio, self.width // ratio, self.height // ratio)

    def slices_in(self, outer: "Window") -> Tuple[slice, slice]:
        """(row slice, col slice) of this window inside an array covering ``outer``."""
        return (slice(self.row - outer.row, self.row_end - outer.row),
                slice(self.col - outer.col, self.col_end - outer.col))


def intersection(a: Window, b: Window) -> Window:
    """Overlap of two windows (possibly empty, then width/height 0)."""
    col, row = max(a.col, b.col), max(a.row, b.row)
    return Window(col, row, max(0, min(a.col_end, b.col_end) - col), max(0, min(a.row_end, b.row_end) - row))


def align_outward(w: Window, step: int) -> Window:
    """Smallest window containing ``w`` whose edges are multiples of ``step``."""
    col, row = (w.col // step) * step, (w.row // step) * step
    col_end = -(-w.col_end // step) * step
    row_end = -(-w.row_end // step) * step
    return Window(col, row, col_end - col, row_end - row)


def tiles(region: Window, tile: int, step: int) -> Iterator[Window]:
    """Core tiles of side ``tile`` (a multiple of ``step``) covering ``region`` aligned to ``step``.

    Edge tiles are shorter but still multiples of ``step``.
    """
    if tile <= 0 or tile % step:
        raise ValueError(f"tile {tile} must be a positive multiple of {step}")
    cover = align_outward(region, step)
    for row in range(cover.row, cover.row_end, tile):
        for col in range(cover.col, cover.col_end, tile):
            yield Window(col, row, min(tile, cover.col_end - col), min(tile, cover.row_end - row))


def window_geotransform(gt: Tuple[float, ...], w: Window) -> Tuple[float, ...]:
    """Geotransform of a window of a north-up grid."""
    return (gt[0] + w.col * gt[1] + w.row * gt[2], gt[1], gt[2],
            gt[3] + w.col * gt[4] + w.row * gt[5], gt[4], gt[5])
