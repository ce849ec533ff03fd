"""hsifusion: hyperspectral + multispectral image fusion for QGIS Processing.

The package root is the QGIS plugin folder. Nothing QGIS is imported at module level, so the QGIS-free
engine (``hsifusion.engine``) and networks (``hsifusion.models``) import without QGIS.
"""

__version__ = "0.1.0"


def classFactory(iface):  # noqa: N802 (QGIS' name)
    """QGIS entry point: build the plugin object that registers the Processing provider."""
    from .provider.plugin import HsiFusionPlugin

    return HsiFusionPlugin(iface)
