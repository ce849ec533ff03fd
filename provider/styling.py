"""Styling of hsifusion outputs in QGIS.

Renderers for hyperspectral outputs and SAM maps, ``.qml`` sidecars, and the post-processor that styles a
layer when Processing loads it.

Band choice by wavelength is QGIS-free (``engine/io/presets.py``); this module only builds renderers.
* 'hsi' / 'msi' layers: a multiband colour renderer on the preset's bands (true colour, else the first
  available of colour infrared, agriculture, SWIR; bands 1/2/3 when the raster has no wavelengths),
  each band stretched min-max to its 2-98 % cumulative cut (values in QGIS' scaled units).
* 'sam' layers: single-band pseudo-colour on a fixed 0-20 degree scale (ramp
  :data:`engine.quality.report.SAM_RAMP`, values above 20 degrees drawn in the top colour), the same scale
  as the HTML report, so maps of different runs compare by colour.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

from qgis.core import (
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsMapLayerLegendUtils,
    QgsMultiBandColorRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

from ..engine.io.presets import (
    DEFAULT_TOLERANCE_NM,
    PresetChoice,
    cumulative_cut,
    default_preset,
    read_preview,
    require_preset,
)
from ..engine.io.raster import raster_info
from ..engine.quality.report import SAM_RAMP, SAM_SCALE_MAX
from .compat import COLOR_RAMP_INTERPOLATED, STRETCH_TO_MINMAX


def band_cut(path: str, bands: Sequence[int], lower: float = 2.0, upper: float = 98.0
             ) -> Tuple[Tuple[float, float], ...]:
    """Per band (0-based) cumulative cut in QGIS' units (band scale/offset applied, as QGIS does)."""
    info = raster_info(path)
    data, nodata = read_preview(path, bands, max_side=1024)
    cuts = []
    for k, b in enumerate(bands):
        lo, hi = cumulative_cut(data[k], lower, upper, nodata)
        s, o = info.scale[b], info.offset[b]
        lo, hi = lo * s + o, hi * s + o
        cuts.append((min(lo, hi), max(lo, hi)))
    return tuple(cuts)


def rgb_renderer(layer: QgsRasterLayer, choice_or_bands, lower: float = 2.0, upper: float = 98.0):
    """QgsMultiBandColorRenderer on the chosen bands (PresetChoice or 0-based triple), stretched."""
    bands = choice_or_bands.bands if isinstance(choice_or_bands, PresetChoice) else tuple(choice_or_bands)
    cuts = band_cut(layer.source(), bands, lower, upper)
    provider = layer.dataProvider()
    r = QgsMultiBandColorRenderer(provider, bands[0] + 1, bands[1] + 1, bands[2] + 1)
    setters = (r.setRedContrastEnhancement, r.setGreenContrastEnhancement, r.setBlueContrastEnhancement)
    for setter, band, (lo, hi) in zip(setters, bands, cuts):
        ce = QgsContrastEnhancement(provider.dataType(band + 1))
        ce.setContrastEnhancementAlgorithm(STRETCH_TO_MINMAX, True)
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi)
        setter(ce)
    return r


def sam_renderer(layer: QgsRasterLayer, vmax: float = SAM_SCALE_MAX):
    """Single-band pseudo-colour on the fixed SAM scale (degrees), legend labelled in degrees."""
    ramp = QgsColorRampShader(0.0, vmax)
    ramp.setColorRampType(COLOR_RAMP_INTERPOLATED)
    items = [QgsColorRampShader.ColorRampItem(v * vmax / SAM_SCALE_MAX, QColor(c), f"{v * vmax / SAM_SCALE_MAX:g}°")
             for v, c in SAM_RAMP]
    items[-1].label = f"≥ {items[-1].label}"          # values above the scale take the top colour
    ramp.setColorRampItemList(items)
    ramp.setClip(False)
    legend = QgsColorRampLegendNodeSettings()
    legend.setUseContinuousLegend(False)      # one entry per class, labelled in degrees like the report
    ramp.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    r = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    r.setClassificationMin(0.0)
    r.setClassificationMax(vmax)
    return r


def choose_display(path: str, preset=None, tolerance: float = DEFAULT_TOLERANCE_NM) -> Optional[PresetChoice]:
    """The preset for a raster: the requested one (raises if unavailable) or the default fallback."""
    if isinstance(preset, PresetChoice):
        return preset
    info = raster_info(path)
    if preset is not None:
        return require_preset(info.wavelengths, preset, tolerance, info.good_bands)
    return default_preset(info.wavelengths, tolerance, info.good_bands)


