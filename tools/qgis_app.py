"""A standalone QGIS application with Processing and this checkout's provider.

For the scripts that need QGIS outside the desktop (make_model.py, screenshots.py, the desktop smoke
test).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_app(gui: bool = True):
    """(app, provider): a QgsApplication (with widgets when ``gui``), Processing and the provider.

    Keep both references alive as long as QGIS is used.
    """
    sys.path.insert(0, str(ROOT / "tools"))
    from repo_package import register_package

    register_package()
    from qgis.core import QgsApplication

    app = QgsApplication([], gui)
    app.initQgis()
    sys.path.insert(0, QgsApplication.pkgDataPath() + "/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from hsifusion.provider.provider import HsiFusionProvider

    provider = HsiFusionProvider()  # the registry does not own a Python provider: the caller keeps it
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider
