"""hsifusion:style — a band-combination preset by wavelength written as a .qml sidecar (and applied)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..engine.errors import InputError
from ..engine.presets import DEFAULT_TOLERANCE_NM, PRESETS
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
        self.addParameter(QgsProcessingParameterEnum(self.PRESET, self.tr("Preset"), [c[1] for c in CHOICES],
                                                     defaultValue=0))
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
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT, self.tr("QML style file")))
        self.addOutput(QgsProcessingOutputString(self.BANDS, self.tr("Bands chosen")))

    def execute(self, parameters, context, feedback):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError(f"INPUT: could not load the raster {parameters.get(self.INPUT)!r}")
        key = CHOICES[self.parameterAsEnum(parameters, self.PRESET, context)][0]
        lower = self.parameterAsDouble(parameters, self.LOWER, context)
        upper = self.parameterAsDouble(parameters, self.UPPER, context)
        if not lower < upper:
            raise InputError(f"the lower cut ({lower} %) must be below the upper cut ({upper} %)")
        tol = self.parameterAsDouble(parameters, self.TOLERANCE, context)
        kind, preset = "hsi", key
        if key == "custom":
            preset = (self.parameterAsString(parameters, self.WAVELENGTHS, context) or "").strip()
            if not preset:
                raise InputError("the custom preset needs three wavelengths, e.g. 860, 650, 550")
        elif key == "sam":
            kind, preset = "sam", None
        qml, desc = write_qml(layer.source(), kind, preset, lower, upper, tol)
        feedback.pushInfo(f"{desc}; wrote {qml}")
        project = context.project()
        if project is not None and project.mapLayer(layer.id()) is layer:
            style_layer(layer, kind, preset, lower, upper, tol)
        return {self.OUTPUT: qml, self.BANDS: desc}


ALGORITHMS = [StyleAlgorithm]
assert set(PRESETS) <= {c[0] for c in CHOICES}
