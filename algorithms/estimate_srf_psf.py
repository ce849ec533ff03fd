"""hsifusion:estimate_srf_psf.

Estimate the MSI's spectral responses and the PSF from an LR-HSI + HR-MSI pair (HySure-like); writes the SRF
as a custom-SRF CSV (usable as SRF_FILE) and a short report.
"""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ..engine import api
from ..engine.sensors.blind_srf_psf import DEFAULT_MAX_LR_SIDE, DEFAULT_SMOOTHNESS
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import NUMBER_DOUBLE, NUMBER_INTEGER

(SMOOTHNESS, FWHM, SEARCH_PHASE, USE_SUPPORT, MAX_CROP, OUTPUT_SRF, OUTPUT_REPORT, OUT_FWHM, RESIDUAL) = (
    "SMOOTHNESS", "FWHM", "SEARCH_PHASE", "USE_SUPPORT", "MAX_CROP", "OUTPUT_SRF", "OUTPUT_REPORT", "FWHM_HR_PX",
    "RESIDUAL")


class EstimateSrfPsfAlgorithm(HsiAlgorithm):
    ID = "estimate_srf_psf"
    NAME = "Estimate SRF and PSF from a pair"
    GROUP, GROUP_ID = "Simulation", "simulation"

    def initAlgorithm(self, config=None):  # noqa: N802
        P.add_pair_inputs(self)
        P.add_advanced(self, QgsProcessingParameterNumber(FWHM, self.tr("Fixed PSF FWHM in HR pixels (0 = estimate)"),
                                               NUMBER_DOUBLE, 0, False, 0))
        P.add_advanced(self, QgsProcessingParameterBoolean(SEARCH_PHASE, self.tr("Estimate the sampling phase"), True))
        P.add_advanced(self, QgsProcessingParameterBoolean(
            USE_SUPPORT, self.tr("Limit each MSI band to HSI bands near its declared centre/FWHM"), True))
        P.add_advanced(self, QgsProcessingParameterNumber(SMOOTHNESS, self.tr("SRF smoothness weight"), NUMBER_DOUBLE,
                                               DEFAULT_SMOOTHNESS, False, 0))
        P.add_advanced(self, QgsProcessingParameterNumber(MAX_CROP, self.tr("Largest crop used (LR px a side)"),
                                               NUMBER_INTEGER, DEFAULT_MAX_LR_SIDE, False, 8))
        self.addParameter(QgsProcessingParameterFileDestination(OUTPUT_SRF, self.tr("Estimated SRF (CSV)"),
                                                                "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(OUTPUT_REPORT, self.tr("Report"),
                                                                "Text files (*.txt)", optional=True))
        self.addOutput(QgsProcessingOutputNumber(OUT_FWHM, self.tr("PSF FWHM (HR px)")))
        self.addOutput(QgsProcessingOutputNumber(RESIDUAL, self.tr("Relative RMS residual")))


    def execute(self, parameters, context, feedback):
        res = api.estimate_srf_psf(
            P.raster_path(self, parameters, P.HSI, context), P.raster_path(self, parameters, P.MSI, context),
            self.parameterAsFileOutput(parameters, OUTPUT_SRF, context),
            self.parameterAsFileOutput(parameters, OUTPUT_REPORT, context) or None,
            smoothness=self.parameterAsDouble(parameters, SMOOTHNESS, context),
            fwhm=self.parameterAsDouble(parameters, FWHM, context) or None,
            search_phase=self.parameterAsBool(parameters, SEARCH_PHASE, context),
            use_support=self.parameterAsBool(parameters, USE_SUPPORT, context),
            max_lr_side=self.parameterAsInt(parameters, MAX_CROP, context), feedback=feedback)
        return {OUTPUT_SRF: res["OUTPUT_SRF"], OUTPUT_REPORT: res["OUTPUT_REPORT"], OUT_FWHM: res["FWHM"],
                RESIDUAL: res["RESIDUAL"]}


ALGORITHMS = [EstimateSrfPsfAlgorithm]
