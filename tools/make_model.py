"""Build modeler/wald_protocol_cofusion.model3 (simulate -> fuse_cofusion -> assess) with QGIS' API.

Run with QGIS' Python (``.venv/bin/python tools/make_model.py``); the .model3 is committed, this script
documents how it was made and rebuilds it when parameters change. Two things the graphical modeler
needs that headless runs do not: every child parameter has a value (the modeler validates children
without falling back to the algorithm's defaults, so a parameter left out is "mandatory"), and every
component has its own place on the canvas (all at (0, 0) they are drawn on top of each other).
"""
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessingDestinationParameter,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QPointF, QSizeF

ROOT = Path(__file__).resolve().parents[1]
MODEL_PATH = ROOT / "modeler" / "wald_protocol_cofusion.model3"

# Canvas layout: model inputs in a row on top, the three steps down a diagonal, each step's outputs to
# its right. Positions are item centres (QGIS' convention), in scene units.
COMPONENT_SIZE = QSizeF(200, 30)
COLUMN, ROW = 260, 110


def _grid(column: float, row: float) -> QPointF:
    return QPointF(120 + column * COLUMN, 60 + row * ROW)


def static_defaults(child: QgsProcessingModelChildAlgorithm, registry) -> None:
    """Give every parameter the child does not set yet its algorithm's default as a static value.

    Optional parameters without a default stay unset; destinations are left to the model.
    """
    from hsifusion.provider.compat import FLAG_OPTIONAL

    alg = registry.algorithmById(child.algorithmId())
    if alg is None:
        raise RuntimeError(f"{child.algorithmId()} is not registered: register the provider first")
    for p in alg.parameterDefinitions():
        if isinstance(p, QgsProcessingDestinationParameter) or p.name() in child.parameterSources():
            continue
        if p.defaultValue() is None and p.flags() & FLAG_OPTIONAL:
            continue
        child.addParameterSources(p.name(), [QgsProcessingModelChildParameterSource.fromStaticValue(p.defaultValue())])


def build(registry=None) -> QgsProcessingModelAlgorithm:
    from hsifusion.provider.compat import NUMBER_INTEGER

    registry = registry or QgsApplication.processingRegistry()
    m = QgsProcessingModelAlgorithm("Wald protocol with CoFusion", "HSI Fusion examples")
    m.setHelpContent({"ALG_DESC": "Simulate an LR-HSI and a Sentinel-2A HR-MSI from an HR-HSI reference, "
                                  "fuse them with CoFusion (scene-adaptive, lite) and assess the result."})

    def model_input(param, column):
        component = QgsProcessingModelParameter(param.name())
        component.setPosition(_grid(column, 0))
        component.setSize(COMPONENT_SIZE)
        m.addModelParameter(param, component)

    model_input(QgsProcessingParameterRasterLayer("reference", "HR-HSI reference"), 0)
    model_input(QgsProcessingParameterNumber("ratio", "Ratio", NUMBER_INTEGER, 4, False, 2), 1)
    model_input(QgsProcessingParameterNumber("iterations", "CoFusion iterations", NUMBER_INTEGER, 100, False, 1), 2)

    def child(alg_id, cid, params, row, outputs=()):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(cid)
        c.setDescription(cid)
        c.setPosition(_grid(row - 0.5, row))
        c.setSize(COMPONENT_SIZE)
        for k, v in params.items():
            c.addParameterSources(k, [v])
        static_defaults(c, registry)
        outs = {}
        for k, (name, label) in enumerate(outputs):
            o = QgsProcessingModelOutput(label, label)
            o.setChildOutputName(name)
            o.setChildId(cid)
            o.setPosition(_grid(row + 0.5, row + k * 0.45 + 0.3))
            o.setSize(COMPONENT_SIZE)
            outs[label] = o
        if outs:
            c.setModelOutputs(outs)
        m.addChildAlgorithm(c)
        return c

    S = QgsProcessingModelChildParameterSource
    child("hsifusion:simulate", "simulate", {"REFERENCE": S.fromModelParameter("reference"),
                                             "RATIO": S.fromModelParameter("ratio"),
                                             "PSF": S.fromStaticValue(0), "SEED": S.fromStaticValue(0)}, 1)
    child("hsifusion:fuse_cofusion", "fuse_cofusion", {
        "HSI": S.fromChildOutput("simulate", "OUTPUT_HSI"), "MSI": S.fromChildOutput("simulate", "OUTPUT_MSI"),
        "ITERATIONS": S.fromModelParameter("iterations"), "LITE": S.fromStaticValue(True),
        "DEVICE": S.fromStaticValue(0), "SEED": S.fromStaticValue(0)}, 2,
        [("OUTPUT", "Fused HR-HSI")])
    child("hsifusion:assess", "assess", {
        "REFERENCE": S.fromModelParameter("reference"), "ESTIMATE": S.fromChildOutput("fuse_cofusion", "OUTPUT"),
        "RATIO": S.fromModelParameter("ratio")}, 3,
        [("OUTPUT_SAM", "SAM map"), ("OUTPUT_REPORT", "Quality report")])
    return m


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tools"))
    from qgis_app import start_app

    app, provider = start_app(gui=False)
    model = build()
    ok, issues = model.validate()
    assert ok, issues
    assert model.toFile(str(MODEL_PATH)), "could not write the model"
    print(MODEL_PATH)
