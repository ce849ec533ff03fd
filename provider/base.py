"""Small base for every hsifusion algorithm: id/name/help/icon lookup and engine-error translation.

Shared code lives in plain functions (params.py, styling.py), not here (EnMAP-Box's 1130-line base
class is the counter-example).
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..engine.errors import Cancelled, FusionError

PLUGIN_DIR = Path(__file__).resolve().parents[1]
HELP_DIR = Path(__file__).resolve().parent / "help"


class HsiAlgorithm(QgsProcessingAlgorithm):
    """Base of every hsifusion algorithm.

    Subclasses set ID, NAME, GROUP, GROUP_ID and implement initAlgorithm/execute(parameters, context,
    feedback) -> dict. ``processAlgorithm`` converts engine errors to QgsProcessingException.
    """

    ID = ""
    NAME = ""
    GROUP = "Fusion"
    GROUP_ID = "fusion"

    def createInstance(self):  # noqa: N802
        return type(self)()

    def name(self):
        return self.ID

    def displayName(self):  # noqa: N802
        return self.tr(self.NAME)

    def group(self):
        return self.tr(self.GROUP)

    def groupId(self):  # noqa: N802
        return self.GROUP_ID

    def tr(self, text):
        return QCoreApplication.translate("hsifusion", text)

    def icon(self):
        return QIcon(str(PLUGIN_DIR / "icons" / "hsifusion.svg"))

    def shortHelpString(self):  # noqa: N802
        path = HELP_DIR / f"{self.ID}.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        try:
            return self.execute(parameters, context, feedback)
        except Cancelled:
            feedback.pushInfo("cancelled; no output was written")
            return {}
        except FusionError as exc:
            raise QgsProcessingException(str(exc)) from None
        except ImportError as exc:
            raise QgsProcessingException(missing_dependency_message(exc)) from None

    def execute(self, parameters, context, feedback):
        raise NotImplementedError


def missing_dependency_message(exc: ImportError) -> str:
    """Readable message naming the install command for a missing optional package."""
    name = getattr(exc, "name", None) or str(exc)
    if "torch" in str(name):
        return ("PyTorch is not installed for QGIS' Python. Install it with: "
                "python3 -m pip install --user torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu "
                f"(or a CUDA build). Original error: {exc}")
    return f"missing Python package {name}: install it with python3 -m pip install --user {name} ({exc})"
