"""Quality assessment of a fused image: full-reference metrics + SAM map, and no-reference QNR.

Two passes of :func:`engine.pipeline.tiling.pipeline` over tiles (the first finds each reference band's peak,
which SSIM's constants need; the second accumulates everything else and writes the SAM map), so a
pair of any size is assessed in bounded memory. Tiles lie on a grid of 32-px blocks starting at the
first evaluated pixel, so UIQI / Q2n blocks never straddle tiles, and SSIM tiles read a 5-px margin:
tiled and untiled runs give the same numbers. Metric definitions: :mod:`.metrics`.
"""
from __future__ import annotations

import csv
import math
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BandError, CrsMismatchError, GridError, InputError, NoValidDataError
from ..feedback import Feedback, ensure_feedback
from ..io.outputs import check_outputs, raster_driver, replacing
from ..io.pair import crs_name, same_crs, validate_pair
from ..io.raster import RasterInfo, open_raster, raster_info, read_window, valid_mask
from ..io.scene import bands_without_data, require_bands_with_data, without_empty_bands
from ..io.windows import Window, intersection
from ..io.writer import DEFAULT_NODATA, RasterWriter
from ..pipeline.tiling import pipeline
from ..version import __version__
from . import metrics as M

SAM_NODATA = DEFAULT_NODATA
GT_TOLERANCE = 1e-6   # relative to the pixel size


# ----------------------------------------------------------------------------------------- checks
def check_same_grid(a: RasterInfo, b: RasterInfo, role_a: str, role_b: str) -> None:
    """Same CRS, size and geotransform, else CrsMismatchError / GridError naming both files."""
    if not same_crs(a.wkt, b.wkt):
        raise CrsMismatchError(f"{role_a} {a.path} is in {crs_name(a.wkt)} but {role_b} {b.path} is in "
                               f"{crs_name(b.wkt)}; reproject one onto the other's grid")
    if (a.width, a.height) != (b.width, b.height):
        raise GridError(f"{role_a} {a.path} is {a.width}x{a.height} px but {role_b} {b.path} is "
                        f"{b.width}x{b.height} px; both must share one grid")
    px = max(abs(a.grid[1]), abs(a.grid[5]), 1e-12)
    if any(abs(u - v) > GT_TOLERANCE * px for u, v in zip(a.grid, b.grid)):
        raise GridError(f"{role_a} {a.path} (geotransform {a.grid}) and {role_b} {b.path} "
                        f"(geotransform {b.grid}) are not on the same grid")


