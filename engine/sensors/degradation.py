"""Spatial and noise degradations of Wald's protocol (pure numpy; no I/O).

Conventions (docs: provider/help/simulate.md; docs/design.md#degradation-model):

- LR pixel ``(i, j)`` covers HR rows ``r*i .. r*i+r-1`` and columns ``r*j .. r*j+r-1`` (GDAL extent
  convention), so the LR geotransform is the HR origin with the pixel size times ``r``.
- The PSF is centred on the centre of that block (HR coordinate ``r*i + (r-1)/2``): the kernel has the
  parity of ``r`` (even side for even ``r``, samples at half-pixel offsets) and LR pixel ``i`` is
  ``sum_t k[t] X[r*i + (r-K)/2 + t]``. A user kernel of the other parity gets a zero row/column appended
  (bottom/right), which centres it half an HR pixel up-left of the block centre (a warning says so).
- Gaussian PSF: ``sigma = FWHM / (2 sqrt(2 ln 2))`` (FWHM in HR pixels; default FWHM = r), point-sampled
  out to ``4 sigma`` (at least the r x r block) and normalised to unit sum. MTF mode: the Gaussian whose
  modulation transfer at the LR Nyquist frequency ``1/(2r)`` cycles per HR pixel equals ``gain``:
  ``sigma = r sqrt(-2 ln gain) / pi``.
- Nodata: an LR pixel is nodata when any HR pixel of its own r x r block is nodata; otherwise the PSF
  weights are renormalised over the valid HR pixels of the support.
- Noise: additive Gaussian, ``sigma_n = sqrt(P / 10^(SNR/10))`` with ``P`` the mean square of the image's
  valid values over all good bands (one sigma per image). Noise samples come from fixed
  ``NOISE_BLOCK`` x ``NOISE_BLOCK`` blocks of the output grid, each seeded by (seed, image, block), so a
  pixel's noise does not depend on the tiling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import InputError

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
GAUSS_RADIUS_SIGMAS = 4.0
NOISE_BLOCK = 128
PSF_KINDS = ("gaussian", "mtf", "kernel")


def gaussian_sigma_from_mtf(gain: float, ratio: int) -> float:
    """Sigma (HR px) of the Gaussian whose MTF at the LR Nyquist frequency 1/(2 ratio) equals ``gain``."""
    if not 0.0 < gain < 1.0:
        raise InputError(f"MTF gain at Nyquist must be between 0 and 1 (exclusive), got {gain}")
    return ratio * math.sqrt(-2.0 * math.log(gain)) / math.pi


def gaussian_kernel(sigma: float, ratio: int, radius_sigmas: float = GAUSS_RADIUS_SIGMAS) -> np.ndarray:
    """Separable 1-D Gaussian taps (unit sum) with the parity of ``ratio``, centred on the block centre."""
    if not sigma > 0:
        raise InputError(f"PSF sigma must be positive, got {sigma}")
    half = max(radius_sigmas * sigma, (ratio - 1) / 2.0)
    if ratio % 2:
        n = int(math.ceil(half))
        x = np.arange(-n, n + 1, dtype=np.float64)
    else:
        n = int(math.ceil(half - 0.5))
        x = np.arange(-n, n + 1, dtype=np.float64) - 0.5
        x = np.append(x, x[-1] + 1.0)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def read_kernel_file(path: str) -> np.ndarray:
    """A 2-D kernel from ``.npy`` or a text/CSV file of rows of numbers (comma, semicolon or blanks)."""
    p = Path(str(path))
    if not p.is_file():
        raise InputError(f"PSF kernel file {path} does not exist")
    try:
        if p.suffix.lower() == ".npy":
            k = np.load(p, allow_pickle=False)
        else:
            rows = []
            for ln in p.read_text().splitlines():
                ln = ln.split("#", 1)[0].strip()
                if ln:
                    rows.append([float(v) for v in ln.replace(",", " ").replace(";", " ").split()])
            k = np.array(rows, dtype=np.float64)
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read PSF kernel file {path}: {exc}") from None
    k = np.asarray(k, dtype=np.float64)
    if k.ndim == 1:
        k = np.outer(k, k)
    if k.ndim != 2 or k.size == 0:
        raise InputError(f"PSF kernel file {path} must hold a 2-D array (rows of numbers), got shape {k.shape}")
    if k.shape[0] != k.shape[1]:
        raise InputError(f"PSF kernel in {path} must be square, got {k.shape[0]} x {k.shape[1]}")
    if not np.all(np.isfinite(k)) or k.sum() <= 0:
        raise InputError(f"PSF kernel in {path} must be finite with a positive sum")
    return k


@dataclass(frozen=True)
class PSF:
    """Point spread function choice; :meth:`kernel` gives the taps for a ratio.

    kind: ``gaussian`` (``fwhm`` HR px, default = ratio), ``mtf`` (``gain`` at Nyquist, default 0.3) or
    ``kernel`` (``path`` to a kernel file, or ``array``).
    """

    kind: str = "gaussian"
    fwhm: Optional[float] = None
    gain: float = 0.3
    path: Optional[str] = None
    array: Optional[Tuple[Tuple[float, ...], ...]] = None

    def __post_init__(self) -> None:
        if self.kind not in PSF_KINDS:
            raise InputError(f"unknown PSF kind {self.kind!r}; use one of {', '.join(PSF_KINDS)}")
        if self.kind == "gaussian" and self.fwhm is not None and not self.fwhm > 0:
            raise InputError(f"PSF FWHM must be positive (HR pixels), got {self.fwhm}")
        if self.kind == "kernel" and self.path is None and self.array is None:
            raise InputError("PSF kind 'kernel' needs a kernel file")

    def sigma(self, ratio: int) -> Optional[float]:
        if self.kind == "gaussian":
            return (self.fwhm if self.fwhm is not None else float(ratio)) * FWHM_TO_SIGMA
        if self.kind == "mtf":
            return gaussian_sigma_from_mtf(self.gain, ratio)
        return None

    def separable(self, ratio: int) -> Optional[np.ndarray]:
        """1-D taps when the kernel is a separable Gaussian, else None."""
        s = self.sigma(ratio)
        return None if s is None else gaussian_kernel(s, ratio)

    def kernel(self, ratio: int) -> Tuple[np.ndarray, bool]:
        """(2-D unit-sum kernel with the parity of ``ratio``, whether it was padded to that parity)."""
        k1 = self.separable(ratio)
        if k1 is not None:
            return np.outer(k1, k1), False
        k = np.array(self.array, dtype=np.float64) if self.array is not None else read_kernel_file(self.path)
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.sum() <= 0:
            raise InputError(f"PSF kernel must be a square 2-D array with a positive sum, got shape {k.shape}")
        padded = False
        if k.shape[0] % 2 != ratio % 2:
            k = np.vstack([k, np.zeros((1, k.shape[1]))])
            padded = True
        if k.shape[1] % 2 != ratio % 2:
            k = np.hstack([k, np.zeros((k.shape[0], 1))])
            padded = True
        return k / k.sum(), padded

    def margin(self, ratio: int) -> int:
        """HR pixels needed beyond an r-aligned block (half the kernel minus half the block), >= 0."""
        return max(0, (self.size(ratio) - ratio) // 2)

    def size(self, ratio: int) -> int:
        """Kernel side in HR pixels."""
        k1 = self.separable(ratio)
        return len(k1) if k1 is not None else self.kernel(ratio)[0].shape[0]

    def describe(self, ratio: int) -> Dict:
        k, padded = self.kernel(ratio)
        d = {"psf": self.kind, "kernel_size": list(k.shape),
             "sampling_phase": "block-centred: LR pixel (i,j) = PSF centred at HR (r*i+(r-1)/2, r*j+(r-1)/2)"}
        s = self.sigma(ratio)
        if s is not None:
            d.update({"sigma_hr_px": round(s, 6), "fwhm_hr_px": round(s / FWHM_TO_SIGMA, 6),
                      "mtf_at_nyquist": round(math.exp(-2 * math.pi ** 2 * s ** 2 / (2 * ratio) ** 2), 6),
                      "truncation_sigmas": GAUSS_RADIUS_SIGMAS})
        if self.kind == "mtf":
            d["gain"] = self.gain
        if self.kind == "kernel":
            d["kernel_file"] = str(self.path) if self.path else None
            d["parity_padded"] = padded
        return d


def _strided_taps(x: np.ndarray, taps: np.ndarray, axis: int, ratio: int, start: int, n_out: int) -> np.ndarray:
    """out[.., i, ..] = sum_t taps[t] * x[.., start + ratio*i + t, ..] along ``axis`` (fixed tap order)."""
    out = None
    for t, w in enumerate(taps):
        sl = [slice(None)] * x.ndim
        sl[axis] = slice(start + t, start + t + ratio * (n_out - 1) + 1, ratio)
        term = w * x[tuple(sl)]
        out = term if out is None else out + term
    return out


def blur_decimate(x: np.ndarray, psf: PSF, ratio: int, start: int, n_rows: int, n_cols: int,
                  valid: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Blur and decimate an HR window.

    Args:
        x: (C, H, W) HR values (float), with the PSF margin around the aligned core.
        psf: the point spread function.
        ratio: integer r.
        start: index in ``x`` of the first HR row/col of the core minus ``(K - r)/2`` (>= 0), i.e.
            ``margin - (K - r)//2`` for a window read with ``margin`` extra pixels.
        n_rows: LR output height.
        n_cols: LR output width.
        valid: (H, W) bool, None = all valid.

    Returns:
        ((C, n_rows, n_cols) float64, (n_rows, n_cols) bool valid LR mask).
    """
    x = np.asarray(x, dtype=np.float64)
    k1 = psf.separable(ratio)
    if valid is not None and valid.all():
        valid = None
    if valid is not None:
        x = np.where(valid[None], x, 0.0)
        v = valid.astype(np.float64)[None]
    if k1 is not None:
        y = _strided_taps(_strided_taps(x, k1, 1, ratio, start, n_rows), k1, 2, ratio, start, n_cols)
        if valid is not None:
            wsum = _strided_taps(_strided_taps(v, k1, 1, ratio, start, n_rows), k1, 2, ratio, start, n_cols)
    else:
        k, _ = psf.kernel(ratio)
        y = np.zeros((x.shape[0], n_rows, n_cols))
        wsum = np.zeros((1, n_rows, n_cols)) if valid is not None else None
        for t in range(k.shape[0]):
            for u in range(k.shape[1]):
                if k[t, u] == 0:
                    continue
                rs = slice(start + t, start + t + ratio * (n_rows - 1) + 1, ratio)
                cs = slice(start + u, start + u + ratio * (n_cols - 1) + 1, ratio)
                y += k[t, u] * x[:, rs, cs]
                if valid is not None:
                    wsum += k[t, u] * v[:, rs, cs]
    if valid is None:
        return y, np.ones((n_rows, n_cols), bool)
    K = len(k1) if k1 is not None else psf.kernel(ratio)[0].shape[0]
    b0 = start + (K - ratio) // 2  # first HR index of the block of LR pixel 0
    blocks = valid[b0:b0 + ratio * n_rows, b0:b0 + ratio * n_cols]
    lr_valid = blocks.reshape(n_rows, ratio, n_cols, ratio).all(axis=(1, 3))
    y = y / np.where(wsum > 0, wsum, 1.0)
    return y, lr_valid & (wsum[0] > 0)


