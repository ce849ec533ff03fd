"""hsifusion:assess — quality of a fused image: metrics, SAM map, per-band CSV and an HTML report."""
from __future__ import annotations

import math

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..engine import api
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import NUMBER_INTEGER
from ..provider.outputs import finish_raster_output

METRICS = ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N", "QNR", "D_LAMBDA", "D_S")
LABELS = {"PSNR": "PSNR (dB, mean over bands)", "SSIM": "SSIM (mean over bands)",
          "SAM": "SAM (degrees, mean over pixels)", "ERGAS": "ERGAS", "RMSE": "RMSE (reference units)",
          "CC": "Correlation coefficient (mean over bands)", "UIQI": "UIQI (32x32 blocks)",
          "Q2N": "Q2^n (32x32 blocks)", "QNR": "QNR (no reference)", "D_LAMBDA": "D_lambda (no reference)",
          "D_S": "D_s (no reference)"}


class AssessAlgorithm(HsiAlgorithm):
    ID = "assess"
    NAME = "Assess fusion quality"
    GROUP, GROUP_ID = "Quality", "quality"
    REFERENCE, ESTIMATE, RATIO, MASK, BORDER = "REFERENCE", "ESTIMATE", "RATIO", "MASK", "BORDER"
    LR_HSI, MSI = "LR_HSI", "MSI"
    OUTPUT_SAM, OUTPUT_TABLE, OUTPUT_REPORT = "OUTPUT_SAM", "OUTPUT_TABLE", "OUTPUT_REPORT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE, self.tr("Reference HR-HSI (ground truth; leave empty for no-reference QNR)"),
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(self.ESTIMATE, self.tr("Estimate (fused HR-HSI)")))
        self.addParameter(QgsProcessingParameterNumber(
            self.RATIO, self.tr("Resolution ratio for ERGAS (0 = from LR-HSI / MSI pixel sizes)"),
            NUMBER_INTEGER, 4, False, 0))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.MASK, self.tr("Mask (pixels with value 0 or nodata are ignored)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.BORDER, self.tr("Border to ignore (pixels at each edge)"), NUMBER_INTEGER, 0, False, 0))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.LR_HSI, self.tr("LR-HSI the estimate was fused from (no-reference QNR)"), optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.MSI, self.tr("HR-MSI the estimate was fused from (no-reference QNR)"), optional=True))
        P.add_tile_size(self)
        P.add_creation_options(self)
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_SAM, self.tr("SAM map (degrees)"), optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_TABLE, self.tr("Per-band metrics (CSV)"), "CSV files (*.csv)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("HTML report"), "HTML files (*.html *.htm)", optional=True,
            createByDefault=True))
        for m in METRICS:
            self.addOutput(QgsProcessingOutputNumber(m, self.tr(LABELS[m])))

    def cross_check(self, parameters, context):
        """What the engine would refuse, said in the dialog before the run (the engine keeps its checks)."""
        given = {name: bool(parameters.get(name)) for name in (self.REFERENCE, self.LR_HSI, self.MSI)}
        if given[self.LR_HSI] != given[self.MSI]:
            return ("the no-reference QNR needs both the LR-HSI (LR_HSI) and the HR-MSI (MSI) the estimate was "
                    "fused from")
        if not given[self.REFERENCE] and not given[self.LR_HSI]:
            return ("give a reference HR-HSI (REFERENCE), or the LR-HSI (LR_HSI) and HR-MSI (MSI) the estimate was "
                    "fused from (no-reference QNR)")
        return None

    def _optional_raster(self, parameters, name, context):
        if not parameters.get(name):
            return None
        return P.raster_path(self, parameters, name, context)

    def execute(self, parameters, context, feedback):
        reference = self._optional_raster(parameters, self.REFERENCE, context)
        lr_hsi = self._optional_raster(parameters, self.LR_HSI, context)
        msi = self._optional_raster(parameters, self.MSI, context)
        mask = self._optional_raster(parameters, self.MASK, context)
        estimate = P.raster_path(self, parameters, self.ESTIMATE, context)
        out_sam = self.parameterAsOutputLayer(parameters, self.OUTPUT_SAM, context) or None
        out_table = self.parameterAsFileOutput(parameters, self.OUTPUT_TABLE, context) or None
        out_report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        if reference is None and (out_sam or out_table):
            feedback.pushInfo("no reference: the SAM map and the per-band table are not written")
            out_sam = out_table = None
        result = api.assess(
            reference, estimate, self.parameterAsInt(parameters, self.RATIO, context) or None,
            out_sam=out_sam, out_table=out_table, out_report=out_report, mask=mask,
            border=self.parameterAsInt(parameters, self.BORDER, context),
            tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
            lr_hsi=lr_hsi, msi=msi, creation_options=P.creation_options(self, parameters, context))
        if result.get("OUTPUT_SAM"):
            finish_raster_output(context, result["OUTPUT_SAM"], "SAM (degrees)", kind="sam")
        out = {m: (float(result[m]) if result.get(m) is not None and math.isfinite(result[m]) else None)
               for m in METRICS}
        out[self.OUTPUT_SAM] = result.get("OUTPUT_SAM")
        out[self.OUTPUT_TABLE] = result.get("OUTPUT_TABLE")
        out[self.OUTPUT_REPORT] = result.get("OUTPUT_REPORT")
        return out


ALGORITHMS = [AssessAlgorithm]
