"""hsifusion: hyperspectral + multispectral image fusion for QGIS Processing.

The package root is the QGIS plugin folder. Nothing QGIS is imported at module level, so the QGIS-free
engine (``hsifusion.engine``) and networks (``hsifusion.models``) import without QGIS.
"""

from .engine.version import __version__  # noqa: F401 (one place: engine/version.py)


def classFactory(iface):  # noqa: N802 (QGIS' name)
    """QGIS entry point: build the plugin object that registers the Processing provider."""
    from .provider.plugin import HsiFusionPlugin

    return HsiFusionPlugin(iface)