def _scaled(info: RasterInfo, idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return np.asarray(info.scale, dtype=np.float64)[idx], np.asarray(info.offset, dtype=np.float64)[idx]


def grid_cores(width: int, height: int, origin: Tuple[int, int], tile: int) -> List[Window]:
    """Tiles of side ``tile`` on a grid through ``origin`` covering [0, width) x [0, height)."""
    c0 = origin[0] - math.ceil(origin[0] / tile) * tile
    r0 = origin[1] - math.ceil(origin[1] / tile) * tile
    return [Window(c, r, tile, tile) for r in range(r0, height, tile) for c in range(c0, width, tile)]


class _Reader:
    """Reads reference / estimate (good bands) and mask windows, builds the validity mask."""

    def __init__(self, ref: RasterInfo, est: RasterInfo, mask: Optional[RasterInfo], idx: np.ndarray,
                 region: Window, convert: bool) -> None:
        self.ref, self.est, self.mask = ref, est, mask
        self.bands = [int(i) + 1 for i in idx]
        self.region = region
        self.convert = convert
        self.rs, self.ro = _scaled(ref, idx)
        self.es, self.eo = _scaled(est, idx)
        self.ref_ds, self.est_ds = open_raster(ref.path), open_raster(est.path)
        self.mask_ds = open_raster(mask.path) if mask is not None else None

    def __call__(self, win: Window):
        x = read_window(self.ref_ds, win.col, win.row, win.width, win.height, self.bands)
        y = read_window(self.est_ds, win.col, win.row, win.width, win.height, self.bands)
        ok = valid_mask(x, self.ref.nodata) & valid_mask(y, self.est.nodata)
        inside = np.zeros(ok.shape, dtype=bool)
        reg = intersection(win, self.region)
        if not reg.empty:
            inside[reg.slices_in(win)] = True
        ok &= inside
        if self.mask_ds is not None:
            m = read_window(self.mask_ds, win.col, win.row, win.width, win.height, [1])[0]
            mok = np.isfinite(m) & (m != 0)
            if self.mask.nodata is not None:
                mok &= m != self.mask.nodata
            ok &= mok
        x, y = x.astype(np.float64), y.astype(np.float64)
        if self.convert:
            x = x * self.rs[:, None, None] + self.ro[:, None, None]
            y = y * self.es[:, None, None] + self.eo[:, None, None]
        return x, y, ok


# ------------------------------------------------------------------------------------- full reference
def assess(reference: Optional[str], estimate: str, ratio: Optional[float] = None,
           out_sam: Optional[str] = None, out_table: Optional[str] = None, out_report: Optional[str] = None,
           mask: Optional[str] = None, border: int = 0, tile_size: int = 256,
           feedback: Optional[Feedback] = None, lr_hsi: Optional[str] = None, msi: Optional[str] = None,
           creation_options: Optional[Sequence[str]] = None, q2n: bool = True) -> Dict:
    """Assess ``estimate`` against ``reference`` (full reference) and/or with LR-HSI + MSI (QNR).

    Returns a dict with PSNR, SSIM, SAM, ERGAS, RMSE, CC, UIQI, Q2N (NaN without a reference), QNR,
    D_LAMBDA, D_S (NaN without LR-HSI + MSI), OUTPUT_SAM / OUTPUT_TABLE / OUTPUT_REPORT paths, the
    per-band table ``BANDS`` and bookkeeping (VALID_PIXELS, SECONDS ...).
    """
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    if not estimate:
        raise InputError("no estimate (fused image) given")
    if reference is None and not (lr_hsi and msi):
        raise InputError("give a REFERENCE image, or the LR_HSI and MSI the estimate was fused from "
                         "(no-reference QNR)")
    if (lr_hsi is None) != (msi is None):
        raise InputError("no-reference assessment needs both LR_HSI and MSI")
    border = int(border or 0)
    if border < 0:
        raise InputError(f"BORDER must be >= 0, got {border}")
    tile_size = int(tile_size)
    if tile_size <= 0:
        raise InputError(f"TILE_SIZE must be a positive number of pixels, got {tile_size}")
    inputs = [p for p in (reference, estimate, mask, lr_hsi, msi) if p]
    check_outputs({"OUTPUT_SAM": out_sam, "OUTPUT_TABLE": out_table, "OUTPUT_REPORT": out_report}, inputs)
    if out_sam:
        raster_driver(out_sam)
    nan = float("nan")
    result: Dict = {k: nan for k in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N",
                                     "QNR", "D_LAMBDA", "D_S")}
    result.update({"OUTPUT_SAM": None, "OUTPUT_TABLE": None, "OUTPUT_REPORT": None})
    est_info = raster_info(estimate)
    report_ctx: Dict = {"estimate": est_info, "reference": None, "inputs": {
        "REFERENCE": reference, "ESTIMATE": estimate, "MASK": mask, "LR_HSI": lr_hsi, "MSI": msi,
        "RATIO": ratio, "BORDER": border, "TILE_SIZE": tile_size}}
    if lr_hsi and msi:
        span = (0.0, 100.0) if reference is None else (70.0, 100.0)
        qnr, qratio = assess_no_reference(estimate, lr_hsi, msi, border, tile_size, feedback, span)
        result.update(qnr)
        if ratio in (None, 0):
            ratio = qratio
        elif int(ratio) != qratio:
            feedback.pushWarning(f"RATIO {ratio} differs from the LR-HSI/MSI pixel-size ratio {qratio}")
        result["RATIO"] = qratio
    if reference is not None:
        if ratio in (None, 0):
            raise InputError("ERGAS needs the resolution RATIO (e.g. 4); give it or the LR_HSI and MSI")
        span = (0.0, 70.0) if (lr_hsi and msi) else (0.0, 100.0)
        full = _assess_reference(reference, estimate, float(ratio), out_sam, mask, border, tile_size,
                                 feedback, creation_options, q2n, span, report_ctx)
        result.update(full)
        result["RATIO"] = ratio
        if out_table:
            result["OUTPUT_TABLE"] = write_table(out_table, report_ctx["table"], report_ctx["reference"],
                                                 report_ctx["band_index"])
    result["SECONDS"] = time.perf_counter() - t0
    if out_report:
        from .report import write_report

        report_ctx["result"] = result
        result["OUTPUT_REPORT"] = write_report(out_report, report_ctx)
    summary = ", ".join(f"{k} {result[k]:.4g}" for k in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC",
                                                        "UIQI", "Q2N", "QNR") if np.isfinite(result[k]))
    feedback.pushInfo(f"assessment: {summary} ({result['SECONDS']:.1f} s)")
    return result


