"""Band wavelengths and FWHM in every common convention, normalised to nanometres.

Lookup order (as EnMAP-Box's reader): GDAL ``IMAGERY`` domain (``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``),
band metadata ``wavelength`` + ``wavelength_units`` (ENVI / EnMAP-Box), the ENVI header's ``wavelength``
list, then a list or CSV given by the user.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import WavelengthError

_MICRO = ("micro", "um", "µm", "μm")


def to_nanometres(values: Sequence[float], units: Optional[str]) -> np.ndarray:
    """Convert to nm; without units, values below 20 are taken as micrometres."""
    arr = np.asarray(values, dtype=np.float64)
    u = (units or "").strip().lower()
    if any(tok in u for tok in _MICRO):
        return arr * 1000.0
    if "nano" in u or u == "nm":
        return arr
    if u in ("", "unknown") and arr.size and np.nanmax(arr) < 20:
        return arr * 1000.0
    if u and not ("nano" in u or u == "nm"):
        if "milli" in u or u == "mm":
            return arr * 1e6
    return arr


def _number(text, what: str) -> float:
    """``float(text)``, or a WavelengthError that quotes the value and says where it came from."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise WavelengthError(f"{what}: {str(text)!r} is not a number") from None
    if not np.isfinite(value):
        raise WavelengthError(f"{what}: {str(text)!r} is not a finite number")
    return value


def _parse_envi_list(text: str, what: str = "wavelength list") -> list:
    return [_number(v, what) for v in re.split(r"[,\s{}]+", text) if v.strip()]


