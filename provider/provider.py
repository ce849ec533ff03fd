"""The ``hsifusion`` Processing provider: a list of algorithm instances, found in ``algorithms/``.

Each module in ``algorithms/`` exposes ``ALGORITHMS`` (a list of classes). A module whose optional
dependency (base.OPTIONAL_PACKAGES) is missing is skipped with a log message, so algorithms that need no
torch still load; any other ImportError is a bug in the plugin and is raised, never hidden.
"""
from __future__ import annotations

import importlib
import pkgutil

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import PLUGIN_DIR, missing_dependency_message, missing_optional_package


def discover_algorithm_classes(package_name: str = ""):
    """All algorithm classes of the ``algorithms`` package (or ``package_name``), and the skipped modules.

    Skipped: modules whose optional package is missing, as (module, message).
    """
    package = importlib.import_module(package_name or __name__.rsplit(".", 2)[0] + ".algorithms")
    classes, errors = [], []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
        except ImportError as exc:
            if missing_optional_package(exc) is None:
                raise ImportError(f"hsifusion: the algorithm module {info.name} cannot be imported: {exc}",
                                  name=exc.name, path=exc.path) from exc
            errors.append((info.name, missing_dependency_message(exc)))
            continue
        classes.extend(getattr(module, "ALGORITHMS", []))
    return classes, errors


class HsiFusionProvider(QgsProcessingProvider):
    def id(self):
        return "hsifusion"

    def name(self):
        return "HSI Fusion"

    def longName(self):  # noqa: N802
        return "HSI Fusion: hyperspectral + multispectral image fusion"

    def icon(self):
        return QIcon(str(PLUGIN_DIR / "icons" / "hsifusion.svg"))

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        """The formats the engine writes (engine/io/outputs.py): QGIS refuses others before the run."""
        from ..engine.io.outputs import raster_extensions

        return raster_extensions()

    def defaultRasterFileExtension(self):  # noqa: N802
        return "tif"

    def loadAlgorithms(self):  # noqa: N802
        classes, errors = discover_algorithm_classes()
        for module, message in errors:
            QgsMessageLog.logMessage(f"hsifusion: {module} not loaded: {message}", "Processing", Qgis.Warning)
        for cls in classes:
            self.addAlgorithm(cls())
