"""Everything that differs between QGIS 3.22 and 4.x (Qt5 vs Qt6) is looked up here, once."""
from __future__ import annotations

from qgis.core import Qgis, QgsProcessingParameterDefinition, QgsProcessingParameterNumber


def _enum(scoped_owner, scoped_name: str, member: str, legacy_owner, legacy_name: str):
    """Scoped enum (QGIS >= 3.26/Qt6: ``Qgis.ProcessingNumberParameterType.Integer``) or the legacy one."""
    scoped = getattr(scoped_owner, scoped_name, None)
    if scoped is not None and hasattr(scoped, member):
        return getattr(scoped, member)
    return getattr(legacy_owner, legacy_name)


NUMBER_INTEGER = _enum(Qgis, "ProcessingNumberParameterType", "Integer", QgsProcessingParameterNumber, "Integer")
NUMBER_DOUBLE = _enum(Qgis, "ProcessingNumberParameterType", "Double", QgsProcessingParameterNumber, "Double")
FLAG_ADVANCED = _enum(Qgis, "ProcessingParameterFlag", "Advanced", QgsProcessingParameterDefinition, "FlagAdvanced")
FLAG_OPTIONAL = _enum(Qgis, "ProcessingParameterFlag", "Optional", QgsProcessingParameterDefinition, "FlagOptional")


def add_flag(param, flag) -> None:
    """``param.setFlags(param.flags() | flag)`` for either enum style."""
    param.setFlags(param.flags() | flag)


def _scoped_or_legacy(owner, scoped_path: str, legacy_name: str):
    """``owner.Scope.Member`` (Qt6-style scoped enum) when present, else ``owner.Member``."""
    obj = owner
    for part in scoped_path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return getattr(owner, legacy_name)
    return obj


def _styling_enums():
    from qgis.core import QgsColorRampShader, QgsContrastEnhancement

    interp = _enum(Qgis, "ShaderInterpolationMethod", "Linear", QgsColorRampShader, "Interpolated")
    stretch = _scoped_or_legacy(QgsContrastEnhancement, "ContrastEnhancementAlgorithm.StretchToMinimumMaximum",
                                "StretchToMinimumMaximum")
    return interp, stretch


COLOR_RAMP_INTERPOLATED, STRETCH_TO_MINMAX = _styling_enums()


def _alg_flag(member: str):
    from qgis.core import QgsProcessingAlgorithm

    return _enum(Qgis, "ProcessingAlgorithmFlag", member, QgsProcessingAlgorithm, "Flag" + member)


ALG_FLAG_NO_THREADING = _alg_flag("NoThreading")
