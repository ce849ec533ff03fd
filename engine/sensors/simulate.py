"""Wald-protocol simulation: from an HR-HSI reference write the LR-HSI and the HR-MSI a sensor pair sees.

``Y = (X * PSF) decimated by r + n_Y`` (block-centred, :mod:`.degradation`) and ``Z = R X + n_Z``
(:func:`.srf.srf_matrix`). Runs tile by tile through :func:`..pipeline.tiling.pipeline` with a margin of the PSF
radius; both outputs are written under temporary names and renamed only when both succeeded.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import GridError, InputError, NoValidDataError, OutputError, WavelengthError
from ..feedback import Feedback, ensure_feedback
from ..io.outputs import check_outputs
from ..io.pair import require_positive_tile
from ..io.raster import RasterInfo, open_raster, raster_info, read_window, valid_mask
from ..io.scene import without_empty_bands
from ..io.windows import Window, intersection, tiles
from ..io.writer import RasterWriter, float_nodata
from ..pipeline.tiling import pipeline
from ..version import __version__
from .degradation import NOISE_BLOCK, PSF, blur_decimate, noise_block, noise_sigma, noise_window
from .srf import DEFAULT_MAX_MISSING, Sensor, apply_srf, covered_bands, resolve_sensor, srf_matrix

SIM_KEY = "HSIFUSION_SIMULATION"


def check_ratio(ratio) -> int:
    """RATIO must be an integer >= 2."""
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise InputError(f"RATIO must be an integer >= 2, got {ratio!r}") from None
    if not math.isfinite(r) or r != int(r) or r < 2:
        raise InputError(f"RATIO must be an integer >= 2, got {ratio!r}")
    return int(r)


def make_psf(psf: Union[PSF, Dict, str, None], fwhm=None, gain=None, kernel_file=None) -> PSF:
    """A :class:`PSF` from an instance, a dict of its fields, or a kind name plus options."""
    if isinstance(psf, PSF):
        return psf
    if isinstance(psf, dict):
        return PSF(**psf)
    kind = (psf or ("kernel" if kernel_file else "gaussian")).lower()
    kw = {"kind": kind}
    if kind == "gaussian" and fwhm not in (None, 0, 0.0):
        kw["fwhm"] = float(fwhm)
    if kind == "mtf" and gain is not None:
        kw["gain"] = float(gain)
    if kind == "kernel":
        kw["path"] = kernel_file
    return PSF(**kw)


def _uniform(values: Sequence[float], good: np.ndarray) -> bool:
    v = np.asarray(values)[good]
    return bool(np.all(v == v[0]))


def _has_bands(bands) -> bool:
    if isinstance(bands, str):
        return bool(bands.strip(" ,;"))
    return bool(bands)


def _covered_sensor(sens: Sensor, explicit: bool, info, good, max_missing, feedback):
    """Without an explicit band list keep the bands the HSI covers (warn about the others).

    With one, or when no band is covered, the coverage error of the first uncovered band is raised.
    """
    if explicit:
        return sens, []
    keep = covered_bands(sens, info.wavelengths, info.fwhm, good, max_missing)
    if not keep:
        srf_matrix(sens, info.wavelengths, info.fwhm, good, max_missing)  # raises, naming band and range
    dropped = [b for b in sens.band_names if b not in keep]
    if dropped:
        feedback.pushWarning(f"{sens.title}: band(s) {', '.join(dropped)} lie outside the good bands of "
                             f"{info.path} and are left out")
    return sens.select(keep), dropped


@dataclass
class SimulationPlan:
    """What one simulation reads, computes and writes: checked inputs, grids, tiles and working units."""

    reference: str
    out_hsi: Optional[str]
    out_msi: Optional[str]
    info: RasterInfo
    ratio: int
    psf: PSF
    seed: int
    snr_hsi: Optional[float]
    snr_msi: Optional[float]
    geotransform: Tuple[float, ...]
    good: np.ndarray
    sensor: Optional[Sensor] = None
    dropped: List[str] = field(default_factory=list)
    R: Optional[np.ndarray] = None
    lr_size: Tuple[int, int] = (0, 0)               # (w, h) of the LR-HSI
    margin: int = 0
    start: int = 0                                  # first PSF tap of a core's block in its padded read
    nodata: float = 0.0
    gidx: np.ndarray = None                         # indices of the good bands
    uniform: bool = True                            # one scale/offset for every good band: keep raw units
    scale: np.ndarray = None
    offset: np.ndarray = None
    work_scale: float = 1.0
    work_offset: float = 0.0
    cores: List[Window] = field(default_factory=list)
    tile_size: int = 256                            # as asked
    tile: int = 0                                   # HR tile side used (a multiple of the ratio)
    max_missing: float = DEFAULT_MAX_MISSING

    @property
    def noisy(self) -> bool:
        """Whether a first pass must measure the clean outputs' power for the noise level."""
        return (self.snr_hsi is not None and bool(self.out_hsi)) or (self.snr_msi is not None and bool(self.out_msi))


