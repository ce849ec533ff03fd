"""What happens to a written raster back in QGIS.

A layer name that tells runs apart and, when styling is available, a style preset applied on load
(see styling.py).
"""
from __future__ import annotations

import os


def is_temporary_output(path: str) -> bool:
    """True for Processing's own temporary outputs (named OUTPUT.tif in a per-run folder)."""
    from qgis.core import QgsProcessingUtils

    temp = os.path.realpath(QgsProcessingUtils.tempFolder())
    folder = os.path.realpath(os.path.dirname(path))
    return folder == temp or folder.startswith(temp + os.sep)


def output_layer_name(context, path: str, title: str) -> str:
    """``title`` plus the output file's name when the user chose it ("GSA fusion: potsdam_gsa").

    Made unique among the project's layers and the other layers of this run ("GSA fusion (2)").
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    base = title if is_temporary_output(path) or not stem else f"{title}: {stem}"
    taken = {details.name for key, details in context.layersToLoadOnCompletion().items() if key != path}
    project = context.project()
    if project is not None:
        taken.update(layer.name() for layer in project.mapLayers().values())
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} ({n})"
    return name


def finish_raster_output(context, path: str, layer_name: str, kind: str = "hsi") -> None:
    """Name the layer QGIS loads on completion (:func:`output_layer_name`) and style it.

    ``kind`` picks the style (hsi | msi | sam).
    """
    if context.willLoadLayerOnCompletion(path):
        details = context.layerToLoadOnCompletionDetails(path)
        details.name = output_layer_name(context, path, layer_name)
        try:
            from .styling import post_processor_for
        except ImportError:
            return
        proc = post_processor_for(path, kind)
        if proc is not None:
            details.setPostProcessor(proc)
