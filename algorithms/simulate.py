"""hsifusion:simulate and hsifusion:spectral_resample — Wald-protocol simulation from an HR-HSI reference."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..engine import api
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, add_flag
from ..provider.outputs import finish_raster_output

PSF_CHOICES = [("gaussian", "Gaussian, FWHM in HR pixels"),
               ("mtf", "Gaussian from MTF gain at the LR Nyquist frequency"),
               ("kernel", "Kernel file (CSV/text rows or .npy)")]


def add_sensor_params(alg) -> None:
    P.add_sensor(alg)
    alg.addParameter(QgsProcessingParameterFile(
        "SRF_FILE", alg.tr("Custom spectral response CSV (overrides SENSOR)"), extension="csv", optional=True))
    alg.addParameter(QgsProcessingParameterString(
        "SENSOR_BANDS", alg.tr("Sensor bands to simulate (comma separated; empty = all the HSI covers)"),
        "", optional=True))
    p = QgsProcessingParameterString("WAVELENGTHS", alg.tr("HSI band wavelengths in nm (list or CSV path; "
                                                           "empty = from the raster)"), "", optional=True)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def sensor_args(alg, parameters, context) -> dict:
    srf = alg.parameterAsFile(parameters, "SRF_FILE", context) or None
    bands = alg.parameterAsString(parameters, "SENSOR_BANDS", context) or None
    wl = alg.parameterAsString(parameters, "WAVELENGTHS", context) or None
    return {"sensor": P.sensor_value(alg, parameters, context), "srf_file": srf,
            "bands": bands, "wavelengths": wl}


def _optional_number(alg, parameters, name, context):
    value = parameters.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return alg.parameterAsDouble(parameters, name, context)


class SimulateAlgorithm(HsiAlgorithm):
    ID = "simulate"
    NAME = "Simulate LR-HSI and HR-MSI (Wald protocol)"
    GROUP, GROUP_ID = "Simulation", "simulation"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", self.tr("High-resolution hyperspectral reference (HR-HSI)")))
        self.addParameter(QgsProcessingParameterNumber("RATIO", self.tr("Resolution ratio (integer >= 2)"),
                                                       NUMBER_INTEGER, 4, False, 2))
        P.add_choice(self, "PSF", "Point spread function", PSF_CHOICES, "gaussian")
        self.addParameter(QgsProcessingParameterNumber(
            "PSF_FWHM", self.tr("Gaussian FWHM in HR pixels (0 = RATIO)"), NUMBER_DOUBLE, 0.0, True, 0.0))
        self.addParameter(QgsProcessingParameterNumber(
            "MTF_GAIN", self.tr("MTF gain at Nyquist (MTF mode)"), NUMBER_DOUBLE, 0.3, True, 0.001, 0.999))
        self.addParameter(QgsProcessingParameterFile("PSF_FILE", self.tr("PSF kernel file (kernel mode)"),
                                                     optional=True))
        add_sensor_params(self)
        for name, label in (("SNR_HSI", "SNR of the LR-HSI in dB (empty = no noise)"),
                            ("SNR_MSI", "SNR of the HR-MSI in dB (empty = no noise)")):
            self.addParameter(QgsProcessingParameterNumber(name, self.tr(label), NUMBER_DOUBLE, None, True))
        P.add_seed(self)
        P.add_tile_size(self)
        P.add_creation_options(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_HSI", self.tr("Simulated LR-HSI")))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_MSI", self.tr("Simulated HR-MSI")))

    def cross_check(self, parameters, context):
        kind = P.choice_value(self, parameters, "PSF", context, PSF_CHOICES)
        if kind == "kernel" and not self.parameterAsFile(parameters, "PSF_FILE", context):
            return "the PSF 'Kernel file' needs a PSF kernel file"
        return None

    def _ratio(self, parameters, context):
        raw = parameters.get("RATIO")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return raw  # the engine rejects non-integers with a clear message
        return self.parameterAsInt(parameters, "RATIO", context)

    def execute(self, parameters, context, feedback):
        kind = P.choice_value(self, parameters, "PSF", context, PSF_CHOICES)
        fwhm = _optional_number(self, parameters, "PSF_FWHM", context)
        psf = {"kind": kind}
        if kind == "gaussian" and fwhm:
            psf["fwhm"] = fwhm
        if kind == "mtf":
            psf["gain"] = _optional_number(self, parameters, "MTF_GAIN", context) or 0.3
        if kind == "kernel":
            psf["path"] = self.parameterAsFile(parameters, "PSF_FILE", context) or None
        out_hsi = self.parameterAsOutputLayer(parameters, "OUTPUT_HSI", context)
        out_msi = self.parameterAsOutputLayer(parameters, "OUTPUT_MSI", context)
        result = api.simulate(
            P.raster_path(self, parameters, "REFERENCE", context), out_hsi, out_msi,
            ratio=self._ratio(parameters, context),
            psf=psf, snr_hsi=_optional_number(self, parameters, "SNR_HSI", context),
            snr_msi=_optional_number(self, parameters, "SNR_MSI", context),
            seed=self.parameterAsInt(parameters, P.SEED, context),
            tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
            creation_options=P.creation_options(self, parameters, context),
            **sensor_args(self, parameters, context))
        finish_raster_output(context, out_hsi, "Simulated LR-HSI")
        finish_raster_output(context, out_msi, "Simulated HR-MSI", kind="msi")
        return {"OUTPUT_HSI": result["OUTPUT_HSI"], "OUTPUT_MSI": result["OUTPUT_MSI"]}


ALGORITHMS = [SimulateAlgorithm]
