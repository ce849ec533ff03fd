"""GSA — Gram-Schmidt adaptive component substitution, adapted to HS-MS fusion.

Aiazzi, Baronti & Selva (2007), "Improving component substitution pansharpening through multivariate
regression of MS+Pan data", IEEE TGRS 45(10); HS-MS grouping as in Yokoya, Grohnfeldt & Chanussot
(2017), IEEE GRSM 5(2).

fit (LR scale, global):
  * intensity of MSI band k: ``I_k = R_k . Y + o_k`` — NNLS regression of the MSI band degraded to the
    LR scale on the LR-HSI bands (the regression-estimated spectral response);
  * each HSI band b takes detail from one MSI band k(b): the band whose FWHM covers it (wavelengths
    known) or else the one it correlates best with;
  * Gram-Schmidt injection gain ``g_b = cov(Y_b, I_k(b)) / var(I_k(b))``, then times the band's
    reduced-scale gain (``gains``, _classical.py).
apply (per tile): ``X_b = up(Y_b) + g_b (P_k(b) - up(I_k(b)))`` with bicubic ``up``; since ``up`` is
linear this is computed as ``up(Y_b - g_b I_k(b)) + g_b P_k(b)``: one upsampling of C bands, the
intensities only at the LR scale.
The mean equalisation of the original (``X_b`` mean set to ``up(Y_b)``'s) is implicit: the intercept
``o_k`` makes the detail zero-mean at the LR scale.
"""
from __future__ import annotations

import numpy as np

from ..params import MethodSpec
from ._classical import ClassicalMethod, assign_bands
from ._classical_params import classical_params
from ._kernels import add_detail, as_f32, band_combination, bicubic, crop_hr, regress


class GSA(ClassicalMethod):
    name = "gsa"

    def margin(self, ratio: int) -> int:
        return 2 * ratio  # bicubic: 2 LR pixels each side

    def fit(self, scene, feedback=None) -> None:
        s = self.sample(scene, feedback)
        R, o = regress(s.y, s.z, nonneg=True, use=s.good)  # (c, C), (c,)
        inten = R @ s.y + o[:, None]
        pair = scene.pair
        k = assign_bands(s.y, s.z, pair.hsi.wavelengths, pair.msi.wavelengths, pair.msi.fwhm)
        ic = inten - inten.mean(axis=1, keepdims=True)
        yc = s.y - s.y.mean(axis=1, keepdims=True)
        var = (ic ** 2).mean(axis=1)
        g = (yc * ic[k]).mean(axis=1) / np.maximum(var[k], 1e-30)
        g[~s.good] = 0.0
        C, c = s.y.shape[0], s.z.shape[0]
        gains = np.zeros((C, c))
        gains[np.arange(C), k] = g
        self.srf, self.offset, self.gains, self.assignment = as_f32(R), as_f32(o), as_f32(gains), k
        self._fitted = True
        self.gains = as_f32(gains * self.reduced_scale_gains(s, feedback)[:, None])

    def apply_cropped(self, lr, hr, ratio, crop, feedback=None) -> np.ndarray:
        self._need_fit()
        inten = band_combination(self.srf, lr)
        inten += self.offset[:, None, None]
        base = lr - band_combination(self.gains, inten)
        return bicubic(base, ratio, crop, finish=add_detail(self.gains, crop_hr(hr, crop)))


METHODS = [MethodSpec("gsa", "GSA", GSA, classical_params(), "classical",
                      display_name="Fuse with GSA (Gram-Schmidt adaptive)",
                      summary="Gram-Schmidt adaptive component substitution (Aiazzi 2007), regression at LR scale.")]
