"""Corpus training of a supervised network on the user's rasters (``hsifusion:train``).

Training data, streamed by GDAL windows (a raster is never read whole):

- **references** (mode a): HR-HSI rasters. Per patch an HR window (+ the PSF margin) is read and the
  network's inputs are simulated on the fly exactly as :func:`..sensors.simulate.simulate` does: LR-HSI =
  ``(X * PSF)`` decimated by ``ratio`` (:func:`..sensors.degradation.blur_decimate`, block-centred), HR-MSI = ``R X``
  (:func:`..sensors.srf.srf_matrix` of the SENSOR / SRF_FILE); the target is ``X``.
- **pairs** (mode b): real LR-HSI + HR-MSI pairs, trained at reduced resolution (Wald / zero-shot, as
  :func:`.loops.zero_shot_data`): both inputs degraded once more by ``ratio`` with the PSF, the LR-HSI
  is the target.

Patches are random windows (aligned to ``ratio``) over pixels where every good band is valid; windows
touching nodata are skipped. Validation uses a strip at the end of each raster's longer axis (the last
VALIDATION fraction of rows or columns): training windows, PSF margin included, never reach into it,
and validation targets are a fixed set of non-overlapping windows in it. One epoch =
``steps_per_epoch`` optimisation steps (default: about one pass over the training area); after each
epoch the validation loss, PSNR and SAM are computed, the checkpoint is written (atomically), and a CSV
log + loss-curve PNG are written next to it. Cancel stops within one step and saves the weights of the
last completed step; RESUME continues the iteration and epoch count (optimizer state, schedule).
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import Cancelled, CheckpointError, FusionError, InputError, NoValidDataError, OutputError
from ..feedback import Feedback, ensure_feedback
from ..io.outputs import check_outputs, replacing
from ..io.pair import validate_pair
from ..io.raster import open_raster, raster_info, read_window, valid_mask
from ..io.scene import require_bands_with_data, without_empty_bands
from ..io.windows import Window, intersection
from ..pipeline.device import limit_cpu_threads, resolve_device
from ..quality.metrics import sam_degrees
from ..sensors.degradation import PSF, blur_decimate
from ..sensors.simulate import check_ratio, make_psf
from ..sensors.srf import DEFAULT_MAX_MISSING, apply_srf, covered_bands, resolve_sensor, srf_matrix
from ..version import __version__
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .loops import make_optimizer, optimise, robust_max

WAVELENGTH_TOLERANCE_NM = 2.0
MAX_TRIES = 60                # random windows tried per patch before giving up
NORM_SIDE = 128               # decimated read (px a side) per raster for the normalisation
DEFAULT_EPOCHS = 10
MAX_STEPS_PER_EPOCH = 500


class TrainingDiverged(FusionError):
    """The loss became NaN or infinite."""


# --------------------------------------------------------------------------------------- sources
@dataclass
class Source:
    """One raster (mode a) or pair (mode b) on its *target grid*.

    The target grid is the HR grid for a reference, the LR grid of the HSI for a pair. ``train`` and ``val``
    are regions of core windows on that grid.
    """

    label: str
    region: Window
    margin: int                     # target-grid px of context read around a core
    train: Window = None
    val: Optional[Window] = None
    val_axis: str = ""

    def read(self, core: Window):  # pragma: no cover - overridden
        raise NotImplementedError


class ReferenceSource(Source):
    """HR-HSI reference: inputs simulated per window (mode a)."""

    def __init__(self, info, ratio: int, psf: PSF, R: np.ndarray, good: np.ndarray) -> None:
        r = ratio
        m = psf.margin(r)
        super().__init__(label=info.path, region=Window(0, 0, (info.width // r) * r, (info.height // r) * r),
                         margin=m)
        self.info, self.ratio, self.psf = info, r, psf
        self.good, self.gidx = good, np.flatnonzero(good)
        self.Rg = R[:, self.gidx]
        self.start = m - (psf.size(r) - r) // 2
        self._ds = None

    @property
    def ds(self):
        if self._ds is None:
            self._ds = open_raster(self.info.path)
        return self._ds

    def read(self, core: Window):
        m, r = self.margin, self.ratio
        data = read_window(self.ds, core.col - m, core.row - m, core.width + 2 * m, core.height + 2 * m)
        if not valid_mask(data, self.info.nodata, self.good).all():
            return None
        x = data.astype(np.float64)
        x[~self.good] = 0.0
        xg = x[self.gidx]
        lr, _ = blur_decimate(xg, self.psf, r, self.start, core.height // r, core.width // r)
        y = np.zeros((x.shape[0],) + lr.shape[1:], np.float32)
        y[self.gidx] = lr
        core_x = x[:, m:m + core.height, m:m + core.width]
        z = apply_srf(self.Rg, core_x[self.gidx]).astype(np.float32)
        return y, z, core_x.astype(np.float32)

    def sample(self, side: int = NORM_SIDE):
        """Decimated (HSI, MSI) samples of valid pixels for the normalisation."""
        hsi = _decimated(self.ds, self.info, side, self.good)
        x = hsi.astype(np.float64)
        x[~self.good] = 0.0
        return hsi[self.good].ravel(), apply_srf(self.Rg, x[self.gidx][:, None, :])[:, 0].ravel()


class PairSource(Source):
    """Real LR-HSI + HR-MSI pair, trained at reduced resolution (mode b)."""

    def __init__(self, pair, psf: PSF, good: np.ndarray) -> None:
        r = pair.ratio
        m = psf.margin(r)
        reg = pair.region
        c0, r0 = -(-reg.col // r), -(-reg.row // r)
        lr = intersection(Window(c0, r0, reg.col_end // r - c0, reg.row_end // r - r0),
                          Window(0, 0, pair.hsi.width, pair.hsi.height))
        lr = Window(lr.col, lr.row, (lr.width // r) * r, (lr.height // r) * r)
        super().__init__(label=f"{pair.hsi.path} + {pair.msi.path}", region=lr, margin=m)
        self.pair, self.ratio, self.psf = pair, r, psf
        self.good = good
        self.K = psf.size(r)
        self._ds = None

    @property
    def ds(self):
        if self._ds is None:
            self._ds = (open_raster(self.pair.hsi.path), open_raster(self.pair.msi.path))
        return self._ds

    def read(self, core: Window):
        m, r, K = self.margin, self.ratio, self.K
        hds, mds = self.ds
        lw = core.pad(m)
        y = read_window(hds, lw.col, lw.row, lw.width, lw.height)
        if not valid_mask(y, self.pair.hsi.nodata, self.good).all():
            return None
        mw = self.pair.to_msi(Window(lw.col * r, lw.row * r, lw.width * r, lw.height * r))
        z = read_window(mds, mw.col, mw.row, mw.width, mw.height)
        if not valid_mask(z, self.pair.msi.nodata, self.pair.msi.good_bands).all():
            return None
        y = y.astype(np.float64)
        y[~self.good] = 0.0
        y_in, _ = blur_decimate(y, self.psf, r, m - (K - r) // 2, core.height // r, core.width // r)
        z_in, _ = blur_decimate(z.astype(np.float64), self.psf, r, m * r - (K - r) // 2, core.height, core.width)
        target = y[:, m:m + core.height, m:m + core.width]
        return y_in.astype(np.float32), z_in.astype(np.float32), target.astype(np.float32)

    def sample(self, side: int = NORM_SIDE):
        hds, mds = self.ds
        y = _decimated(hds, self.pair.hsi, side, self.good)
        z = _decimated(mds, self.pair.msi, side)
        return y[self.good].ravel(), z.ravel()


def _decimated(ds, info, side: int, good: Optional[np.ndarray] = None) -> np.ndarray:
    """(bands, n) valid pixels (over ``good``, default the flagged good bands) of a decimated whole-raster read."""
    from osgeo import gdal

    step = max(1, -(-max(ds.RasterXSize, ds.RasterYSize) // side))
    bx, by = max(1, ds.RasterXSize // step), max(1, ds.RasterYSize // step)
    data = ds.ReadAsArray(0, 0, ds.RasterXSize, ds.RasterYSize, buf_xsize=bx, buf_ysize=by,
                          buf_type=gdal.GDT_Float32).reshape(ds.RasterCount, by, bx)
    ok = valid_mask(data, info.nodata, info.good_bands if good is None else good)
    return data[:, ok]


def split_regions(src: Source, validation: float, ratio: int) -> None:
    """Hold out the last ``validation`` fraction of the longer axis.

    Training cores stop ``margin`` (rounded up to ``ratio``) before it so no training read reaches a
    validation pixel.
    """
    reg = src.region
    gap = -(-src.margin // ratio) * ratio
    if validation <= 0:
        src.train, src.val, src.val_axis = reg, None, ""
        return
    cols = reg.width >= reg.height
    length = reg.width if cols else reg.height
    s = int(math.floor(length * (1.0 - validation) / ratio)) * ratio
    t = max(0, s - gap)
    if cols:
        src.train = Window(reg.col, reg.row, t, reg.height)
        src.val = Window(reg.col + s, reg.row, reg.width - s, reg.height)
        src.val_axis = "columns"
    else:
        src.train = Window(reg.col, reg.row, reg.width, t)
        src.val = Window(reg.col, reg.row + s, reg.width, reg.height - s)
        src.val_axis = "rows"


def random_core(src: Source, patch: int, ratio: int, rng: np.random.Generator) -> Window:
    """A random ``patch``-sided core inside ``src.train``, origin on the ``ratio`` grid of the region."""
    tr = src.train
    nc = (tr.width - patch) // ratio + 1
    nr = (tr.height - patch) // ratio + 1
    return Window(tr.col + ratio * int(rng.integers(nc)), tr.row + ratio * int(rng.integers(nr)), patch, patch)


def validation_side(sources: List[Source], patch: int, step: int, smallest: int) -> Optional[int]:
    """Side of the validation patches, or None when none fits.

    Side of the validation patches: ``patch`` when it fits a held-out strip, else the largest multiple
    of ``step`` (at least ``smallest``) that fits the widest strip; None when nothing fits (a small
    raster: 20 % of a 256 px pair at ratio 4 is a 12 px strip).
    """
    room = max((min(s.val.width, s.val.height) for s in sources if s.val is not None), default=0)
    side = min(patch, (room // step) * step)
    return side if side >= max(step, smallest) else None


def _training_fits(sources: List[Source], patch: int) -> bool:
    return any(s.train.width >= patch and s.train.height >= patch for s in sources)


def val_cores(src: Source, patch: int, limit: int) -> List[Window]:
    """Non-overlapping ``patch`` cores tiling ``src.val`` (evenly thinned to ``limit``)."""
    v = src.val
    if v is None or v.width < patch or v.height < patch:
        return []
    out = [Window(c, r, patch, patch) for r in range(v.row, v.row_end - patch + 1, patch)
           for c in range(v.col, v.col_end - patch + 1, patch)]
    if len(out) > limit:
        out = [out[i] for i in np.linspace(0, len(out) - 1, limit).round().astype(int)]
    return out


# --------------------------------------------------------------------------------------- metrics
class MetricAccumulator:
    """Loss, PSNR and SAM on normalised values.

    PSNR per band 10 log10(peak^2 / MSE), peak = max of the target band, mean over bands with a positive peak;
    SAM mean over pixels, in degrees.
    """

    def __init__(self) -> None:
        self.loss_sum, self.loss_n = 0.0, 0
        self.sse = self.count = self.peak = None
        self.sam_sum, self.sam_n = 0.0, 0

    def add(self, loss: float, pred: np.ndarray, target: np.ndarray) -> None:
        self.loss_sum += float(loss)
        self.loss_n += 1
        p = pred.transpose(1, 0, 2, 3).reshape(pred.shape[1], -1).astype(np.float64)
        t = target.transpose(1, 0, 2, 3).reshape(target.shape[1], -1).astype(np.float64)
        if self.sse is None:
            self.sse, self.count, self.peak = np.zeros(p.shape[0]), 0, np.full(p.shape[0], -np.inf)
        self.sse += ((p - t) ** 2).sum(1)
        self.count += p.shape[1]
        self.peak = np.maximum(self.peak, t.max(1))
        ang, ok = sam_degrees(t[:, :, None], p[:, :, None])
        self.sam_sum += float(np.nansum(ang[ok]))
        self.sam_n += int(ok.sum())

    def result(self) -> Dict[str, Optional[float]]:
        if not self.loss_n:
            return {"loss": None, "psnr": None, "sam": None}
        use = self.peak > 0
        mse = self.sse[use] / max(self.count, 1)
        with np.errstate(divide="ignore"):
            psnr = 10 * np.log10(self.peak[use] ** 2 / np.maximum(mse, 1e-20))
        return {"loss": self.loss_sum / self.loss_n, "psnr": float(np.mean(psnr)) if psnr.size else None,
                "sam": self.sam_sum / self.sam_n if self.sam_n else None}


# --------------------------------------------------------------------------------------- logging
LOG_COLUMNS = ["epoch", "iteration", "seconds", "learning_rate", "train_loss", "train_psnr", "train_sam",
               "val_loss", "val_psnr", "val_sam"]


def log_paths(output: str) -> Tuple[str, str]:
    stem = os.path.splitext(output)[0]
    return f"{stem}_log.csv", f"{stem}_loss.png"


def write_log(path: str, history: List[Dict]) -> None:
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(LOG_COLUMNS)
        for h in history:
            w.writerow(["" if h.get(c) is None else (f"{h[c]:.6g}" if isinstance(h[c], float) else h[c])
                        for c in LOG_COLUMNS])


def plot_losses(path: str, history: List[Dict], title: str) -> Optional[str]:
    """Loss (and validation PSNR) per epoch as a PNG (matplotlib Agg, no pyplot state).

    None when matplotlib is missing.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(ep, [h.get("train_loss") for h in history], "o-", label="training loss")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(ep, [h.get("val_loss") for h in history], "s-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if all((h.get("train_loss") or 0) > 0 for h in history):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if any(h.get("val_psnr") is not None for h in history):
        ax2 = ax.twinx()
        ax2.plot(ep, [h.get("val_psnr") for h in history], "^--", color="tab:green", label="validation PSNR")
        ax2.set_ylabel("validation PSNR (dB)")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with replacing(path, ".partial.png") as tmp:
        fig.savefig(tmp)
    return path


# --------------------------------------------------------------------------------------- setup
def _as_list(v) -> List[str]:
    if v is None:
        return []
    if isinstance(v, (str, os.PathLike)):
        return [str(p) for p in str(v).split(";") if p.strip()]
    return [str(p) for p in v]


def _same_wavelengths(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and float(np.nanmax(np.abs(np.asarray(a, float) - np.asarray(b, float)))) <= \
        WAVELENGTH_TOLERANCE_NM


def _reference_sources(paths, ratio, psf, sensor, srf_file, bands, feedback, max_missing):
    infos = [raster_info(p) for p in paths]
    first = infos[0]
    for inf in infos:
        if inf.bands < 3:
            raise InputError(f"reference {inf.path} has {inf.bands} band(s); hyperspectral references are needed")
        if inf.bands != first.bands or not _same_wavelengths(inf.wavelengths, first.wavelengths):
            raise InputError(f"reference {inf.path} has other bands ({inf.bands}) or wavelengths than "
                             f"{first.path} ({first.bands}); all references must come from one sensor")
        if inf.wavelengths is None:
            raise InputError(f"reference {inf.path} has no band wavelengths; the MSI cannot be simulated")
    good = first.good_flags
    for inf in infos:
        good = without_empty_bands(inf.path, inf, good, "reference", "left out of training", feedback)
    if not good.any():
        raise NoValidDataError("no band holds a valid value in every reference")
    sens = resolve_sensor(sensor, srf_file, bands)
    if not bands:
        keep = covered_bands(sens, first.wavelengths, first.fwhm, good, max_missing)
        dropped = [b for b in sens.band_names if b not in keep]
        if not keep:
            srf_matrix(sens, first.wavelengths, first.fwhm, good, max_missing)
        if dropped:
            feedback.pushWarning(f"{sens.title}: band(s) {', '.join(dropped)} lie outside the good bands of the "
                                 "references and are left out")
        sens = sens.select(keep)
    R = srf_matrix(sens, first.wavelengths, first.fwhm, good, max_missing)
    srcs = [ReferenceSource(inf, ratio, psf, R, good) for inf in infos]
    meta = {"hsi_bands": first.bands, "msi_bands": sens.bands, "hsi_wavelengths": first.wavelengths,
            "msi_wavelengths": sens.centres, "srf": R, "sensor": sens.describe(),
            "msi_band_names": list(sens.band_names)}
    return srcs, meta


def _pair_sources(pairs, psf_arg, psf_fwhm, ratio_arg, feedback):
    grids, first, r0 = [], None, None
    for hsi, msi in pairs:
        pair = validate_pair(raster_info(hsi), raster_info(msi))
        grids.append(pair)
        if r0 is None:
            r0, first = pair.ratio, pair
        if pair.ratio != r0:
            raise InputError(f"pair {hsi} has ratio {pair.ratio}, the first pair {r0}; all pairs need one ratio")
        if ratio_arg and int(ratio_arg) != pair.ratio:
            raise InputError(f"RATIO {ratio_arg} given, but the pair {hsi} + {msi} has ratio {pair.ratio}")
        if (pair.hsi.bands, pair.msi.bands) != (first.hsi.bands, first.msi.bands) or not (
                _same_wavelengths(pair.hsi.wavelengths, first.hsi.wavelengths)
                and _same_wavelengths(pair.msi.wavelengths, first.msi.wavelengths)):
            raise InputError(f"pair {hsi} + {msi} has other bands or wavelengths than the first pair")
    psf = make_psf(psf_arg, fwhm=psf_fwhm)
    good = first.hsi.good_flags  # one band set for every pair: a band missing from one is left out of all
    for pair in grids:
        require_bands_with_data(pair.msi.path, pair.msi, "MSI")
        good = without_empty_bands(pair.hsi.path, pair.hsi, good & pair.hsi.good_flags, "LR-HSI",
                                   "left out of training, in every pair", feedback)
    if not good.any():
        raise NoValidDataError("no LR-HSI band holds a valid value in every pair")
    srcs = [PairSource(pair, psf, good) for pair in grids]
    meta = {"hsi_bands": first.hsi.bands, "msi_bands": first.msi.bands, "hsi_wavelengths": first.hsi.wavelengths,
            "msi_wavelengths": first.msi.wavelengths, "srf": None, "sensor": None,
            "msi_band_names": list(first.msi.band_names)}
    return srcs, meta, r0, psf


@dataclass
class Batch:
    y: np.ndarray
    z: np.ndarray
    x: np.ndarray


class PatchStream:
    """Random training batches and the fixed validation set, read window by window."""

    def __init__(self, sources: List[Source], patch: int, ratio: int, seed: int) -> None:
        self.sources, self.patch, self.ratio, self.seed = sources, patch, ratio, seed
        areas = np.array([max(0, s.train.width - patch + 1) * max(0, s.train.height - patch + 1)
                          for s in sources], float)
        if areas.sum() <= 0:
            sizes = ", ".join(f"{s.train.width}x{s.train.height}" for s in sources)
            raise InputError(f"the training regions ({sizes} px after holding out validation) are smaller than "
                             f"PATCH_SIZE {patch}; lower PATCH_SIZE or VALIDATION")
        self.weights = areas / areas.sum()
        self.train_log: List[Tuple[int, Window]] = []   # (source index, core) of the last batches
        self.keep_log = False

    def sample(self, batch: int, rng: np.random.Generator) -> Batch:
        ys, zs, xs = [], [], []
        for _ in range(batch):
            for _try in range(MAX_TRIES):
                i = int(rng.choice(len(self.sources), p=self.weights))
                core = random_core(self.sources[i], self.patch, self.ratio, rng)
                got = self.sources[i].read(core)
                if got is not None:
                    break
            else:
                raise NoValidDataError(f"no window of {self.patch} px free of nodata found in {MAX_TRIES} tries; "
                                       "lower PATCH_SIZE or check the rasters' nodata")
            if self.keep_log:
                self.train_log.append((i, core))
            y, z, x = got
            flips = [a for a, f in zip((1, 2), rng.random(2) < 0.5) if f]
            if flips:
                y, z, x = (np.flip(t, flips) for t in (y, z, x))
            ys.append(y), zs.append(z), xs.append(x)
        return Batch(np.stack(ys), np.stack(zs), np.stack(xs))

    def validation(self, limit: int, feedback, side: Optional[int] = None
                   ) -> Tuple[List[Tuple[np.ndarray, ...]], List[Tuple[int, Window]]]:
        """Validation (y, z, x) patches of ``side`` px (default the training patch) and where they are."""
        side = side or self.patch
        data, where = [], []
        per = max(1, limit // max(1, len(self.sources)))
        for i, s in enumerate(self.sources):
            cores = val_cores(s, side, per)
            if s.val is not None and not cores:
                feedback.pushWarning(f"{s.label}: the validation strip ({s.val.width}x{s.val.height} px) is "
                                     f"smaller than a validation patch ({side} px); no validation patch from it")
            for c in cores:
                got = s.read(c)
                if got is not None:
                    data.append(got)
                    where.append((i, c))
        return data, where


def _describe_sources(sources, mode):
    return [{"source": s.label, "grid": f"{s.region.width}x{s.region.height}",
             "train": [s.train.col, s.train.row, s.train.width, s.train.height],
             "validation": None if s.val is None else [s.val.col, s.val.row, s.val.width, s.val.height],
             "validation_axis": s.val_axis} for s in sources]


# --------------------------------------------------------------------------------------- entry point
def train(network: str, output: str, references: Union[str, Sequence[str], None] = None,
          pairs: Optional[Sequence[Tuple[str, str]]] = None, sensor="sentinel2a_msi",
          srf_file: Optional[str] = None, bands=None, ratio: Optional[int] = 4, psf=None,
          psf_fwhm: Optional[float] = None, epochs: Optional[int] = DEFAULT_EPOCHS,
          iterations: Optional[int] = None, steps_per_epoch: Optional[int] = None, patch_size: int = 64,
          batch_size: int = 4, learning_rate: Optional[float] = None, validation: float = 0.2,
          device: str = "auto", seed: int = 0, resume: Optional[str] = None, hyper: Optional[Dict] = None,
          max_val_patches: int = 32, feedback: Optional[Feedback] = None,
          max_missing: float = DEFAULT_MAX_MISSING, keep_window_log: bool = False) -> Dict:
    """Train a supervised network and write a checkpoint (+ ``<stem>_log.csv``, ``<stem>_loss.png``).

    Args:
        network: id of a supervised network in ``models.catalogue``.
        output: checkpoint path (.pt); rewritten after every epoch.
        references: HR-HSI raster(s) (mode a), with sensor / srf_file / bands, ratio and psf.
        pairs: (LR-HSI, HR-MSI) path pairs (mode b); ratio from the grids, psf for the extra degradation.
        sensor: MSI sensor key for simulating pairs from references.
        srf_file: a custom-SRF CSV instead of ``sensor``.
        bands: optional band subset of the sensor.
        ratio: resolution ratio of the simulated pairs (mode a).
        psf: :class:`..sensors.degradation.PSF`, dict or kind name.
        psf_fwhm: Gaussian FWHM in HR px (default ratio).
        epochs: total run length in epochs.
        iterations: total run length in iterations (wins over ``epochs`` when given).
        steps_per_epoch: default about one pass over the training area, at most 500.
        patch_size: HR side of a training patch (rounded to the network's alignment).
        batch_size: patches per step.
        learning_rate: replaces the network's paper learning rate (schedule kept).
        validation: fraction of each raster held out (0 = none).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        seed: seed of the initialisation and the patch sampling.
        resume: a checkpoint to continue (optimizer state + counts) or to fine-tune (weights only).
        hyper: network hyper-parameters replacing the registry defaults.
        max_val_patches: validation patches in all, shared among the rasters.
        feedback: progress, messages and cancel.
        max_missing: largest fraction of a sensor band's response the HSI may miss (default 1 %).
        keep_window_log: keep a log of the training windows sampled (tests check none reaches validation).

    Returns:
        dict with OUTPUT, LOG, PLOT, EPOCHS, ITERATIONS, METRICS, SECONDS, MODE.
    """
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    limit_cpu_threads()
    req = _validate_request(network, output, references, pairs, srf_file, validation, batch_size, seed)
    data = _plan_data(req, ratio, psf, psf_fwhm, sensor, srf_file, bands, patch_size, feedback, max_missing)
    data.stream.keep_log = keep_window_log
    dev = resolve_device(device)
    start = _starting_point(req, data, resume, hyper, steps_per_epoch, feedback)
    length = _run_length(req, data, start, iterations, epochs)
    run = TrainingRun(req, data, start, length, dev, learning_rate, max_val_patches, feedback, t0)
    run.run_epochs()
    seconds = time.perf_counter() - t0
    feedback.setProgress(100.0)
    log_csv, log_png = log_paths(output)
    feedback.pushInfo(f"wrote {output}, {log_csv} and {log_png} in {seconds:.1f} s")
    return {"OUTPUT": output, "LOG": log_csv, "PLOT": log_png if os.path.exists(log_png) else None,
            "EPOCHS": length.epochs, "ITERATIONS": run.iteration, "METRICS": run.last_metrics, "SECONDS": seconds,
            "MODE": data.mode, "PATCH_SIZE": data.patch, "STEPS_PER_EPOCH": length.steps_per_epoch,
            "VALIDATION_WINDOWS": run.val_where, "TRAIN_WINDOWS": list(data.stream.train_log),
            "SOURCES": data.sources}


@dataclass
class TrainingRequest:
    """The checked arguments of a run that do not depend on the rasters."""

    net: object                      # the network's catalogue entry
    spec: object                     # its NetSpec
    output: str
    refs: List[str]
    pairs: List[Tuple[str, ...]]
    validation: float
    batch_size: int
    seed: int


def _validate_request(network, output, references, pairs, srf_file, validation, batch_size, seed
                      ) -> TrainingRequest:
    """Check the network, the data mode, the outputs and the numbers before any raster is read."""
    from ...models.catalogue import SUPERVISED, entry, network_ids
    from ...models.registry import load_spec

    try:
        net = entry(network)
    except KeyError as exc:
        raise InputError(str(exc).strip("'\"")) from None
    if not net.supervised:
        raise InputError(f"{net.title} is not trained on examples (unsupervised); corpus training applies to "
                         f"{', '.join(network_ids(SUPERVISED))}")
    spec = load_spec(net)
    refs, pair_list = _as_list(references), [tuple(p) for p in (pairs or [])]
    if bool(refs) == bool(pair_list):
        raise InputError("give either reference HR-HSI rasters (simulated pairs) or real LR-HSI + HR-MSI pairs, "
                         "not both and not neither")
    if not output:
        raise OutputError("give an OUTPUT checkpoint path (.pt)")
    inputs = refs + [p for pr in pair_list for p in pr] + ([srf_file] if srf_file else [])
    check_outputs(dict(zip(("OUTPUT", "LOG", "PLOT"), (output, *log_paths(output)))), inputs)
    validation = float(validation or 0.0)
    if not 0.0 <= validation < 0.9:
        raise InputError(f"VALIDATION must be a fraction between 0 and 0.9, got {validation}")
    return TrainingRequest(net, spec, output, refs, pair_list, validation, max(1, int(batch_size)), int(seed or 0))


@dataclass
class TrainingData:
    """Where the examples come from and how they are cut: sources, ratio, PSF, patch sides, the stream."""

    mode: str
    sources: List[Source]
    meta: Dict
    ratio: int
    psf: PSF
    patch: int
    val_side: Optional[int]
    validation: float                # the fraction actually held out (0 when nothing fits)
    stream: "PatchStream"


def _plan_data(req: TrainingRequest, ratio, psf, psf_fwhm, sensor, srf_file, bands, patch_size, feedback,
               max_missing) -> TrainingData:
    """Open the sources, split each into training and validation regions, and size the patches."""
    net, spec, validation = req.net, req.spec, req.validation
    if req.refs:
        r = check_ratio(ratio)
        psf_obj = make_psf(psf, fwhm=psf_fwhm)
        sources, meta = _reference_sources(req.refs, r, psf_obj, sensor, srf_file, bands, feedback, max_missing)
        mode = "simulated from HR-HSI references"
    else:
        sources, meta, r, psf_obj = _pair_sources(req.pairs, psf, psf_fwhm, ratio if ratio else None, feedback)
        mode = "real pairs at reduced resolution"
    for s in sources:
        split_regions(s, validation, r)
    step = spec.align(r)
    patch = max(step, (int(patch_size) // step) * step)
    patch = max(patch, -(-spec.min_hr_size(r) // step) * step)
    if patch != int(patch_size):
        feedback.pushInfo(f"PATCH_SIZE {patch_size} -> {patch} px ({net.title} needs multiples of {step}, "
                          f"at least {spec.min_hr_size(r)})")
    val_side = validation_side(sources, patch, step, spec.min_hr_size(r)) if validation > 0 else None
    if validation > 0 and (val_side is None or not _training_fits(sources, patch)):
        strips = ", ".join(f"{s.val.width}x{s.val.height}" for s in sources if s.val is not None)
        why = (f"the held-out strips ({strips} px) are smaller than the smallest {net.title} patch "
               f"({max(step, spec.min_hr_size(r))} px)" if val_side is None else
               f"what is left for training ({', '.join(f'{s.train.width}x{s.train.height}' for s in sources)} px) "
               f"is smaller than a {patch} px patch")
        feedback.pushWarning(f"VALIDATION {validation:g}: {why}; training on the whole area without validation "
                             "(use larger rasters, or a smaller PATCH_SIZE, to validate)")
        validation, val_side = 0.0, None
        for s in sources:
            split_regions(s, validation, r)
    elif val_side is not None and val_side < patch:
        feedback.pushInfo(f"validation patches of {val_side} px: PATCH_SIZE {patch} does not fit the held-out strips")
    stream = PatchStream(sources, patch, r, req.seed)
    return TrainingData(mode, sources, meta, r, psf_obj, patch, val_side, validation, stream)


@dataclass
class StartingPoint:
    """Where a run starts: fresh, fine-tuned from weights, or resumed with the optimizer state."""

    ckpt: Optional[Dict]
    iteration: int
    epochs_done: int
    history: List[Dict]
    optimizer_state: Optional[Dict]
    norm: Dict[str, float]
    hyper: Dict
    steps_per_epoch: Optional[int]


def _starting_point(req: TrainingRequest, data: TrainingData, resume, hyper, steps_per_epoch, feedback
                    ) -> StartingPoint:
    """A resumed checkpoint's counts, normalisation and hyper-parameters, or fresh ones from the data."""
    net, spec, meta = req.net, req.spec, data.meta
    hyper_all = dict(spec.defaults, **(hyper or {}))
    ckpt, start_it, done_epochs, history, opt_state = None, 0, 0, [], None
    if resume:
        ckpt = load_checkpoint(resume)
        check_compatible(ckpt, net.id, meta["hsi_bands"], meta["msi_bands"], data.ratio, meta["hsi_wavelengths"],
                         meta["msi_wavelengths"])
        hyper_all = dict(spec.defaults, **net.checkpoint_fallbacks, **ckpt.get("hyper", {}))
        norm = {k: float(v) for k, v in ckpt["norm"].items()}
        state = ckpt.get("resume")
        if state:
            start_it, done_epochs = int(state["iteration"]), int(state["epochs_done"])
            opt_state = state.get("optimizer")
            if not steps_per_epoch:
                steps_per_epoch = int(state.get("steps_per_epoch") or 0) or None
            history = list(ckpt.get("training", {}).get("history", []))
            feedback.pushInfo(f"resuming {resume}: {done_epochs} epoch(s), {start_it} iteration(s) done")
        else:
            feedback.pushInfo(f"{resume} holds weights but no optimizer state: fine-tuning from its weights")
    else:
        hs, ms = zip(*(s.sample() for s in data.sources))
        norm = {"hsi": robust_max(np.concatenate(hs)), "msi": robust_max(np.concatenate(ms))}
    for k, v in list(hyper_all.items()):
        if isinstance(v, list):
            hyper_all[k] = tuple(v)
    return StartingPoint(ckpt, start_it, done_epochs, history, opt_state, norm, hyper_all, steps_per_epoch)


@dataclass
class RunLength:
    steps_per_epoch: int
    epochs: int
    total: int                       # iterations, counted from the first run


def _run_length(req: TrainingRequest, data: TrainingData, start: StartingPoint, iterations, epochs) -> RunLength:
    """Steps per epoch (default about one pass over the training area), epochs and total iterations."""
    steps_per_epoch = start.steps_per_epoch
    if not steps_per_epoch:
        area = sum(max(0, s.train.width) * max(0, s.train.height) for s in data.sources)
        patch, batch = data.patch, req.batch_size
        steps_per_epoch = int(min(MAX_STEPS_PER_EPOCH, max(1, round(area / (patch * patch * batch)))))
    spe = int(steps_per_epoch)
    if iterations:
        total = int(iterations)
        n_epochs = -(-total // spe)
    else:
        n_epochs = int(epochs or DEFAULT_EPOCHS)
        total = n_epochs * spe
    if total <= start.iteration:
        raise InputError(f"the checkpoint already holds {start.epochs_done} epoch(s) ({start.iteration} iterations); "
                         f"ask for more than that (EPOCHS > {start.epochs_done}) to continue")
    return RunLength(spe, n_epochs, total)


class TrainingRun:
    """The model, its optimizer and the epoch loop: one step, validation, checkpoint and log per epoch."""

    def __init__(self, req: TrainingRequest, data: TrainingData, start: StartingPoint, length: RunLength,
                 device: Tuple[object, str], learning_rate: Optional[float], max_val_patches: int, feedback: Feedback,
                 t0: float) -> None:
        import torch

        self.req, self.data, self.start, self.length = req, data, start, length
        self.feedback, self.t0 = feedback, t0
        net, spec, meta, r = req.net, req.spec, data.meta, data.ratio
        self.dev, reason = device          # resolve_device's (device, why)
        torch.manual_seed(req.seed)
        self.model = spec.build(meta["hsi_bands"], meta["msi_bands"], r, **start.hyper).to(self.dev)
        if start.ckpt is not None:
            try:
                self.model.load_state_dict(start.ckpt["state_dict"])
            except RuntimeError as exc:
                raise CheckpointError(f"checkpoint weights do not fit {net.title}: {str(exc).splitlines()[0]}") \
                    from None
        self.opt, self.sched = make_optimizer(spec, self.model.parameters(), length.total, learning_rate,
                                              start.iteration, start.optimizer_state)
        self.loss_fn = spec.loss
        self.val_data, self.val_where = (data.stream.validation(max_val_patches, feedback, data.val_side)
                                         if data.validation > 0 else ([], []))
        if data.validation > 0 and not self.val_data:
            feedback.pushWarning("VALIDATION > 0 but every validation patch in the held-out strips holds nodata; "
                                 "training without validation metrics")
        feedback.pushInfo(
            f"train {net.title} ({data.mode}) on {self.dev} ({reason}): {len(data.sources)} source(s), ratio {r}, "
            f"{meta['hsi_bands']} HSI / {meta['msi_bands']} MSI bands, patches {data.patch} px, "
            f"batch {req.batch_size}, {length.steps_per_epoch} steps per epoch, {length.epochs} epoch(s) "
            f"({length.total} iterations), {len(self.val_data)} validation patches")
        self.iteration = self.saved = start.iteration
        self.history = list(start.history)
        self.last_metrics = dict(start.ckpt.get("metrics", {})) if start.ckpt is not None else {}
        self.epoch_metrics = MetricAccumulator()
        self.base_training = {
            "mode": data.mode, "network": net.id, "sources": _describe_sources(data.sources, data.mode),
            "patch_size": data.patch, "batch_size": req.batch_size, "steps_per_epoch": length.steps_per_epoch,
            "validation_fraction": data.validation, "validation_patches": len(self.val_data),
            "optimizer": type(self.opt).__name__, "scheduler": type(self.sched).__name__ if self.sched else None,
            "learning_rate": learning_rate, "seed": req.seed, "sensor": meta["sensor"],
            "msi_band_names": meta["msi_band_names"]}

    def to_tensor(self, a):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.dev)

    def normalise(self, b: Batch):
        norm = self.start.norm
        return self.to_tensor(b.y / norm["hsi"]), self.to_tensor(b.z / norm["msi"]), self.to_tensor(b.x / norm["hsi"])

    def validate(self) -> Dict:
        import torch

        acc = MetricAccumulator()
        batch_size = self.req.batch_size
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(self.val_data), batch_size):
                chunk = self.val_data[i:i + batch_size]
                b = Batch(*(np.stack(t) for t in zip(*chunk)))
                y, z, x = self.normalise(b)
                pred = self.model(y, z)
                acc.add(float(self.loss_fn(pred, x)), pred.float().cpu().numpy(), x.float().cpu().numpy())
        self.model.train()
        return acc.result()

    def save(self, epochs_done: int, metrics: Dict, interrupted: bool = False) -> None:
        req, data, meta, length = self.req, self.data, self.data.meta, self.length
        training = dict(self.base_training, epochs=epochs_done, iterations=self.iteration, history=self.history,
                        interrupted=interrupted, seconds=round(time.perf_counter() - self.t0, 2))
        save_checkpoint(req.output, req.net.id, self.start.hyper, self.model.state_dict(), meta["hsi_bands"],
                        meta["msi_bands"], data.ratio, self.start.norm, meta["hsi_wavelengths"],
                        meta["msi_wavelengths"], psf=data.psf.describe(data.ratio),
                        srf=meta["srf"], training=training, metrics=metrics,
                        extra={"seed": req.seed, "plugin": __version__},
                        resume={"optimizer": self.opt.state_dict(), "iteration": self.iteration,
                                "epochs_done": epochs_done, "steps_per_epoch": length.steps_per_epoch,
                                "total_iterations": length.total})
        self.saved = self.iteration

    def step(self, _i: int) -> float:
        import torch

        seed, g = self.req.seed, self.iteration
        rng = np.random.default_rng([seed, g])
        torch.manual_seed(seed * 1_000_003 + g)
        y, z, x = self.normalise(self.data.stream.sample(self.req.batch_size, rng))
        self.opt.zero_grad(set_to_none=True)
        pred = self.model(y, z)
        loss = self.loss_fn(pred, x)
        value = float(loss.item())
        if not math.isfinite(value):
            raise TrainingDiverged(f"the training loss became {value} at iteration {g + 1}; lower LEARNING_RATE. "
                                   f"The last good checkpoint ({self.saved} iterations) is kept")
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self.iteration = g + 1
        self.epoch_metrics.add(value, pred.detach().float().cpu().numpy(), x.float().cpu().numpy())
        return value

    def run_epochs(self) -> None:
        """Train to the end; on cancel save the last completed step (RESUME continues from there)."""
        spe, n_epochs, total = self.length.steps_per_epoch, self.length.epochs, self.length.total
        first_epoch = self.start.iteration // spe
        span = max(1, n_epochs - first_epoch)
        try:
            for epoch in range(first_epoch, n_epochs):
                n_steps = min((epoch + 1) * spe, total) - self.iteration
                if n_steps <= 0:
                    continue
                k = epoch - first_epoch
                self.run_epoch(epoch, n_steps, (100.0 * k / span, 100.0 * (k + 1) / span))
        except Cancelled:
            if self.iteration > self.saved:
                self.save(self.iteration // spe, self.last_metrics, interrupted=True)
                self.feedback.pushInfo(f"cancelled after {self.iteration} iterations; weights saved to "
                                       f"{self.req.output} (RESUME continues from there)")
            raise

    def run_epoch(self, epoch: int, n_steps: int, progress_span: Tuple[float, float]) -> None:
        """``n_steps`` steps, then validation, checkpoint, CSV log and loss plot."""
        n_epochs = self.length.epochs
        self.epoch_metrics = MetricAccumulator()
        optimise(self.step, n_steps, self.feedback, None, progress_span, f"epoch {epoch + 1}/{n_epochs}",
                 report_every=max(10, n_steps // 5))
        tr = self.epoch_metrics.result()
        va = self.validate() if self.val_data else {"loss": None, "psnr": None, "sam": None}
        row = {"epoch": epoch + 1, "iteration": self.iteration, "seconds": round(time.perf_counter() - self.t0, 2),
               "learning_rate": float(self.opt.param_groups[0]["lr"]),
               "train_loss": tr["loss"], "train_psnr": tr["psnr"], "train_sam": tr["sam"],
               "val_loss": va["loss"], "val_psnr": va["psnr"], "val_sam": va["sam"]}
        self.history = [h for h in self.history if h.get("epoch") != epoch + 1] + [row]
        self.last_metrics = {"validation": va, "training": tr, "epoch": epoch + 1}
        self.save(epoch + 1, self.last_metrics)
        log_csv, log_png = log_paths(self.req.output)
        write_log(log_csv, self.history)
        plot_losses(log_png, self.history, f"{self.req.net.id} training: {self.data.mode}")
        self.feedback.pushInfo(_epoch_line(row, n_epochs))


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _epoch_line(row: Dict, n_epochs: int) -> str:
    return (f"epoch {row['epoch']}/{n_epochs}: train loss {_fmt(row['train_loss'], '.5f')}, "
            f"PSNR {_fmt(row['train_psnr'], '.2f')} dB, SAM {_fmt(row['train_sam'], '.2f')} deg | validation loss "
            f"{_fmt(row['val_loss'], '.5f')}, PSNR {_fmt(row['val_psnr'], '.2f')} dB, "
            f"SAM {_fmt(row['val_sam'], '.2f')} deg")
