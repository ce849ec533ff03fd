"""Shared parameter builders, so every fusion algorithm names HSI, MSI, DEVICE, TILE_SIZE the same way."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .compat import FLAG_ADVANCED, NUMBER_INTEGER, add_flag

HSI, MSI, OUTPUT, TILE_SIZE, DEVICE, SEED, CREATION_OPTIONS = (
    "HSI", "MSI", "OUTPUT", "TILE_SIZE", "DEVICE", "SEED", "CREATION_OPTIONS")
DASK_SCHEDULER = "DASK_SCHEDULER"
DEVICES = ["auto", "cpu", "cuda"]


def add_pair_inputs(alg) -> None:
    alg.addParameter(QgsProcessingParameterRasterLayer(HSI, alg.tr("Low-resolution hyperspectral image (LR-HSI)")))
    alg.addParameter(QgsProcessingParameterRasterLayer(
        MSI, alg.tr("High-resolution multispectral image (HR-MSI, output grid)")))


def add_advanced(alg, param) -> None:
    """Add ``param`` to ``alg`` under the Advanced parameters."""
    add_flag(param, FLAG_ADVANCED)
    alg.addParameter(param)


def add_tile_size(alg, default: int = 256) -> None:
    p = QgsProcessingParameterNumber(TILE_SIZE, alg.tr("Tile size (HR pixels)"), NUMBER_INTEGER, default, False, 1)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def add_device(alg) -> None:
    p = QgsProcessingParameterEnum(DEVICE, alg.tr("Compute device"), DEVICES, defaultValue=0)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def add_seed(alg) -> None:
    p = QgsProcessingParameterNumber(SEED, alg.tr("Random seed"), NUMBER_INTEGER, 0, False, 0)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def add_creation_options(alg) -> None:
    p = QgsProcessingParameterString(CREATION_OPTIONS, alg.tr("GeoTIFF creation options (KEY=VALUE, separated by |)"),
                                     "", optional=True)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def add_dask_scheduler(alg) -> None:
    """Advanced: run the tiles on a Dask cluster (empty = here, in-process; docs/scale-out.md)."""
    p = QgsProcessingParameterString(
        DASK_SCHEDULER, alg.tr("Dask scheduler (empty = this machine; local:N = N worker processes; "
                               "tcp://host:8786 = a running cluster)"), "", optional=True)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def dask_scheduler(alg, parameters, context):
    """The DASK_SCHEDULER value, or None for the in-process path."""
    text = (alg.parameterAsString(parameters, DASK_SCHEDULER, context) or "").strip()
    return text or None


def add_output(alg, name: str = OUTPUT, label: str = "Fused HR-HSI") -> None:
    alg.addParameter(QgsProcessingParameterRasterDestination(name, alg.tr(label)))


def raster_path(alg, parameters, name: str, context) -> str:
    """Source path of a raster parameter (GDAL-readable)."""
    from qgis.core import QgsProcessingException

    layer = alg.parameterAsRasterLayer(parameters, name, context)
    if layer is None:
        raise QgsProcessingException(f"{name}: could not load the raster {parameters.get(name)!r}")
    return layer.source()


def device_value(alg, parameters, context) -> str:
    return DEVICES[alg.parameterAsEnum(parameters, DEVICE, context)]


def creation_options(alg, parameters, context):
    text = alg.parameterAsString(parameters, CREATION_OPTIONS, context) or ""
    return [o.strip() for o in text.split("|") if o.strip()]