def style_layer(layer: QgsRasterLayer, kind: str = "hsi", preset=None, lower: float = 2.0, upper: float = 98.0,
                tolerance: float = DEFAULT_TOLERANCE_NM) -> str:
    """Apply the renderer for ``kind`` to ``layer``; returns a one-line description."""
    if kind == "sam":
        layer.setRenderer(sam_renderer(layer))
        desc = f"SAM pseudo-colour 0-{SAM_SCALE_MAX:g} degrees"
    else:
        choice = choose_display(layer.source(), preset, tolerance)
        if choice is not None:
            layer.setRenderer(rgb_renderer(layer, choice, lower, upper))
            desc = choice.describe()
        elif layer.bandCount() >= 3:
            layer.setRenderer(rgb_renderer(layer, (0, 1, 2), lower, upper))
            desc = "no wavelengths: bands 1/2/3"
        else:
            return "left with QGIS' default style"
    layer.triggerRepaint()
    return desc


def sidecar_qml(path: str) -> str:
    """``<raster without extension>.qml``: the style QGIS loads by default with the raster."""
    return os.path.splitext(path)[0] + ".qml"


def write_qml(path: str, kind: str = "hsi", preset=None, lower: float = 2.0, upper: float = 98.0,
              tolerance: float = DEFAULT_TOLERANCE_NM, qml: Optional[str] = None) -> Tuple[str, str]:
    """Write the style of the raster at ``path`` to ``qml``; returns (qml path, description).

    The default, :func:`sidecar_qml`, is what QGIS loads as the raster's default style.
    """
    from ..engine.errors import OutputError, RasterOpenError
    from ..engine.io.raster import same_file

    qml = qml or sidecar_qml(path)
    if same_file(qml, path):
        raise OutputError(f"the style file {qml} would overwrite the raster itself")
    folder = os.path.dirname(os.path.abspath(qml))
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write the style file {qml}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write the style file {qml}: the folder {folder} is not writable; "
                          "choose another style file (OUTPUT)")
    # resolve the preset first: an error raised while a QgsRasterLayer is a local of this frame would
    # keep the layer alive in the traceback until after QGIS exits (a crash at exit)
    if kind != "sam":
        preset = choose_display(path, preset, tolerance)
    layer = QgsRasterLayer(path, os.path.basename(path), "gdal")
    if not layer.isValid():
        raise RasterOpenError(f"QGIS cannot open {path}")
    desc = style_layer(layer, kind, preset, lower, upper, tolerance)
    msg, ok = layer.saveNamedStyle(qml)
    if not ok:
        raise OutputError(f"cannot write {qml}: {msg}")
    return qml, desc


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a layer that Processing loads on completion (kind 'hsi', 'msi' or 'sam')."""

    def __init__(self, kind: str = "hsi") -> None:
        super().__init__()
        self.kind = kind
        self.description = ""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return
        try:
            self.description = style_layer(layer, self.kind)
        except Exception as exc:  # a styling failure must never fail the algorithm
            if feedback is not None:
                feedback.pushWarning(f"could not style {layer.name()}: {exc}")
            return
        if feedback is not None and self.description:
            feedback.pushInfo(f"{layer.name()}: {self.description}")
        if self.kind == "sam" and context is not None:
            label_legend_header(context.project(), layer, SAM_LEGEND_TITLE)


SAM_LEGEND_TITLE = "SAM (degrees)"


def label_legend_header(project, layer, text: str) -> None:
    """Replace the legend's first line by ``text``.

    QGIS writes it as "Band 1: <description> (Gray)"; the label is set on the layer's node in the
    project's layer tree, where QGIS keeps legend labels.
    """
    node = project.layerTreeRoot().findLayer(layer.id()) if project is not None else None
    if node is None:
        return
    QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, 0, text)
    layer.legend().itemsChanged.emit()


# Processing keeps only a raw pointer to a post-processor: the Python object must outlive the
# algorithm run or QGIS calls into a deleted object (a known PyQGIS pitfall). Keep them here.
_ALIVE: list = []
_MAX_ALIVE = 256


def post_processor_for(path: str, kind: str = "hsi") -> StylePostProcessor:
    """A post-processor for ``finish_raster_output``; the instance is kept alive by this module."""
    proc = StylePostProcessor(kind)
    _ALIVE.append(proc)
    del _ALIVE[:-_MAX_ALIVE]
    return proc
