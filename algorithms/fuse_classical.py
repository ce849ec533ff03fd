"""hsifusion:fuse_gsa / fuse_glp / fuse_sfim / fuse_cnmf — classical HS-MS fusion baselines (issue #8).

One small class per method on a shared base: the same HSI, MSI, TILE_SIZE, OUTPUT as every fusion
algorithm, plus the method's own advanced parameters. Global statistics are estimated once at the LR
scale, then the tiles are streamed through the engine (CPU, no GPU needed).
"""
from __future__ import annotations

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber

from ..engine import api
from ..engine.methods._common import DEFAULT_MTF_GAIN, FIT_LR_SIDE, GAINS
from ..engine.methods.glp import WEIGHTS
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import NUMBER_DOUBLE, NUMBER_INTEGER
from ..provider.outputs import finish_raster_output

MTF_GAIN, FIT_SIZE, ITERATIONS, ENDMEMBERS, SMOOTHING = "MTF_GAIN", "FIT_SIZE", "ITERATIONS", "ENDMEMBERS", "SMOOTHING"
GAINS_PARAM, WEIGHTS_PARAM = "GAINS", "WEIGHTS"
SMOOTHINGS = ["mtf", "box"]


class ClassicalFusionAlgorithm(HsiAlgorithm):
    """Subclasses set METHOD, TITLE and may extend ``add_method_parameters`` / ``method_params``."""

    GROUP, GROUP_ID = "Classical fusion", "classical"
    METHOD, TITLE = "", ""
    FIT_DEFAULT = FIT_LR_SIDE

    def initAlgorithm(self, config=None):  # noqa: N802
        P.add_pair_inputs(self)
        P.add_tile_size(self, 256)
        P.add_advanced(self, QgsProcessingParameterNumber(
            MTF_GAIN, self.tr("Sensor MTF gain at the LR Nyquist frequency (Gaussian PSF; 0.41 = FWHM of r HR px)"),
            NUMBER_DOUBLE, DEFAULT_MTF_GAIN, False, 0.01, 0.99))
        P.add_advanced(self, QgsProcessingParameterNumber(
            FIT_SIZE, self.tr("Crop for the global statistics (LR px a side)"), NUMBER_INTEGER,
            self.FIT_DEFAULT, False, 8))
        P.add_advanced(self, QgsProcessingParameterEnum(
            GAINS_PARAM, self.tr("Injection gains (reduced_scale: fitted per band on the pair one scale down; "
                                 "classic: the method's own)"), list(GAINS), defaultValue=0))
        self.add_method_parameters()
        P.add_dask_scheduler(self)
        P.add_creation_options(self)
        P.add_output(self)

    def add_method_parameters(self) -> None:
        pass


    def method_params(self, parameters, context) -> dict:
        return {"mtf_gain": self.parameterAsDouble(parameters, MTF_GAIN, context),
                "fit_lr_side": self.parameterAsInt(parameters, FIT_SIZE, context),
                "gains": GAINS[self.parameterAsEnum(parameters, GAINS_PARAM, context)]}

    def execute(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, P.OUTPUT, context)
        result = api.fuse(P.raster_path(self, parameters, P.HSI, context),
                          P.raster_path(self, parameters, P.MSI, context), out, self.METHOD,
                          self.method_params(parameters, context),
                          tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
                          creation_options=P.creation_options(self, parameters, context),
                          scheduler=P.dask_scheduler(self, parameters, context))
        finish_raster_output(context, out, f"{self.TITLE} fusion")
        return {P.OUTPUT: result["OUTPUT"]}


class FuseGsaAlgorithm(ClassicalFusionAlgorithm):
    ID, NAME, METHOD, TITLE = "fuse_gsa", "Fuse with GSA (Gram-Schmidt adaptive)", "gsa", "GSA"


class FuseGlpAlgorithm(ClassicalFusionAlgorithm):
    ID, NAME, METHOD, TITLE = "fuse_glp", "Fuse with MTF-GLP (hypersharpening)", "glp", "MTF-GLP"

    def add_method_parameters(self) -> None:
        P.add_advanced(self, QgsProcessingParameterEnum(
            WEIGHTS_PARAM, self.tr("Regression weights (nonneg; free signs; auto: the better one scale down)"),
            list(WEIGHTS), defaultValue=0))

    def method_params(self, parameters, context) -> dict:
        return {**super().method_params(parameters, context),
                "weights": WEIGHTS[self.parameterAsEnum(parameters, WEIGHTS_PARAM, context)]}


class FuseSfimAlgorithm(ClassicalFusionAlgorithm):
    ID, NAME, METHOD, TITLE = "fuse_sfim", "Fuse with SFIM (smoothing-filter intensity modulation)", "sfim", "SFIM"

    def add_method_parameters(self) -> None:
        P.add_advanced(self, QgsProcessingParameterEnum(SMOOTHING, self.tr("Smoothing filter"), SMOOTHINGS,
                                                  defaultValue=0))

    def method_params(self, parameters, context) -> dict:
        return {**super().method_params(parameters, context),
                "smoothing": SMOOTHINGS[self.parameterAsEnum(parameters, SMOOTHING, context)]}


class FuseCnmfAlgorithm(ClassicalFusionAlgorithm):
    ID, NAME, METHOD, TITLE = "fuse_cnmf", "Fuse with CNMF (coupled NMF unmixing)", "cnmf", "CNMF"
    FIT_DEFAULT = 128

    def add_method_parameters(self) -> None:
        P.add_advanced(self, QgsProcessingParameterNumber(ENDMEMBERS, self.tr("Number of endmembers"), NUMBER_INTEGER,
                                                    20, False, 1, 200))
        P.add_advanced(self, QgsProcessingParameterNumber(ITERATIONS, self.tr("Iterations per unmixing step"),
                                                    NUMBER_INTEGER, 100, False, 1))

    def method_params(self, parameters, context) -> dict:
        return {**super().method_params(parameters, context),
                "endmembers": self.parameterAsInt(parameters, ENDMEMBERS, context),
                "iterations": self.parameterAsInt(parameters, ITERATIONS, context)}


ALGORITHMS = [FuseGsaAlgorithm, FuseGlpAlgorithm, FuseSfimAlgorithm, FuseCnmfAlgorithm]
