"""hsifusion:fuse_auto — pick the fusion method by self-validation on the pair, then fuse with it.

The candidates are scored on the pair reduced by the ratio against the LR-HSI (engine/quality/selfval.py);
the best (PSNR, then SAM) fuses the full-scale pair. The table goes to the log, to the output's
metadata (HSIFUSION_AUTO_TABLE) and optionally to a CSV and an HTML report.
"""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ..engine import api
from ..engine.auto import DEFAULT_CANDIDATES, NETWORKS
from ..engine.methods import method_spec
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import NUMBER_DOUBLE
from ..provider.outputs import finish_raster_output

CHOICES = list(DEFAULT_CANDIDATES) + list(NETWORKS)


def choice_label(name: str) -> str:
    """What the drop-down shows: the method's title (bicubic for the baseline, which auto runs bicubic)."""
    return "Bicubic upsampling" if name == "upsample" else method_spec(name).title


class FuseAutoAlgorithm(HsiAlgorithm):
    ID = "fuse_auto"
    NAME = "Fuse with the method chosen by self-validation (auto)"
    GROUP, GROUP_ID = "Classical fusion", "classical"
    CANDIDATES, NETWORK_SECONDS = "CANDIDATES", "NETWORK_SECONDS"
    OUTPUT_TABLE, OUTPUT_REPORT, CHOSEN = "OUTPUT_TABLE", "OUTPUT_REPORT", "CHOSEN"

    def initAlgorithm(self, config=None):  # noqa: N802
        P.add_pair_inputs(self)
        self.addParameter(QgsProcessingParameterEnum(
            self.CANDIDATES, self.tr("Candidate methods"), [choice_label(c) for c in CHOICES], allowMultiple=True,
            defaultValue=list(range(len(DEFAULT_CANDIDATES)))))
        P.add_advanced(self, QgsProcessingParameterNumber(
            self.NETWORK_SECONDS, self.tr("Time budget of each network candidate (s; needed to include a network)"),
            NUMBER_DOUBLE, 0.0, False, 0.0))
        P.add_tile_size(self, P.AUTO_TILE)
        P.add_creation_options(self)
        P.add_output(self)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_TABLE, self.tr("Self-validation table (CSV)"), "CSV files (*.csv)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_REPORT, self.tr("Self-validation report (HTML)"), "HTML files (*.html *.htm)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputString(self.CHOSEN, self.tr("Chosen method")))

    def execute(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, P.OUTPUT, context)
        picks = self.parameterAsEnums(parameters, self.CANDIDATES, context)
        result = api.fuse_auto(
            P.raster_path(self, parameters, P.HSI, context), P.raster_path(self, parameters, P.MSI, context), out,
            candidates=[CHOICES[i] for i in picks] or None,
            network_seconds=self.parameterAsDouble(parameters, self.NETWORK_SECONDS, context) or None,
            out_table=self.parameterAsFileOutput(parameters, self.OUTPUT_TABLE, context) or None,
            out_report=self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None,
            tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
            creation_options=P.creation_options(self, parameters, context))
        finish_raster_output(context, out, f"Auto fusion ({result['CHOSEN']})")
        return {P.OUTPUT: result["OUTPUT"], self.CHOSEN: result["CHOSEN"],
                self.OUTPUT_TABLE: result.get("OUTPUT_TABLE"), self.OUTPUT_REPORT: result.get("OUTPUT_REPORT")}


ALGORITHMS = [FuseAutoAlgorithm]
