"""Scene-level reads done once before the tile loop: fill values for nodata and crops for ``fit``.

Fill values are global per band, so a tile's filled nodata never depends on which tile it is in (per-tile
statistics make tiles disagree; docs/design.md#tiles-and-margins). They are computed the first time a window
holds nodata (bad bands are filled with 0 without them): a scene without nodata never pays for the whole-scene
pass (0.7 s of a 4 s run on a 2048² x 224-band pair), and the values are the same whenever they are computed.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np
from osgeo import gdal

from .errors import NoValidDataError
from .pair import PairGrid
from .raster import open_raster, read_window, valid_mask
from .windows import Window, align_outward, intersection

STRIP_BYTES = 64 * 2**20
_FILL_LOCK = threading.Lock()


@dataclass
class Scene:
    """A validated pair plus its global statistics (fill values computed on first use)."""

    pair: PairGrid
    fills: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False)

    def compute_fills(self) -> Tuple[np.ndarray, np.ndarray]:
        """(HSI, MSI) per-band means over the valid pixels of the overlap, computed once."""
        with _FILL_LOCK:
            if self.fills is None:
                self.fills = scene_band_means(self.pair)
        return self.fills

    @property
    def hsi_fill(self) -> np.ndarray:
        return self.compute_fills()[0]

    @property
    def msi_fill(self) -> np.ndarray:
        return self.compute_fills()[1]

    @property
    def ratio(self) -> int:
        return self.pair.ratio

    def lr_region(self) -> Window:
        """The output region on the LR grid (outward to whole LR pixels)."""
        return align_outward(self.pair.region, self.ratio).scale_down(self.ratio)

    def read_crop(self, max_lr_side: int = 128, centre: Optional[Tuple[int, int]] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A contiguous crop for ``fit``: (LR-HSI (C,h,w), HR-MSI (c,rh,rw), HR validity (rh,rw)).

        Centred on the region (or ``centre`` in LR pixels), at most ``max_lr_side`` LR pixels a side,
        invalid pixels filled with the scene's fill values.
        """
        r = self.ratio
        lr_all = self.lr_region()
        w = min(lr_all.width, max_lr_side)
        h = min(lr_all.height, max_lr_side)
        cc, cr = centre if centre is not None else (lr_all.col + lr_all.width // 2, lr_all.row + lr_all.height // 2)
        col = min(max(cc - w // 2, lr_all.col), lr_all.col_end - w)
        row = min(max(cr - h // 2, lr_all.row), lr_all.row_end - h)
        lr_win = Window(col, row, w, h)
        hr_win = Window(col * r, row * r, w * r, h * r)
        return read_pair_window(self, lr_win, hr_win)


def read_pair_window(scene: Scene, lr_win: Window, hr_win: Window, hsi_ds=None, msi_ds=None
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read and fill an LR window and its HR window; returns (lr, hr, hr_valid)."""
    pair = scene.pair
    hsi_ds = hsi_ds or open_raster(pair.hsi.path)
    msi_ds = msi_ds or open_raster(pair.msi.path)
    lr = read_window(hsi_ds, lr_win.col, lr_win.row, lr_win.width, lr_win.height)
    mw = pair.to_msi(hr_win)
    hr = read_window(msi_ds, mw.col, mw.row, mw.width, mw.height)
    lr_ok = valid_mask(lr, pair.hsi.nodata, pair.hsi.good_bands)
    hr_ok = valid_mask(hr, pair.msi.nodata, pair.msi.good_bands)
    fill_invalid(lr, lr_ok, lambda: scene.hsi_fill, pair.hsi.good_bands)
    fill_invalid(hr, hr_ok, lambda: scene.msi_fill, pair.msi.good_bands)
    r = pair.ratio
    valid = hr_ok & np.repeat(np.repeat(lr_ok, r, axis=0), r, axis=1)
    return lr, hr, valid


def fill_invalid(data: np.ndarray, valid: np.ndarray, fill: Callable[[], np.ndarray], good_bands=None) -> None:
    """In place: invalid pixels take the per-band fill value, whole bad bands 0.

    0 is the fill value :func:`band_means` gives bad bands. ``fill()`` returns the (C,) values; it is called
    only when a pixel needs filling (the scene statistics are computed on first use).
    """
    if not valid.all():
        data[:, ~valid] = fill()[:, None]
    if good_bands is not None and not good_bands.all():
        data[~good_bands] = 0.0


def band_means(ds: gdal.Dataset, window: Window, nodata, good_bands, max_side: int = 1024) -> np.ndarray:
    """Per-band mean over valid pixels of ``window`` (decimated reads above ``max_side``)."""
    step = max(1, -(-max(window.width, window.height) // max_side))
    bx, by = max(1, window.width // step), max(1, window.height // step)
    sums = np.zeros(ds.RasterCount)
    count = 0
    rows_per = max(1, int(STRIP_BYTES // (4 * ds.RasterCount * bx)))
    for r0 in range(0, by, rows_per):
        nrows = min(rows_per, by - r0)
        src_row = window.row + r0 * step
        src_h = min(nrows * step, window.row_end - src_row)
        data = ds.ReadAsArray(window.col, src_row, window.width, src_h, buf_xsize=bx, buf_ysize=nrows,
                              buf_type=gdal.GDT_Float32).reshape(ds.RasterCount, nrows, bx)
        ok = valid_mask(data, nodata, good_bands)
        sums += data[:, ok].sum(axis=1, dtype=np.float64)
        count += int(ok.sum())
    if count == 0:
        raise NoValidDataError(f"{ds.GetDescription()} holds no valid pixel in the overlap")
    means = (sums / count).astype(np.float32)
    if good_bands is not None:
        means[~good_bands] = 0.0
    return means


def scene_band_means(pair: PairGrid) -> Tuple[np.ndarray, np.ndarray]:
    """Fill values of both inputs: per-band means over the valid pixels of the overlap."""
    hsi_ds, msi_ds = open_raster(pair.hsi.path), open_raster(pair.msi.path)
    lr = align_outward(pair.region, pair.ratio).scale_down(pair.ratio)
    lr = intersection(lr, Window(0, 0, pair.hsi.width, pair.hsi.height))
    hsi_fill = band_means(hsi_ds, lr, pair.hsi.nodata, pair.hsi.good_bands)
    msi_fill = band_means(msi_ds, pair.to_msi(pair.region), pair.msi.nodata, pair.msi.good_bands)
    return hsi_fill, msi_fill


def build_scene(pair: PairGrid) -> Scene:
    """The scene of a validated pair; fill values follow when a window first needs them."""
    return Scene(pair=pair)
