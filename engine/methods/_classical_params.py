"""The parameters every classical method (GSA, GLP, SFIM, CNMF) shares, declared once."""
from __future__ import annotations

from typing import Tuple

from ..params import Param
from ._classical import FIT_LR_SIDE, GAINS
from ._kernels import DEFAULT_MTF_GAIN


def classical_params(fit_lr_side: int = FIT_LR_SIDE) -> Tuple[Param, ...]:
    """MTF gain, fit-crop size (the method's own default side) and the injection gains."""
    return (
        Param("mtf_gain", float, DEFAULT_MTF_GAIN,
              "Sensor MTF gain at the LR Nyquist frequency (Gaussian PSF; 0.41 = FWHM of r HR px)",
              minimum=0.01, maximum=0.99),
        Param("fit_lr_side", int, fit_lr_side, "Crop for the global statistics (LR px a side)", minimum=8,
              key="FIT_SIZE"),
        Param("gains", str, GAINS[0], "Injection gains (reduced_scale: fitted per band one scale down; "
              "classic: the method's own)", choices=GAINS,
              choice_labels=("Fitted per band one scale down (never worse than interpolation there)",
                             "The method's own (classic)"),
              help="reduced_scale (default): each band's detail is scaled by a gain fitted on the pair itself "
                   "one scale down (HSI and MSI degraded once more by the ratio, result compared with the HSI), "
                   "between 0 and 2, 0 where the MSI's detail does not predict the band's; so no band is worse "
                   "than plain interpolation at that scale, which matters on real pairs of two sensors. classic: "
                   "the method's own gains (the behaviour of earlier versions)."),
    )
