"""Sensor spectral response library and the spectral resampling matrix (HSI bands -> sensor bands).

Sensors are data files in ``engine/sensors/`` (one CSV each, ``# key: value`` header lines naming the
title, the kind and the source):

- ``kind: measured``: a published relative spectral response (RSR) table, ``wavelength_nm,<band>...``;
- ``kind: gaussian`` + ``format: centre_fwhm``: only centre wavelength and FWHM are published (or could be
  obtained offline); rows ``band,centre_nm,fwhm_nm`` and the curve is a Gaussian built from them,
  truncated at +-1.5 FWHM (0.2 % of the peak).

A custom sensor is a CSV in the first format (:func:`load_srf_csv`).

Resampling (:func:`srf_matrix`): each HSI band ``b`` is a Gaussian band-pass ``g_b`` from its centre and
FWHM (FWHM missing -> local band spacing). The band-passes are normalised per wavelength into a partition
of unity, ``phi_b = g_b / sum_b' g_b'``, over the *good* bands, so overlapping or unevenly spaced bands
(EnMAP's VNIR/SWIR overlap near 900-1000 nm) are not double counted. Then
``R[k, b] = integral S_k(l) phi_b(l) dl / integral S_k(l) covered(l) dl`` on a 0.1 nm grid: rows sum to 1,
bad bands get 0, and a flat spectrum stays flat. A wavelength counts as covered when it lies within one
FWHM of a good band's centre (``g_b >= 1/16``); if more than ``max_missing`` (default 1 %) of a sensor
band's response integral is not covered, :class:`WavelengthError` names the band and the missing part.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, WavelengthError
from ..io.wavelengths import fill_missing_fwhm, to_nanometres

SENSOR_DIR = Path(__file__).resolve().parent  # the CSV files sit beside this module
GRID_STEP_NM = 0.1
COVER_LEVEL = 1.0 / 16.0  # g_b at one FWHM from the centre
DEFAULT_MAX_MISSING = 0.01
GAUSS_TRUNCATE_FWHM = 1.5
_FOUR_LN2 = 4.0 * math.log(2.0)
# Plausibility bounds of sensor files (nm): optical to thermal infrared; a Gaussian band wider than
# MAX_FWHM_NM is a typo or a unit mistake (FWHM 1e9 tried to allocate 45 GiB).
MIN_WAVELENGTH_NM = 0.0
MAX_WAVELENGTH_NM = 20000.0
MAX_FWHM_NM = 2000.0


@dataclass(frozen=True)
class Sensor:
    """A multispectral sensor: band names and response curves on one wavelength grid (nm).

    Attributes:
        key: file stem (``sentinel2a_msi``) or the custom file's name.
        title: readable name.
        band_names: one per band.
        wavelengths: (n,) increasing, nm.
        responses: (bands, n) relative responses >= 0.
        kind: ``measured``, ``gaussian`` (built from centre/FWHM) or ``custom``.
        source: where the numbers come from.
    """

    key: str
    title: str
    band_names: Tuple[str, ...]
    wavelengths: np.ndarray = field(compare=False, repr=False)
    responses: np.ndarray = field(compare=False, repr=False)
    kind: str = "measured"
    source: str = ""
    note: str = ""

    @property
    def is_gaussian(self) -> bool:
        return self.kind == "gaussian"

    @property
    def bands(self) -> int:
        return len(self.band_names)

    @property
    def centres(self) -> np.ndarray:
        """Response-weighted centre wavelength of each band (nm)."""
        w = self.responses
        return (w * self.wavelengths[None]).sum(1) / w.sum(1)

    @property
    def fwhm(self) -> np.ndarray:
        """Full width at half maximum of each band (outermost half-maximum crossings, nm)."""
        out = []
        for y in self.responses:
            lo, hi = _crossings(self.wavelengths, y, y >= y.max() / 2.0, y.max() / 2.0)
            out.append(hi - lo)
        return np.array(out)

    def support(self, k: int, level: float = 0.0) -> Tuple[float, float]:
        """Wavelength range of band ``k`` above ``level`` x its peak.

        Wavelength range where band ``k``'s response, linearly interpolated between the tabulated
        samples, exceeds ``level`` x its peak. At level 0 this runs from the last zero sample before the
        response to the first zero sample after it: the ramps to those samples are part of the band.
        """
        y = self.responses[k]
        return _crossings(self.wavelengths, y, y > level * y.max(), level * y.max())

    def select(self, bands: Optional[Sequence[str]]) -> "Sensor":
        """A sensor with only the named bands (case-insensitive), in the given order."""
        if not bands:
            return self
        lower = [n.lower() for n in self.band_names]
        idx = []
        for b in bands:
            b = str(b).strip()
            if b.lower() not in lower:
                raise InputError(f"sensor {self.title} has no band {b!r}; its bands are "
                                 f"{', '.join(self.band_names)}")
            idx.append(lower.index(b.lower()))
        return Sensor(self.key, self.title, tuple(self.band_names[i] for i in idx), self.wavelengths,
                      self.responses[idx], self.kind, self.source, self.note)

    def describe(self) -> Dict:
        return {"sensor": self.key, "title": self.title, "kind": self.kind, "source": self.source,
                "bands": list(self.band_names),
                "centres_nm": [round(float(c), 3) for c in self.centres]}


def _crossings(x: np.ndarray, y: np.ndarray, above: np.ndarray, value: float) -> Tuple[float, float]:
    """Outermost crossings of ``value`` by a piecewise-linear curve.

    Outermost wavelengths where the piecewise-linear curve (x, y) crosses ``value`` around the
    samples flagged ``above`` (the table's ends when the curve is still above there).
    """
    idx = np.flatnonzero(above)
    i0, i1 = idx[0], idx[-1]
    lo = x[i0] if i0 == 0 else np.interp(value, [y[i0 - 1], y[i0]], [x[i0 - 1], x[i0]])
    hi = x[i1] if i1 == len(x) - 1 else np.interp(value, [y[i1 + 1], y[i1]], [x[i1 + 1], x[i1]])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------
# Reading sensor files


def _parse_header(lines: List[str]) -> Tuple[Dict[str, str], List[str]]:
    meta, body = {}, []
    for ln in lines:
        s = ln.strip()
        if not s:
            continue
        if s.startswith("#"):
            if ":" in s:
                k, v = s[1:].split(":", 1)
                meta[k.strip().lower()] = v.strip()
            continue
        body.append(s)
    return meta, body


def gaussian_sensor(key: str, title: str, names: Sequence[str], centres: Sequence[float],
                    fwhms: Sequence[float], source: str = "", note: str = "", step: float = 0.5) -> Sensor:
    """A sensor of Gaussian bands built from centre wavelengths and FWHM (nm)."""
    c, f = np.asarray(centres, float), np.asarray(fwhms, float)
    if c.size == 0 or np.any(f <= 0) or not np.all(np.isfinite(c)) or not np.all(np.isfinite(f)):
        raise InputError(f"sensor {title}: centres and positive FWHM are needed for every band")
    wild = np.flatnonzero((f > MAX_FWHM_NM) | (c <= MIN_WAVELENGTH_NM) | (c > MAX_WAVELENGTH_NM))
    if wild.size:
        b = wild[0]
        raise WavelengthError(f"sensor {title}: band {names[b]} has centre {c[b]:g} nm and FWHM {f[b]:g} nm; "
                              f"centres must lie in {MIN_WAVELENGTH_NM:g}-{MAX_WAVELENGTH_NM:g} nm and FWHM be at "
                              f"most {MAX_FWHM_NM:g} nm")
    lo = math.floor((c - GAUSS_TRUNCATE_FWHM * f).min()) - step
    hi = math.ceil((c + GAUSS_TRUNCATE_FWHM * f).max()) + step
    wl = np.arange(lo, hi + step / 2, step)
    d = wl[None] - c[:, None]
    resp = np.exp(-_FOUR_LN2 * d ** 2 / f[:, None] ** 2)
    resp[np.abs(d) > GAUSS_TRUNCATE_FWHM * f[:, None]] = 0.0
    return Sensor(key, title, tuple(str(n) for n in names), wl, resp, "gaussian", source, note)


def _read_table(body: List[str], where: str) -> Tuple[List[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO("\n".join(body))))
    if len(rows) < 2:
        raise InputError(f"{where}: no data rows (expected a header and one row per wavelength)")
    header = [h.strip() for h in rows[0]]
    data = []
    for i, r in enumerate(rows[1:], 2):
        if len(r) != len(header):
            raise InputError(f"{where}: row {i} has {len(r)} values, the header has {len(header)}")
        try:
            data.append([float(v) for v in r])
        except ValueError:
            raise InputError(f"{where}: row {i} holds a non-numeric value: {r}") from None
    return header, np.asarray(data, dtype=np.float64)


def _read_centre_fwhm(body: List[str], where: str) -> Tuple[List[str], List[float], List[float]]:
    """Rows ``band,centre_nm,fwhm_nm`` after a header line; errors name the file, row and value."""
    rows = list(csv.reader(io.StringIO("\n".join(body[1:]))))
    if not rows:
        raise InputError(f"{where}: no band rows (expected 'band,centre_nm,fwhm_nm' lines after the header)")
    names, centres, fwhms = [], [], []
    for i, r in enumerate(rows, 2):
        if len(r) != 3:
            raise InputError(f"{where}: row {i} has {len(r)} value(s) ({','.join(r)}); expected "
                             "band,centre_nm,fwhm_nm")
        try:
            c, f = float(r[1]), float(r[2])
        except ValueError:
            raise InputError(f"{where}: row {i} (band {r[0].strip()}) holds a non-numeric centre or FWHM: "
                             f"{r[1].strip()!r}, {r[2].strip()!r}") from None
        if not (math.isfinite(c) and MIN_WAVELENGTH_NM < c <= MAX_WAVELENGTH_NM):
            raise WavelengthError(f"{where}: row {i} (band {r[0].strip()}): centre {r[1].strip()} nm is outside "
                                  f"{MIN_WAVELENGTH_NM:g}-{MAX_WAVELENGTH_NM:g} nm")
        if not (math.isfinite(f) and 0 < f <= MAX_FWHM_NM):
            raise WavelengthError(f"{where}: row {i} (band {r[0].strip()}): FWHM {r[2].strip()} nm must be > 0 "
                                  f"and at most {MAX_FWHM_NM:g} nm")
        names.append(r[0].strip())
        centres.append(c)
        fwhms.append(f)
    return names, centres, fwhms


def _check_wavelength_range(wl_nm: np.ndarray, where: str) -> None:
    """Tables beyond the optical range are a unit mistake, and would make the 0.1 nm grid enormous."""
    bad = np.flatnonzero((wl_nm < 0) | (wl_nm > MAX_WAVELENGTH_NM))
    if bad.size:
        raise WavelengthError(f"{where}: wavelength {wl_nm[bad[0]]:g} nm (row {bad[0] + 2}) is outside "
                              f"0-{MAX_WAVELENGTH_NM:g} nm")


def _sensor_from_text(text: str, key: str, where: str, custom: bool) -> Sensor:
    meta, body = _parse_header(text.splitlines())
    title = meta.get("title", key)
    source = meta.get("source", where if custom else "")
    note = meta.get("note", "")
    if meta.get("format", "") == "centre_fwhm":
        names, centres, fwhms = _read_centre_fwhm(body, where)
        return gaussian_sensor(key, title, names, centres, fwhms, source, note)
    header, data = _read_table(body, where)
    if len(header) < 2:
        raise InputError(f"{where}: expected a wavelength column and at least one band column")
    wl = data[:, 0]
    if not np.all(np.isfinite(data)):
        raise InputError(f"{where}: holds empty or non-finite values")
    _check_wavelength_range(to_nanometres(wl, None), where)
    if np.any(np.diff(wl) <= 0):
        i = int(np.flatnonzero(np.diff(wl) <= 0)[0])
        raise WavelengthError(f"{where}: wavelengths are not in increasing order "
                              f"(row {i + 3}: {wl[i + 1]:g} after {wl[i]:g})")
    wl = to_nanometres(wl, None)
    resp = data[:, 1:].T
    neg = np.argwhere(resp < 0)
    if neg.size:
        b, j = neg[0]
        raise InputError(f"{where}: band {header[b + 1]} has a negative response {resp[b, j]:g} at "
                         f"{wl[j]:g} nm ({len(neg)} negative value(s)); responses must be >= 0")
    for b in range(resp.shape[0]):
        if resp[b].max() <= 0:
            raise InputError(f"{where}: band {header[b + 1]} has no positive response")
    kind = "custom" if custom else meta.get("kind", "measured")
    return Sensor(key, title, tuple(header[1:]), wl, resp, kind, source, note)


def list_sensors() -> List[str]:
    """Keys of the bundled sensors, sorted."""
    return sorted(p.stem for p in SENSOR_DIR.glob("*.csv"))


def sensor_titles() -> Dict[str, str]:
    """Key -> ``title [kind]`` of every bundled sensor (for choosers)."""
    out = {}
    for key in list_sensors():
        with open(SENSOR_DIR / f"{key}.csv", encoding="utf-8") as fh:
            head = [next(fh, "") for _ in range(8)]
        meta, _ = _parse_header(head)
        kind = meta.get("kind", "measured")
        out[key] = f"{meta.get('title', key)} [{'Gaussian from centre/FWHM' if kind == 'gaussian' else kind}]"
    return out


def load_sensor(name: str, bands: Optional[Sequence[str]] = None) -> Sensor:
    """A bundled sensor by key (``sentinel2a_msi``) or title, case-insensitive; ``bands`` selects bands."""
    key = str(name).strip()
    path = SENSOR_DIR / f"{key.lower()}.csv"
    if not path.is_file():
        for k in list_sensors():
            meta, _ = _parse_header((SENSOR_DIR / f"{k}.csv").read_text().splitlines()[:6])
            if meta.get("title", "").lower() == key.lower():
                path = SENSOR_DIR / f"{k}.csv"
                break
        else:
            raise InputError(f"unknown sensor {name!r}; bundled sensors: {', '.join(list_sensors())} "
                             "(or give an SRF file)")
    return _sensor_from_text(path.read_text(), path.stem, str(path), custom=False).select(bands)


def load_srf_csv(path: str, bands: Optional[Sequence[str]] = None) -> Sensor:
    """A custom sensor from a CSV.

    Header ``wavelength,<band>,...``, one row per wavelength (nm, or µm when all values are below 20),
    responses >= 0. ``#`` lines are comments (``# title: ...``).
    """
    p = Path(str(path))
    if not p.is_file():
        raise InputError(f"SRF file {path} does not exist")
    return _sensor_from_text(p.read_text(), p.stem, str(p), custom=True).select(bands)


def resolve_sensor(sensor=None, srf_file: Optional[str] = None, bands=None) -> Sensor:
    """A :class:`Sensor` from a Sensor, a bundled name or an SRF file (the file wins)."""
    if isinstance(bands, str):
        bands = [b for b in bands.replace(";", ",").split(",") if b.strip()]
    if srf_file:
        return load_srf_csv(srf_file, bands)
    if isinstance(sensor, Sensor):
        return sensor.select(bands)
    if not sensor:
        raise InputError("no sensor given: choose a bundled SENSOR or give an SRF_FILE")
    return load_sensor(sensor, bands)


# ---------------------------------------------------------------------------------------------------
# Resampling matrix


def hsi_bandpasses(grid: np.ndarray, wavelengths: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    """(bands, n) peak-normalised Gaussian band-passes of HSI bands on ``grid``."""
    d = grid[None, :] - wavelengths[:, None]
    return np.exp(-_FOUR_LN2 * d ** 2 / fwhm[:, None] ** 2)


def srf_matrix(sensor: Sensor, hsi_wavelengths, hsi_fwhm=None, good_bands=None,
               max_missing: float = DEFAULT_MAX_MISSING, step: float = GRID_STEP_NM) -> np.ndarray:
    """(sensor bands x HSI bands) resampling matrix, rows summing to 1, bad-band columns 0.

    Raises :class:`WavelengthError` when the HSI has no wavelengths, or does not cover more than
    ``1 - max_missing`` of a sensor band's response (naming the band, the missing fraction and range).
    """
    if hsi_wavelengths is None:
        raise WavelengthError("the hyperspectral raster has no band wavelengths; give WAVELENGTHS")
    wl = np.asarray(hsi_wavelengths, dtype=np.float64)
    C = wl.size
    good = np.ones(C, bool) if good_bands is None else np.asarray(good_bands, bool).copy()
    good &= np.isfinite(wl)
    if not good.any():
        raise WavelengthError("the hyperspectral raster has no good band with a wavelength")
    fw = fill_missing_fwhm(np.where(np.isfinite(wl), wl, 0.0), hsi_fwhm)
    if np.any(fw[good] <= 0):
        raise WavelengthError("hyperspectral FWHM must be positive")
    gi = np.flatnonzero(good)
    gwl, gfw = wl[gi], fw[gi]
    R = np.zeros((sensor.bands, C), dtype=np.float64)
    for k in range(sensor.bands):
        lo, hi = sensor.support(k)
        x0 = math.floor(lo / step) * step - step
        grid = np.arange(x0, hi + 2 * step, step)
        S = np.interp(grid, sensor.wavelengths, sensor.responses[k], left=0.0, right=0.0)
        near = np.abs(gwl - 0.5 * (lo + hi)) <= 0.5 * (hi - lo) + 4 * gfw
        g = hsi_bandpasses(grid, gwl[near], gfw[near])
        total = g.sum(axis=0)
        covered = g.max(axis=0, initial=0.0) >= COVER_LEVEL if g.size else np.zeros(grid.size, bool)
        s_all = np.trapz(S, grid)
        missing = 1.0 - np.trapz(S * covered, grid) / s_all
        if missing > max_missing:
            raise WavelengthError(_coverage_message(sensor, k, grid, S, covered, missing, gwl, gfw))
        phi = np.where(covered, g / np.where(total > 0, total, 1.0), 0.0)
        w = np.trapz(S[None] * phi, grid, axis=1)
        row = np.zeros(C)
        row[gi[near]] = w
        R[k] = row / row.sum()
    return R


def _coverage_message(sensor, k, grid, S, covered, missing, gwl, gfw) -> str:
    gap = (~covered) & (S > 0)
    lo, hi = grid[gap].min(), grid[gap].max()
    return (f"the hyperspectral bands do not cover {sensor.title} band {sensor.band_names[k]} "
            f"({sensor.support(k, 0.01)[0]:g}-{sensor.support(k, 0.01)[1]:g} nm): {100 * missing:.1f} % of "
            f"its response ({lo:.1f}-{hi:.1f} nm) lies outside the good HSI bands "
            f"({(gwl - gfw).min():.1f}-{(gwl + gfw).max():.1f} nm, bad bands excluded); "
            f"drop this band (band selection) or use a sensor inside the HSI range")


def covered_bands(sensor: Sensor, hsi_wavelengths, hsi_fwhm=None, good_bands=None,
                  max_missing: float = DEFAULT_MAX_MISSING) -> List[str]:
    """Names of the sensor bands the HSI covers (for choosing a band subset)."""
    out = []
    for name in sensor.band_names:
        try:
            srf_matrix(sensor.select([name]), hsi_wavelengths, hsi_fwhm, good_bands, max_missing)
            out.append(name)
        except WavelengthError:
            pass
    return out


def apply_srf(matrix: np.ndarray, cube: np.ndarray) -> np.ndarray:
    """(c, H, W) float64 = matrix @ cube per pixel, summed band by band in a fixed order.

    The fixed order makes the result of a pixel independent of the tile it was computed in.
    """
    out = np.zeros((matrix.shape[0],) + cube.shape[1:], dtype=np.float64)
    for b in np.flatnonzero(np.any(matrix != 0, axis=0)):
        xb = cube[b].astype(np.float64)
        for k in range(matrix.shape[0]):
            if matrix[k, b] != 0:
                out[k] += matrix[k, b] * xb
    return out
