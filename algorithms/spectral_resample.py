"""hsifusion:spectral_resample — a hyperspectral raster seen through a multispectral sensor's bands."""
from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterLayer

from ..engine import api
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.outputs import finish_raster_output
from .simulate import add_sensor_params, sensor_args


class SpectralResampleAlgorithm(HsiAlgorithm):
    ID = "spectral_resample"
    NAME = "Spectral resampling to a sensor"
    GROUP, GROUP_ID = "Simulation", "simulation"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Hyperspectral raster")))
        add_sensor_params(self)
        P.add_tile_size(self)
        P.add_creation_options(self)
        P.add_output(self, label="Resampled raster")

    def execute(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, P.OUTPUT, context)
        result = api.spectral_resample(P.raster_path(self, parameters, "INPUT", context), out,
                                       tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context),
                                       feedback=feedback,
                                       creation_options=P.creation_options(self, parameters, context),
                                       **sensor_args(self, parameters, context))
        finish_raster_output(context, out, "Resampled to sensor", kind="msi")
        return {P.OUTPUT: result["OUTPUT"]}


ALGORITHMS = [SpectralResampleAlgorithm]