def _good_bands_with_data(source, estimate, feedback: Feedback) -> np.ndarray:
    """The bands to score: good in both (not flagged ``bbl = 0``), the ``source``'s holding data, the estimate's too.

    ``source`` and ``estimate`` are (path, info, role). A source band that is nodata everywhere is a bad band (left out,
    named in a warning); an estimate band that is nodata everywhere where the source has data is an incomplete
    estimate, and scoring the other bands would hide it: a :class:`BandError` naming the bands.
    """
    (spath, sinfo, srole), (epath, einfo, erole) = source, estimate
    good = without_empty_bands(spath, sinfo, sinfo.good_flags & einfo.good_flags, srole, "left out of the metrics",
                               feedback)
    empty = good & bands_without_data(epath, einfo)
    if empty.any():
        raise BandError(f"{erole} {epath}: band(s) {', '.join(str(i + 1) for i in np.flatnonzero(empty))} hold no "
                        f"valid value where the {srole} {spath} has data: the {erole} is incomplete")
    if not good.any():
        raise BandError(f"no band to assess: every band of {spath} or {epath} is flagged bad (bbl = 0) or holds no "
                        "valid value")
    return good


def _assess_reference(reference, estimate, ratio, out_sam, mask, border, tile_size, feedback,
                      creation_options, q2n, span, ctx) -> Dict:
    ref = raster_info(reference)
    est = ctx["estimate"]
    check_same_grid(ref, est, "reference", "estimate")
    if ref.bands != est.bands:
        raise BandError(f"reference {reference} has {ref.bands} bands but estimate {estimate} has {est.bands}")
    mask_info = None
    if mask:
        mask_info = raster_info(mask)
        check_same_grid(ref, mask_info, "reference", "mask")
    good = _good_bands_with_data((reference, ref, "reference"), (estimate, est, "estimate"), feedback)
    idx = np.flatnonzero(good)
    W, H = ref.width, ref.height
    region = Window(border, border, W - 2 * border, H - 2 * border)
    if region.width <= 0 or region.height <= 0:
        raise InputError(f"BORDER {border} leaves nothing of a {W}x{H} raster")
    (rs, ro), (es, eo) = _scaled(ref, idx), _scaled(est, idx)
    convert = not (np.array_equal(rs, es) and np.array_equal(ro, eo))
    if convert:
        feedback.pushWarning("reference and estimate declare different scale/offset: both are compared "
                             "as scaled values (value * scale + offset)")
    reader = _Reader(ref, est, mask_info, idx, region, convert)
    tile = max(M.BLOCK, (tile_size // M.BLOCK) * M.BLOCK)
    # cores clipped to the smallest block-grid window covering the raster (keeps blocks aligned)
    bc, br = border - math.ceil(border / M.BLOCK) * M.BLOCK, border - math.ceil(border / M.BLOCK) * M.BLOCK
    cover = Window(bc, br, -(-(W - bc) // M.BLOCK) * M.BLOCK, -(-(H - br) // M.BLOCK) * M.BLOCK)
    cores = [intersection(c, cover) for c in grid_cores(W, H, (border, border), tile)]
    cores = [c for c in cores if not intersection(c, Window(0, 0, W, H)).empty]
    if out_sam:
        cores_metrics = cores
    else:
        cores_metrics = [c for c in cores if not intersection(c, region).empty]
    feedback.pushInfo(f"assessing {len(idx)} of {ref.bands} bands over {region.width}x{region.height} px "
                      f"in {len(cores_metrics)} tile(s) of {tile} px")
    lo, hi = span
    mid = lo + 0.25 * (hi - lo)

    # pass 1: reference peaks over valid pixels
    peaks = np.full(idx.size, -np.inf)
    nvalid = [0]

    def compute_peak(core, data):
        x, _, ok = data
        if ok.any():
            np.maximum(peaks, x[:, ok].max(axis=1), out=peaks)
            nvalid[0] += int(ok.sum())
        return None

    peak_cores = [c for c in cores if not intersection(c, region).empty]
    pipeline(peak_cores, lambda c: reader(c), compute_peak, lambda c, r: None, feedback, (lo, mid))
    if nvalid[0] == 0:
        raise NoValidDataError(f"no pixel is valid in both {reference} and {estimate}"
                               + (f" under the mask {mask}" if mask else "")
                               + (f" inside a border of {border} px" if border else ""))
    acc = M.ReferenceAccumulator(idx.size, peaks, q2n=q2n and M.next_pow2(idx.size) <= M.MAX_Q2N_BANDS)
    if q2n and not acc.q2n:
        feedback.pushWarning(f"Q2n skipped: {idx.size} bands exceed {M.MAX_Q2N_BANDS}")
    rad = M.SSIM_RADIUS
    stride = max(1, int(math.ceil(max(W, H) / 512.0)))
    preview = np.full((-(-H // stride), -(-W // stride)), np.nan, dtype=np.float32)
    samples: List[Tuple[float, int, int]] = []
    full = Window(0, 0, W, H)

    def compute(core: Window, data):
        xp, yp, okp = data
        inner = (slice(rad, rad + core.height), slice(rad, rad + core.width))
        x, y, ok = xp[:, inner[0], inner[1]], yp[:, inner[0], inner[1]], okp[inner]
        ang, sam_ok = M.sam_degrees(x, y)
        sam_ok &= ok
        if ok.any():
            acc.moments.add(x[:, ok], y[:, ok])
            acc.add_sam(ang[sam_ok])
            centre_ok = M.window_all_valid(okp, rad) & ok
            acc.add_ssim(*M.ssim_sums(xp, yp, centre_ok, peaks, rad))
            acc.add_blocks(x, y, ok)
            rr, cc = np.nonzero(sam_ok)
            if rr.size:
                rng = np.random.default_rng(abs(hash((core.col, core.row))) % (2 ** 32))
                pick = rng.choice(rr.size, size=min(32, rr.size), replace=False)
                pick = np.append(pick, int(np.argmax(ang[rr, cc])))
                samples.extend((float(ang[rr[k], cc[k]]), core.row + int(rr[k]), core.col + int(cc[k]))
                               for k in pick)
        cw = intersection(core, full)
        sl = cw.slices_in(core)
        block = np.where(sam_ok, ang, np.nan)[sl]
        # decimated preview for the report: global pixels on multiples of ``stride``
        r0 = -(-cw.row // stride) * stride
        c0 = -(-cw.col // stride) * stride
        if r0 < cw.row_end and c0 < cw.col_end:
            sub = block[r0 - cw.row::stride, c0 - cw.col::stride]
            preview[r0 // stride:r0 // stride + sub.shape[0], c0 // stride:c0 // stride + sub.shape[1]] = sub
        if not out_sam:
            return None
        return np.where(np.isfinite(block), block, SAM_NODATA).astype(np.float32)[None]

    def read_padded(core: Window):
        return reader(core.pad(rad))

    if out_sam:
        with RasterWriter(out_sam, W, H, 1, est.geotransform, est.wkt, nodata=SAM_NODATA,
                          inputs=[p for p in (reference, estimate, mask) if p],
                          creation_options=creation_options) as writer:
            writer.set_band_names(["SAM (degrees)"])
            pipeline(cores_metrics, read_padded, compute,
                     lambda c, a: writer.write(a, *_origin(intersection(c, full))), feedback, (mid, hi))
            res, table = acc.result(ratio)
            writer.set_metadata({"HSIFUSION_VERSION": __version__, "HSIFUSION_REFERENCE": reference,
                                 "HSIFUSION_ESTIMATE": estimate, "HSIFUSION_SAM_MEAN_DEG": f"{res['SAM']:.6f}",
                                 "UNITS": "degrees"})
            writer.ds.GetRasterBand(1).SetUnitType("deg")
            path = writer.commit()
        res["OUTPUT_SAM"] = path
    else:
        pipeline(cores_metrics, read_padded, compute, lambda c, a: None, feedback, (mid, hi))
        res, table = acc.result(ratio)
    ctx.update({"reference": ref, "table": table, "band_index": idx, "sam_hist": acc.sam_hist,
                "sam_preview": preview, "samples": samples, "mask_info": mask_info,
                "pixels": _representative_pixels(samples, reader)})
    res["BANDS"] = {k: v.tolist() for k, v in table.items()}
    return res


def _origin(w: Window):
    return w.col, w.row


def _representative_pixels(samples, reader: _Reader) -> List[Dict]:
    """Spectra at pixels with the lowest, median, 95th-percentile and highest sampled SAM."""
    if not samples:
        return []
    s = sorted(samples)
    picks = []
    for label, q in (("lowest SAM", 0.0), ("median SAM", 0.5), ("95th percentile SAM", 0.95),
                     ("highest SAM", 1.0)):
        k = min(len(s) - 1, int(round(q * (len(s) - 1))))
        a, r, c = s[k]
        if any(p["row"] == r and p["col"] == c for p in picks):
            continue
        x, y, _ = reader(Window(c, r, 1, 1))
        picks.append({"label": label, "row": r, "col": c, "sam": a,
                      "reference": x[:, 0, 0].tolist(), "estimate": y[:, 0, 0].tolist()})
    return picks


def write_table(path: str, table: Dict[str, np.ndarray], ref: RasterInfo, idx: np.ndarray) -> str:
    """Per-band CSV (every band; bad bands with empty metrics)."""
    cols = ["RMSE", "PSNR", "CC", "SSIM", "UIQI", "MEAN", "PEAK"]
    pos = {int(b): k for k, b in enumerate(idx)}
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["band", "name", "wavelength_nm", "used"] + [c.lower() if c != "MEAN" else "reference_mean"
                                                                for c in cols])
        for b in range(ref.bands):
            wl = "" if ref.wavelengths is None else f"{float(ref.wavelengths[b]):.3f}"
            k = pos.get(b)
            vals = ["" if k is None else f"{float(table[c][k]):.8g}" for c in cols]
            w.writerow([b + 1, ref.band_names[b], wl, int(k is not None)] + vals)
    return path


# ------------------------------------------------------------------------------------- no reference
def assess_no_reference(estimate: str, lr_hsi: str, msi: str, border: int = 0, tile_size: int = 256,
                        feedback: Optional[Feedback] = None, span=(0.0, 100.0)) -> Tuple[Dict, int]:
    """QNR, D_lambda, D_s of a fused image given the LR-HSI and HR-MSI it was fused from."""
    feedback = ensure_feedback(feedback)
    lr, ms, est = raster_info(lr_hsi), raster_info(msi), raster_info(estimate)
    pair = validate_pair(lr, ms)
    r = pair.ratio
    if not same_crs(est.wkt, ms.wkt):
        raise CrsMismatchError(f"estimate {estimate} is in {crs_name(est.wkt)} but MSI {msi} is in "
                               f"{crs_name(ms.wkt)}")
    if est.bands != lr.bands:
        raise BandError(f"estimate {estimate} has {est.bands} bands but the LR-HSI {lr_hsi} has {lr.bands}")
    mx, my = ms.pixel_size
    if abs(est.pixel_size[0] - mx) > 1e-6 * mx or abs(est.pixel_size[1] - my) > 1e-6 * my:
        raise GridError(f"estimate {estimate} pixel size {est.pixel_size} differs from the MSI {msi} "
                        f"pixel size {ms.pixel_size}")
    ex = (est.geotransform[0] - lr.geotransform[0]) / mx
    ey = (lr.geotransform[3] - est.geotransform[3]) / my
    if abs(ex - round(ex)) > 1e-3 or abs(ey - round(ey)) > 1e-3:
        raise GridError(f"estimate {estimate} is not on the MSI {msi} pixel grid (offset {ex:.4f} x {ey:.4f} px)")
    ex, ey = int(round(ex)), int(round(ey))
    area = intersection(pair.region, Window(ex + border, ey + border, est.width - 2 * border,
                                            est.height - 2 * border))
    c0, r0 = -(-area.col // r) * r, -(-area.row // r) * r
    c1, r1 = (area.col_end // r) * r, (area.row_end // r) * r
    if c1 <= c0 or r1 <= r0:
        raise GridError(f"estimate {estimate}, LR-HSI {lr_hsi} and MSI {msi} share no whole LR pixel")
    region = Window(c0, r0, c1 - c0, r1 - r0)
    good = _good_bands_with_data((lr_hsi, lr, "LR-HSI"), (estimate, est, "estimate"), feedback)
    hidx = np.flatnonzero(good)
    require_bands_with_data(msi, ms, "MSI")
    midx = np.flatnonzero(ms.good_flags)
    step = M.BLOCK * r
    tile = max(step, (int(tile_size) // step) * step)
    cores = [Window(c, rr, tile, tile) for rr in range(region.row, region.row_end, tile)
             for c in range(region.col, region.col_end, tile)]
    feedback.pushInfo(f"no-reference QNR: ratio {r}, {region.width}x{region.height} HR px, {len(cores)} tile(s)")
    est_ds, ms_ds, lr_ds = open_raster(estimate), open_raster(msi), open_raster(lr_hsi)
    hb, mb = [int(i) + 1 for i in hidx], [int(i) + 1 for i in midx]
    es, eo = _scaled(est, hidx)
    ls, lo_ = _scaled(lr, hidx)
    ms_s, ms_o = _scaled(ms, midx)

    def read(core: Window):
        cw = intersection(core, region)
        ew = cw.shift(-ex, -ey)
        f = read_window(est_ds, ew.col, ew.row, ew.width, ew.height, hb).astype(np.float64)
        mw = pair.to_msi(cw)
        m = read_window(ms_ds, mw.col, mw.row, mw.width, mw.height, mb).astype(np.float64)
        lw = cw.scale_down(r)
        low = read_window(lr_ds, lw.col, lw.row, lw.width, lw.height, hb).astype(np.float64)
        ok_hr = valid_mask(f, est.nodata) & valid_mask(m, ms.nodata)
        ok_lr = valid_mask(low, lr.nodata) & (M.block_average(valid_mask(m, ms.nodata)[None].astype(float), r)[0] == 1)
        f = f * es[:, None, None] + eo[:, None, None]
        m = m * ms_s[:, None, None] + ms_o[:, None, None]
        low = low * ls[:, None, None] + lo_[:, None, None]
        return f, m, low, ok_hr, ok_lr

    acc = M.QnrAccumulator(hidx.size, midx.size)

    def compute(core, data):
        f, m, low, ok_hr, ok_lr = data
        acc.add_hr(f, m, ok_hr)
        acc.add_lr(low, M.block_average(m, r), ok_lr)
        return None

    pipeline(cores, read, compute, lambda c, a: None, feedback, span)
    res = acc.result()
    if not np.isfinite(res["QNR"]):
        raise NoValidDataError(f"no 32x32 block with enough valid pixels in {estimate}, {lr_hsi} and {msi}")
    return res, r
