"""What happens to a written raster back in QGIS.

A readable layer name and, when styling is available, a style preset applied on load (see styling.py).
"""
from __future__ import annotations


def finish_raster_output(context, path: str, layer_name: str, kind: str = "hsi") -> None:
    """Name the output layer that QGIS loads on completion; ``kind`` picks the style (hsi | msi | sam)."""
    if context.willLoadLayerOnCompletion(path):
        details = context.layerToLoadOnCompletionDetails(path)
        details.name = layer_name
        try:
            from .styling import post_processor_for
        except ImportError:
            return
        proc = post_processor_for(path, kind)
        if proc is not None:
            details.setPostProcessor(proc)
