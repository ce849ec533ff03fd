"""Scene-level reads done once before the tile loop: fill values for nodata and crops for ``fit``.

Fill values are global per band, so a tile's filled nodata never depends on which tile it is in (per-tile
statistics make tiles disagree; docs/design.md#tiles-and-margins). They are computed the first time a window
holds nodata (bad bands are filled with 0 without them): a scene without nodata never pays for the whole-scene
pass (0.7 s of a 4 s run on a 2048² x 224-band pair), and the values are the same whenever they are computed.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Tuple

import numpy as np
from osgeo import gdal

from ..errors import NoValidDataError
from ..feedback import Feedback
from .pair import PairGrid
from .raster import RasterInfo, mask_kind, open_raster, read_mask_window, read_window, spectral_bands, valid_mask
from .windows import Window, align_outward, intersection

STRIP_BYTES = 64 * 2**20
_log = logging.getLogger("hsifusion")
EMPTY_BAND_SAMPLE_SIDE = 256
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
    lr_ok = valid_mask(lr, pair.hsi.nodata, pair.hsi.good_bands,
                       read_mask_window(hsi_ds, lr_win.col, lr_win.row, lr_win.width, lr_win.height))
    hr_ok = valid_mask(hr, pair.msi.nodata, pair.msi.good_bands,
                       read_mask_window(msi_ds, mw.col, mw.row, mw.width, mw.height))
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


def _strips(ds: gdal.Dataset, window: Window, max_side: int, bands: Optional[list] = None):
    """Decimated strips of a window, with its GDAL mask.

    Yield (data (bands, rows, cols) float32, GDAL mask or None) strips of ``window``, decimated
    (nearest) so that neither side exceeds ``max_side``; ``bands`` defaults to the spectral bands.
    """
    bands = bands or spectral_bands(ds)
    masked = bool(mask_kind(ds))
    step = max(1, -(-max(window.width, window.height) // max_side))
    bx, by = max(1, window.width // step), max(1, window.height // step)
    rows_per = max(1, int(STRIP_BYTES // (4 * len(bands) * bx)))
    for r0 in range(0, by, rows_per):
        nrows = min(rows_per, by - r0)
        src_row = window.row + r0 * step
        src_h = min(nrows * step, window.row_end - src_row)
        data = ds.ReadAsArray(window.col, src_row, window.width, src_h, buf_xsize=bx, buf_ysize=nrows,
                              buf_type=gdal.GDT_Float32, band_list=bands).reshape(len(bands), nrows, bx)
        mask = None
        if masked:
            full = read_mask_window(ds, window.col, src_row, window.width, src_h)
            mask = full[np.linspace(0, src_h - 1, nrows).round().astype(int)][
                :, np.linspace(0, window.width - 1, bx).round().astype(int)]
        yield data, mask


def values_valid(data: np.ndarray, nodata, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-value validity of a (bands, h, w) window.

    (bands, h, w) bool: each value finite, not nodata, and under a set GDAL ``mask`` (per value, where
    :func:`.raster.valid_mask` asks for every band of a pixel).
    """
    ok = np.isfinite(data)
    if nodata is not None and np.isfinite(nodata):
        ok &= data != nodata
    if mask is not None:
        ok &= mask[None]
    return ok


def band_means(ds: gdal.Dataset, window: Window, nodata, good_bands, max_side: int = 1024) -> np.ndarray:
    """Per-band mean over valid pixels of ``window`` (decimated reads above ``max_side``)."""
    sums, count, seen = None, 0, None
    for data, mask in _strips(ds, window, max_side):
        ok = valid_mask(data, nodata, good_bands, mask)
        part = data[:, ok].sum(axis=1, dtype=np.float64)
        sums = part if sums is None else sums + part
        count += int(ok.sum())
        if not ok.any():  # which bands leave nothing valid: for the message
            has = values_valid(data, nodata, mask).any(axis=(1, 2))
            seen = has if seen is None else seen | has
    if count == 0:
        good = np.ones(len(sums), bool) if good_bands is None else np.asarray(good_bands, bool)
        empty = np.flatnonzero(good & ~seen) + 1 if seen is not None else []
        raise NoValidDataError(f"{ds.GetDescription()} holds no valid pixel in the overlap"
                               + (f": band(s) {', '.join(map(str, empty))} hold no valid value there"
                                  if len(empty) else ""))
    means = (sums / count).astype(np.float32)
    if good_bands is not None:
        means[~good_bands] = 0.0
    return means


def empty_bands(ds: gdal.Dataset, window: Window, nodata, max_side: int = 1024) -> np.ndarray:
    """Bands without a single valid value in ``window``.

    (bands,) bool: bands without a single valid value in ``window``. A decimated pass finds the
    candidates; only those are read again at full resolution, so a sparse band is never called empty.
    """
    bands = spectral_bands(ds)

    def seen(band_numbers, side):
        found = np.zeros(len(band_numbers), bool)
        for data, mask in _strips(ds, window, side, band_numbers):
            found |= values_valid(data, nodata, mask).any(axis=(1, 2))
        return found

    empty = ~seen(bands, max_side)
    if empty.any():
        candidates = np.flatnonzero(empty)
        empty[candidates] = ~seen([bands[k] for k in candidates], max(window.width, window.height))
    return empty


