"""Blind estimation of the spectral (SRF) and spatial (PSF) responses from an LR-HSI + HR-MSI pair.

In the spirit of HySure (Simões et al. 2015) and CNMF's estimation (Yokoya et al. 2012): with
``Z = R X`` and ``Y = (X * B) decimated by r``, the MSI degraded by the true PSF equals ``R Y`` on the
LR grid. So for a candidate PSF ``B``:

1. ``Zd = (Z * B) decimated by r`` (:func:`.degradation.blur_decimate`, block-centred, reflect at raster
   edges, nodata-aware);
2. per MSI band ``k``: ``min_r  mean_px (Zd_k - r^T Y)^2 + smoothness * ||D2 r||^2``, ``r >= 0``, where
   ``D2`` is the second difference along increasing wavelength over the good HSI bands (non-negative
   least squares on the augmented system, :func:`scipy.optimize.nnls`); optionally ``r`` is limited to
   the bands within ``FWHM_k + 20 nm`` of the MSI band's centre when the MSI declares centre and FWHM;
3. the PSF's Gaussian FWHM is the one minimising the summed residual: a coarse log-spaced grid from
   0.25 r to 3 r HR pixels, then golden-section search between the best grid point's neighbours;
   then the sampling phase (integer HR-pixel shift of the PSF centre from the block centre) is searched
   in ``[-r/2, r/2]^2`` and the FWHM refined again if the phase is not zero.

Values are divided by one common scale (the 99th percentile of the HSI) so the smoothness weight does not
depend on units; each SRF row's sum is its *gain* (1 when HSI and MSI are in the same units).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, NoValidDataError, OutputError, WavelengthError
from ..feedback import Feedback, check_cancel, ensure_feedback
from ..io.outputs import check_outputs, replacing
from ..io.pair import validate_pair
from ..io.raster import open_raster, raster_info, read_window, valid_mask
from ..io.scene import require_bands_with_data, without_empty_bands
from ..io.wavelengths import fill_missing_fwhm
from ..io.windows import Window, intersection
from ..version import __version__
from .degradation import FWHM_TO_SIGMA, PSF, blur_decimate
from .srf import hsi_bandpasses

DEFAULT_SMOOTHNESS = 2e-6
DEFAULT_MAX_LR_SIDE = 256
MAX_FIT_PIXELS = 20000
FWHM_RANGE = (0.25, 3.0)   # x ratio, HR pixels
SUPPORT_PAD_NM = 20.0
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass
class EstimateResult:
    """What :func:`estimate_srf_psf` found."""

    srf: np.ndarray                    # (msi bands, hsi bands) rows summing to 1, bad bands 0
    gain: np.ndarray                   # (msi bands,) sum of each fitted row before normalisation
    fwhm: float                        # HR pixels
    phase: Tuple[int, int]             # (dx, dy) HR px of the PSF centre from the block centre
    residual: float                    # relative RMS residual of the fit (over all MSI bands)
    band_residual: np.ndarray          # (msi bands,) relative RMS residual per band
    r2: np.ndarray                     # (msi bands,) coefficient of determination per band
    ratio: int
    scan: List[Tuple[float, float]] = field(default_factory=list)  # (fwhm, residual) evaluated
    pixels: int = 0
    msi_bands: Tuple[str, ...] = ()
    hsi_wavelengths: Optional[np.ndarray] = None
    good: Optional[np.ndarray] = None


# ------------------------------------------------------------------------------------------ reading
def _read_pair(hsi: str, msi: str, max_lr_side: int, margin_hr: int, hsi_wavelengths=None,
               msi_wavelengths=None, feedback: Optional[Feedback] = None):
    """A centred crop: LR-HSI (C,h,w), its valid mask, HR-MSI with ``margin_hr`` context, its mask, the good bands.

    The good HSI bands leave out those that are nodata everywhere (they would make every pixel invalid).
    """
    hi = raster_info(hsi, hsi_wavelengths)
    mi = raster_info(msi, msi_wavelengths)
    pair = validate_pair(hi, mi)
    r = pair.ratio
    # Whole LR pixels inside the MSI and the HSI.
    inner = Window(-(-pair.region.col // r), -(-pair.region.row // r), 0, 0)
    w_in = pair.region.col_end // r - inner.col
    h_in = pair.region.row_end // r - inner.row
    lr_all = intersection(Window(inner.col, inner.row, max(0, w_in), max(0, h_in)),
                          Window(0, 0, hi.width, hi.height))
    if lr_all.width < 4 or lr_all.height < 4:
        raise InputError(f"the HSI/MSI overlap is only {lr_all.width}x{lr_all.height} LR pixels; at least "
                         "4x4 are needed to estimate the responses")
    w, h = min(lr_all.width, max_lr_side), min(lr_all.height, max_lr_side)
    col = lr_all.col + (lr_all.width - w) // 2
    row = lr_all.row + (lr_all.height - h) // 2
    lr_win = Window(col, row, w, h)
    hds, mds = open_raster(hi.path), open_raster(mi.path)
    y = read_window(hds, col, row, w, h).astype(np.float64)
    good = without_empty_bands(hi.path, hi, hi.good_flags, "HSI", "left out of the fit", ensure_feedback(feedback))
    require_bands_with_data(mi.path, mi, "MSI")
    y_ok = valid_mask(y, hi.nodata, good)
    hr = Window(col * r, row * r, w * r, h * r).pad(margin_hr)
    mw = pair.to_msi(hr)
    z = read_window(mds, mw.col, mw.row, mw.width, mw.height).astype(np.float64)
    z_ok = valid_mask(z, mi.nodata, mi.good_bands)
    return pair, lr_win, y, y_ok, z, z_ok, good


# ------------------------------------------------------------------------------------------ fitting
def second_difference(n: int) -> np.ndarray:
    d = np.zeros((max(n - 2, 0), n))
    for i in range(n - 2):
        d[i, i:i + 3] = (1.0, -2.0, 1.0)
    return d


class _Fitter:
    """Holds the LR data and solves the per-band NNLS for a given degraded MSI."""

    def __init__(self, y: np.ndarray, y_ok: np.ndarray, good: np.ndarray, wavelengths: Optional[np.ndarray],
                 smoothness: float, supports: Optional[List[np.ndarray]], seed: int = 0) -> None:
        self.gidx = np.flatnonzero(good)
        self.y = y[self.gidx]                                     # (G, h, w)
        self.y_ok = y_ok
        vals = self.y[:, y_ok]
        if vals.size == 0:
            raise NoValidDataError("the LR-HSI crop holds no valid pixel")
        self.scale = float(np.percentile(np.abs(vals), 99)) or 1.0
        G = self.gidx.size
        if wavelengths is not None and np.all(np.isfinite(wavelengths[self.gidx])):
            order = np.argsort(wavelengths[self.gidx], kind="stable")
        else:
            order = np.arange(G)
        perm = np.zeros((G, G))
        perm[np.arange(G), order] = 1.0
        self.penalty = math.sqrt(smoothness) * (second_difference(G) @ perm)
        self.supports = supports
        self.rng = np.random.default_rng(seed)

    def solve(self, zd: np.ndarray, zd_ok: np.ndarray, want_rows: bool = False):
        from scipy.optimize import nnls

        ok = self.y_ok & zd_ok
        n = int(ok.sum())
        if n < 8:
            raise NoValidDataError(f"only {n} LR pixels are valid in both images; cannot fit the responses")
        idx = np.flatnonzero(ok.ravel())
        if idx.size > MAX_FIT_PIXELS:
            idx = np.sort(self.rng.choice(idx, MAX_FIT_PIXELS, replace=False))
        A = self.y.reshape(self.y.shape[0], -1)[:, idx].T / self.scale
        s = 1.0 / math.sqrt(idx.size)
        rows = np.zeros((zd.shape[0], self.gidx.size))
        res = np.zeros(zd.shape[0])
        energy = np.zeros(zd.shape[0])
        r2 = np.zeros(zd.shape[0])
        for k in range(zd.shape[0]):
            b = zd[k].ravel()[idx] / self.scale
            cols = np.arange(self.gidx.size) if self.supports is None else self.supports[k]
            M = np.vstack([s * A[:, cols], self.penalty[:, cols]])
            rhs = np.concatenate([s * b, np.zeros(self.penalty.shape[0])])
            x, _ = nnls(M, rhs, maxiter=50 * max(len(cols), 10))
            rows[k, cols] = x
            e = A @ rows[k] - b
            res[k] = float(np.mean(e * e))
            energy[k] = float(np.mean(b * b)) or 1.0
            var = float(np.var(b)) or 1.0
            r2[k] = 1.0 - res[k] / var
        total = float(np.sum(res) / np.sum(energy))
        if want_rows:
            return total, rows, np.sqrt(res / energy), r2, idx.size
        return total


def _degraded(z: np.ndarray, z_ok: np.ndarray, fwhm: float, ratio: int, margin_hr: int, h: int, w: int,
              phase=(0, 0)):
    psf = PSF("gaussian", fwhm=float(fwhm))
    K = psf.size(ratio)
    start = margin_hr - (K - ratio) // 2
    dx, dy = phase
    if (K - ratio) // 2 + max(abs(dx), abs(dy)) > margin_hr:
        raise InputError(f"PSF FWHM {fwhm:.2f} needs more context than read ({margin_hr} HR px)")
    # blur_decimate uses one start for rows and columns: shift the arrays instead.
    zs = z[:, start + dy:, start + dx:]
    vs = z_ok[start + dy:, start + dx:]
    out, ok = blur_decimate(zs, psf, ratio, 0, h, w, vs)
    return out, ok


def _golden(f, a: float, b: float, tol: float, feedback) -> Tuple[float, float]:
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        check_cancel(feedback)
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d)
    return (c, fc) if fc < fd else (d, fd)


def band_supports(hsi_wl: np.ndarray, good: np.ndarray, msi_wl, msi_fwhm, pad_nm: float = SUPPORT_PAD_NM
                  ) -> Optional[List[np.ndarray]]:
    """Per MSI band the good-HSI-band indices (into the good list) within FWHM + pad of its centre.

    None when the MSI does not declare centre and FWHM for every band.
    """
    if msi_wl is None or msi_fwhm is None or hsi_wl is None:
        return None
    msi_wl, msi_fwhm = np.asarray(msi_wl, float), np.asarray(msi_fwhm, float)
    if not (np.all(np.isfinite(msi_wl)) and np.all(np.isfinite(msi_fwhm)) and np.all(msi_fwhm > 0)):
        return None
    gwl = np.asarray(hsi_wl, float)[np.flatnonzero(good)]
    out = []
    for c, f in zip(msi_wl, msi_fwhm):
        idx = np.flatnonzero(np.abs(gwl - c) <= f + pad_nm)
        if idx.size == 0:
            return None
        out.append(idx)
    return out


def estimate_responses(y: np.ndarray, y_ok: np.ndarray, z: np.ndarray, z_ok: np.ndarray, ratio: int,
                       margin_hr: int, good: np.ndarray, hsi_wavelengths=None, supports=None,
                       smoothness: float = DEFAULT_SMOOTHNESS, fwhm: Optional[float] = None,
                       search_phase: bool = True, feedback: Optional[Feedback] = None,
                       progress_span=(0.0, 100.0)) -> EstimateResult:
    """Core estimation on arrays.

    ``y`` (C,h,w) LR-HSI, ``z`` (c, r*h + 2m, r*w + 2m) HR-MSI with ``margin_hr`` = m context pixels. ``fwhm``
    fixes the PSF width (only the SRF is fitted).
    """
    feedback = ensure_feedback(feedback)
    r = int(ratio)
    h, w = y.shape[1:]
    wl = None if hsi_wavelengths is None else np.asarray(hsi_wavelengths, float)
    fitter = _Fitter(y, y_ok, good, wl, smoothness, supports)
    lo, hi = progress_span
    cache: Dict[Tuple[float, Tuple[int, int]], float] = {}
    scan: List[Tuple[float, float]] = []
    total_evals = [0]

    def cost(f: float, phase=(0, 0)) -> float:
        check_cancel(feedback)
        key = (round(float(f), 6), tuple(phase))
        if key not in cache:
            zd, ok = _degraded(z, z_ok, f, r, margin_hr, h, w, phase)
            cache[key] = fitter.solve(zd, ok)
            if tuple(phase) == (0, 0):
                scan.append((float(f), cache[key]))
            total_evals[0] += 1
            feedback.setProgress(lo + (hi - lo) * min(0.95, total_evals[0] / 45.0))
        return cache[key]

    phase = (0, 0)
    if fwhm is None:
        f_lo, f_hi = FWHM_RANGE[0] * r, FWHM_RANGE[1] * r
        grid = np.geomspace(f_lo, f_hi, 12)
        vals = [cost(f) for f in grid]
        i = int(np.argmin(vals))
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        best, _ = _golden(cost, float(a), float(b), 0.01 * r, feedback)
        feedback.pushInfo(f"PSF FWHM search: best {best:.3f} HR px (grid {f_lo:.2f}-{f_hi:.2f})")
        if search_phase and r > 1:
            half = r // 2
            cands = [(dx, dy) for dy in range(-half, half + 1) for dx in range(-half, half + 1)]
            pv = {p: cost(best, p) for p in cands}
            phase = min(pv, key=pv.get)
            if phase != (0, 0):
                feedback.pushInfo(f"sampling phase: PSF centre offset ({phase[0]}, {phase[1]}) HR px from the "
                                  "block centre; FWHM refined at that phase")
                best, _ = _golden(lambda f: cost(f, phase), float(a), float(b), 0.01 * r, feedback)
        fwhm = best
    zd, ok = _degraded(z, z_ok, fwhm, r, margin_hr, h, w, phase)
    total, rows, band_res, r2, npx = fitter.solve(zd, ok, want_rows=True)
    C = y.shape[0]
    gain = rows.sum(axis=1)
    full = np.zeros((rows.shape[0], C))
    full[:, fitter.gidx] = rows / np.where(gain > 0, gain, 1.0)[:, None]
    feedback.setProgress(hi)
    return EstimateResult(srf=full, gain=gain * 1.0, fwhm=float(fwhm), phase=tuple(int(v) for v in phase),
                          residual=math.sqrt(total), band_residual=band_res, r2=r2, ratio=r,
                          scan=sorted(scan), pixels=int(npx), hsi_wavelengths=wl, good=np.asarray(good, bool))


# ------------------------------------------------------------------------------------------ writing
def srf_density(srf_rows: np.ndarray, wavelengths: np.ndarray, fwhm: Optional[np.ndarray], good: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Turn band weights ``R[k, b]`` into response curves on the sorted good-band wavelengths.

    ``R[k, b]`` is the response integrated over band ``b``'s (partition-of-unity) band-pass, so the
    response at ``lambda_b`` is ``R[k, b] / width_b``; peak-normalised per band. Returns (wl, (c, n)).
    """
    wl = np.asarray(wavelengths, float)
    gi = np.flatnonzero(good)
    fw = fill_missing_fwhm(wl, fwhm)
    grid = np.arange(math.floor((wl[gi] - 2 * fw[gi]).min()), math.ceil((wl[gi] + 2 * fw[gi]).max()), 0.1)
    g = hsi_bandpasses(grid, wl[gi], fw[gi])
    phi = g / np.where(g.sum(0) > 0, g.sum(0), 1.0)
    width = np.trapz(phi, grid, axis=1)
    dens = srf_rows[:, gi] / np.where(width > 0, width, 1.0)[None]
    order = np.argsort(wl[gi], kind="stable")
    x, d = wl[gi][order], dens[:, order]
    # Merge (near-)duplicate wavelengths (overlapping detectors) so the axis strictly increases.
    keep_x, keep_d = [x[0]], [d[:, 0]]
    for i in range(1, x.size):
        if x[i] - keep_x[-1] < 0.05:
            keep_d[-1] = 0.5 * (keep_d[-1] + d[:, i])
        else:
            keep_x.append(x[i])
            keep_d.append(d[:, i])
    x, d = np.asarray(keep_x), np.stack(keep_d, axis=1)
    peak = d.max(axis=1, keepdims=True)
    return x, d / np.where(peak > 0, peak, 1.0)


