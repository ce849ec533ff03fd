"""Numpy kernels shared by the interpolation and the classical methods.

PSF taps, blur + decimation, low-pass, bicubic, regressions and band sums. Each is written so that a
tile's output is the same whatever the tile (fixed-order sums, fixed supports); the classical methods'
two passes and their injection gains are in :mod:`._classical`.

The PSF is a Gaussian given by its MTF gain at the LR Nyquist frequency (the usual way sensor MTFs are
quoted, Aiazzi et al. 2006); the default gain 0.41 is the Gaussian of FWHM = r HR pixels that the
project's simulator uses.
"""
from __future__ import annotations

import functools
import math
import threading
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import InputError
from ..pipeline.memory import TILE_BUFFERS

FWHM_GAIN = math.exp(-math.pi ** 2 / (2 * (2 * math.sqrt(2 * math.log(2))) ** 2))  # 0.4107: FWHM = r
DEFAULT_MTF_GAIN = round(FWHM_GAIN, 2)
TRUNCATE = 3.0  # Gaussian support in sigmas
Crop = Tuple[int, int, int, int]  # (top, bottom, left, right) HR px dropped from a tile's estimate
NO_CROP: Crop = (0, 0, 0, 0)
RIDGE = 1e-6  # relative Tikhonov term on Gram matrices (adjacent HSI bands are nearly collinear)


# ----------------------------------------------------------------------------------- PSF and scales
def mtf_sigma(ratio: int, gain: float = DEFAULT_MTF_GAIN) -> float:
    """Std (HR px) of the Gaussian whose MTF equals ``gain`` at the LR Nyquist frequency 1/(2r).

    MTF(f) = exp(-2 pi^2 sigma^2 f^2)  ->  sigma = r * sqrt(-2 ln gain) / pi (as engine.sensors.degradation).
    """
    if not 0.0 < gain < 1.0:
        raise InputError(f"MTF gain must lie strictly between 0 and 1, got {gain}")
    return ratio * math.sqrt(-2.0 * math.log(gain)) / math.pi


def psf_taps(ratio: int, sigma: float, truncate: float = TRUNCATE) -> Tuple[np.ndarray, int]:
    """Block-centred 1-D Gaussian taps for blur + decimation by ``ratio``.

    LR pixel i covers HR pixels r*i .. r*i+r-1; its value is sum_t taps[t] * x[r*i - R + t] for
    t = 0 .. r+2R-1, the taps being the Gaussian at (t - R) - (r-1)/2 from the block centre.
    Returns (taps float32 summing to 1, R = HR pixels of support beyond the block on each side).
    The taps are the simulator's (``engine.sensors.degradation.gaussian_kernel``) when that module is present,
    cut at ``truncate`` sigmas (3: the tail beyond holds < 0.3 % of the weight, and margins stay small).
    """
    try:
        from ..sensors.degradation import gaussian_kernel
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


def blur_decimate_separable(hr: np.ndarray, ratio: int, taps: np.ndarray, extra: int) -> np.ndarray:
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
    return bicubic(blur_decimate_separable(hr, ratio, taps, extra), ratio, crop)


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
