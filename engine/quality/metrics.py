"""Full-reference and no-reference quality metrics, computed tile by tile with streaming accumulators.

Every function here works on in-memory tiles (numpy only: assess needs no torch); the tile loop and
the I/O live in :mod:`.assess`. Definitions (also in :data:`DEFINITIONS`, the help and the report):

* Values are compared as stored (raw), in the reference's units; no scale/offset is applied unless
  the two rasters declare different scale/offset (then both are converted to scaled values).
* A pixel is *valid* when every good band (ENVI ``bbl``) of reference and estimate is finite and not
  nodata, the mask (if any) is non-zero and it is not within BORDER pixels of the raster edge. Bad
  bands are left out of every metric.
* SAM: per pixel, the angle between reference and estimate spectra in degrees,
  ``2*atan2(|x/|x| - y/|y||, |x/|x| + y/|y||)`` (Kahan's form of ``arccos(<x,y>/(|x||y|))``, exact for
  parallel spectra); the mean over valid pixels whose two spectra have non-zero norm. Zero spectra are
  excluded from SAM only (nodata in the SAM map), and kept in every other metric.
* RMSE_b = sqrt(mean (x_b - y_b)^2) over valid pixels; RMSE = sqrt(mean_b RMSE_b^2).
* PSNR_b = 10 log10(peak_b^2 / MSE_b), peak_b = the maximum of reference band b over valid pixels;
  PSNR = mean_b PSNR_b (a band with zero error has infinite PSNR).
* CC_b = Pearson correlation of reference and estimate band b over valid pixels; CC = mean_b CC_b.
* ERGAS = 100 / ratio * sqrt(mean_b (RMSE_b / mu_b)^2), mu_b = mean of reference band b, ratio = the
  resolution ratio (4 for 30 m -> 7.5 m).
* SSIM_b: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5, truncated at 5 px), K1 = 0.01,
  K2 = 0.03, L = peak_b, population (not sample) covariances; the mean over window centres whose whole
  window lies inside the evaluated area and holds only valid pixels (as scikit-image's
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``, which
  drops the 5-px edge). SSIM = mean_b SSIM_b.
* UIQI_b (Wang & Bovik 2002) = 4 s_xy mu_x mu_y / ((s_x^2 + s_y^2)(mu_x^2 + mu_y^2)) on non-overlapping
  32x32 blocks of a grid starting at the first evaluated pixel; the mean over blocks, then over bands.
* Q2^n (Garzelli & Nencini 2009): the hypercomplex extension of UIQI, on the same 32x32 block grid, with
  the band count zero-padded to a power of two as in the reference MATLAB ``q2n.m``; the mean over
  blocks of the modulus of the block's hypercomplex Q. Computed in float64 on raw values (no uint16
  rounding as q2n.m does).
* Blocks (UIQI, Q2n) use their valid pixels only; a block with fewer than a quarter of its pixels
  valid (256 of 1024) is skipped. Edge blocks smaller than 32x32 are evaluated on the pixels they have.
* QNR (no reference, Alparone et al. 2008) = (1 - D_lambda)(1 - D_s) with
  D_lambda = mean over band pairs l != r of |Q(F_l, F_r) - Q(L_l, L_r)| and
  D_s = mean over HSI bands l and MSI bands m of |Q(F_l, M_m) - Q(L_l, M~_m)| (p = q = 1), where F is
  the fused image, L the LR-HSI, M the HR-MSI and M~ the MSI averaged over ratio x ratio blocks onto
  the LR grid; Q is UIQI on 32x32 blocks at each scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, Tuple

import numpy as np

BLOCK = 32                     # UIQI / Q2n block side
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5                # int(3.5 * 1.5 + 0.5), scikit-image's truncate=3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
MIN_BLOCK_FRACTION = 0.25
MAX_Q2N_BANDS = 1024           # padded band count above which Q2n is not computed
SAM_HIST_EDGES = np.linspace(0.0, 90.0, 1801)   # 0.05 degree bins

DEFINITIONS = {
    "SAM": "Spectral angle in degrees between reference and estimate spectra, mean over valid pixels "
           "whose spectra both have non-zero norm (0 = identical shape).",
    "RMSE": "Root mean square error over all valid pixels and bands, in the reference's raw units.",
    "PSNR": "Per band 10*log10(peak^2/MSE), peak = the reference band's maximum over valid pixels; "
            "mean over bands (dB).",
    "CC": "Pearson correlation coefficient per band, mean over bands.",
    "ERGAS": "100/ratio * sqrt(mean over bands of (RMSE_b / reference band mean)^2) (0 = perfect).",
    "SSIM": "Structural similarity per band, Gaussian 11x11 window (sigma 1.5), K1=0.01, K2=0.03, "
            "L = reference band max; mean over window centres with a fully valid window, then over bands.",
    "UIQI": "Universal image quality index (Wang-Bovik) per band on non-overlapping 32x32 blocks, "
            "mean over blocks then bands (1 = perfect).",
    "Q2N": "Q2^n (Garzelli-Nencini) hypercomplex quality index on 32x32 blocks, bands zero-padded to a "
           "power of two; mean over blocks (1 = perfect).",
    "QNR": "Quality with no reference = (1 - D_lambda)(1 - D_s) (Alparone et al. 2008).",
    "D_LAMBDA": "Spectral distortion: mean |Q(F_l,F_r) - Q(L_l,L_r)| over HSI band pairs.",
    "D_S": "Spatial distortion: mean |Q(F_l,M_m) - Q(L_l,M~_m)| over HSI bands l and MSI bands m.",
}


# --------------------------------------------------------------------------------------- per band
@dataclass
class BandMoments:
    """Per-band streaming moments (Chan et al. parallel update, stable for large means)."""

    bands: int
    n: int = 0
    mean_x: np.ndarray = None
    mean_y: np.ndarray = None
    m2x: np.ndarray = None
    m2y: np.ndarray = None
    cxy: np.ndarray = None
    sse: np.ndarray = None
    max_x: np.ndarray = None

    def __post_init__(self) -> None:
        z = lambda: np.zeros(self.bands, dtype=np.float64)  # noqa: E731
        self.mean_x, self.mean_y, self.m2x, self.m2y, self.cxy, self.sse = z(), z(), z(), z(), z(), z()
        self.max_x = np.full(self.bands, -np.inf)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """x, y: (bands, n) float64 values of valid pixels."""
        nb = x.shape[1]
        if nb == 0:
            return
        mx, my = x.mean(axis=1), y.mean(axis=1)
        dx, dy = x - mx[:, None], y - my[:, None]
        m2x, m2y, cxy = (dx * dx).sum(1), (dy * dy).sum(1), (dx * dy).sum(1)
        na, n = self.n, self.n + nb
        deltx, delty = mx - self.mean_x, my - self.mean_y
        self.m2x += m2x + deltx * deltx * na * nb / n
        self.m2y += m2y + delty * delty * na * nb / n
        self.cxy += cxy + deltx * delty * na * nb / n
        self.mean_x += deltx * nb / n
        self.mean_y += delty * nb / n
        self.n = n
        d = x - y
        self.sse += (d * d).sum(1)
        self.max_x = np.maximum(self.max_x, x.max(axis=1))


def band_table(m: BandMoments, peaks: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-band RMSE, PSNR, CC and reference mean from the moments."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = m.sse / m.n
        rmse = np.sqrt(mse)
        psnr = np.where(mse > 0, 10.0 * np.log10(peaks.astype(np.float64) ** 2 / mse), np.inf)
        cc = m.cxy / np.sqrt(m.m2x * m.m2y)
    return {"RMSE": rmse, "MSE": mse, "PSNR": psnr, "CC": cc, "MEAN": m.mean_x.copy()}


def ergas(rmse: np.ndarray, mean_ref: np.ndarray, ratio: float) -> float:
    """100/ratio * sqrt(mean_b (RMSE_b / mu_b)^2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(100.0 / ratio * np.sqrt(np.mean((rmse / mean_ref) ** 2)))


# --------------------------------------------------------------------------------------------- SAM
def sam_degrees(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel spectral angle (degrees) of (bands, h, w) arrays and where it is defined (both norms > 0)."""
    x = x.astype(np.float64, copy=False)
    y = y.astype(np.float64, copy=False)
    nx, ny = np.sqrt((x * x).sum(0)), np.sqrt((y * y).sum(0))
    ok = (nx > 0) & (ny > 0) & np.isfinite(nx) & np.isfinite(ny)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux, uy = x / nx, y / ny
        a = np.sqrt(((ux - uy) ** 2).sum(0))
        b = np.sqrt(((ux + uy) ** 2).sum(0))
        ang = np.degrees(2.0 * np.arctan2(a, b))
    ang[~ok] = np.nan
    return ang, ok


# -------------------------------------------------------------------------------------------- SSIM
@lru_cache(maxsize=4)
def gaussian_taps(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _filter_valid(stack: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a (N, H, W) float64 array with 1-D taps (shifted sums)."""
    k = taps.size
    h, w = stack.shape[1] - k + 1, stack.shape[2] - k + 1
    rows = taps[0] * stack[:, :, 0:w]
    for i in range(1, k):
        rows += taps[i] * stack[:, :, i:i + w]
    out = taps[0] * rows[:, 0:h]
    for i in range(1, k):
        out += taps[i] * rows[:, i:i + h]
    return out


def ssim_sums(x_pad: np.ndarray, y_pad: np.ndarray, centre_ok: np.ndarray, peaks: np.ndarray,
              radius: int = SSIM_RADIUS) -> Tuple[np.ndarray, int]:
    """Per-band sum of the SSIM map over centres ``centre_ok`` (h, w) and their count.

    ``x_pad``/``y_pad`` are (bands, h + 2 radius, w + 2 radius): the tile with its window margin.
    """
    count = int(centre_ok.sum())
    bands = x_pad.shape[0]
    if count == 0:
        return np.zeros(bands), 0
    taps = gaussian_taps(SSIM_SIGMA, radius)
    sums = np.zeros(bands, dtype=np.float64)
    chunk = max(1, int(2e6 // max(1, x_pad.shape[1] * x_pad.shape[2])))   # bounded memory
    for b0 in range(0, bands, chunk):
        b1 = min(bands, b0 + chunk)
        x = np.nan_to_num(x_pad[b0:b1].astype(np.float64))
        y = np.nan_to_num(y_pad[b0:b1].astype(np.float64))
        ux, uy = _filter_valid(x, taps), _filter_valid(y, taps)
        vx = _filter_valid(x * x, taps) - ux * ux
        vy = _filter_valid(y * y, taps) - uy * uy
        vxy = _filter_valid(x * y, taps) - ux * uy
        L = np.asarray(peaks[b0:b1], dtype=np.float64)[:, None, None]
        c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        sums[b0:b1] = s[:, centre_ok].sum(axis=1)
    return sums, count


def window_all_valid(valid_pad: np.ndarray, radius: int = SSIM_RADIUS) -> np.ndarray:
    """(h, w) centres whose (2r+1)^2 window in ``valid_pad`` (h+2r, w+2r) is entirely True."""
    bad = (~valid_pad).astype(np.int32)
    # box sums via cumulative sums (O(1) per pixel)
    c = np.pad(bad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    k = 2 * radius + 1
    box = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return box == 0


# ----------------------------------------------------------------------------------- block stats
def to_blocks(a: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(C, h, w) -> (nblocks, C, block*block), zero-padded at the right/bottom edges."""
    c, h, w = a.shape
    hb, wb = -(-h // block), -(-w // block)
    p = np.zeros((c, hb * block, wb * block), dtype=a.dtype)
    p[:, :h, :w] = a
    p = p.reshape(c, hb, block, wb, block).transpose(1, 3, 0, 2, 4)
    return p.reshape(hb * wb, c, block * block)


def block_weights(valid: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(nblocks, P) 0/1 float64 weights, and blocks with too few valid pixels zeroed."""
    w = to_blocks(valid[None].astype(np.float64), block)[:, 0]
    n = w.sum(1)
    w[n < MIN_BLOCK_FRACTION * block * block] = 0.0
    return w


def _weighted_moments(z: np.ndarray, w: np.ndarray):
    """Block means (nb, K) and covariance matrices (nb, K, K) (population) of z (nb, K, P)."""
    n = w.sum(1)
    use = n > 0
    z, w, n = z[use], w[use], n[use]
    mu = (z * w[:, None]).sum(-1) / n[:, None]
    zc = z - mu[..., None]
    cov = np.matmul(zc * w[:, None], zc.transpose(0, 2, 1)) / n[:, None, None]
    return mu, cov, n


def uiqi_pairs(mu_a, var_a, mu_b, var_b, cov_ab):
    """Wang-Bovik Q from moments (broadcasting); NaN where the denominator is zero."""
    num = 4.0 * cov_ab * mu_a * mu_b
    den = (var_a + var_b) * (mu_a * mu_a + mu_b * mu_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def block_uiqi(x: np.ndarray, y: np.ndarray, valid: np.ndarray, block: int = BLOCK
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Per-band sum of block UIQI and number of blocks where it is defined."""
    w = block_weights(valid, block)
    keep = w.sum(1) > 0
    if not keep.any():
        return np.zeros(x.shape[0]), np.zeros(x.shape[0])
    xb, yb, w = to_blocks(x.astype(np.float64), block)[keep], to_blocks(y.astype(np.float64), block)[keep], w[keep]
    n = w.sum(1)[:, None]
    mx, my = (xb * w[:, None]).sum(-1) / n, (yb * w[:, None]).sum(-1) / n
    dx, dy = xb - mx[..., None], yb - my[..., None]
    vx = (dx * dx * w[:, None]).sum(-1) / n
    vy = (dy * dy * w[:, None]).sum(-1) / n
    cxy = (dx * dy * w[:, None]).sum(-1) / n
    q = uiqi_pairs(mx, vx, my, vy, cxy)              # (nb, C)
    return np.nansum(q, axis=0), np.isfinite(q).sum(0).astype(np.float64)


# --------------------------------------------------------------------------------------------- Q2n
def onion_mult(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product of hypercomplex numbers along the last axis.

    As ``onion_mult.m`` (Garzelli & Nencini's reference implementation); the length must be a power of two.
    """
    n = a.shape[-1]
    if n == 1:
        return a * b

    def conj(v):
        return np.concatenate([v[..., :1], -v[..., 1:]], axis=-1)

    h = n // 2
    p, q = a[..., :h], conj(a[..., h:])
    r, s = b[..., :h], conj(b[..., h:])
    if n == 2:
        return np.concatenate([p * r - s * q, p * s + r * q], axis=-1)
    return np.concatenate([onion_mult(p, r) - onion_mult(s, conj(q)),
                           onion_mult(conj(p), s) + onion_mult(r, q)], axis=-1)


@lru_cache(maxsize=8)
def onion_table(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """(index, sign) with (x * y)_k = sum_i sign[i, k] x_i y_{index[i, k]} for :func:`onion_mult`.

    Found by multiplying each basis element with (1, 2, ..., n): the product is bilinear and maps basis
    pairs to signed basis elements, so one call per left basis element recovers the whole table.
    """
    eye = np.eye(n)
    ramp = np.broadcast_to(np.arange(1.0, n + 1.0), (n, n))
    prod = onion_mult(eye, np.ascontiguousarray(ramp))            # prod[i, k] = sign * (j + 1)
    index = (np.abs(prod) - 1).round().astype(np.int64)
    sign = np.sign(prod)
    if not (np.all(np.abs(sign) == 1) and np.all(np.sort(index, axis=1) == np.arange(n))):
        raise RuntimeError("unexpected hypercomplex multiplication table")
    return index, sign


def next_pow2(n: int) -> int:
    return 1 << max(0, int(math.ceil(math.log2(max(1, n)))))


def block_q2n(x: np.ndarray, y: np.ndarray, valid: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Q2^n of every block with enough valid pixels (1-D array of block values).

    Follows ``onions_quality.m``: per band, the reference block is normalised to mean 1 / unit std and
    the estimate with the same mean and std; q = (E[x y*] - E[x] E[y*]) scaled by the mean-bias term.
    Expectations use the n/(n-1) factors of the reference implementation.
    """
    c = x.shape[0]
    n3 = next_pow2(c)
    w = block_weights(valid, block)
    keep = w.sum(1) > 0
    if not keep.any():
        return np.zeros(0)
    xb = to_blocks(x.astype(np.float64), block)[keep]
    yb = to_blocks(y.astype(np.float64), block)[keep]
    w = w[keep]
    nb, _, _ = xb.shape
    if n3 > c:
        pad = np.zeros((nb, n3 - c, xb.shape[2]))
        xb, yb = np.concatenate([xb, pad], 1), np.concatenate([yb, pad], 1)
    n = w.sum(1)                                         # valid pixels per block
    wn = w / n[:, None]
    s = (xb * wn[:, None]).sum(-1)                       # reference block means (nb, n3)
    var = (((xb - s[..., None]) ** 2) * wn[:, None]).sum(-1) * (n / (n - 1))[:, None]
    t = np.sqrt(var)
    t = np.where(t == 0, np.finfo(np.float64).eps, t)
    xn = (xb - s[..., None]) / t[..., None] + 1.0
    yn = np.where((s == 0)[..., None], yb - s[..., None] + 1.0, (yb - s[..., None]) / t[..., None] + 1.0)
    yn[:, 1:] *= -1.0                                    # conjugate
    f = (n / (n - 1))
    m1 = (xn * wn[:, None]).sum(-1)
    m2 = (yn * wn[:, None]).sum(-1)
    mod_q1m2 = (m1 * m1).sum(1)
    mod_q2m2 = (m2 * m2).sum(1)
    int1 = f * ((xn * xn).sum(1) * wn).sum(-1)
    int2 = f * ((yn * yn).sum(1) * wn).sum(-1)
    termine3 = int1 + int2 - f * (mod_q1m2 + mod_q2m2)
    mean_bias = 2.0 * np.sqrt(mod_q1m2 * mod_q2m2) / (mod_q1m2 + mod_q2m2)
    # E[x * y] per component via the multiplication table and the cross-moment matrix E[x_i y_j].
    cm = np.matmul(xn * wn[:, None], yn.transpose(0, 2, 1))           # (nb, n3, n3)
    index, sign = onion_table(n3)
    rows = np.arange(n3)[:, None]
    qu = (cm[:, rows, index] * sign).sum(1)              # (nb, n3)
    qm = (m1[:, :, None] * m2[:, index] * sign).sum(1)   # onion_mult(m1, m2), batched
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (f[:, None] * qu - f[:, None] * qm) * (mean_bias * 2.0 / termine3)[:, None]
        mod = np.sqrt((q * q).sum(1))
    return np.where(termine3 == 0, mean_bias, mod)


# --------------------------------------------------------------------------- accumulated results
@dataclass
class ReferenceAccumulator:
    """Everything a full-reference assessment accumulates over tiles."""

    bands: int
    peaks: np.ndarray
    q2n: bool = True
    moments: BandMoments = None
    ssim_sum: np.ndarray = None
    ssim_count: int = 0
    uiqi_sum: np.ndarray = None
    uiqi_count: np.ndarray = None
    q2n_sum: float = 0.0
    q2n_count: int = 0
    sam_sum: float = 0.0
    sam_count: int = 0
    sam_max: float = 0.0
    sam_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(SAM_HIST_EDGES) - 1, np.int64))

    def __post_init__(self) -> None:
        self.moments = BandMoments(self.bands)
        self.ssim_sum = np.zeros(self.bands)
        self.uiqi_sum = np.zeros(self.bands)
        self.uiqi_count = np.zeros(self.bands)

    def add_sam(self, angles: np.ndarray) -> None:
        """Angles (1-D, degrees) of the tile's SAM-valid pixels."""
        if angles.size:
            self.sam_sum += float(angles.sum())
            self.sam_count += int(angles.size)
            self.sam_max = max(self.sam_max, float(angles.max()))
            self.sam_hist += np.histogram(np.clip(angles, 0, 90), SAM_HIST_EDGES)[0]

    def add_blocks(self, x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> None:
        """Block metrics of a tile whose origin lies on the block grid.

        One block row at a time, so memory stays bounded.
        """
        for r0 in range(0, x.shape[1], BLOCK):
            xs, ys, vs = x[:, r0:r0 + BLOCK], y[:, r0:r0 + BLOCK], valid[r0:r0 + BLOCK]
            if not vs.any():
                continue
            s, n = block_uiqi(xs, ys, vs)
            self.uiqi_sum += s
            self.uiqi_count += n
            if self.q2n:
                v = block_q2n(xs, ys, vs)
                v = v[np.isfinite(v)]
                self.q2n_sum += float(v.sum())
                self.q2n_count += int(v.size)

    def add_ssim(self, sums: np.ndarray, count: int) -> None:
        self.ssim_sum += sums
        self.ssim_count += count

    def sam_percentile(self, p: float) -> float:
        if self.sam_count == 0:
            return float("nan")
        cum = np.cumsum(self.sam_hist)
        k = int(np.searchsorted(cum, p / 100.0 * cum[-1]))
        return float(SAM_HIST_EDGES[min(k + 1, len(SAM_HIST_EDGES) - 1)])

    def result(self, ratio: float) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
        """(scalar metrics, per-band table)."""
        table = band_table(self.moments, self.peaks)
        with np.errstate(divide="ignore", invalid="ignore"):
            table["SSIM"] = self.ssim_sum / self.ssim_count if self.ssim_count else np.full(self.bands, np.nan)
            table["UIQI"] = np.where(self.uiqi_count > 0, self.uiqi_sum / np.maximum(self.uiqi_count, 1), np.nan)
        table["PEAK"] = np.asarray(self.peaks, dtype=np.float64)
        nan = float("nan")
        out = {
            "PSNR": float(np.mean(table["PSNR"])),
            "SSIM": float(np.mean(table["SSIM"])),
            "SAM": self.sam_sum / self.sam_count if self.sam_count else nan,
            "ERGAS": ergas(table["RMSE"], table["MEAN"], ratio),
            "RMSE": float(np.sqrt(np.mean(table["MSE"]))),
            "CC": float(np.mean(table["CC"])),
            "UIQI": float(np.nanmean(table["UIQI"])) if np.isfinite(table["UIQI"]).any() else nan,
            "Q2N": self.q2n_sum / self.q2n_count if self.q2n_count else nan,
            "SAM_MAX": self.sam_max if self.sam_count else nan,
            "SAM_MEDIAN": self.sam_percentile(50),
            "SAM_P95": self.sam_percentile(95),
            "VALID_PIXELS": int(self.moments.n),
            "SAM_PIXELS": int(self.sam_count),
            "SSIM_PIXELS": int(self.ssim_count),
            "BLOCKS": int(self.q2n_count) if self.q2n else int(self.uiqi_count.max(initial=0)),
        }
        return out, table


# ------------------------------------------------------------------------------------ no reference
def pairwise_block_q(z: np.ndarray, valid: np.ndarray, block: int = BLOCK) -> Tuple[np.ndarray, np.ndarray]:
    """Sum over blocks of the UIQI matrix between all bands of z (K, h, w), and per-pair counts."""
    k = z.shape[0]
    w = block_weights(valid, block)
    keep = w.sum(1) > 0
    if not keep.any():
        return np.zeros((k, k)), np.zeros((k, k))
    zb_all = to_blocks(z.astype(np.float64), block)[keep]
    w = w[keep]
    total, count = np.zeros((k, k)), np.zeros((k, k))
    chunk = max(1, int(2e7 // max(1, k * zb_all.shape[2])))      # bounded memory per step
    for i in range(0, zb_all.shape[0], chunk):
        mu, cov, _ = _weighted_moments(zb_all[i:i + chunk], w[i:i + chunk])
        var = np.diagonal(cov, axis1=1, axis2=2)
        q = uiqi_pairs(mu[:, :, None], var[:, :, None], mu[:, None, :], var[:, None, :], cov)
        total += np.nansum(q, 0)
        count += np.isfinite(q).sum(0)
    return total, count


@dataclass
class QnrAccumulator:
    """Pairwise block-UIQI sums at HR (fused + MSI) and LR (LR-HSI + degraded MSI)."""

    hsi_bands: int
    msi_bands: int
    hr_sum: np.ndarray = None
    hr_cnt: np.ndarray = None
    lr_sum: np.ndarray = None
    lr_cnt: np.ndarray = None

    def __post_init__(self) -> None:
        k = self.hsi_bands + self.msi_bands
        self.hr_sum, self.hr_cnt = np.zeros((k, k)), np.zeros((k, k))
        self.lr_sum, self.lr_cnt = np.zeros((k, k)), np.zeros((k, k))

    def add_hr(self, fused: np.ndarray, msi: np.ndarray, valid: np.ndarray) -> None:
        s, c = pairwise_block_q(np.concatenate([fused, msi]), valid)
        self.hr_sum += s
        self.hr_cnt += c

    def add_lr(self, lr: np.ndarray, msi_lr: np.ndarray, valid: np.ndarray) -> None:
        s, c = pairwise_block_q(np.concatenate([lr, msi_lr]), valid)
        self.lr_sum += s
        self.lr_cnt += c

    def result(self) -> Dict[str, float]:
        n = self.hsi_bands
        with np.errstate(divide="ignore", invalid="ignore"):
            qh = self.hr_sum / self.hr_cnt
            ql = self.lr_sum / self.lr_cnt
        d = np.abs(qh - ql)
        off = ~np.eye(n, dtype=bool)
        dl = d[:n, :n][off]
        ds = d[:n, n:]
        d_lambda = float(np.nanmean(dl)) if np.isfinite(dl).any() else float("nan")
        d_s = float(np.nanmean(ds)) if np.isfinite(ds).any() else float("nan")
        return {"D_LAMBDA": d_lambda, "D_S": d_s, "QNR": (1.0 - d_lambda) * (1.0 - d_s)}


def block_average(a: np.ndarray, r: int) -> np.ndarray:
    """(C, h, w) -> (C, h/r, w/r) mean over r x r blocks (h, w multiples of r)."""
    c, h, w = a.shape
    return a.reshape(c, h // r, r, w // r, r).mean(axis=(2, 4))
