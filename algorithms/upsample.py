"""hsifusion:upsample — the LR-HSI interpolated onto the HR-MSI grid (the baseline of every fusion)."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterEnum

from ..engine import api
from ..engine.methods.interpolate import MODES
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.outputs import finish_raster_output


class UpsampleAlgorithm(HsiAlgorithm):
    ID = "upsample"
    NAME = "Upsample LR-HSI to the MSI grid"
    GROUP, GROUP_ID = "Baselines", "baselines"
    METHOD = "METHOD"

    def initAlgorithm(self, config=None):  # noqa: N802
        P.add_pair_inputs(self)
        self.addParameter(QgsProcessingParameterEnum(self.METHOD, self.tr("Interpolation"), list(MODES),
                                                     defaultValue=MODES.index("bicubic")))
        P.add_tile_size(self)
        P.add_dask_scheduler(self)
        P.add_creation_options(self)
        P.add_output(self, label="Upsampled HSI")

    def execute(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, P.OUTPUT, context)
        result = api.fuse(
            P.raster_path(self, parameters, P.HSI, context), P.raster_path(self, parameters, P.MSI, context),
            out, "upsample", {"mode": MODES[self.parameterAsEnum(parameters, self.METHOD, context)]},
            tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
            creation_options=P.creation_options(self, parameters, context),
            scheduler=P.dask_scheduler(self, parameters, context))
        finish_raster_output(context, out, "Upsampled HSI")
        return {P.OUTPUT: result["OUTPUT"]}


ALGORITHMS = [UpsampleAlgorithm]
