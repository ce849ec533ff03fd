"""Shared pieces of the classical HS-MS fusion methods (GSA, GLP, SFIM, CNMF).

Every classical method works in two passes:

1. ``fit``: global statistics (regressions, band assignment, endmembers) at the LR scale, from one
   contiguous crop of the scene of at most ``FIT_LR_SIDE`` LR pixels a side (``Scene.read_crop``),
   so memory is bounded whatever the raster size (256 LR px = 65 536 LR samples, far more than the
   <= 224 unknowns of any regression here). The HR-MSI is brought to the LR scale with the sensor PSF
   (Gaussian, block-centred decimation: docs/design.md#area-convention) and compared with the LR-HSI
   pixel by pixel.
2. ``apply``: per tile, only pixel-wise or fixed-support operations with global coefficients, so a
   tile's output never depends on where the tile is (tiled == untiled) and memory follows the tile.

Injection gains (``gains``): each method adds detail to the bicubic-upsampled HSI. By default
(``reduced_scale``) ``fit`` ends by scaling each band's detail by the MMSE gain fitted one scale down
(the fit crop's LR-HSI and MSI degraded once more, scored against the LR-HSI: engine/quality/selfval.py), in
[0, 2], shrunk to 0 where the MSI's detail does not predict the HSI's (in the spirit of BDSD, Garzelli,
Nencini & Capobianco 2008, and BDSD-PC, Vivone 2019), then scaled down together if they raised the
mean spectral angle there (``spectral_angle_guard``). So no band is worse than interpolation at the
reduced scale. On a real pair (two sensors, not cross-calibrated) the method's own gains can be far
off; ``classic`` keeps them (the behaviour before the gains).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import InputError, NoValidDataError
from ..pipeline.device import limit_cpu_threads
from ._kernels import (
    DEFAULT_MTF_GAIN,
    NO_CROP,
    bicubic,
    blur_decimate_separable,
    correlation,
    mtf_sigma,
    psf_taps,
)
from .base import FusionMethod

FIT_LR_SIDE = 256
FIT_MAX_SAMPLES = 16384  # regressions use a regular subset of the crop's valid LR pixels


def assign_bands(y: np.ndarray, z: np.ndarray, hsi_wl=None, msi_wl=None, msi_fwhm=None) -> np.ndarray:
    """For every HSI band, the MSI band it takes detail from: (C,) int.

    A band inside an MSI band's FWHM (both wavelength sets and the MSI FWHM known) takes that band
    (nearest centre when several cover it); every other band takes the MSI band it correlates best
    with at the LR scale (Yokoya et al. 2017's rule).
    """
    idx = np.argmax(correlation(y, z), axis=1)
    if hsi_wl is not None and msi_wl is not None and msi_fwhm is not None:
        hw = np.asarray(hsi_wl, dtype=np.float64)[:, None]
        mw = np.asarray(msi_wl, dtype=np.float64)[None, :]
        mf = np.asarray(msi_fwhm, dtype=np.float64)[None, :]
        if np.isfinite(mf).all() and hw.shape[0] == y.shape[0] and mw.shape[1] == z.shape[0]:
            dist = np.abs(hw - mw)
            covered = dist <= mf / 2
            dist = np.where(covered, dist, np.inf)
            has = covered.any(axis=1)
            idx = np.where(has, np.argmin(dist, axis=1), idx)
    return idx.astype(np.int64)


# ----------------------------------------------------------------------------------- fit sample
@dataclass
class LRSample:
    """What ``fit`` sees: the crop and its valid LR pixels, both images at the LR scale."""

    lr: np.ndarray  # (C, h, w) LR-HSI crop
    hr: np.ndarray  # (c, rh, rw) HR-MSI crop
    lr_valid: np.ndarray  # (h, w) bool: whole HR block valid and PSF support inside valid data
    y: np.ndarray  # (C, n) LR-HSI at valid LR pixels (every k-th when more than FIT_MAX_SAMPLES)
    z: np.ndarray  # (c, n) degraded MSI at the same pixels
    good: np.ndarray  # (C,) bool HSI bands usable as regressors


def lr_sample(scene, ratio: int, taps: np.ndarray, extra: int, max_lr_side: int = FIT_LR_SIDE) -> LRSample:
    """Read the fit crop and pair the LR-HSI with the MSI degraded to the LR scale."""
    from scipy.ndimage import minimum_filter

    lr, hr, valid = scene.read_crop(max_lr_side=max_lr_side)
    C, h, w = lr.shape
    zl = blur_decimate_separable(hr, ratio, taps, extra)
    ok = valid.reshape(h, ratio, w, ratio).all(axis=(1, 3))
    e = -(-extra // ratio)
    if e:
        ok = minimum_filter(ok, size=2 * e + 1, mode="nearest")
        # the crop's own border saw reflected (not real) context: drop it when enough is left
        inner = ok.copy()
        inner[:e], inner[-e:], inner[:, :e], inner[:, -e:] = False, False, False, False
        if inner.sum() >= 16:
            ok = inner
    n = int(ok.sum())
    if n < 4:
        raise NoValidDataError(f"only {n} valid LR pixel(s) in the {w}x{h} fit crop; need at least 4")
    good = np.ones(C, dtype=bool)
    gb = scene.pair.hsi.good_bands
    if gb is not None:
        good &= np.asarray(gb, dtype=bool)
    step = -(-n // FIT_MAX_SAMPLES)
    return LRSample(lr=lr, hr=hr, lr_valid=ok, y=lr[:, ok][:, ::step], z=zl[:, ok][:, ::step], good=good)


LOW_CORRELATION = 0.5  # below this an MSI band barely predicts any HSI band (registration, band order)


def report_radiometry(name: str, s: LRSample, feedback) -> None:
    """Say what the methods assume of the two sensors' radiometry, and warn when it looks wrong.

    The HSI and the MSI need not share units, scale or offset (two sensors, not cross-calibrated):
    every regression has a free gain and intercept per band, so only a linear relation is assumed.
    An MSI band that correlates weakly with every HSI band at the LR scale (misregistration, wrong
    band order, clouds in one image only) is named in a warning.
    """
    y, z = s.y[s.good], s.z
    best = np.abs(correlation(z, y)).max(axis=1) if y.shape[0] else np.zeros(z.shape[0])
    feedback.pushInfo(f"{name}: radiometry: HSI values {np.percentile(y, 1):.4g}..{np.percentile(y, 99):.4g}, "
                      f"MSI {np.percentile(z, 1):.4g}..{np.percentile(z, 99):.4g} (1-99 %); assumed: a linear "
                      f"relation (free gain and offset per band), so different units or offsets are absorbed; "
                      f"best correlation of each MSI band with the HSI {best.min():.2f}..{best.max():.2f}")
    weak = np.flatnonzero(best < LOW_CORRELATION)
    if weak.size:
        feedback.pushWarning(f"{name}: MSI band(s) {', '.join(str(int(k) + 1) for k in weak)} correlate at most "
                             f"{best[weak].max():.2f} with any HSI band at the LR scale: check registration, band "
                             f"order and clouds; their detail gets little or no weight")


# ----------------------------------------------------------------------------------- base class
GAINS = ("reduced_scale", "classic")  # injection gains: fitted at the reduced scale (default) or the method's own


class ClassicalMethod(FusionMethod):
    """Common PSF handling, fit-crop size, injection gains and description for GSA / GLP / SFIM / CNMF."""

    name = "classical"
    needs_torch = False  # numpy/scipy only; torch, when present, only speeds up add_matmul
    thread_safe = True  # apply() only reads what fit() stored: two tiles may be computed at once
    crops_itself = True  # apply_cropped computes the tile's core only

    def __init__(self, mtf_gain: float = DEFAULT_MTF_GAIN, fit_lr_side: int = FIT_LR_SIDE,
                 gains: str = "reduced_scale") -> None:
        mtf_sigma(2, mtf_gain)  # validates the gain
        if int(fit_lr_side) < 8:
            raise InputError(f"fit crop side must be at least 8 LR pixels, got {fit_lr_side}")
        if gains not in GAINS:
            raise InputError(f"unknown GAINS {gains!r}; use one of {', '.join(GAINS)}")
        self.mtf_gain = float(mtf_gain)
        self.fit_lr_side = int(fit_lr_side)
        self.gains_mode = gains
        self._ratio: Optional[int] = None
        self._taps: Optional[np.ndarray] = None
        self._extra = 0

    def psf(self, ratio: int) -> Tuple[np.ndarray, int]:
        if self._ratio != ratio:
            self._taps, self._extra = psf_taps(ratio, mtf_sigma(ratio, self.mtf_gain))
            self._ratio = ratio
        return self._taps, self._extra

    def sample(self, scene, feedback=None, max_lr_side: Optional[int] = None) -> LRSample:
        taps, extra = self.psf(scene.ratio)
        limit_cpu_threads()
        s = lr_sample(scene, scene.ratio, taps, extra, max_lr_side or self.fit_lr_side)
        if feedback is not None:
            h, w = s.lr_valid.shape
            feedback.pushInfo(f"{self.name}: global statistics from a {w}x{h} LR crop "
                              f"({s.y.shape[1]} valid LR pixels)")
            report_radiometry(self.name, s, feedback)
        return s

    def reduced_scale_gains(self, s: LRSample, feedback=None) -> np.ndarray:
        """(C,) per band gains on the detail the method adds to bicubic, fitted at the reduced scale.

        MMSE at the reduced scale (engine.quality.selfval: the fit crop degraded once more, scored against the
        LR-HSI), shrunk towards 0 where the MSI's detail does not predict the HSI's; ones with
        ``gains="classic"``.

        Call at the end of ``fit`` with the method's unit-gain coefficients in place: it runs ``apply``
        on the reduced crop. Global (one crop), so tiled == untiled.
        """
        from dataclasses import replace

        from ..quality.selfval import apply_mirrored, can_reduce, injection_gains, reduce_pair, score

        C = s.lr.shape[0]
        r = self._ratio
        h, w = s.lr_valid.shape
        self.reduced_score = None  # selfval.Score of the gains' result at the reduced scale, when fitted
        if self.gains_mode == "classic":
            return np.ones(C)
        if not can_reduce(h, w, r):
            if feedback is not None:
                feedback.pushInfo(f"{self.name}: the {w}x{h} LR fit crop is too small for reduced-scale gains "
                                  f"at ratio {r}; the method's own gains are used")
            return np.ones(C)
        pair = reduce_pair(s.lr, s.hr, r, s.lr_valid, s.good, self.mtf_gain)
        inner = pair.valid.copy()
        inner[:r], inner[-r:], inner[:, :r], inner[:, -r:] = False, False, False, False
        valid = inner if inner.sum() >= 16 else pair.valid  # the crop's border saw reflected context
        margin = self.margin(r)
        base = apply_mirrored(_Bicubic(), pair.lr, pair.hr, r, margin_hr=margin)
        detail = apply_mirrored(self, pair.lr, pair.hr, r, margin_hr=margin) - base
        g = injection_gains(base, detail, pair.target, valid)
        g[~s.good] = 0.0
        g *= spectral_angle_guard(base, detail, g, pair.target, valid, s.good)
        self.reduced_score = score(base + g[:, None, None] * detail, replace(pair, valid=valid))
        if feedback is not None:
            gg = g[s.good]
            feedback.pushInfo(f"{self.name}: reduced-scale injection gains (median {np.median(gg):.2f}, "
                              f"{int((gg < 0.5).sum())} of {gg.size} bands below 0.5, {int((gg == 0).sum())} "
                              f"at 0: their MSI detail does not predict the HSI's)")
        return g

    def describe(self):
        return {"method": self.name, "mtf_gain": f"{self.mtf_gain:g}", "gains": self.gains_mode}

    def apply(self, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback=None) -> np.ndarray:
        return self.apply_cropped(lr, hr, ratio, NO_CROP, feedback)

    def _need_fit(self):
        if not getattr(self, "_fitted", False):
            raise RuntimeError(f"{self.name}: call fit(scene) before apply()")


SAM_GUARD_STEPS = (1.0, 0.75, 0.5, 0.25, 0.0)


def spectral_angle_guard(base: np.ndarray, detail: np.ndarray, gains: np.ndarray, target: np.ndarray,
                         valid: np.ndarray, good: np.ndarray) -> float:
    """The largest common scale t of the gains that does not raise the spectral angle.

    t is the largest of ``SAM_GUARD_STEPS`` such that the spectral angle of ``base + t g detail`` to
    ``target`` (mean over ``valid``) is no larger than that of ``base`` (t = 0 is ``base`` itself).
    Per band MMSE gains minimise each band's error, not the angle between spectra, and on a pair
    whose MSI detail has another spectral shape they can raise it.
    """
    from ..quality.metrics import sam_degrees

    def mean_sam(x):
        ang, ok = sam_degrees(x[good][:, valid], target[good][:, valid])
        return float(ang[ok].mean()) if ok.any() else 0.0

    limit = mean_sam(base)
    g = gains[:, None, None]
    for t in SAM_GUARD_STEPS[:-1]:
        if mean_sam(base + t * g * detail) <= limit:
            return t
    return SAM_GUARD_STEPS[-1]


class _Bicubic:
    """The interpolation every detail is added to, as a method (for selfval.apply_mirrored)."""

    @staticmethod
    def apply(lr, hr, ratio, feedback=None):
        return bicubic(lr, ratio)
