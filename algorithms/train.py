"""hsifusion:train — train a supervised network on the user's rasters and write a portable checkpoint.

Training data: HR-HSI references (pairs simulated on the fly with SENSOR / SRF_FILE, RATIO and the PSF)
or real LR-HSI + HR-MSI pairs (trained at reduced resolution). Progress shows training and validation
loss, PSNR and SAM per epoch; cancel keeps the last weights; a CSV log and a loss plot are written next
to the checkpoint.
"""
from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..engine import api
from ..models.catalogue import DEFAULT_TRAINING_NETWORK, NETWORKS, SUPERVISED
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import NUMBER_DOUBLE, NUMBER_INTEGER, _enum

SOURCE_RASTER = _enum(Qgis, "ProcessingSourceType", "Raster", QgsProcessing, "TypeRaster")
TRAINABLE = [e for e in NETWORKS if e.kind == SUPERVISED]  # drop-down: titles shown, ids passed on
(NETWORK, LITE, REFERENCES, LR_HSI, HR_MSI, SENSOR, SRF_FILE, BANDS, RATIO, PSF_FWHM, EPOCHS, ITERATIONS,
 STEPS_PER_EPOCH, PATCH_SIZE, BATCH_SIZE, LEARNING_RATE, VALIDATION, RESUME, OUTPUT, LOG, PLOT) = (
    "NETWORK", "LITE", "REFERENCES", "LR_HSI", "HR_MSI", "SENSOR", "SRF_FILE", "BANDS", "RATIO", "PSF_FWHM",
    "EPOCHS", "ITERATIONS", "STEPS_PER_EPOCH", "PATCH_SIZE", "BATCH_SIZE", "LEARNING_RATE", "VALIDATION",
    "RESUME", "OUTPUT", "LOG", "PLOT")


HSI_SENSORS = ("enmap_hsi",)  # not offered as the MSI of a training pair


