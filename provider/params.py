"""Shared parameter builders, so every fusion algorithm names HSI, MSI, DEVICE, TILE_SIZE the same way."""
from __future__ import annotations

from typing import List, Sequence, Tuple

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..engine.params import DEVICE_LABELS, DEVICES, FILE, FILE_OUT
from ..engine.pipeline.tile_geometry import AUTO_TILE
from .compat import FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, add_flag

HSI, MSI, OUTPUT, TILE_SIZE, DEVICE, SEED, CREATION_OPTIONS = (
    "HSI", "MSI", "OUTPUT", "TILE_SIZE", "DEVICE", "SEED", "CREATION_OPTIONS")
DASK_SCHEDULER = "DASK_SCHEDULER"
DEVICE_CHOICES = list(zip(DEVICES, DEVICE_LABELS))
SENSOR, DEFAULT_SENSOR = "SENSOR", "sentinel2a_msi"


def add_pair_inputs(alg) -> None:
    alg.addParameter(QgsProcessingParameterRasterLayer(HSI, alg.tr("Low-resolution hyperspectral image (LR-HSI)")))
    alg.addParameter(QgsProcessingParameterRasterLayer(
        MSI, alg.tr("High-resolution multispectral image (HR-MSI, output grid)")))


def add_advanced(alg, param) -> None:
    """Add ``param`` to ``alg`` under the Advanced parameters."""
    add_flag(param, FLAG_ADVANCED)
    alg.addParameter(param)


def add_tile_size(alg, default: int = 256) -> None:
    """TILE_SIZE; a default of AUTO_TILE (fusion) also allows 0 = the method's preferred tile."""
    label = "Tile size (HR pixels, 0 = automatic)" if default == AUTO_TILE else "Tile size (HR pixels)"
    minimum = AUTO_TILE if default == AUTO_TILE else 1
    p = QgsProcessingParameterNumber(TILE_SIZE, alg.tr(label), NUMBER_INTEGER, default, False, minimum)
    add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def add_device(alg) -> None:
    add_choice(alg, DEVICE, "Compute device", DEVICE_CHOICES, "auto", advanced=True)


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
    return choice_value(alg, parameters, DEVICE, context, DEVICE_CHOICES)


def creation_options(alg, parameters, context):
    text = alg.parameterAsString(parameters, CREATION_OPTIONS, context) or ""
    return [o.strip() for o in text.split("|") if o.strip()]


# -- parameters generated from a method's declaration (engine/params.py) --
def declared_parameter(alg, p):
    """The Processing parameter for one declared engine parameter (``p.exposed`` only)."""
    label = alg.tr(p.label)
    if p.kind == FILE:
        return QgsProcessingParameterFile(p.processing_name, label, extension=p.extension, optional=True)
    if p.kind == FILE_OUT:
        return QgsProcessingParameterFileDestination(p.processing_name, label, f"*.{p.extension} (*.{p.extension})",
                                                     optional=True, createByDefault=False)
    if p.type is bool:
        return QgsProcessingParameterBoolean(p.processing_name, label, bool(p.default))
    if p.choices is not None:
        return QgsProcessingParameterEnum(p.processing_name, label, [alg.tr(t) for t in p.choice_labels or p.choices],
                                          defaultValue=list(p.choices).index(p.default))
    if p.type in (int, float):
        limits = {k: v for k, v in (("minValue", p.minimum), ("maxValue", p.maximum)) if v is not None}
        kind = NUMBER_INTEGER if p.type is int else NUMBER_DOUBLE
        return QgsProcessingParameterNumber(p.processing_name, label, kind, p.default, False, **limits)
    return QgsProcessingParameterString(p.processing_name, label, p.default or "", optional=True)


def add_declared(alg, params, outputs: bool = False) -> None:
    """Add the Processing parameters of the declared ``params``.

    The inputs, or (``outputs``) the file destinations, which the Toolbox lists after the main OUTPUT.
    """
    for p in params:
        if p.exposed and (p.kind == FILE_OUT) == outputs:
            param = declared_parameter(alg, p)
            if p.advanced:
                add_flag(param, FLAG_ADVANCED)
            alg.addParameter(param)


