"""hsifusion:style — a band-combination preset by wavelength.

Written as a .qml style file and applied to the raster's layers in the open project.
"""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ..engine.errors import InputError
from ..engine.io.presets import DEFAULT_TOLERANCE_NM, PRESETS
from ..engine.io.raster import same_file
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import ALG_FLAG_NO_THREADING, FLAG_ADVANCED, NUMBER_DOUBLE, add_flag
from ..provider.styling import style_layer, write_qml

CHOICES = [("true_colour", "True colour (640/550/470 nm)"), ("colour_infrared", "Colour infrared (860/650/550 nm)"),
           ("swir", "SWIR (2200/1600/860 nm)"), ("agriculture", "Agriculture (1600/860/470 nm)"),
           ("custom", "Custom wavelengths (below)"), ("sam", "SAM map (pseudo-colour, 0-20 degrees)")]


class StyleAlgorithm(HsiAlgorithm):
    ID = "style"
    NAME = "Style by wavelength preset"
    GROUP, GROUP_ID = "Styling", "styling"
    INPUT, PRESET, WAVELENGTHS, TOLERANCE = "INPUT", "PRESET", "WAVELENGTHS", "TOLERANCE"
    LOWER, UPPER, OUTPUT, BANDS = "LOWER", "UPPER", "OUTPUT", "BANDS"

    def flags(self):
        # the layer in the open project is restyled: that must happen on the main thread
        return super().flags() | ALG_FLAG_NO_THREADING

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Raster")))
        P.add_choice(self, self.PRESET, "Preset", CHOICES, "true_colour")
        self.addParameter(QgsProcessingParameterString(
            self.WAVELENGTHS, self.tr("Custom red, green, blue wavelengths (nm), e.g. 860, 650, 550"), "",
            optional=True))
        p = QgsProcessingParameterNumber(self.TOLERANCE, self.tr("Wavelength tolerance (nm)"), NUMBER_DOUBLE,
                                         DEFAULT_TOLERANCE_NM, False, 0.0)
        add_flag(p, FLAG_ADVANCED)
        self.addParameter(p)
        for name, label, default in ((self.LOWER, "Cumulative cut: lower percent", 2.0),
                                     (self.UPPER, "Cumulative cut: upper percent", 98.0)):
            p = QgsProcessingParameterNumber(name, self.tr(label), NUMBER_DOUBLE, default, False, 0.0, 100.0)
            add_flag(p, FLAG_ADVANCED)
            self.addParameter(p)
        out = QgsProcessingParameterFileDestination(
            self.OUTPUT, self.tr("Style file (.qml); skipped = next to the raster, named like it"),
            self.tr("QGIS layer style (*.qml)"), optional=True, createByDefault=False)
        self.addParameter(out)
        self.addOutput(QgsProcessingOutputString(self.BANDS, self.tr("Bands chosen")))

    def _preset(self, parameters, context):
        """(kind, preset) for styling.write_qml."""
        key = P.choice_value(self, parameters, self.PRESET, context, CHOICES)
        if key == "custom":
            return "hsi", (self.parameterAsString(parameters, self.WAVELENGTHS, context) or "").strip()
        return ("sam", None) if key == "sam" else ("hsi", key)

    def cross_check(self, parameters, context):
        lower = self.parameterAsDouble(parameters, self.LOWER, context)
        upper = self.parameterAsDouble(parameters, self.UPPER, context)
        if not lower < upper:
            return f"the lower cut ({lower:g} %) must be below the upper cut ({upper:g} %)"
        if self._preset(parameters, context) == ("hsi", ""):
            return "the custom preset needs three wavelengths (red, green, blue), e.g. 860, 650, 550"
        return None

    def execute(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError(f"INPUT: could not load the raster {parameters.get(self.INPUT)!r}")
        problem = self.cross_check(parameters, context)
        if problem:
            raise InputError(problem)
        kind, preset = self._preset(parameters, context)
        lower = self.parameterAsDouble(parameters, self.LOWER, context)
        upper = self.parameterAsDouble(parameters, self.UPPER, context)
        tol = self.parameterAsDouble(parameters, self.TOLERANCE, context)
        target = self.parameterAsFileOutput(parameters, self.OUTPUT, context) or None
        qml, desc = write_qml(layer.source(), kind, preset, lower, upper, tol, qml=target)
        feedback.pushInfo(f"{desc}; wrote {qml}")
        for shown in project_layers_of(context.project(), layer.source()):
            style_layer(shown, kind, preset, lower, upper, tol)
            feedback.pushInfo(f"restyled the layer {shown.name()!r}")
        return {self.OUTPUT: qml, self.BANDS: desc}


def project_layers_of(project, source: str):
    """The raster layers of ``project`` that show the file ``source``."""
    if project is None:
        return []
    return [lyr for lyr in project.mapLayers().values()
            if isinstance(lyr, QgsRasterLayer) and lyr.isValid() and lyr.providerType() == "gdal"
            and same_file(lyr.source(), source)]


ALGORITHMS = [StyleAlgorithm]
assert set(PRESETS) <= {c[0] for c in CHOICES}
