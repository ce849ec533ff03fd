"""Small base for every hsifusion algorithm: id/name/help/icon lookup and engine-error translation.

Shared code lives in plain functions (params.py, styling.py), not here (EnMAP-Box's 1130-line base
class is the counter-example).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..engine.errors import Cancelled, FusionError

PLUGIN_DIR = Path(__file__).resolve().parents[1]

# Packages an algorithm may need that QGIS' Python can lack: only these are reported as "missing, install
# it"; any other ImportError is a mistake in the plugin and surfaces as one.
OPTIONAL_PACKAGES = {
    "torch": ("PyTorch is not installed for QGIS' Python. Install it with: python3 -m pip install --user "
              "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu (or a CUDA build)."),
    "dask": "Dask is not installed for QGIS' Python: python3 -m pip install --user \"dask[distributed]\".",
    "distributed": "Dask distributed is not installed for QGIS' Python: python3 -m pip install --user "
                   "\"dask[distributed]\".",
    "matplotlib": "matplotlib is not installed for QGIS' Python: python3 -m pip install --user matplotlib "
                  "(on Debian: apt install python3-matplotlib).",
    "scipy": "SciPy is not installed for QGIS' Python: python3 -m pip install --user scipy "
             "(on Debian: apt install python3-scipy).",
}


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

    def addParameter(self, definition, create_output=True):  # noqa: N802
        """Add ``definition``; a decimal number field gets the digits its default needs.

        "0.20", not "0.200000", unless the algorithm set its own (params.set_decimals).
        """
        from qgis.core import QgsProcessingParameterNumber

        from .compat import NUMBER_DOUBLE
        from .params import default_decimals, set_decimals

        if (isinstance(definition, QgsProcessingParameterNumber) and definition.dataType() == NUMBER_DOUBLE
                and "decimals" not in dict(definition.metadata().get("widget_wrapper") or {})):
            set_decimals(definition, default_decimals(definition))
        return super().addParameter(definition, create_output)

    def tr(self, text):
        return QCoreApplication.translate("hsifusion", text)

    def icon(self):
        return QIcon(str(PLUGIN_DIR / "icons" / "hsifusion.svg"))

    def shortHelpString(self):  # noqa: N802
        from .helptext import help_string

        return help_string(self)

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """QGIS' own checks, then the algorithm's cross-parameter ones (:meth:`cross_check`).

        The dialog (and qgis_process, processing.run) reports the problem before the run starts.
        """
        ok, message = super().checkParameterValues(parameters, context)
        if ok:
            problem = self.cross_check(parameters, context)
            if problem:
                return False, problem
        return ok, message

    def cross_check(self, parameters, context) -> Optional[str]:
        """What is wrong with a combination of parameter values (None = nothing); subclasses extend."""
        return None

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        try:
            return self.execute(parameters, context, feedback)
        except Cancelled:
            feedback.pushInfo("cancelled; no output was written")
            return {}
        except FusionError as exc:
            raise QgsProcessingException(str(exc)) from None
        except ImportError as exc:
            if missing_optional_package(exc) is None:
                raise
            raise QgsProcessingException(missing_dependency_message(exc)) from None

    def execute(self, parameters, context, feedback):
        raise NotImplementedError


def missing_optional_package(exc: ImportError) -> Optional[str]:
    """The declared optional package whose absence raised ``exc``, or None (then it is a real error)."""
    top = (getattr(exc, "name", None) or "").split(".")[0]
    return top if top in OPTIONAL_PACKAGES else None


def missing_dependency_message(exc: ImportError) -> str:
    """Readable message naming the install command for a missing optional package."""
    package = missing_optional_package(exc)
    if package is None:
        raise ValueError(f"not a missing optional package: {exc!r}")
    return f"{OPTIONAL_PACKAGES[package]} Original error: {exc}"