def write_srf_csv(path: str, band_names: Sequence[str], wavelengths: np.ndarray, responses: np.ndarray,
                  title: str = "estimated SRF", source: str = "") -> str:
    """The custom-SRF CSV that :func:`.srf.load_srf_csv` reads (``wavelength_nm,<band>...``)."""
    names = [str(n).replace(",", " ").strip() or f"band{i + 1}" for i, n in enumerate(band_names)]
    lines = [f"# title: {title}", "# kind: custom"]
    if source:
        lines.append(f"# source: {source}")
    lines.append("wavelength_nm," + ",".join(names))
    for i, x in enumerate(wavelengths):
        lines.append(f"{x:.3f}," + ",".join(f"{max(0.0, v):.6g}" for v in responses[:, i]))
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _report_text(res: EstimateResult, info: Dict) -> str:
    lines = ["hsifusion: estimated spectral and spatial responses", "",
             f"HSI: {info['hsi']}", f"MSI: {info['msi']}",
             f"ratio: {res.ratio}; fitted on {res.pixels} LR pixels of an LR crop {info['crop']}",
             "",
             f"PSF: Gaussian, FWHM {res.fwhm:.3f} HR px (sigma {res.fwhm * FWHM_TO_SIGMA:.3f} HR px), "
             f"sampling phase offset ({res.phase[0]}, {res.phase[1]}) HR px from the block centre",
             f"relative RMS residual of the fit: {res.residual:.4g}", "",
             "MSI band | gain (row sum) | R^2 | rel. RMS residual | centre (nm, response-weighted) | HSI bands used"]
    wl = res.hsi_wavelengths
    for k, name in enumerate(res.msi_bands):
        row = res.srf[k]
        centre = float((row * wl).sum() / row.sum()) if wl is not None and row.sum() > 0 else float("nan")
        used = int((row > 1e-3 * row.max()).sum()) if row.max() > 0 else 0
        lines.append(f"{name} | {res.gain[k]:.4f} | {res.r2[k]:.4f} | {res.band_residual[k]:.4g} | "
                     f"{centre:.1f} | {used}")
    lines += ["", "FWHM scan (HR px: relative residual):"]
    lines += [f"  {f:.3f}: {v:.5g}" for f, v in res.scan]
    lines += ["", "Method: HySure-like regression of the PSF-degraded MSI on the LR-HSI with non-negativity "
              "and a second-difference smoothness penalty, per MSI band; PSF width by grid + golden-section "
              "search of the residual. A gain far from 1 means HSI and MSI are in different units."]
    return "\n".join(lines) + "\n"


