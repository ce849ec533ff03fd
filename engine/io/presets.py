"""Band-combination presets by wavelength (QGIS-free): which bands to show as red, green and blue.

A preset is three target wavelengths (nm). Each is matched to the nearest *good* band within a
tolerance (default 50 nm); when any of the three has no band within the tolerance, the preset is
*unavailable* for that raster and is reported so, never faked with other bands.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, WavelengthError
from .wavelengths import nearest_band

DEFAULT_TOLERANCE_NM = 50.0

#: name -> (red, green, blue) target wavelengths in nm
PRESETS: Dict[str, Tuple[float, float, float]] = {
    "true_colour": (640.0, 550.0, 470.0),
    "colour_infrared": (860.0, 650.0, 550.0),
    "swir": (2200.0, 1600.0, 860.0),
    "agriculture": (1600.0, 860.0, 470.0),
}
LABELS = {
    "true_colour": "True colour (640/550/470 nm)",
    "colour_infrared": "Colour infrared (860/650/550 nm)",
    "swir": "SWIR (2200/1600/860 nm)",
    "agriculture": "Agriculture (1600/860/470 nm)",
}
#: order in which a default display preset is looked for
FALLBACK_ORDER = ("true_colour", "colour_infrared", "agriculture", "swir")


@dataclass(frozen=True)
class PresetChoice:
    """Outcome of matching a preset to a raster's wavelengths.

    ``bands`` are 0-based band indices (red, green, blue), or None where unavailable; ``missing`` lists
    the target wavelengths without a band within the tolerance.
    """

    name: str
    targets: Tuple[float, float, float]
    bands: Optional[Tuple[int, int, int]]
    wavelengths: Optional[Tuple[float, float, float]]
    missing: Tuple[float, ...]
    tolerance: float

    @property
    def available(self) -> bool:
        return self.bands is not None

    def describe(self) -> str:
        if not self.available:
            return (f"preset {self.name} unavailable: no band within {self.tolerance:g} nm of "
                    + ", ".join(f"{t:g} nm" for t in self.missing))
        return f"preset {self.name}: " + ", ".join(
            f"{c} = band {b + 1} ({w:.1f} nm)" for c, b, w in zip("RGB", self.bands, self.wavelengths))


def parse_wavelength_triplet(text) -> Tuple[float, float, float]:
    """'860, 650, 550' (or a sequence) -> three floats in nm; values below 20 are taken as µm."""
    if isinstance(text, str):
        vals = [float(v) for v in re.split(r"[,;\s/]+", text.strip()) if v]
    else:
        vals = [float(v) for v in text]
    if len(vals) != 3:
        raise InputError(f"a preset needs three wavelengths (red, green, blue), got {text!r}")
    return tuple(v * 1000.0 if v < 20 else v for v in vals)  # type: ignore[return-value]


def resolve_preset(preset) -> Tuple[str, Tuple[float, float, float]]:
    """A preset name, or a user triplet of wavelengths -> (name, targets)."""
    if isinstance(preset, str) and preset.strip().lower().replace(" ", "_") in PRESETS:
        key = preset.strip().lower().replace(" ", "_")
        return key, PRESETS[key]
    targets = parse_wavelength_triplet(preset)
    return "custom " + "/".join(f"{t:g}" for t in targets), targets


def choose_bands(wavelengths: Optional[Sequence[float]], preset, tolerance: float = DEFAULT_TOLERANCE_NM,
                 good_bands: Optional[Sequence[bool]] = None) -> PresetChoice:
    """Match a preset (name or three wavelengths) to the nearest good bands within ``tolerance`` nm."""
    name, targets = resolve_preset(preset)
    if wavelengths is None or len(wavelengths) == 0:
        return PresetChoice(name, targets, None, None, tuple(targets), tolerance)
    wl = np.asarray(wavelengths, dtype=np.float64).copy()
    if good_bands is not None:
        wl[~np.asarray(good_bands, dtype=bool)] = np.inf
    picks = [nearest_band(wl, t, tolerance) for t in targets]
    missing = tuple(t for t, p in zip(targets, picks) if p is None)
    if missing:
        return PresetChoice(name, targets, None, None, missing, tolerance)
    bands = tuple(int(p) for p in picks)
    return PresetChoice(name, targets, bands, tuple(float(wl[b]) for b in bands), (), tolerance)


def default_preset(wavelengths, tolerance: float = DEFAULT_TOLERANCE_NM, good_bands=None
                   ) -> Optional[PresetChoice]:
    """True colour, else the first available of colour infrared, agriculture, SWIR.

    None if none fits (then the caller decides, e.g. bands 1/2/3 for a raster without wavelengths).
    """
    for name in FALLBACK_ORDER:
        c = choose_bands(wavelengths, name, tolerance, good_bands)
        if c.available:
            return c
    return None


def require_preset(wavelengths, preset, tolerance: float = DEFAULT_TOLERANCE_NM, good_bands=None) -> PresetChoice:
    """:func:`choose_bands` that raises :class:`WavelengthError` naming what is missing."""
    if wavelengths is None:
        raise WavelengthError("the raster has no band wavelengths; presets are chosen by wavelength "
                              "(set wavelengths in the file's metadata first)")
    c = choose_bands(wavelengths, preset, tolerance, good_bands)
    if not c.available:
        have = np.asarray(wavelengths)
        raise WavelengthError(c.describe() + f" (the raster covers {have.min():.0f}-{have.max():.0f} nm)")
    return c


def cumulative_cut(data: np.ndarray, lower: float = 2.0, upper: float = 98.0,
                   nodata: Optional[float] = None) -> Tuple[float, float]:
    """(low, high) percentiles of the finite, non-nodata values of ``data``."""
    v = np.asarray(data, dtype=np.float64).ravel()
    ok = np.isfinite(v)
    if nodata is not None and np.isfinite(nodata):
        ok &= v != nodata
    v = v[ok]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lower, upper])
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    return float(lo), float(hi)


def read_preview(path: str, bands: Sequence[int], max_side: int = 512) -> Tuple[np.ndarray, Optional[float]]:
    """(len(bands), h, w) float32 decimated read (GDAL nearest) of 0-based ``bands``, and nodata."""
    from osgeo import gdal

    from .raster import open_raster

    ds = open_raster(path)
    w, h = ds.RasterXSize, ds.RasterYSize
    f = max(1.0, max(w, h) / float(max_side))
    bw, bh = max(1, int(round(w / f))), max(1, int(round(h / f)))
    arr = ds.ReadAsArray(0, 0, w, h, buf_xsize=bw, buf_ysize=bh, band_list=[b + 1 for b in bands],
                         buf_type=gdal.GDT_Float32)
    nodata = ds.GetRasterBand(bands[0] + 1).GetNoDataValue()
    return np.asarray(arr, dtype=np.float32).reshape(len(bands), bh, bw), nodata


def stretch_rgb(rgb: np.ndarray, nodata: Optional[float], lower: float = 2.0, upper: float = 98.0) -> np.ndarray:
    """(3, h, w) -> (h, w, 4) float RGBA in 0..1 with a per-band cumulative cut; nodata transparent."""
    out = np.zeros(rgb.shape[1:] + (4,), dtype=np.float64)
    ok = np.isfinite(rgb).all(0)
    if nodata is not None and np.isfinite(nodata):
        ok &= (rgb != nodata).all(0)
    for i in range(3):
        lo, hi = cumulative_cut(rgb[i][ok], lower, upper)
        out[..., i] = np.clip((rgb[i] - lo) / (hi - lo), 0, 1)
    out[..., 3] = ok
    return out