def simulate(reference: str, out_hsi: Optional[str], out_msi: Optional[str], ratio: int,
             psf: Union[PSF, Dict, str, None] = None, sensor: Union[str, Sensor, None] = "sentinel2a_msi",
             srf_file: Optional[str] = None, bands=None, snr_hsi: Optional[float] = None,
             snr_msi: Optional[float] = None, seed: int = 0, tile_size: int = 256,
             feedback: Optional[Feedback] = None, wavelengths=None,
             creation_options: Optional[Sequence[str]] = None,
             max_missing: float = DEFAULT_MAX_MISSING) -> Dict:
    """Simulate an LR-HSI (``out_hsi``) and an HR-MSI (``out_msi``) from an HR-HSI ``reference``.

    Args:
        reference: HR-HSI raster path.
        out_hsi: LR-HSI output path, or None to skip it.
        out_msi: HR-MSI output path, or None to skip it (at least one output is needed).
        ratio: integer >= 2; the LR pixel is ``ratio`` x the reference pixel, same origin.
        psf: :class:`PSF` (default Gaussian, FWHM = ratio HR px) or a dict / kind name.
        sensor: the MSI sensor (bundled key or :class:`Sensor`).
        srf_file: a custom-SRF CSV instead of ``sensor``.
        bands: optional band subset of the sensor; without it every band the HSI covers is used (others
            dropped with a warning).
        snr_hsi: SNR of the LR-HSI in dB, None = no noise.
        snr_msi: SNR of the HR-MSI in dB, None = no noise.
        seed: noise seed.
        tile_size: HR tile side of the tile loop.
        feedback: progress, messages and cancel.
        wavelengths: overrides the reference's wavelengths (list, string or CSV).
        creation_options: GDAL ``KEY=VALUE`` creation options, overriding the defaults key by key.
        max_missing: largest fraction of a sensor band's response the HSI may miss (default 1 %).

    Returns:
        dict with OUTPUT_HSI, OUTPUT_MSI, RATIO, LR_SIZE, BANDS, NOISE_SIGMA_HSI/MSI, TILES, SECONDS.
    """
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    plan = _validate_simulation(reference, out_hsi, out_msi, ratio, psf, sensor, srf_file, bands, snr_hsi,
                                snr_msi, seed, tile_size, feedback, wavelengths, max_missing)
    _plan_simulation(plan, feedback)
    tiles = SimulationTiles(plan)
    sig_hsi, sig_msi, span = _noise_sigmas(plan, tiles, feedback)
    tiles.sigmas = (sig_hsi, sig_msi)
    paths = _write_simulation(plan, tiles, _simulation_record(plan, sig_hsi, sig_msi), span, creation_options,
                              feedback)
    seconds = time.perf_counter() - t0
    feedback.pushInfo(f"wrote {', '.join(paths.values())} in {seconds:.1f} s")
    sens = plan.sensor
    w, h = plan.lr_size
    return {"OUTPUT_HSI": paths.get("hsi"), "OUTPUT_MSI": paths.get("msi"), "RATIO": plan.ratio, "LR_SIZE": [w, h],
            "BANDS": list(sens.band_names) if sens else [], "BANDS_DROPPED": plan.dropped,
            "NOISE_SIGMA_HSI": sig_hsi, "NOISE_SIGMA_MSI": sig_msi, "TILES": len(plan.cores), "SECONDS": seconds}