def bands_without_data(path: str, info: RasterInfo) -> np.ndarray:
    """(bands,) bool: the bands of ``path`` without a single valid value in the whole raster."""
    return empty_bands(open_raster(path), Window(0, 0, info.width, info.height), info.nodata, EMPTY_BAND_SAMPLE_SIDE)


def require_bands_with_data(path: str, info: RasterInfo, role: str) -> None:
    """A :class:`NoValidDataError` naming the good bands of ``path`` that hold no valid value.

    For an image whose every band each pixel needs (the MSI): such a band would make every pixel invalid.
    """
    empty = bands_without_data(path, info) & info.good_flags
    if empty.any():
        raise NoValidDataError(f"{role} {path}: band(s) {_band_list(info, empty)} hold no valid value; flag them bad "
                               "(bbl = 0) or leave them out")


def without_empty_bands(path: str, info: RasterInfo, good: np.ndarray, role: str, consequence: str,
                        feedback: Feedback) -> np.ndarray:
    """``good`` less the bands of ``path`` that hold no valid value anywhere, named in a warning.

    A band stored as nodata everywhere without a bad-band list (EnMAP's and Hyperion's water-vapour bands often are)
    would make every pixel invalid: such a band is treated as bad, and the warning says what that means
    (``consequence``).
    """
    empty = bands_without_data(path, info) & good
    if empty.any():
        feedback.pushWarning(f"{role} band(s) {_band_list(info, empty)} hold no valid value: treated as bad bands "
                             f"({consequence})")
    return good & ~empty


def scene_band_means(pair: PairGrid) -> Tuple[np.ndarray, np.ndarray]:
    """Fill values of both inputs: per-band means over the valid pixels of the overlap."""
    hsi_ds, msi_ds = open_raster(pair.hsi.path), open_raster(pair.msi.path)
    lr = align_outward(pair.region, pair.ratio).scale_down(pair.ratio)
    lr = intersection(lr, Window(0, 0, pair.hsi.width, pair.hsi.height))
    hsi_fill = band_means(hsi_ds, lr, pair.hsi.nodata, pair.hsi.good_bands)
    msi_fill = band_means(msi_ds, pair.to_msi(pair.region), pair.msi.nodata, pair.msi.good_bands)
    return hsi_fill, msi_fill


def build_scene(pair: PairGrid, feedback: Optional[Feedback] = None) -> Scene:
    """The scene of a validated pair; fill values follow when a window first needs them.

    Checks once what no tile could see: an HSI band without any valid pixel in the overlap (it would make
    every pixel invalid) becomes a bad band, written as nodata like an ENVI ``bbl = 0`` band (the LR-HSI
    is ratio^2 smaller than the output: a 256 px sample finds candidates, only those are read in full).
    An MSI band without one ends in the fill statistics' NoValidDataError, which names it. Alpha bands
    and GDAL masks in use are reported.
    """
    hsi_ds = open_raster(pair.hsi.path)
    lr = intersection(align_outward(pair.region, pair.ratio).scale_down(pair.ratio),
                      Window(0, 0, pair.hsi.width, pair.hsi.height))
    good = pair.hsi.good_flags
    empty = empty_bands(hsi_ds, lr, pair.hsi.nodata, EMPTY_BAND_SAMPLE_SIDE) & good
    if empty.any() and not (good & ~empty).any():
        raise NoValidDataError(f"{pair.hsi.path} holds no valid pixel in the overlap (every good band is nodata)")
    notes = [_mask_note(role, info) for role, info in (("HSI", pair.hsi), ("MSI", pair.msi))]
    if empty.any():
        notes.append(f"HSI band(s) {_band_list(pair.hsi, empty)} hold no valid pixel in the overlap: treated as "
                     "bad bands (written as nodata), the other bands are fused")
        pair = replace(pair, hsi=replace(pair.hsi, good_bands=good & ~empty))
    for note in filter(None, notes):
        if feedback is not None:
            feedback.pushWarning(note)
        else:
            _log.warning(note)
    return Scene(pair=pair)


def _band_list(info: RasterInfo, which: np.ndarray) -> str:
    """'3 (name, 550.0 nm), 7 (...)' for the flagged bands, numbered as the raster's spectral bands."""
    out = []
    for k in np.flatnonzero(which):
        wl = info.wavelengths[k] if info.wavelengths is not None else None
        extra = ", ".join(x for x in (info.band_names[k], f"{wl:.1f} nm" if wl is not None else "") if x)
        out.append(f"{k + 1} ({extra})")
    return ", ".join(out)


def _mask_note(role: str, info: RasterInfo) -> str:
    parts = []
    if info.alpha_bands:
        parts.append(f"alpha band(s) {', '.join(map(str, info.alpha_bands))} left out of the spectral bands")
    if info.mask_kind:
        parts.append(f"its GDAL {info.mask_kind} marks invalid pixels (fused as nodata)")
    return f"{role} {info.path}: " + "; ".join(parts) if parts else ""
