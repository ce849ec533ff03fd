"""Build modeler/wald_protocol_cofusion.model3 (simulate -> fuse_cofusion -> assess) with QGIS' API.

Run with QGIS' Python after the provider is registered; the .model3 is committed, this script documents
how it was made and rebuilds it when parameters change.
"""
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

ROOT = Path(__file__).resolve().parents[1]


def build() -> QgsProcessingModelAlgorithm:
    from hsifusion.provider.compat import NUMBER_INTEGER

    m = QgsProcessingModelAlgorithm("Wald protocol with CoFusion", "HSI Fusion examples")
    m.setHelpContent({"ALG_DESC": "Simulate an LR-HSI and a Sentinel-2A HR-MSI from an HR-HSI reference, "
                                  "fuse them with CoFusion (scene-adaptive, lite) and assess the result."})
    ref = QgsProcessingParameterRasterLayer("reference", "HR-HSI reference")
    m.addModelParameter(ref, QgsProcessingModelParameter("reference"))
    ratio = QgsProcessingParameterNumber("ratio", "Ratio", NUMBER_INTEGER, 4, False, 2)
    m.addModelParameter(ratio, QgsProcessingModelParameter("ratio"))
    its = QgsProcessingParameterNumber("iterations", "CoFusion iterations", NUMBER_INTEGER,
                                       100, False, 1)
    m.addModelParameter(its, QgsProcessingModelParameter("iterations"))

    def child(alg_id, cid, params, outputs=()):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(cid)
        c.setDescription(cid)
        for k, v in params.items():
            c.addParameterSources(k, [v])
        outs = {}
        for name, label in outputs:
            o = QgsProcessingModelOutput(label, label)
            o.setChildOutputName(name)
            o.setChildId(cid)
            outs[label] = o
        if outs:
            c.setModelOutputs(outs)
        m.addChildAlgorithm(c)
        return c

    S = QgsProcessingModelChildParameterSource
    child("hsifusion:simulate", "simulate", {"REFERENCE": S.fromModelParameter("reference"),
                                             "RATIO": S.fromModelParameter("ratio"),
                                             "PSF": S.fromStaticValue(0), "SEED": S.fromStaticValue(0)})
    child("hsifusion:fuse_cofusion", "fuse_cofusion", {
        "HSI": S.fromChildOutput("simulate", "OUTPUT_HSI"), "MSI": S.fromChildOutput("simulate", "OUTPUT_MSI"),
        "ITERATIONS": S.fromModelParameter("iterations"), "LITE": S.fromStaticValue(True),
        "DEVICE": S.fromStaticValue(0), "SEED": S.fromStaticValue(0)},
        [("OUTPUT", "Fused HR-HSI")])
    child("hsifusion:assess", "assess", {
        "REFERENCE": S.fromModelParameter("reference"), "ESTIMATE": S.fromChildOutput("fuse_cofusion", "OUTPUT"),
        "RATIO": S.fromModelParameter("ratio")},
        [("OUTPUT_SAM", "SAM map"), ("OUTPUT_REPORT", "Quality report")])
    return m


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, str(ROOT / "tools"))
    from repo_package import register_package

    register_package()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    Processing.initialize()
    from hsifusion.provider.provider import HsiFusionProvider
    QgsApplication.processingRegistry().addProvider(HsiFusionProvider())
    model = build()
    out = ROOT / "modeler" / "wald_protocol_cofusion.model3"
    assert model.toFile(str(out)), "could not write the model"
    print(out)
