"""The parameters every classical method (GSA, GLP, SFIM, CNMF) shares, declared once."""
from __future__ import annotations

from typing import Tuple

from ..params import Param
from ._common import DEFAULT_MTF_GAIN, FIT_LR_SIDE


def classical_params(fit_lr_side: int = FIT_LR_SIDE) -> Tuple[Param, ...]:
    """MTF gain and fit-crop size, with the method's own default crop side."""
    return (
        Param("mtf_gain", float, DEFAULT_MTF_GAIN,
              "Sensor MTF gain at the LR Nyquist frequency (Gaussian PSF; 0.41 = FWHM of r HR px)",
              minimum=0.01, maximum=0.99),
        Param("fit_lr_side", int, fit_lr_side, "Crop for the global statistics (LR px a side)", minimum=8,
              key="FIT_SIZE"),
    )