def noise_sigma(mean_square: float, snr_db: Optional[float]) -> float:
    """Noise standard deviation for a per-image SNR in dB (0 when SNR is None)."""
    if snr_db is None:
        return 0.0
    return math.sqrt(mean_square / 10.0 ** (snr_db / 10.0))


@lru_cache(maxsize=4)
def noise_block(seed: int, image: int, bands: int, block_row: int, block_col: int) -> np.ndarray:
    """Standard normal float32 samples (bands, NOISE_BLOCK, NOISE_BLOCK) of one fixed block.

    Read-only; the last few are cached, since neighbouring tiles share blocks.
    """
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(image), int(block_row), int(block_col)])
    out = np.random.Generator(np.random.Philox(ss)).standard_normal((bands, NOISE_BLOCK, NOISE_BLOCK),
                                                                      dtype=np.float32)
    out.flags.writeable = False
    return out


def noise_window(seed: int, image: int, bands: int, col: int, row: int, width: int, height: int) -> np.ndarray:
    """Standard normal samples of an output window; the same pixel always gets the same sample."""
    out = np.empty((bands, height, width), dtype=np.float32)
    B = NOISE_BLOCK
    for br in range(row // B, (row + height - 1) // B + 1):
        for bc in range(col // B, (col + width - 1) // B + 1):
            blk = noise_block(seed, image, bands, br, bc)
            r0, r1 = max(row, br * B), min(row + height, (br + 1) * B)
            c0, c1 = max(col, bc * B), min(col + width, (bc + 1) * B)
            out[:, r0 - row:r1 - row, c0 - col:c1 - col] = blk[:, r0 - br * B:r1 - br * B, c0 - bc * B:c1 - bc * B]
    return out


def measured_fwhm(kernel2d: np.ndarray) -> float:
    """FWHM (px) of a 2-D kernel from its second moment along rows, assuming a Gaussian profile."""
    prof = kernel2d.sum(axis=1)
    x = np.arange(prof.size, dtype=np.float64)
    m = (prof * x).sum() / prof.sum()
    var = (prof * (x - m) ** 2).sum() / prof.sum()
    return math.sqrt(var) / FWHM_TO_SIGMA