def declared_values(alg, params, parameters, context) -> dict:
    """The method parameters the user set in Processing, by engine name (empty paths left out)."""
    values = {}
    for p in params:
        if not p.exposed:
            continue
        key = p.processing_name
        if p.kind == FILE:
            value = alg.parameterAsFile(parameters, key, context) or None
        elif p.kind == FILE_OUT:
            value = alg.parameterAsFileOutput(parameters, key, context) or None
        elif p.type is bool:
            value = alg.parameterAsBool(parameters, key, context)
        elif p.choices is not None:
            value = p.choices[alg.parameterAsEnum(parameters, key, context)]
        elif p.type is int:
            value = alg.parameterAsInt(parameters, key, context)
        elif p.type is float:
            value = alg.parameterAsDouble(parameters, key, context)
        else:
            value = alg.parameterAsString(parameters, key, context) or None
        if value is not None:
            values[p.name] = value
    return values


# --- drop-downs: the user sees labels, scripts and models pass the index (of the key order) -----------

Choices = Sequence[Tuple[str, str]]


def add_choice(alg, name: str, label: str, choices: Choices, default: str, advanced: bool = False) -> None:
    """A drop-down of ``choices`` ((key, label) pairs) showing the labels; ``default`` is a key."""
    keys = [key for key, _ in choices]
    p = QgsProcessingParameterEnum(name, alg.tr(label), [alg.tr(text) for _, text in choices],
                                   defaultValue=keys.index(default))
    if advanced:
        add_flag(p, FLAG_ADVANCED)
    alg.addParameter(p)


def choice_value(alg, parameters, name: str, context, choices: Choices) -> str:
    """The key of the chosen entry of a drop-down made by :func:`add_choice`."""
    return choices[alg.parameterAsEnum(parameters, name, context)][0]


def sensor_choices(exclude: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """(key, "Title [measured | Gaussian ...]") of the bundled sensors, in key order."""
    from ..engine.sensors.srf import sensor_titles

    return [(key, title) for key, title in sorted(sensor_titles().items()) if key not in exclude]


def add_sensor(alg, label: str = "Multispectral sensor", exclude: Sequence[str] = ()) -> None:
    """SENSOR: the bundled multispectral sensors by title (default Sentinel-2A MSI)."""
    add_choice(alg, SENSOR, label, sensor_choices(exclude), DEFAULT_SENSOR)


def sensor_value(alg, parameters, context, exclude: Sequence[str] = ()) -> str:
    """The key of the sensor chosen in SENSOR."""
    return choice_value(alg, parameters, SENSOR, context, sensor_choices(exclude))


def set_decimals(param, decimals: int):
    """Digits a number field shows and accepts (QGIS 3.22 has no setter; the widget reads metadata)."""
    meta = dict(param.metadata())
    meta["widget_wrapper"] = {**dict(meta.get("widget_wrapper") or {}), "decimals": int(decimals)}
    param.setMetadata(meta)
    return param


# numbers whose useful values are far finer than their default or bounds show (a learning rate of 1e-4
# next to a default of 0): they keep enough decimals to be typed
FINE_DECIMALS = {"LEARNING_RATE": 6}


def default_decimals(param) -> int:
    """Fewest decimals (2 to 8) that show the default and the finite bounds of ``param`` exactly.

    A name in FINE_DECIMALS gets the number given there.
    """
    if param.name() in FINE_DECIMALS:
        return FINE_DECIMALS[param.name()]
    values = [v for v in (param.defaultValue(), param.minimum(), param.maximum())
              if isinstance(v, (int, float)) and abs(v) < 1e12]
    for decimals in range(2, 9):
        if all(abs(round(v, decimals) - v) <= 1e-12 * max(1.0, abs(v)) for v in values):
            return decimals
    return 8