def _from_imagery(ds, index: Sequence[int]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    wl, fw = [], []
    for i in index:
        md = ds.GetRasterBand(i).GetMetadata("IMAGERY") or {}
        if "CENTRAL_WAVELENGTH_UM" not in md:
            return None, None
        wl.append(_number(md["CENTRAL_WAVELENGTH_UM"], f"band {i} CENTRAL_WAVELENGTH_UM") * 1000.0)
        fw.append(_number(md["FWHM_UM"], f"band {i} FWHM_UM") * 1000.0 if "FWHM_UM" in md else np.nan)
    return np.array(wl), np.array(fw)


def _from_band_items(ds, index: Sequence[int]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    wl, fw = [], []
    for i in index:
        md = {k.lower(): v for k, v in (ds.GetRasterBand(i).GetMetadata() or {}).items()}
        if "wavelength" not in md:
            return None, None
        units = md.get("wavelength_units")
        wl.append(to_nanometres([_number(md["wavelength"], f"band {i} wavelength metadata")], units)[0])
        fw.append(to_nanometres([_number(md["fwhm"], f"band {i} fwhm metadata")], units)[0]
                  if "fwhm" in md else np.nan)
    return np.array(wl), np.array(fw)


def _from_envi(ds, index: Sequence[int]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    for domain in ("ENVI", ""):
        md = {k.lower(): v for k, v in (ds.GetMetadata(domain) or {}).items()}
        if "wavelength" in md:
            units = md.get("wavelength_units")
            wl = to_nanometres(_parse_envi_list(md["wavelength"], "ENVI wavelength list"), units)
            fw = to_nanometres(_parse_envi_list(md["fwhm"], "ENVI fwhm list"), units) if "fwhm" in md else None
            if wl.size == ds.RasterCount:  # one entry per GDAL band: keep those of ``index``
                wl = wl[np.asarray(index) - 1]
                fw = fw[np.asarray(index) - 1] if fw is not None and fw.size == ds.RasterCount else None
            if wl.size == len(index):
                if fw is None or fw.size != wl.size:
                    fw = np.full(wl.size, np.nan)
                return wl, fw
    return None, None


def _all_bands(ds, index: Optional[Sequence[int]]) -> Sequence[int]:
    return list(range(1, ds.RasterCount + 1)) if index is None else index


def read_wavelengths(ds, index: Optional[Sequence[int]] = None) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Wavelengths and FWHM (nm) of some GDAL bands.

    (wavelengths_nm, fwhm_nm) of the GDAL bands ``index`` (1-based, default all), or (None, None).
    FWHM entries may be NaN.
    """
    index = _all_bands(ds, index)
    readers = (_from_imagery, _from_band_items, _from_envi)
    for k, reader in enumerate(readers):
        wl, fw = reader(ds, index)
        if wl is not None:
            # GDAL's ENVI driver copies wavelengths to band items but leaves FWHM in the ENVI domain.
            for other in readers[k + 1:]:
                if fw is not None and not np.isnan(fw).all():
                    break
                _, fw2 = other(ds, index)
                if fw2 is not None and fw2.size == wl.size:
                    fw = fw2
            return wl, fw
    return None, None


def read_bad_bands(ds, index: Optional[Sequence[int]] = None) -> np.ndarray:
    """Good-band flags of some GDAL bands from their ``bbl`` items.

    Boolean 'good band' vector of the GDAL bands ``index`` (default all) from band ``bbl`` items
    (ENVI bad band list); all True without it.
    """
    index = _all_bands(ds, index)
    good = np.ones(len(index), dtype=bool)
    for k, i in enumerate(index):
        v = (ds.GetRasterBand(i).GetMetadata() or {}).get("bbl")
        if v is not None and _number(v, f"band {i} bbl (bad band flag)") == 0:
            good[k] = False
    return good


def parse_user_wavelengths(value: Union[str, Sequence[float], Path, None], bands: int
                           ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Wavelengths given by the user.

    A list, a comma string, or a CSV (first numeric column = nm, optional second = FWHM). Raises
    WavelengthError on a count mismatch.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    fw = None
    if isinstance(value, (str, Path)) and _is_file(value):
        rows = []
        try:
            with open(value, newline="") as fh:
                for row in csv.reader(fh):
                    nums = []
                    for cell in row:
                        try:
                            nums.append(float(cell))
                        except ValueError:
                            pass
                    if nums:
                        rows.append(nums)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise WavelengthError(f"wavelength file {value} cannot be read as CSV text ({exc})") from None
        # A leading integer index column (0..n-1 or 1..n) is skipped.
        if rows and len(rows[0]) >= 2 and all(float(r[0]).is_integer() for r in rows) and \
                [int(r[0]) for r in rows] in (list(range(len(rows))), list(range(1, len(rows) + 1))):
            rows = [r[1:] for r in rows]
        wl = np.array([r[0] for r in rows])
        if all(len(r) > 1 for r in rows):
            fw = np.array([r[1] for r in rows])
    elif isinstance(value, str):
        wl = np.array(_parse_envi_list(value, "given wavelengths"))
    else:
        wl = np.array([_number(v, "given wavelengths") for v in value], dtype=np.float64)
    if wl.size != bands:
        raise WavelengthError(f"{wl.size} wavelengths given for a raster with {bands} bands")
    bad = ~np.isfinite(wl) | (wl <= 0)
    if bad.any():
        raise WavelengthError(f"given wavelengths must be positive numbers; value {bad.argmax() + 1} is "
                              f"{wl[bad][0]:g}")
    factor = to_nanometres(wl, None)[0] / wl[0] if wl[0] else 1.0  # FWHM in the wavelengths' unit
    wl = wl * factor
    fw = fw * factor if fw is not None else np.full(wl.size, np.nan)
    return wl, fw


def _is_file(value) -> bool:
    """True for an existing file; False for a list-like string (even one too long to be a path)."""
    try:
        return Path(str(value)).is_file()
    except (OSError, ValueError):
        return False


def fill_missing_fwhm(wl: np.ndarray, fwhm: Optional[np.ndarray]) -> np.ndarray:
    """FWHM where missing = the local band spacing (a contiguous sampler's best guess)."""
    if fwhm is None:
        fwhm = np.full(wl.shape, np.nan)
    fwhm = np.array(fwhm, dtype=np.float64)
    if np.isnan(fwhm).any():
        spacing = np.gradient(wl) if wl.size > 1 else np.array([10.0])
        fwhm[np.isnan(fwhm)] = np.abs(spacing[np.isnan(fwhm)])
    return fwhm


def write_wavelengths(ds, wavelengths_nm: Sequence[float], fwhm_nm: Optional[Sequence[float]] = None) -> None:
    """Write wavelengths in both conventions: band items (nm) and the GDAL IMAGERY domain (µm)."""
    for i, wl in enumerate(wavelengths_nm, start=1):
        band = ds.GetRasterBand(i)
        band.SetMetadataItem("wavelength", f"{float(wl):.6g}")
        band.SetMetadataItem("wavelength_units", "Nanometers")
        band.SetMetadataItem("CENTRAL_WAVELENGTH_UM", f"{float(wl) / 1000:.6g}", "IMAGERY")
        if fwhm_nm is not None and np.isfinite(fwhm_nm[i - 1]):
            band.SetMetadataItem("fwhm", f"{float(fwhm_nm[i - 1]):.6g}")
            band.SetMetadataItem("FWHM_UM", f"{float(fwhm_nm[i - 1]) / 1000:.6g}", "IMAGERY")


def nearest_band(wavelengths_nm: np.ndarray, target_nm: float, tolerance_nm: float) -> Optional[int]:
    """Index of the band nearest to ``target_nm`` within the tolerance, else None."""
    if wavelengths_nm is None or len(wavelengths_nm) == 0:
        return None
    idx = int(np.argmin(np.abs(np.asarray(wavelengths_nm) - target_nm)))
    return idx if abs(wavelengths_nm[idx] - target_nm) <= tolerance_nm else None