def _validate_simulation(reference, out_hsi, out_msi, ratio, psf, sensor, srf_file, bands, snr_hsi, snr_msi,
                         seed, tile_size, feedback: Feedback, wavelengths, max_missing) -> SimulationPlan:
    """Check every argument, the reference's grid and the spectral side before anything is written."""
    r = check_ratio(ratio)
    tile_size = require_positive_tile(tile_size)
    psf = make_psf(psf)
    seed = int(seed or 0)
    for name, snr in (("SNR_HSI", snr_hsi), ("SNR_MSI", snr_msi)):
        if snr is not None and not math.isfinite(float(snr)):
            raise InputError(f"{name} must be a finite number of dB, got {snr}")
    if not out_hsi and not out_msi:
        raise OutputError("give OUTPUT_HSI, OUTPUT_MSI or both")

    info = raster_info(reference, wavelengths)
    if info.bands < 3:
        raise InputError(f"reference {reference} has {info.bands} band(s); a hyperspectral reference is needed")
    gt = info.grid
    if gt[2] != 0 or gt[4] != 0:
        raise GridError(f"reference {reference} has a rotated geotransform; warp it north-up first")
    if not info.has_georeference:
        feedback.pushWarning(f"reference {reference} has no georeferencing: outputs use its pixel grid "
                             f"(HR pixel 1 x 1 at origin 0,0, LR pixel {r} x {r}) and no CRS")
    K = psf.size(r)
    if psf.kind == "kernel" and psf.kernel(r)[1]:
        feedback.pushWarning(f"the PSF kernel's side has the other parity than ratio {r}: a zero row and column "
                             "were appended, so it is centred half an HR pixel up-left of the block centre")
    if info.width < max(K, r) or info.height < max(K, r):
        raise InputError(f"reference {info.width}x{info.height} px is smaller than the PSF kernel "
                         f"({K}x{K} HR px at ratio {r}); use a larger raster or a narrower PSF")
    good = _bands_with_data(reference, info, feedback)
    plan = SimulationPlan(reference, out_hsi, out_msi, info, r, psf, seed, snr_hsi, snr_msi, gt, good,
                          tile_size=tile_size, max_missing=max_missing)

    if out_msi:
        if info.wavelengths is None or not np.all(np.isfinite(info.wavelengths)):
            raise WavelengthError(f"reference {reference} has no band wavelengths; give WAVELENGTHS "
                                  "(a list, or a CSV of wavelength[,fwhm] per band)")
        plan.sensor, plan.dropped = _covered_sensor(resolve_sensor(sensor, srf_file, bands), _has_bands(bands),
                                                    info, good, max_missing, feedback)
        plan.R = srf_matrix(plan.sensor, info.wavelengths, info.fwhm, good, max_missing)
    check_outputs({"OUTPUT_HSI": out_hsi, "OUTPUT_MSI": out_msi}, (reference,))
    return plan


def _bands_with_data(reference: str, info: RasterInfo, feedback: Feedback) -> np.ndarray:
    """The good bands: not flagged ``bbl = 0`` and holding a valid value (else both outputs would be all nodata)."""
    good = without_empty_bands(reference, info, info.good_flags, "reference",
                               "bbl = 0 and nodata in an LR-HSI, left out of an MSI's spectral response", feedback)
    if not good.any():
        raise NoValidDataError(f"reference {reference} holds no valid value in any good band")
    return good


