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
(the fit crop's LR-HSI and MSI degraded once more, scored against the LR-HSI: engine/selfval.py), in
[0, 2], shrunk to 0 where the MSI's detail does not predict the HSI's (in the spirit of BDSD, Garzelli,
Nencini & Capobianco 2008, and BDSD-PC, Vivone 2019), then scaled down together if they raised the
mean spectral angle there (``spectral_angle_guard``). So no band is worse than interpolation at the
reduced scale. On a real pair (two sensors, not cross-calibrated) the method's own gains can be far
off; ``classic`` keeps them (the behaviour before the gains).

The PSF is a Gaussian given by its MTF gain at the LR Nyquist frequency (the usual way sensor MTFs are
quoted, Aiazzi et al. 2006); the default gain 0.41 is the Gaussian of FWHM = r HR pixels that the
project's simulator uses.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from ..device import limit_cpu_threads
from ..errors import InputError, NoValidDataError
from ..memory import TILE_BUFFERS
from .base import FusionMethod

FIT_LR_SIDE = 256
FIT_MAX_SAMPLES = 16384  # regressions use a regular subset of the crop's valid LR pixels
FWHM_GAIN = math.exp(-math.pi ** 2 / (2 * (2 * math.sqrt(2 * math.log(2))) ** 2))  # 0.4107: FWHM = r
DEFAULT_MTF_GAIN = round(FWHM_GAIN, 2)
TRUNCATE = 3.0  # Gaussian support in sigmas
Crop = Tuple[int, int, int, int]  # (top, bottom, left, right) HR px dropped from a tile's estimate
NO_CROP: Crop = (0, 0, 0, 0)
RIDGE = 1e-6  # relative Tikhonov term on Gram matrices (adjacent HSI bands are nearly collinear)


# ----------------------------------------------------------------------------------- PSF and scales
def mtf_sigma(ratio: int, gain: float = DEFAULT_MTF_GAIN) -> float:
    """Std (HR px) of the Gaussian whose MTF equals ``gain`` at the LR Nyquist frequency 1/(2r).

    MTF(f) = exp(-2 pi^2 sigma^2 f^2)  ->  sigma = r * sqrt(-2 ln gain) / pi (as engine.degrade).
    """
    if not 0.0 < gain < 1.0:
        raise InputError(f"MTF gain must lie strictly between 0 and 1, got {gain}")
    return ratio * math.sqrt(-2.0 * math.log(gain)) / math.pi


def psf_taps(ratio: int, sigma: float, truncate: float = TRUNCATE) -> Tuple[np.ndarray, int]:
    """Block-centred 1-D Gaussian taps for blur + decimation by ``ratio``.

    LR pixel i covers HR pixels r*i .. r*i+r-1; its value is sum_t taps[t] * x[r*i - R + t] for
    t = 0 .. r+2R-1, the taps being the Gaussian at (t - R) - (r-1)/2 from the block centre.
    Returns (taps float32 summing to 1, R = HR pixels of support beyond the block on each side).
    The taps are the simulator's (``engine.degrade.gaussian_kernel``) when that module is present,
    cut at ``truncate`` sigmas (3: the tail beyond holds < 0.3 % of the weight, and margins stay small).
    """
    try:
        from ..degrade import gaussian_kernel
    except ImportError:  # engine without the simulator: same formula here
        gaussian_kernel = None
    if gaussian_kernel is not None:
        k = np.asarray(gaussian_kernel(sigma, ratio, truncate), dtype=np.float64)
        return (k / k.sum()).astype(np.float32), (len(k) - ratio) // 2
    centre = (ratio - 1) / 2.0
    extra = max(0, int(math.ceil(truncate * sigma - centre)))
    x = np.arange(-extra, ratio + extra, dtype=np.float64) - centre
    w = np.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return (w / w.sum()).astype(np.float32), extra


def degrade(hr: np.ndarray, ratio: int, taps: np.ndarray, extra: int) -> np.ndarray:
    """(c, H, W) HR -> (c, H/r, W/r): separable PSF blur + block-centred decimation.

    Edges are reflected (the tiler's margins make edge effects fall outside every core). Each LR value
    is the same fixed-order sum of shifted slices wherever the tile is, so tiles agree exactly.
    """
    c, H, W = hr.shape
    if H % ratio or W % ratio:
        raise ValueError(f"HR size {H}x{W} is not a multiple of the ratio {ratio}")
    h, w = H // ratio, W // ratio
    x = np.pad(hr, ((0, 0), (extra, extra), (extra, extra)), mode="reflect") if extra else hr
    x = np.ascontiguousarray(x, dtype=np.float32)
    span = ratio * (h - 1) + 1
    v = np.zeros((c, h, x.shape[2]), dtype=np.float32)
    for t, wt in enumerate(taps):
        v += wt * x[:, t:t + span:ratio, :]
    span = ratio * (w - 1) + 1
    out = np.zeros((c, h, w), dtype=np.float32)
    for t, wt in enumerate(taps):
        out += wt * v[:, :, t:t + span:ratio]
    return out


def lowpass(hr: np.ndarray, ratio: int, taps: np.ndarray, extra: int, crop: Crop = NO_CROP) -> np.ndarray:
    """MTF-matched low-pass of an HR image.

    Degrade to LR, then the same bicubic upsampling the HSI gets, so ``hr - lowpass(hr)`` holds exactly the
    detail the upsampled HSI lacks (MTF-GLP).
    """
    return bicubic(degrade(hr, ratio, taps, extra), ratio, crop)


def lowpass_margin_lr(ratio: int, extra: int) -> int:
    """LR pixels of context for bicubic (2) after the PSF support (ceil(extra / r))."""
    return 2 + -(-extra // ratio)


# ----------------------------------------------------------------------------------- bicubic
CUBIC_A = -0.75  # torch / OpenCV bicubic
CUBIC_CHUNK = 65536  # float32 elements of a band chunk after the first (width) pass
FINISH_CHUNK = 4  # bands per chunk when bicubic finishes them in the same pass


@functools.lru_cache(maxsize=None)
def _cubic_phases(ratio: int):
    """Per output phase q: (floor offset f in {-1, 0}, 4 float32 weights for LR taps i+f-1 .. i+f+2).

    Output pixel r*i+q samples the LR grid at i + (q + 0.5)/r - 0.5 (align_corners=False), exactly as
    ``torch.nn.functional.interpolate(mode="bicubic", scale_factor=r)``.
    """
    a = CUBIC_A

    def k(x):
        x = abs(x)
        if x <= 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a if x < 2 else 0.0

    out = []
    for q in range(ratio):
        src = (q + 0.5) / ratio - 0.5
        f = int(math.floor(src))
        t = src - f
        out.append((f, (np.float32(k(1 + t)), np.float32(k(t)), np.float32(k(1 - t)), np.float32(k(2 - t)))))
    return tuple(out)


_SCRATCH = threading.local()


def scratch(slot: str, shape) -> np.ndarray:
    """A float32 work array of ``shape`` reused by this thread (slot = purpose).

    The per-chunk temporaries of the tile kernels are allocated once per thread instead of thousands of times
    per tile: fewer page faults, and no heap fragmentation that grew peak memory with the raster size.
    """
    n = int(np.prod(shape))
    pool = _SCRATCH.__dict__
    buf = pool.get(slot)
    if buf is None or buf.size < n:
        buf = pool[slot] = np.empty(n, dtype=np.float32)
    return buf[:n].reshape(shape)


def _cubic_axis(x: np.ndarray, ratio: int, axis: int, lo: int, hi: int, out: np.ndarray) -> None:
    """Upsample samples ``lo .. hi-1`` of ``x`` ``ratio`` times along ``axis`` into ``out``.

    ``out`` has ``hi - lo`` samples along ``axis``; filled phase by phase (a view is fine).

    Only the samples asked for are computed, so a tile's margin costs nothing here; taps beyond ``x``
    take its edge value (torch clamps the tap indices: same values). Every sample is the same fixed
    sequence of float32 products and sums wherever it lies (tiled == untiled bit for bit).
    """
    n = x.shape[axis]
    phases = []
    for q, (f, weights) in enumerate(_cubic_phases(ratio)):
        first = lo + (q - lo) % ratio  # first output index >= lo of phase q
        if first < hi:
            phases.append((first, (first - q) // ratio + f - 1, len(range(first, hi, ratio)), weights))
    need_lo = min(p[1] for p in phases)
    need_hi = max(p[1] + p[2] + 3 for p in phases)  # one past the last tap
    pad_lo, pad_hi = max(0, -need_lo), max(0, need_hi - n)
    if pad_lo or pad_hi:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (pad_lo, pad_hi)
        x = np.pad(x, widths, mode="edge")
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    for first, tap0, count, weights in phases:
        dst[axis] = slice(first - lo, None, ratio)
        target = out[tuple(dst)]
        acc = scratch("cubic_acc", target.shape)  # small and contiguous: the sums stay in cache
        tmp = scratch("cubic_tmp", target.shape)
        for j, wt in enumerate(weights):
            src[axis] = slice(tap0 + pad_lo + j, tap0 + pad_lo + j + count)
            if j == 0:
                np.multiply(x[tuple(src)], wt, out=acc)
            else:
                np.multiply(x[tuple(src)], wt, out=tmp)
                acc += tmp
        target[...] = acc


def bicubic(x: np.ndarray, ratio: int, crop: Crop = NO_CROP,
            finish: Optional[Callable[[np.ndarray, int, int], None]] = None) -> np.ndarray:
    """(C, h, w) -> (C, r*h - top - bottom, r*w - left - right).

    The same bicubic as :func:`interpolate.upsample` (equal to float32 rounding), computed separably by
    polyphase multiply-adds, without the ``crop`` = (top, bottom, left, right) HR pixels of the tile's
    context.

    ``finish(chunk, b0, b1)`` completes bands ``b0:b1`` in place while they are still in cache (the HR
    detail injection of GSA/GLP, SFIM's modulation: one pass over the output, not two); with it the
    chunks are ``FINISH_CHUNK`` bands whatever the tile size (BLAS may round a product differently for
    another row count). Bands are processed in chunks small enough to stay in cache: 3-4x faster than
    torch's non-separable CPU kernel on 224 bands (one thread against two).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    C, h, w = x.shape
    top, bottom, left, right = crop
    rows, cols = (top, h * ratio - bottom), (left, w * ratio - right)
    if rows[1] <= rows[0] or cols[1] <= cols[0]:
        raise ValueError(f"crop {crop} leaves nothing of a {h * ratio}x{w * ratio} upsampling")
    out = TILE_BUFFERS.take((C, rows[1] - rows[0], cols[1] - cols[0]))  # recycled once written (memory.py)
    step = FINISH_CHUNK if finish is not None else max(1, CUBIC_CHUNK // (h * out.shape[2]))
    for b in range(0, C, step):
        chunk = x[b:b + step]
        mid = scratch("cubic_mid", (chunk.shape[0], h, out.shape[2]))
        _cubic_axis(chunk, ratio, 2, cols[0], cols[1], mid)
        _cubic_axis(mid, ratio, 1, rows[0], rows[1], out[b:b + step])
        if finish is not None:
            finish(out[b:b + step], b, b + chunk.shape[0])
    return out


def add_detail(m: np.ndarray, d: np.ndarray) -> Callable[[np.ndarray, int, int], None]:
    """A :func:`bicubic` ``finish`` adding ``m (C, c) @ d (c, H', W')`` (the injected HR detail)."""
    m, d = as_f32(m), as_f32(d).reshape(d.shape[0], -1)
    return lambda chunk, b0, b1: add_matmul(chunk, m[b0:b1], d)


def crop_hr(hr: np.ndarray, crop: Crop) -> np.ndarray:
    """The core of an HR tile (a view): ``crop`` = (top, bottom, left, right) pixels removed."""
    top, bottom, left, right = crop
    return hr[:, top:hr.shape[1] - bottom, left:hr.shape[2] - right]


# ----------------------------------------------------------------------------------- regressions
def _gram_nnls(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """min_x ||A x - b||^2, x >= 0, given G = A^T A and A^T b (one column of ``rhs`` per target).

    With G = L L^T the problem is ||L^T x - L^-1 A^T b||^2, a square NNLS of the size of x.
    """
    from scipy.linalg import cho_factor, solve_triangular
    from scipy.optimize import nnls

    n = gram.shape[0]
    g = gram + RIDGE * max(np.trace(gram) / n, 1e-30) * np.eye(n)
    low, _ = cho_factor(g, lower=True)
    low = np.tril(low)
    d = solve_triangular(low, rhs, lower=True)
    out = np.zeros((n, rhs.shape[1]))
    for j in range(rhs.shape[1]):  # one small NNLS per target band (<= C of them), not per pixel
        out[:, j] = nnls(low.T, d[:, j], maxiter=50 * n)[0]
    return out


def regress(x: np.ndarray, t: np.ndarray, nonneg: bool = False, use: Optional[np.ndarray] = None
            ) -> Tuple[np.ndarray, np.ndarray]:
    """Targets ``t`` (q, n) ~ W @ x (p, n) + b: returns (W (q, p), b (q,)) in float64.

    Centred least squares (free intercept); ``nonneg`` keeps W >= 0 (NNLS); ``use`` (p,) bool limits
    the regressors (others get weight 0, e.g. bad or constant bands).
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    mx, mt = x.mean(axis=1), t.mean(axis=1)
    xc, tc = x - mx[:, None], t - mt[:, None]
    keep = xc.std(axis=1) > 0
    if use is not None:
        keep &= use
    W = np.zeros((t.shape[0], x.shape[0]))
    if keep.any():
        xs = xc[keep]
        gram, rhs = xs @ xs.T, xs @ tc.T
        if nonneg:
            W[:, keep] = _gram_nnls(gram, rhs).T
        else:
            n = gram.shape[0]
            g = gram + RIDGE * max(np.trace(gram) / n, 1e-30) * np.eye(n)
            W[:, keep] = np.linalg.solve(g, rhs).T
    return W, mt - W @ mx


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` (p, n) with every row of ``b`` (q, n): (p, q)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    na = np.sqrt((ac ** 2).sum(axis=1))
    nb = np.sqrt((bc ** 2).sum(axis=1))
    return (ac @ bc.T) / np.maximum(np.outer(na, nb), 1e-30)


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
    zl = degrade(hr, ratio, taps, extra)
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

        MMSE at the reduced scale (engine.selfval: the fit crop degraded once more, scored against the
        LR-HSI), shrunk towards 0 where the MSI's detail does not predict the HSI's; ones with
        ``gains="classic"``.

        Call at the end of ``fit`` with the method's unit-gain coefficients in place: it runs ``apply``
        on the reduced crop. Global (one crop), so tiled == untiled.
        """
        from dataclasses import replace

        from ..selfval import apply_mirrored, can_reduce, injection_gains, reduce_pair, score

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
    from ..metrics import sam_degrees

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


def as_f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def band_combination(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``m (q, C) @ x (C, ...)`` summed band by band in a fixed order (only non-zero columns).

    BLAS picks its blocking from the matrix sizes, so a long reduction (C = 224) rounds differently in
    tiles of different sizes; this loop gives every pixel the same sum wherever it is (tiled ==
    untiled bit for bit). Used at the LR scale only, where its cost is small.
    """
    m = as_f32(m)
    out = np.zeros((m.shape[0],) + x.shape[1:], dtype=np.float32)
    tmp = np.empty_like(out)
    for b in np.flatnonzero(np.any(m != 0, axis=0)):
        np.multiply(m[:, b].reshape((-1,) + (1,) * (x.ndim - 1)), x[b], out=tmp)
        out += tmp
    return out


MIN_GEMM_COLUMNS = 64  # torch's addmm takes another path (other rounding) below ~15 columns


def add_matmul(out: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """In place ``out (C,H,W) += m (C,c) @ d (c,H,W)`` (``d`` may also be (c, H*W)).

    Torch's addmm (one pass over ``out``) when torch is installed, else numpy. The classical methods need no
    torch otherwise.

    Fewer than ``MIN_GEMM_COLUMNS`` pixels are zero-padded to that many: torch rounds narrow products
    differently, and a small edge tile must get the same values as the whole raster.
    """
    C = out.shape[0]
    n = out.size // max(C, 1)
    d2 = as_f32(d).reshape(d.shape[0], n)
    if n < MIN_GEMM_COLUMNS:
        wide = np.zeros((C, MIN_GEMM_COLUMNS), dtype=np.float32)
        wide[:, :n] = out.reshape(C, n)
        dw = np.zeros((d2.shape[0], MIN_GEMM_COLUMNS), dtype=np.float32)
        dw[:, :n] = d2
        out.reshape(C, n)[...] = add_matmul(wide, m, dw)[:, :n]
        return out
    try:
        import torch
    except ImportError:
        out.reshape(C, n)[...] += as_f32(m) @ d2
        return out
    torch.from_numpy(out).view(C, n).addmm_(torch.from_numpy(as_f32(m)), torch.from_numpy(d2))
    return out