class TrainAlgorithm(HsiAlgorithm):
    ID = "train"
    NAME = "Train a fusion network on your rasters"
    GROUP, GROUP_ID = "Training", "training"

    def initAlgorithm(self, config=None):  # noqa: N802
        ids = [e.id for e in TRAINABLE]
        self.addParameter(QgsProcessingParameterEnum(NETWORK, self.tr("Network"), [e.title for e in TRAINABLE],
                                                     defaultValue=ids.index(DEFAULT_TRAINING_NETWORK)))
        lite = ", ".join(e.title for e in TRAINABLE if e.lite)
        P.add_advanced(self, QgsProcessingParameterBoolean(
            LITE, self.tr(f"Lite configuration (non-paper, faster; {lite})"), False))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            REFERENCES, self.tr("HR-HSI reference rasters (pairs simulated on the fly)"), SOURCE_RASTER,
            optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            LR_HSI, self.tr("or: real LR-HSI rasters"), SOURCE_RASTER, optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            HR_MSI, self.tr("and their HR-MSI rasters (same order)"), SOURCE_RASTER, optional=True))
        P.add_sensor(self, "MSI sensor (references)", exclude=HSI_SENSORS)
        self.addParameter(QgsProcessingParameterFile(SRF_FILE, self.tr("or: custom SRF file (CSV)"),
                                                     extension="csv", optional=True))
        P.add_advanced(self, QgsProcessingParameterString(BANDS, self.tr("MSI band subset (comma-separated names)"), "",
                                               optional=True))
        self.addParameter(QgsProcessingParameterNumber(RATIO, self.tr("Resolution ratio (references)"),
                                                       NUMBER_INTEGER, 4, False, 2))
        P.add_advanced(self, QgsProcessingParameterNumber(
            PSF_FWHM, self.tr("Gaussian PSF FWHM in HR pixels (0 = ratio)"), NUMBER_DOUBLE, 0, False, 0))
        self.addParameter(QgsProcessingParameterNumber(EPOCHS, self.tr("Epochs"), NUMBER_INTEGER, 10, False, 1))
        P.add_advanced(self, QgsProcessingParameterNumber(ITERATIONS, self.tr("Iterations (0 = use epochs)"),
                                               NUMBER_INTEGER, 0, False, 0))
        P.add_advanced(self, QgsProcessingParameterNumber(STEPS_PER_EPOCH, self.tr("Steps per epoch (0 = one pass)"),
                                               NUMBER_INTEGER, 0, False, 0))
        self.addParameter(QgsProcessingParameterNumber(PATCH_SIZE, self.tr("Patch size (HR px)"), NUMBER_INTEGER,
                                                       64, False, 8))
        self.addParameter(QgsProcessingParameterNumber(BATCH_SIZE, self.tr("Batch size"), NUMBER_INTEGER, 4,
                                                       False, 1))
        P.add_advanced(self, QgsProcessingParameterNumber(
            LEARNING_RATE, self.tr("Learning rate (empty or 0 = the paper's)"), NUMBER_DOUBLE, None, True, 0))
        self.addParameter(QgsProcessingParameterNumber(VALIDATION, self.tr("Validation fraction"), NUMBER_DOUBLE,
                                                       0.2, False, 0, 0.8))
        P.add_device(self)
        P.add_seed(self)
        self.addParameter(QgsProcessingParameterFile(RESUME, self.tr("Resume from checkpoint"), extension="pt",
                                                     optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(OUTPUT, self.tr("Checkpoint"),
                                                                "PyTorch checkpoint (*.pt)"))
        self.addOutput(QgsProcessingOutputFile(LOG, self.tr("Training log (CSV)")))
        self.addOutput(QgsProcessingOutputFile(PLOT, self.tr("Loss curve (PNG)")))


    def execute(self, parameters, context, feedback):
        refs = [lyr.source() for lyr in self.parameterAsLayerList(parameters, REFERENCES, context)]
        lrs = [lyr.source() for lyr in self.parameterAsLayerList(parameters, LR_HSI, context)]
        mss = [lyr.source() for lyr in self.parameterAsLayerList(parameters, HR_MSI, context)]
        if len(lrs) != len(mss):
            raise QgsProcessingException(f"{len(lrs)} LR-HSI and {len(mss)} HR-MSI rasters given; pairs need "
                                         "one MSI per HSI, in the same order")
        net = TRAINABLE[self.parameterAsEnum(parameters, NETWORK, context)]
        hyper = {"lite": True} if net.lite and self.parameterAsBool(parameters, LITE, context) else None
        out = self.parameterAsFileOutput(parameters, OUTPUT, context)
        res = api.train(
            net.id, out, references=refs or None, pairs=list(zip(lrs, mss)) or None,
            sensor=P.sensor_value(self, parameters, context, exclude=HSI_SENSORS),
            srf_file=self.parameterAsFile(parameters, SRF_FILE, context) or None,
            bands=self.parameterAsString(parameters, BANDS, context) or None,
            ratio=self.parameterAsInt(parameters, RATIO, context) if refs else None,
            psf_fwhm=self.parameterAsDouble(parameters, PSF_FWHM, context) or None,
            epochs=self.parameterAsInt(parameters, EPOCHS, context),
            iterations=self.parameterAsInt(parameters, ITERATIONS, context) or None,
            steps_per_epoch=self.parameterAsInt(parameters, STEPS_PER_EPOCH, context) or None,
            patch_size=self.parameterAsInt(parameters, PATCH_SIZE, context),
            batch_size=self.parameterAsInt(parameters, BATCH_SIZE, context),
            learning_rate=self.parameterAsDouble(parameters, LEARNING_RATE, context) or None,
            validation=self.parameterAsDouble(parameters, VALIDATION, context),
            device=P.device_value(self, parameters, context), seed=self.parameterAsInt(parameters, P.SEED, context),
            resume=self.parameterAsFile(parameters, RESUME, context) or None, hyper=hyper, feedback=feedback)
        return {OUTPUT: res["OUTPUT"], LOG: res["LOG"], PLOT: res["PLOT"]}

    def cross_check(self, parameters, context):
        """Training data: references, or LR-HSI and HR-MSI lists of the same length."""
        refs, lrs, mss = (self.parameterAsLayerList(parameters, name, context) for name in (REFERENCES, LR_HSI, HR_MSI))
        if len(lrs) != len(mss):
            return (f"{len(lrs)} LR-HSI and {len(mss)} HR-MSI rasters given: pairs need one MSI per HSI, "
                    "in the same order")
        if bool(refs) == bool(lrs):
            return ("give either HR-HSI reference rasters (pairs simulated on the fly) or real LR-HSI rasters with "
                    "their HR-MSI rasters, not both and not neither")
        return None


ALGORITHMS = [TrainAlgorithm]
