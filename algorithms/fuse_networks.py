"""hsifusion:fuse_<net> — one Toolbox entry per network, all sharing one small class.

Without a CHECKPOINT a supervised net is trained on the pair itself at reduced resolution
(scene-adaptive); unsupervised nets are optimised on the pair. Either way the run shows the loss per
iteration and stops within one step on cancel.
"""
from __future__ import annotations

from qgis.core import (QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber)

from ..engine import api
from ..provider import params as P
from ..provider.base import HsiAlgorithm
from ..provider.compat import NUMBER_DOUBLE, NUMBER_INTEGER
from ..provider.outputs import finish_raster_output

CHECKPOINT, SAVE_CHECKPOINT, ITERATIONS, MAX_SECONDS, PSF_FWHM, LITE, PATCH_SIZE, BATCH_SIZE, CROP_SIZE = (
    "CHECKPOINT", "SAVE_CHECKPOINT", "ITERATIONS", "MAX_SECONDS", "PSF_FWHM", "LITE", "PATCH_SIZE",
    "BATCH_SIZE", "CROP_SIZE")
BASE = "BASE"
BASE_CHOICES = ["glp", "bicubic", "gsa", "auto", "none"]  # engine/methods/anchored.py; none = the network alone


class NetworkFusionAlgorithm(HsiAlgorithm):
    """Subclasses set NETWORK, TITLE, SUPERVISED, HAS_LITE."""

    GROUP, GROUP_ID = "Deep fusion networks", "networks"
    NETWORK, TITLE, SUPERVISED, HAS_LITE = "", "", True, False

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..engine.methods.anchored import DEFAULT_MAX_SECONDS
        from ..engine.methods.network import DEFAULT_ITERATIONS

        P.add_pair_inputs(self)
        if self.SUPERVISED:
            self.addParameter(QgsProcessingParameterFile(
                CHECKPOINT, self.tr("Checkpoint (.pt); empty = scene-adaptive training on this pair"),
                extension="pt", optional=True))
        P.add_device(self)
        P.add_tile_size(self, 256)
        P.add_seed(self)
        P.add_advanced(self, QgsProcessingParameterNumber(
            ITERATIONS, self.tr("Training / optimisation iterations"), NUMBER_INTEGER,
            DEFAULT_ITERATIONS[self.NETWORK], False, 1))
        P.add_advanced(self, QgsProcessingParameterNumber(
            MAX_SECONDS, self.tr("Time budget for the whole fusion, inference included (s, 0 = none)"),
            NUMBER_DOUBLE, DEFAULT_MAX_SECONDS, False, 0))
        P.add_advanced(self, QgsProcessingParameterEnum(
            BASE, self.tr("Classical base the network refines (none = the network alone)"), BASE_CHOICES,
            defaultValue=0))
        P.add_advanced(self, QgsProcessingParameterNumber(
            PSF_FWHM, self.tr("PSF FWHM in HR pixels for reduced-resolution training (0 = ratio)"),
            NUMBER_DOUBLE, 0, False, 0))
        if self.SUPERVISED:
            P.add_advanced(self, QgsProcessingParameterNumber(PATCH_SIZE, self.tr("Training patch (HR px)"),
                                                        NUMBER_INTEGER, 64, False, 8))
            P.add_advanced(self, QgsProcessingParameterNumber(BATCH_SIZE, self.tr("Batch size"), NUMBER_INTEGER,
                                                        4, False, 1))
        P.add_advanced(self, QgsProcessingParameterNumber(CROP_SIZE, self.tr("Training crop (LR px a side)"),
                                                    NUMBER_INTEGER, 128, False, 4))
        if self.HAS_LITE:
            P.add_advanced(self, QgsProcessingParameterBoolean(LITE, self.tr("Lite configuration (non-paper, faster)"),
                                                         False))
        P.add_dask_scheduler(self)
        P.add_creation_options(self)
        P.add_output(self)
        if self.SUPERVISED:
            p = QgsProcessingParameterFileDestination(SAVE_CHECKPOINT, self.tr("Save trained weights as"),
                                                      "PyTorch checkpoint (*.pt)", optional=True,
                                                      createByDefault=False)
            self.addParameter(p)


    def method_params(self, parameters, context) -> dict:
        par = {
            "device": P.device_value(self, parameters, context),
            "seed": self.parameterAsInt(parameters, P.SEED, context),
            "iterations": self.parameterAsInt(parameters, ITERATIONS, context),
            "max_seconds": self.parameterAsDouble(parameters, MAX_SECONDS, context) or None,
            "psf_fwhm": self.parameterAsDouble(parameters, PSF_FWHM, context) or None,
            "crop_lr": self.parameterAsInt(parameters, CROP_SIZE, context),
            "base": BASE_CHOICES[self.parameterAsEnum(parameters, BASE, context)],
        }
        if self.SUPERVISED:
            par["checkpoint"] = self.parameterAsFile(parameters, CHECKPOINT, context) or None
            par["save_checkpoint"] = self.parameterAsFileOutput(parameters, SAVE_CHECKPOINT, context) or None
            par["patch_size"] = self.parameterAsInt(parameters, PATCH_SIZE, context)
            par["batch_size"] = self.parameterAsInt(parameters, BATCH_SIZE, context)
        if self.HAS_LITE and self.parameterAsBool(parameters, LITE, context):
            par["hyper"] = {"lite": True}
        return par

    def execute(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, P.OUTPUT, context)
        par = self.method_params(parameters, context)
        result = api.fuse(P.raster_path(self, parameters, P.HSI, context),
                          P.raster_path(self, parameters, P.MSI, context), out, self.NETWORK, par,
                          tile_size=self.parameterAsInt(parameters, P.TILE_SIZE, context), feedback=feedback,
                          creation_options=P.creation_options(self, parameters, context),
                          scheduler=P.dask_scheduler(self, parameters, context))
        finish_raster_output(context, out, f"{self.TITLE} fusion")
        outputs = {P.OUTPUT: result["OUTPUT"]}
        if par.get("save_checkpoint"):
            outputs[SAVE_CHECKPOINT] = par["save_checkpoint"]
        return outputs


def _make(network: str, title: str, supervised: bool, has_lite: bool):
    return type(f"Fuse{title.replace('-', '')}Algorithm", (NetworkFusionAlgorithm,), {
        "ID": f"fuse_{network}", "NAME": f"Fuse with {title}", "NETWORK": network, "TITLE": title,
        "SUPERVISED": supervised, "HAS_LITE": has_lite})


ALGORITHMS = [
    _make("amsfnet", "AMSF-Net", True, False),
    _make("cofusion", "CoFusion", True, True),
    _make("ssjcn", "SSJCN", True, False),
    _make("uds2c2", "UDS2C2", False, False),
    _make("umsft", "UMSFT", False, True),
]
