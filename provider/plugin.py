"""QGIS plugin object: registers the provider in ``initProcessing`` so headless qgis_process sees it."""
from __future__ import annotations

from qgis.core import QgsApplication


class HsiFusionPlugin:
    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802
        from .provider import HsiFusionProvider

        self.provider = HsiFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