def _plan_simulation(plan: SimulationPlan, feedback: Feedback) -> None:
    """Fill in the LR grid, the tiles, the margin and the working units of a validated plan."""
    info, r, psf = plan.info, plan.ratio, plan.psf
    H, W = info.height, info.width
    h, w = H // r, W // r
    plan.lr_size = (w, h)
    if (H % r or W % r) and plan.out_hsi:
        feedback.pushWarning(f"reference {W}x{H} is not a multiple of ratio {r}: the LR-HSI covers the first "
                             f"{w * r}x{h * r} HR pixels ({W - w * r} column(s), {H - h * r} row(s) dropped)")
    K = psf.size(r)
    plan.margin = psf.margin(r)
    plan.start = plan.margin - (K - r) // 2
    plan.nodata = float_nodata(info.nodata)
    plan.gidx = np.flatnonzero(plan.good)
    plan.uniform = _uniform(info.scale, plan.good) and _uniform(info.offset, plan.good)
    plan.scale = np.asarray(info.scale)[plan.gidx][:, None, None]
    plan.offset = np.asarray(info.offset)[plan.gidx][:, None, None]
    if plan.uniform:
        plan.work_scale, plan.work_offset = float(plan.scale.flat[0]), float(plan.offset.flat[0])
    region = Window(0, 0, W, H)
    plan.tile = max(r, (plan.tile_size // r) * r)
    plan.cores = [c for c in tiles(region, plan.tile, r) if not intersection(c, region).empty]
    sens = plan.sensor
    feedback.pushInfo(f"simulate: reference {W}x{H}x{info.bands} ({len(plan.gidx)} good bands), ratio {r}, "
                      f"PSF {psf.kind} {K}x{K} HR px, LR {w}x{h}"
                      + (f", MSI {sens.title} {sens.bands} band(s)" if sens else "")
                      + f", {len(plan.cores)} tile(s) of {plan.tile} px, margin {plan.margin} px")


@dataclass
class CleanTile:
    """The noise-free outputs of one core, in working units: LR-HSI and HR-MSI windows, values, validity."""

    lr_window: Optional[Window]
    lr: Optional[np.ndarray]
    lr_valid: Optional[np.ndarray]
    msi_window: Optional[Window]
    msi: Optional[np.ndarray]
    msi_valid: Optional[np.ndarray]


class SimulationTiles:
    """The read / compute / write steps of :func:`..pipeline.tiling.pipeline` for one :class:`SimulationPlan`."""

    def __init__(self, plan: SimulationPlan) -> None:
        self.plan = plan
        self.ds = open_raster(plan.reference)
        self.band_list = [int(i) + 1 for i in plan.gidx]
        self.Rg = plan.R[:, plan.gidx] if plan.R is not None else None
        w, h = plan.lr_size
        self.region = Window(0, 0, plan.info.width, plan.info.height)
        self.lr_region = Window(0, 0, w * plan.ratio, h * plan.ratio)
        self.sigmas = (0.0, 0.0)
        self.power = {"hsi": [0.0, 0], "msi": [0.0, 0]}  # sum of squares and count, physical units
        self.valid_pixels = {"hsi": 0, "msi": 0}  # written so far (pass 2)
        self.writers: Dict[str, RasterWriter] = {}

    def read(self, core: Window):
        m = self.plan.margin
        return read_window(self.ds, core.col - m, core.row - m, core.width + 2 * m, core.height + 2 * m,
                           bands=self.band_list)

    def clean(self, core: Window, data) -> CleanTile:
        p, r = self.plan, self.plan.ratio
        valid = valid_mask(data, p.info.nodata)
        x = data.astype(np.float64)
        if not p.uniform:
            x = x * p.scale + p.offset
        lr = lrw = lrv = None
        if p.out_hsi:
            lw = intersection(core, self.lr_region)
            if not lw.empty:
                lrw = Window(lw.col // r, lw.row // r, lw.width // r, lw.height // r)
                lr, lrv = blur_decimate(x, p.psf, r, p.start, lrw.height, lrw.width, valid)
        ms = msw = msv = None
        if p.out_msi:
            msw = intersection(core, self.region)
            sl = msw.slices_in(core.pad(p.margin))
            ms = apply_srf(self.Rg, x[:, sl[0], sl[1]])
            msv = valid[sl]
        return CleanTile(lrw, lr, lrv, msw, ms, msv)

    def accumulate(self, core: Window, data) -> None:
        """Pass 1: add the tile's clean outputs to the mean squares (physical units)."""
        t, p = self.clean(core, data), self.plan
        for key, arr, v in (("hsi", t.lr, t.lr_valid), ("msi", t.msi, t.msi_valid)):
            if arr is not None and v.any():
                phys = arr[:, v] * p.work_scale + p.work_offset
                self.power[key][0] += float(np.sum(phys * phys))
                self.power[key][1] += phys.size
        return None

    def add_noise(self, arr, v, sigma: float, image: int, win: Window):
        p = self.plan
        if sigma > 0 and arr is not None:
            n = noise_window(p.seed, image, arr.shape[0], win.col, win.row, win.width, win.height)
            arr = arr + (sigma / (p.work_scale if p.uniform else 1.0)) * n * v[None]
        return arr

    def compute(self, core: Window, data):
        """Pass 2: the tile's outputs with noise, nodata where invalid: {"hsi": (window, array), "msi": ...}."""
        t, p = self.clean(core, data), self.plan
        sig_hsi, sig_msi = self.sigmas
        out = {}
        for key, v in (("hsi", t.lr_valid), ("msi", t.msi_valid)):
            self.valid_pixels[key] += 0 if v is None else int(v.sum())
        if t.lr is not None:
            lr = self.add_noise(t.lr, t.lr_valid, sig_hsi, 0, t.lr_window)
            full = np.full((p.info.bands, t.lr_window.height, t.lr_window.width), p.nodata, dtype=np.float32)
            full[p.gidx] = np.where(t.lr_valid[None], lr, p.nodata)
            out["hsi"] = (t.lr_window, full)
        if t.msi is not None:
            ms = self.add_noise(t.msi, t.msi_valid, sig_msi, 1, t.msi_window)
            out["msi"] = (t.msi_window, np.where(t.msi_valid[None], ms, p.nodata).astype(np.float32))
        return out or None

    def write(self, core: Window, out) -> None:
        for key, (win, arr) in out.items():
            self.writers[key].write(arr, win.col, win.row)


def _discard(core: Window, out) -> None:
    """The write step of a pass that only measures."""


def _noise_sigmas(plan: SimulationPlan, tiles: SimulationTiles, feedback: Feedback
                  ) -> Tuple[float, float, Tuple[float, float]]:
    """Pass 1 (only with noise): sigma of each output's noise from its clean mean square; the writing pass's span."""
    if not plan.noisy:
        return 0.0, 0.0, (0.0, 100.0)
    sig_hsi = sig_msi = 0.0
    pipeline(plan.cores, tiles.read, tiles.accumulate, _discard, feedback, (0.0, 40.0))
    acc = tiles.power
    if plan.snr_hsi is not None and plan.out_hsi and acc["hsi"][1]:
        sig_hsi = noise_sigma(acc["hsi"][0] / acc["hsi"][1], float(plan.snr_hsi))
    if plan.snr_msi is not None and plan.out_msi and acc["msi"][1]:
        sig_msi = noise_sigma(acc["msi"][0] / acc["msi"][1], float(plan.snr_msi))
    feedback.pushInfo(f"noise sigma (physical units): HSI {sig_hsi:.6g}, MSI {sig_msi:.6g}")
    return sig_hsi, sig_msi, (40.0, 100.0)


def _simulation_record(plan: SimulationPlan, sig_hsi: float, sig_msi: float) -> Dict:
    """The ``HSIFUSION_SIMULATION`` metadata: how both outputs were made."""
    info, r = plan.info, plan.ratio
    record = {
        "hsifusion_version": __version__, "reference": os.path.abspath(plan.reference),
        "reference_size": [info.width, info.height], "ratio": r, "lr_size": list(plan.lr_size),
        **plan.psf.describe(r),
        "nodata_rule": "LR pixel nodata when any HR pixel of its r x r block is nodata; PSF weights "
                       "renormalised over valid HR pixels",
        "snr_hsi_db": plan.snr_hsi, "snr_msi_db": plan.snr_msi, "seed": plan.seed,
        "noise": "additive Gaussian, sigma = sqrt(mean square of valid values over good bands / 10^(SNR/10)), "
                 f"samples from fixed {NOISE_BLOCK}x{NOISE_BLOCK} blocks seeded by (seed, image, block); "
                 "image 0 = HSI, 1 = MSI",
        "noise_sigma_hsi": sig_hsi, "noise_sigma_msi": sig_msi,
        "units": "raw values with the reference's scale/offset" if plan.uniform else "physical (scale/offset applied)",
    }
    if plan.sensor is not None:
        record.update({"spectral": plan.sensor.describe(), "bands_dropped": plan.dropped,
                       "max_missing": plan.max_missing,
                       "srf_resampling": "Gaussian band-pass per HSI band from centre/FWHM, partition of unity "
                                         "over good bands, integrated with the sensor response on a 0.1 nm "
                                         "grid, rows normalised to 1"})
    return record


def _open_lr_writer(plan: SimulationPlan, record: Dict, creation_options) -> RasterWriter:
    info, r, gt = plan.info, plan.ratio, plan.geotransform
    w, h = plan.lr_size
    lr_gt = (gt[0], gt[1] * r, 0.0, gt[3], 0.0, gt[5] * r)
    wh = RasterWriter(plan.out_hsi, w, h, info.bands, lr_gt, info.wkt, nodata=plan.nodata,
                      inputs=(plan.reference,), creation_options=creation_options)
    wh.set_band_names(info.band_names)
    wh.set_wavelengths(info.wavelengths, info.fwhm)
    if plan.uniform:
        wh.set_scale_offset(info.scale, info.offset)
    for i in range(info.bands):
        wh.ds.GetRasterBand(i + 1).SetMetadataItem("bbl", "1" if plan.good[i] else "0")
    k2d, _ = plan.psf.kernel(r)
    wh.set_metadata({SIM_KEY: json.dumps(record), "HSIFUSION_ROLE": "LR-HSI",
                     "HSIFUSION_PSF_KERNEL": json.dumps(np.round(k2d, 10).tolist()),
                     "AREA_OR_POINT": "Area"})
    return wh


def _open_msi_writer(plan: SimulationPlan, record: Dict, creation_options) -> RasterWriter:
    info, sens = plan.info, plan.sensor
    wm = RasterWriter(plan.out_msi, info.width, info.height, sens.bands, plan.geotransform, info.wkt,
                      nodata=plan.nodata, inputs=(plan.reference,), creation_options=creation_options)
    wm.set_band_names(sens.band_names)
    wm.set_wavelengths(sens.centres, sens.fwhm)
    if plan.uniform and (plan.work_scale != 1.0 or plan.work_offset != 0.0):
        wm.set_scale_offset([plan.work_scale] * sens.bands, [plan.work_offset] * sens.bands)
    wm.set_metadata({SIM_KEY: json.dumps(record), "HSIFUSION_ROLE": "HR-MSI",
                     "HSIFUSION_SRF_MATRIX": json.dumps(np.round(plan.R, 8).tolist()),
                     "AREA_OR_POINT": "Area"})
    return wm


def _write_simulation(plan: SimulationPlan, tiles: SimulationTiles, record: Dict, span, creation_options,
                      feedback: Feedback) -> Dict[str, str]:
    """Pass 2: write both outputs under temporary names; publish them only when both are complete."""
    writers = tiles.writers
    try:
        if plan.out_hsi:
            writers["hsi"] = _open_lr_writer(plan, record, creation_options)
        if plan.out_msi:
            writers["msi"] = _open_msi_writer(plan, record, creation_options)
        pipeline(plan.cores, tiles.read, tiles.compute, tiles.write, feedback, span)
        _require_valid_pixels(plan, tiles.valid_pixels)
        for wr in writers.values():  # both complete before either replaces a file
            wr.finish()
        return {key: wr.publish() for key, wr in writers.items()}
    except BaseException:
        for wr in writers.values():
            if not wr.committed:
                wr.abort()
        raise
    finally:
        noise_block.cache_clear()


def _require_valid_pixels(plan: SimulationPlan, valid_pixels: Dict[str, int]) -> None:
    """An output that would be nodata everywhere is an error, not a file (nothing is published)."""
    r = plan.ratio
    if plan.out_hsi and not valid_pixels["hsi"]:
        raise NoValidDataError(f"the LR-HSI would hold no valid pixel: every {r}x{r} block of reference "
                               f"{plan.reference} has a nodata pixel in some good band; nothing was written")
    if plan.out_msi and not valid_pixels["msi"]:
        raise NoValidDataError(f"the HR-MSI would hold no valid pixel: every pixel of reference {plan.reference} "
                               "is nodata in some good band; nothing was written")


def spectral_resample(source: str, output: str, sensor: Union[str, Sensor, None] = "sentinel2a_msi",
                      srf_file: Optional[str] = None, bands=None, tile_size: int = 256,
                      feedback: Optional[Feedback] = None, wavelengths=None,
                      creation_options: Optional[Sequence[str]] = None,
                      max_missing: float = DEFAULT_MAX_MISSING) -> Dict:
    """Resample a hyperspectral raster to a sensor's bands (same grid); see :func:`.srf.srf_matrix`."""
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    tile_size = require_positive_tile(tile_size)
    info = raster_info(source, wavelengths)
    if info.wavelengths is None or not np.all(np.isfinite(info.wavelengths)):
        raise WavelengthError(f"raster {source} has no band wavelengths; give WAVELENGTHS")
    good = _bands_with_data(source, info, feedback)
    sens, dropped = _covered_sensor(resolve_sensor(sensor, srf_file, bands), _has_bands(bands), info, good,
                                    max_missing, feedback)
    R = srf_matrix(sens, info.wavelengths, info.fwhm, good, max_missing)
    check_outputs({"OUTPUT": output}, (source,))
    gidx = np.flatnonzero(np.any(R != 0, axis=0))
    uniform = _uniform(info.scale, gidx) and _uniform(info.offset, gidx)
    scale = np.asarray(info.scale)[gidx][:, None, None]
    offset = np.asarray(info.offset)[gidx][:, None, None]
    nodata = float_nodata(info.nodata)
    Rg = R[:, gidx]
    region = Window(0, 0, info.width, info.height)
    cores = list(tiles(region, max(1, int(tile_size)), 1))
    ds = open_raster(source)
    band_list = [int(i) + 1 for i in gidx]

    def read(core):
        return read_window(ds, core.col, core.row, core.width, core.height, bands=band_list)

    def compute(core, data):
        v = valid_mask(data, info.nodata)
        x = data.astype(np.float64)
        if not uniform:
            x = x * scale + offset
        return np.where(v[None], apply_srf(Rg, x), nodata).astype(np.float32)

    with RasterWriter(output, info.width, info.height, sens.bands, info.geotransform, info.wkt, nodata=nodata,
                      inputs=(source,), creation_options=creation_options) as wr:
        wr.set_band_names(sens.band_names)
        wr.set_wavelengths(sens.centres, sens.fwhm)
        if uniform and (info.scale[gidx[0]] != 1.0 or info.offset[gidx[0]] != 0.0):
            wr.set_scale_offset([info.scale[gidx[0]]] * sens.bands, [info.offset[gidx[0]]] * sens.bands)
        wr.set_metadata({"HSIFUSION_SPECTRAL_RESAMPLE": json.dumps({"source": os.path.abspath(source),
                                                                     **sens.describe(),
                                                                     "max_missing": max_missing}),
                         "HSIFUSION_SRF_MATRIX": json.dumps(np.round(R, 8).tolist())})
        pipeline(cores, read, compute, lambda c, a: wr.write(a, c.col, c.row), feedback)
        path = wr.commit()
    seconds = time.perf_counter() - t0
    feedback.pushInfo(f"wrote {path} ({sens.bands} bands) in {seconds:.1f} s")
    return {"OUTPUT": path, "BANDS": list(sens.band_names), "BANDS_DROPPED": dropped, "SECONDS": seconds}
