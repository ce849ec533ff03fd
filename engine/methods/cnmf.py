"""CNMF — coupled non-negative matrix factorisation (Yokoya, Yairi & Iwasaki 2012), streamed.

Yokoya, Yairi & Iwasaki (2012), "Coupled nonnegative matrix factorization unmixing for hyperspectral
and multispectral data fusion", IEEE TGRS 50(2).

Model: LR-HSI ``Y ~ E A_h``, HR-MSI ``Z - o ~ (R E) A``, ``A_h = degrade(A)``; output ``X = E A``.

fit (global, on the fit crop, at most ``fit_lr_side`` LR pixels a side):
  * spectral response ``R`` (c x C) and offset ``o``: NNLS regression of the MSI degraded to the LR
    scale on the LR-HSI (the same estimate GSA uses);
  * endmembers initialised by the successive projection algorithm (SPA, Gillis & Vavasis 2014) on the
    LR pixels: deterministic pure-pixel picking, a simpler stand-in for VCA with the same purpose;
  * CNMF alternation (Lee-Seung multiplicative updates): NMF of Y; then ``outer`` times: MSI step
    (``E_m = R E``, ``A = up(A_h)``, update A then A and E_m) and HSI step (``A_h = degrade(A)``,
    update E then E and A_h). ``E`` and the final ``E_m`` are kept.
apply (per tile, pixel-wise, ``iterations`` updates each so tiles agree exactly):
  * LR abundances from the LR-HSI tile with E fixed (init: clipped least squares),
  * HR abundances from the MSI tile with E_m fixed, initialised by the bicubic upsampled LR ones,
  * ``X = E A`` with ``gains="classic"``; by default (``gains="reduced_scale"``) detail injection
    ``X_b = up(Y_b) + g_b (E (A - up(A_h)))_b`` = ``E A + up(Y - E A_h)`` at g = 1: the LR unmixing
    residual is given back (the estimate stays consistent with the LR-HSI), and ``g_b`` is the band's
    reduced-scale gain (_classical.py). On the real Paris pair this took CNMF from a SAM above bicubic's
    (ALI PAN x3: 3.47 vs 3.46 degrees) to below it (3.36), and +0.1-0.2 dB (benchmarks/real_pairs.py).
Negative inputs are clipped at 0 for the factorisation (NMF needs non-negative data).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..params import MethodSpec, Param
from ._classical import ClassicalMethod
from ._classical_params import classical_params
from ._kernels import as_f32, band_combination, bicubic, blur_decimate_separable, regress

FLOOR = 1e-4  # abundance floor: multiplicative updates cannot revive an exact zero
TINY = 1e-12


def spa(y: np.ndarray, p: int) -> np.ndarray:
    """Column indices of ``p`` pure pixels of ``y`` (C, n) by successive projection."""
    res = np.array(y, dtype=np.float64)
    picks = []
    for _ in range(min(p, y.shape[1])):
        norms = (res ** 2).sum(axis=0)
        j = int(np.argmax(norms))
        if norms[j] <= 0:
            break
        picks.append(j)
        u = res[:, j] / np.sqrt(norms[j])
        res -= np.outer(u, u @ res)
    return np.array(picks, dtype=np.int64)


def update_abundances(A, EtX, EtE, iterations: int):
    """In place ``A <- A * E^T X / (E^T E A)``, ``iterations`` times (numpy arrays or torch tensors)."""
    for _ in range(iterations):
        den = EtE @ A
        den += TINY
        A *= EtX
        A /= den
    return A


def update_abundances_chunked(A, EtX, EtE, iterations: int, chunk: int = 1024):
    """``update_abundances`` on numpy column chunks that stay in cache for all iterations.

    Pixel-wise, so the result is the same as one pass over all columns; numpy's single thread beat torch's two
    here by 3-5x on these small matrices.
    """
    for j0 in range(0, A.shape[1], chunk):
        a = np.ascontiguousarray(A[:, j0:j0 + chunk])
        update_abundances(a, np.ascontiguousarray(EtX[:, j0:j0 + chunk]), EtE, iterations)
        A[:, j0:j0 + chunk] = a
    return A


def update_endmembers(E, X, A, iterations: int):
    """In place ``E <- E * X A^T / (E A A^T)``."""
    XAt = X @ A.T
    AAt = A @ A.T
    for _ in range(iterations):
        den = E @ AAt
        den += TINY
        E *= XAt
        E /= den
    return E


def nmf(X, E, A, iterations: int, fix_e: bool = False, fix_a: bool = False):
    """Alternating multiplicative updates on ``X ~ E A`` (numpy float64 in ``fit``)."""
    for _ in range(iterations):
        if not fix_a:
            update_abundances(A, E.T @ X, E.T @ E, 1)
        if not fix_e:
            update_endmembers(E, X, A, 1)
    return E, A


class CNMF(ClassicalMethod):
    name = "cnmf"
    alpha = None  # (C, 1, 1) per band blend of the unmixing estimate with bicubic (None: estimate as is)

    def __init__(self, endmembers: int = 20, iterations: int = 100, outer: int = 2, **kw) -> None:
        super().__init__(**kw)
        if int(endmembers) < 1:
            raise InputError(f"ENDMEMBERS must be at least 1, got {endmembers}")
        if int(iterations) < 1:
            raise InputError(f"ITERATIONS must be at least 1, got {iterations}")
        self.endmembers = int(endmembers)
        self.iterations = int(iterations)
        self.outer = int(outer)

    def margin(self, ratio: int) -> int:
        return 2 * ratio  # bicubic upsampling of the LR abundances

    def fit(self, scene, feedback=None) -> None:
        r = scene.ratio
        taps, extra = self.psf(r)
        s = self.sample(scene, feedback, max_lr_side=min(self.fit_lr_side, 128))
        R, o = regress(s.y, s.z, nonneg=True, use=s.good)  # (c, C)
        good = s.good & (s.y.std(axis=1) > 0)
        C, h, w = s.lr.shape
        Y = np.maximum(s.lr[good].reshape(good.sum(), h * w), 0).astype(np.float64)
        Z = np.maximum(s.hr - o[:, None, None], 0).reshape(s.hr.shape[0], -1).astype(np.float64)
        picks = spa(np.maximum(s.y[good], 0), self.endmembers)
        E = np.maximum(s.y[good][:, picks], TINY).astype(np.float64)
        p = E.shape[1]
        A_h = np.maximum(np.linalg.lstsq(E, Y, rcond=None)[0], FLOOR)
        it = self.iterations
        nmf(Y, E, A_h, it, fix_e=True)
        nmf(Y, E, A_h, it)
        Rg = R[:, good]
        E_m = np.maximum(Rg @ E, TINY)
        for k in range(self.outer):
            if feedback is not None:
                feedback.pushInfo(f"cnmf: coupled unmixing, round {k + 1} of {self.outer} ({p} endmembers)")
            E_m = np.maximum(Rg @ E, TINY)
            A = np.maximum(bicubic(as_f32(A_h).reshape(p, h, w), r).reshape(p, -1).astype(np.float64), FLOOR)
            nmf(Z, E_m, A, it, fix_e=True)
            nmf(Z, E_m, A, it)
            A_h = blur_decimate_separable(as_f32(A).reshape(p, h * r, w * r), r, taps, extra).reshape(p, -1)
            A_h = np.maximum(A_h.astype(np.float64), FLOOR)
            nmf(Y, E, A_h, it, fix_a=True)
            nmf(Y, E, A_h, it)
        E_full = np.zeros((C, p))
        E_full[good] = E
        self.E = as_f32(E_full)  # (C, p)
        self.E_good = as_f32(E)
        self.E_pinv = as_f32(np.linalg.pinv(E))  # LR abundance init, the same matrix for every tile
        self.E_m = as_f32(E_m)  # (c, p)
        self.good = good
        self.offset = as_f32(o)
        self.alpha = None
        self._fitted = True
        self.alpha = as_f32(self.reduced_scale_gains(s, feedback)[:, None, None])

    def apply(self, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback=None) -> np.ndarray:
        self._need_fit()
        C, h, w = lr.shape
        c, H, W = hr.shape
        p = self.E.shape[1]
        E = self.E_good
        Y = np.maximum(lr[self.good], 0)
        # clipped least squares as init, then E fixed updates: pixel-wise, so tile-independent
        A_h = np.maximum(band_combination(self.E_pinv, Y).reshape(p, h * w), FLOOR)
        EtY = band_combination(E.T, Y).reshape(p, h * w)
        update_abundances_chunked(A_h, EtY, as_f32(E.T @ E), self.iterations)
        A_up = np.array(bicubic(A_h.reshape(p, h, w), ratio).reshape(p, H * W))
        A = np.maximum(A_up, FLOOR)
        Z = as_f32(hr).reshape(c, H * W) - self.offset[:, None]
        np.maximum(Z, 0, out=Z)
        Em = self.E_m
        em_t_z = band_combination(Em.T, Z)  # fixed-order sums: BLAS would round by the tile's width
        update_abundances_chunked(A, em_t_z, as_f32(Em.T @ Em), self.iterations)
        if self.gains_mode == "classic":
            return (self.E @ A).reshape(C, H, W)
        # detail injection: bicubic + the HR detail of the unmixing, E (A - up(A_h)), times the band's
        # reduced-scale gain. = E A + up(Y - E A_h): the LR unmixing residual is given back, so the
        # estimate stays consistent with the LR-HSI (its spectral angle no longer follows the residual)
        A -= A_up
        est = (self.E @ A).reshape(C, H, W)
        if self.alpha is not None:
            est *= self.alpha
        est += bicubic(lr, ratio)
        return est

    def describe(self):
        return {**super().describe(), "endmembers": str(self.endmembers), "iterations": str(self.iterations)}


METHODS = [MethodSpec(
    "cnmf", "CNMF", CNMF,
    classical_params(fit_lr_side=128) + (
        Param("endmembers", int, 20, "Number of endmembers", minimum=1, maximum=200),
        Param("iterations", int, 100, "Iterations per unmixing step", minimum=1),
        Param("outer", int, 2, "Outer CNMF alternations (MSI step + HSI step) in the fit", minimum=1)),
    "classical", display_name="Fuse with CNMF (coupled NMF unmixing)",
    summary="Coupled non-negative matrix factorisation unmixing (Yokoya 2012).")]
