"""Open GDAL rasters, describe them (:class:`RasterInfo`), and read windows with edge reflection."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from ..errors import RasterOpenError
from .wavelengths import parse_user_wavelengths, read_bad_bands, read_wavelengths

gdal.UseExceptions()


# A raster without a geotransform is on its pixel grid: GDAL's default (0, 1, 0, 0, 0, 1) is south-up, so the
# engine uses QGIS's north-up pixel grid (what simulate writes for such a reference, and what assess compares).
PIXEL_GRID = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know of a raster, read once."""

    path: str
    width: int
    height: int
    bands: int
    geotransform: Tuple[float, ...]
    wkt: str
    nodata: Optional[float]
    scale: Tuple[float, ...]
    offset: Tuple[float, ...]
    band_names: Tuple[str, ...]
    wavelengths: Optional[np.ndarray] = field(default=None, compare=False)
    fwhm: Optional[np.ndarray] = field(default=None, compare=False)
    good_bands: Optional[np.ndarray] = field(default=None, compare=False)
    alpha_bands: Tuple[int, ...] = ()
    mask_kind: str = ""
    """GDAL bands (1-based) left out as alpha; ``mask_kind`` names a GDAL mask that :func:`read_mask_window`
    applies ('' when validity is nodata/NaN only)."""
    has_geotransform: bool = True  # False: GDAL has none (GCPs only, or none); geotransform is its default

    @property
    def grid(self) -> Tuple[float, ...]:
        """The geotransform outputs and grid checks use: :data:`PIXEL_GRID` where the raster has none."""
        return self.geotransform if self.has_geotransform else PIXEL_GRID

    @property
    def good_flags(self) -> np.ndarray:
        """(bands,) bool: the bad-band list's good bands (``bbl``), every band without one."""
        return np.ones(self.bands, bool) if self.good_bands is None else np.asarray(self.good_bands, bool).copy()

    @property
    def pixel_size(self) -> Tuple[float, float]:
        """(x size, y size), both positive."""
        return abs(self.geotransform[1]), abs(self.geotransform[5])

    @property
    def has_georeference(self) -> bool:
        return bool(self.wkt) and self.geotransform != (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# Read-only GeoTIFFs are opened with GTIFF_DIRECT_IO: uncompressed windows are read straight from the
# file instead of through GDAL's block cache, which otherwise fills up to GDAL_CACHEMAX on a large input
# (peak RSS at 4096² HR, bicubic: 930 -> 650 MiB, the same at 1024², no measurable time cost;
# benchmarks/NOTES.md). Compressed files take GDAL's usual path. Read at open time, set per thread.
READ_CONFIG = {"GTIFF_DIRECT_IO": "YES"}


def open_raster(path: str, update: bool = False) -> gdal.Dataset:
    """Open with GDAL or raise :class:`RasterOpenError` naming the file."""
    config = {} if update else READ_CONFIG
    saved = {k: gdal.GetThreadLocalConfigOption(k, None) for k in config}
    try:
        for k, v in config.items():
            gdal.SetThreadLocalConfigOption(k, v)
        ds = gdal.Open(str(path), gdal.GA_Update if update else gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise RasterOpenError(f"cannot open raster {path!r}: {exc}") from None
    finally:
        for k, v in saved.items():
            gdal.SetThreadLocalConfigOption(k, v)
    if ds is None:
        raise RasterOpenError(f"cannot open raster {path!r}")
    return ds


def raster_info(path: str, wavelengths=None, ds: Optional[gdal.Dataset] = None) -> RasterInfo:
    """Describe ``path``; ``wavelengths`` (list, string or CSV path) overrides what the file says.

    Alpha bands are not spectral bands: they are left out of ``bands`` and of every per-band field
    (and out of :func:`read_window`'s default band list) and act as a mask instead.
    """
    ds = ds or open_raster(path)
    index = spectral_bands(ds)
    if not index:
        raise RasterOpenError(f"{path} has no band besides alpha bands")
    wl, fw = parse_user_wavelengths(wavelengths, len(index))
    if wl is None:
        wl, fw = read_wavelengths(ds, index)
    bands = [ds.GetRasterBand(i) for i in index]
    nodata = bands[0].GetNoDataValue()
    gt = ds.GetGeoTransform(can_return_null=True)
    return RasterInfo(
        path=str(path),
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        bands=len(index),
        geotransform=tuple(float(v) for v in (gt or (0.0, 1.0, 0.0, 0.0, 0.0, 1.0))),
        wkt=ds.GetProjection() or "",
        nodata=None if nodata is None else float(nodata),
        scale=tuple(float(b.GetScale() or 1.0) for b in bands),
        offset=tuple(float(b.GetOffset() or 0.0) for b in bands),
        band_names=tuple(b.GetDescription() or f"band {i}" for i, b in zip(index, bands)),
        wavelengths=wl,
        fwhm=fw,
        good_bands=read_bad_bands(ds, index),
        alpha_bands=tuple(i for i in range(1, ds.RasterCount + 1) if i not in index),
        mask_kind=mask_kind(ds),
        has_geotransform=gt is not None,
    )


# ---------------------------------------------------------------------------------------------------
# Spectral bands and GDAL masks (per-dataset .msk / internal masks, alpha bands, per-band masks)


def spectral_bands(ds: gdal.Dataset) -> List[int]:
    """1-based indices of the bands that hold data: every band whose colour interpretation is not alpha."""
    return [i for i in range(1, ds.RasterCount + 1)
            if ds.GetRasterBand(i).GetColorInterpretation() != gdal.GCI_AlphaBand]


def _mask_sources(ds: gdal.Dataset) -> List[Tuple[str, gdal.Band]]:
    """The GDAL masks that say more than nodata/NaN does.

    (kind, band whose values > 0 mean valid) of every mask that says more than nodata/NaN does:
    alpha bands themselves (GDAL uses an alpha band as mask only for 2- and 4-band rasters), then a
    per-dataset mask (.msk or internal, read once) or per-band masks.
    """
    index = spectral_bands(ds)
    out = [("alpha band", ds.GetRasterBand(i)) for i in range(1, ds.RasterCount + 1) if i not in index]
    for i in index:
        band = ds.GetRasterBand(i)
        flags = band.GetMaskFlags()
        if flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA | gdal.GMF_ALPHA):
            continue
        if flags & gdal.GMF_PER_DATASET:
            return out + [("dataset mask", band.GetMaskBand())]
        out.append(("per-band masks", band.GetMaskBand()))
    return out


def mask_kind(ds: gdal.Dataset) -> str:
    """'alpha band', 'dataset mask' (.msk or internal), 'per-band masks' (joined by ' and '), or ''."""
    return " and ".join(dict.fromkeys(kind for kind, _ in _mask_sources(ds)))


def same_file(a: str, b: str) -> bool:
    """True when two paths name the same file (resolving links), also for not-yet-existing ones."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def read_window(ds: gdal.Dataset, col: int, row: int, width: int, height: int,
                bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read a (bands, height, width) float32 window, mirrored outside the raster.

    Read a (bands, height, width) float32 window; parts outside the raster are mirrored. ``bands``
    (1-based) defaults to the spectral bands (alpha left out).

    Mirroring at raster edges is what makes a tile at the border see the same context the untiled run
    sees, so tiled and untiled outputs agree. The mirror is half-sample symmetric (edge pixel repeated,
    numpy's ``symmetric``): it is the only mirror that stays consistent between the LR and HR grids
    (LR pixel -1 mirrors LR pixel 0, whose HR block 0..r-1 is exactly what HR pixels -r..-1 mirror);
    ``reflect`` broke that and cost GLP 4 dB at the edges of the sample.
    """
    band_list = list(bands) if bands is not None else spectral_bands(ds)

    def read(c0: int, r0: int, w: int, h: int) -> np.ndarray:
        data = ds.ReadAsArray(c0, r0, w, h, band_list=band_list, buf_type=gdal.GDT_Float32)
        return np.asarray(data, dtype=np.float32).reshape(len(band_list), h, w)

    return _read_mirrored(read, ds.RasterXSize, ds.RasterYSize, col, row, width, height)


def read_mask_window(ds: gdal.Dataset, col: int, row: int, width: int, height: int) -> Optional[np.ndarray]:
    """Validity of a window from the raster's GDAL masks, or None without one.

    (height, width) bool where the GDAL mask (alpha band, .msk / internal dataset mask, per-band
    masks: every one must pass) marks a pixel valid, mirrored like :func:`read_window`; None when
    validity is nodata/NaN only.
    """
    sources = _mask_sources(ds)
    if not sources:
        return None
    ok = np.ones((height, width), dtype=bool)
    for _, source in sources:
        def read(c0: int, r0: int, w: int, h: int, band=source) -> np.ndarray:
            return band.ReadAsArray(c0, r0, w, h)[None]

        ok &= _read_mirrored(read, ds.RasterXSize, ds.RasterYSize, col, row, width, height)[0] > 0
    return ok


def _read_mirrored(read, xsize: int, ysize: int, col: int, row: int, width: int, height: int) -> np.ndarray:
    """``read(c0, r0, w, h) -> (n, h, w)`` for the part inside the raster, mirrored out to the window."""
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + width, xsize), min(row + height, ysize)
    if c1 <= c0 or r1 <= r0:
        # Window fully outside: reflect from the nearest edge strip.
        c0, c1 = _clamp_span(col, width, xsize)
        r0, r1 = _clamp_span(row, height, ysize)
    data = read(c0, r0, c1 - c0, r1 - r0)
    pads = ((0, 0), (r0 - row, row + height - r1), (c0 - col, col + width - c1))
    if any(p for pair in pads for p in pair):
        data = np.pad(data, [(max(a, 0), max(b, 0)) for a, b in pads], mode="symmetric")
        # A window entirely beyond the raster: keep its own size.
        data = data[:, :height, :width] if data.shape[1] >= height else data
    return data


def _clamp_span(start: int, size: int, limit: int) -> Tuple[int, int]:
    lo = min(max(start, 0), limit - 1)
    hi = min(max(start + size, lo + 1), limit)
    return lo, hi


def valid_mask(data: np.ndarray, nodata: Optional[float], good_bands: Optional[np.ndarray] = None,
               mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Valid pixels (H, W) of a (bands, H, W) window.

    Pixels (H, W) where every good band is finite and differs from nodata, and the GDAL ``mask``
    (from :func:`read_mask_window`) is set.
    """
    use = data if good_bands is None or good_bands.all() else data[good_bands]
    ok = np.isfinite(use).all(axis=0)
    if nodata is not None and np.isfinite(nodata):
        ok &= (use != nodata).all(axis=0)
    if mask is not None:
        ok &= mask
    return ok