def estimate_srf_psf(hsi: str, msi: str, output_srf: str, output_report: Optional[str] = None,
                     smoothness: float = DEFAULT_SMOOTHNESS, fwhm: Optional[float] = None,
                     search_phase: bool = True, use_support: bool = True,
                     max_lr_side: int = DEFAULT_MAX_LR_SIDE, feedback: Optional[Feedback] = None,
                     hsi_wavelengths=None, msi_wavelengths=None) -> Dict:
    """Estimate the SRF matrix and the Gaussian PSF of a pair; write the SRF CSV and a text report.

    Args:
        hsi: LR-HSI raster path.
        msi: HR-MSI raster path.
        output_srf: CSV in the custom-SRF format (usable as SRF_FILE by simulate and train).
        output_report: text report; default ``<output_srf stem>_report.txt``.
        smoothness: second-difference penalty weight (on data scaled to ~1).
        fwhm: fix the PSF FWHM (HR px) instead of searching it.
        search_phase: also search the sampling phase (PSF centre offset from the block centre, HR px).
        use_support: limit each MSI band to HSI bands within FWHM + 20 nm of its declared centre.
        max_lr_side: the fit uses a centred crop of at most this many LR pixels a side.
        feedback: progress, messages and cancel.
        hsi_wavelengths: HSI wavelengths in nm when the raster lacks them.
        msi_wavelengths: MSI wavelengths in nm when the raster lacks them.

    Returns:
        dict with OUTPUT_SRF, OUTPUT_REPORT, FWHM, PHASE, RESIDUAL, GAIN, SRF (matrix as lists).
    """
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    if not output_srf:
        raise OutputError("give an output SRF file (.csv)")
    if smoothness is None or not smoothness >= 0:
        raise InputError(f"SMOOTHNESS must be >= 0, got {smoothness}")
    if fwhm is not None and not fwhm > 0:
        fwhm = None
    report = output_report or os.path.splitext(output_srf)[0] + "_report.txt"
    check_outputs({"OUTPUT_SRF": output_srf, "OUTPUT_REPORT": report}, (hsi, msi))
    hi0 = raster_info(hsi, hsi_wavelengths)
    mi0 = raster_info(msi, msi_wavelengths)
    r = validate_pair(hi0, mi0).ratio
    f_max = fwhm if fwhm is not None else FWHM_RANGE[1] * r
    margin = PSF("gaussian", fwhm=f_max).margin(r) + r
    pair, lr_win, y, y_ok, z, z_ok, good = _read_pair(hsi, msi, int(max_lr_side), margin, hsi_wavelengths,
                                                      msi_wavelengths, feedback)
    hinfo, minfo = pair.hsi, pair.msi
    if hinfo.wavelengths is None:
        raise WavelengthError(f"HSI {hsi} has no band wavelengths; give HSI wavelengths so the SRF has a "
                              "wavelength axis")
    supports = band_supports(hinfo.wavelengths, good, minfo.wavelengths, minfo.fwhm) if use_support else None
    feedback.pushInfo(f"estimate: LR crop {lr_win.width}x{lr_win.height} px at ratio {r}, "
                      f"{int(good.sum())} good HSI bands, {minfo.bands} MSI bands, "
                      + ("band support from the MSI's centre/FWHM" if supports is not None
                         else "full spectral support"))
    res = estimate_responses(y, y_ok, z, z_ok, r, margin, good, hinfo.wavelengths, supports, smoothness,
                             fwhm, search_phase, feedback, (0.0, 95.0))
    res.msi_bands = tuple(minfo.band_names)
    x, dens = srf_density(res.srf, hinfo.wavelengths, hinfo.fwhm, good)
    write_srf_csv(output_srf, minfo.band_names, x, dens, title=f"SRF estimated from {os.path.basename(msi)}",
                  source=f"hsifusion {__version__} estimate_srf_psf from {os.path.basename(hsi)} + "
                         f"{os.path.basename(msi)}; PSF FWHM {res.fwhm:.3f} HR px")
    info = {"hsi": hsi, "msi": msi, "crop": f"{lr_win.width}x{lr_win.height} at ({lr_win.col}, {lr_win.row})"}
    with replacing(report) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_report_text(res, info))
        fh.write("\nJSON: " + json.dumps({"fwhm_hr_px": res.fwhm, "phase_hr_px": list(res.phase),
                                           "ratio": r, "gain": [round(float(g), 6) for g in res.gain],
                                           "residual": res.residual}) + "\n")
    seconds = time.perf_counter() - t0
    feedback.setProgress(100.0)
    feedback.pushInfo(f"PSF FWHM {res.fwhm:.3f} HR px, phase {res.phase}, residual {res.residual:.4g}; "
                      f"wrote {output_srf} and {report} in {seconds:.1f} s")
    return {"OUTPUT_SRF": output_srf, "OUTPUT_REPORT": report, "FWHM": res.fwhm, "PHASE": list(res.phase),
            "RESIDUAL": res.residual, "GAIN": res.gain.tolist(), "SRF": res.srf.tolist(),
            "R2": res.r2.tolist(), "RATIO": r, "SECONDS": seconds}
