"""SFIM-HS — smoothing-filter-based intensity modulation, adapted to HS-MS fusion by hypersharpening.

Liu (2000), "Smoothing filter-based intensity modulation: a spectral preserve image fusion technique
for improving spatial details", IJRS 21(18); HS-MS form (a synthetic HR band per HSI band, non-negative
regression) as in Selva et al. (2015) and Yokoya, Grohnfeldt & Chanussot (2017).

fit (LR scale, global): ``S_b = W_b . P + c_b`` with ``W_b >= 0`` — NNLS regression of the LR-HSI band
on the MSI bands degraded to the LR scale.
apply (per tile): ``X_b = up(Y_b) * (1 + a_b (S_b / smooth(S_b) - 1))``, ``a_b`` the band's reduced-scale
gain (``gains``, _classical.py; 1 with ``gains="classic"``: Liu's ``up(Y_b) * S_b / smooth(S_b)``).
``smooth`` is the MTF-matched low-pass (degrade + bicubic, as in MTF-GLP), or with ``smoothing="box"``
Liu's plain mean filter of width r at the HR scale. The denominator is floored at 5 % of the band's LR
mean (a global constant), so dark or noisy pixels never divide by ~0.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..params import MethodSpec, Param
from ._classical import ClassicalMethod
from ._classical_params import classical_params
from ._kernels import add_matmul, as_f32, bicubic, crop_hr, lowpass, lowpass_margin_lr, regress, scratch

SMOOTHING = ("mtf", "box")
FLOOR = 0.05


def box_smooth(hr: np.ndarray, ratio: int) -> np.ndarray:
    """Centred mean filter of width r per axis (r even: r+1 taps, half weight at both ends), reflect."""
    taps = np.ones(ratio + 1 - ratio % 2, dtype=np.float32)
    if ratio % 2 == 0:
        taps[0] = taps[-1] = 0.5
    taps /= taps.sum()
    e = len(taps) // 2
    x = np.pad(hr, ((0, 0), (e, e), (e, e)), mode="reflect")
    H, W = hr.shape[1:]
    v = np.zeros((hr.shape[0], H, x.shape[2]), dtype=np.float32)
    for t, wt in enumerate(taps):
        v += wt * x[:, t:t + H, :]
    out = np.zeros(hr.shape, dtype=np.float32)
    for t, wt in enumerate(taps):
        out += wt * v[:, :, t:t + W]
    return out


class SFIM(ClassicalMethod):
    name = "sfim"
    alpha = None  # (C, 1) injection gains on the modulation (None: 1)

    def __init__(self, smoothing: str = "mtf", **kw) -> None:
        super().__init__(**kw)
        if smoothing not in SMOOTHING:
            raise InputError(f"unknown SFIM smoothing {smoothing!r}; use one of {SMOOTHING}")
        self.smoothing = smoothing

    def margin(self, ratio: int) -> int:
        if self.smoothing == "box":
            return 2 * ratio
        return lowpass_margin_lr(ratio, self.psf(ratio)[1]) * ratio

    def fit(self, scene, feedback=None) -> None:
        s = self.sample(scene, feedback)
        W, b = regress(s.z, s.y, nonneg=True)  # (C, c), (C,)
        mean_y = s.y.mean(axis=1)
        off = ~s.good | (mean_y <= 0) | (W.sum(axis=1) <= 0)
        W[off], b[off] = 0.0, 1.0  # ratio 1: the band is only upsampled
        self.weights, self.bias = as_f32(W), as_f32(b)
        self.floor = as_f32(np.where(off, 1.0, FLOOR * np.maximum(mean_y, 1e-12)))
        self.alpha = None
        self._fitted = True
        self.alpha = as_f32(self.reduced_scale_gains(s, feedback)[:, None])

    def apply_cropped(self, lr, hr, ratio, crop, feedback=None) -> np.ndarray:
        self._need_fit()
        if self.smoothing == "box":
            smooth = crop_hr(box_smooth(hr, ratio), crop)
        else:
            taps, extra = self.psf(ratio)
            smooth = lowpass(hr, ratio, taps, extra, crop)
        hr = as_f32(crop_hr(hr, crop)).reshape(hr.shape[0], -1)
        smooth = as_f32(smooth).reshape(hr.shape[0], -1)
        w, b, floor, alpha = self.weights, self.bias[:, None], self.floor[:, None], self.alpha

        def modulate(chunk: np.ndarray, b0: int, b1: int) -> None:  # on bands b0:b1 while in cache
            num = scratch("sfim_num", (b1 - b0, hr.shape[1]))
            den = scratch("sfim_den", (b1 - b0, hr.shape[1]))
            num[...] = b[b0:b1]
            den[...] = b[b0:b1]
            add_matmul(num, w[b0:b1], hr)
            add_matmul(den, w[b0:b1], smooth)
            np.maximum(den, floor[b0:b1], out=den)
            num /= den
            if alpha is not None:  # modulation 1 + alpha (S / smooth(S) - 1): alpha = the injection gain
                num -= 1.0
                num *= alpha[b0:b1]
                num += 1.0
            chunk *= num.reshape(chunk.shape)

        return bicubic(lr, ratio, crop, finish=modulate)

    def describe(self):
        return {**super().describe(), "smoothing": self.smoothing}


METHODS = [MethodSpec(
    "sfim", "SFIM", SFIM,
    classical_params() + (Param("smoothing", str, SMOOTHING[0], "Smoothing filter", choices=SMOOTHING,
                                choice_labels=("Gaussian matched to the sensor MTF",
                                               "Mean filter of width ratio (Liu)"),
                                help="mtf: the MTF-matched low-pass; box: Liu's mean filter of width r"),),
    "classical", display_name="Fuse with SFIM (smoothing-filter intensity modulation)",
    summary="Smoothing-filter-based intensity modulation (Liu 2000), hypersharpening form.")]
