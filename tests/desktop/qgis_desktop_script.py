"""Run inside the real QGIS desktop (``qgis --code``) by test_qgis_desktop.py.

Fuses the bundled sample twice with GSA and assesses it as the Toolbox does (results loaded into the
project), restyles a loaded layer with hsifusion:style, then writes what the desktop shows (layer
names, renderers, legend lines) as JSON to $HSIFUSION_DESKTOP_OUT/result.json and quits QGIS.
"""
import json
import os
import shutil
import traceback
from pathlib import Path

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.utils import iface, plugins

OUT = Path(os.environ["HSIFUSION_DESKTOP_OUT"])
SAMPLE = Path(os.environ["HSIFUSION_SAMPLE"])


def legend_lines(layer, count=3):
    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    nodes = iface.layerTreeView().layerTreeModel().layerLegendNodes(node)
    return [n.data(Qt.ItemDataRole.DisplayRole) for n in nodes][:count]


def check():
    out = {}
    try:
        import processing

        out["plugins"] = sorted(plugins)
        for name in ("potsdam_lr_hsi_x4.tif", "potsdam_msi_s2a.tif", "enmap_potsdam_reference.tif"):
            shutil.copy(SAMPLE / name, OUT / name)
        pair = {"HSI": str(OUT / "potsdam_lr_hsi_x4.tif"), "MSI": str(OUT / "potsdam_msi_s2a.tif"),
                "OUTPUT": "TEMPORARY_OUTPUT"}
        first = processing.runAndLoadResults("hsifusion:fuse_gsa", pair)
        processing.runAndLoadResults("hsifusion:fuse_gsa", pair)
        processing.runAndLoadResults("hsifusion:assess", {
            "REFERENCE": str(OUT / "enmap_potsdam_reference.tif"), "ESTIMATE": first["OUTPUT"], "RATIO": 4,
            "OUTPUT_SAM": str(OUT / "gsa_sam.tif")})
        layers = list(QgsProject.instance().mapLayers().values())
        out["layers"] = {lyr.name(): {"renderer": lyr.renderer().type(), "legend": legend_lines(lyr),
                                      "source": lyr.source()} for lyr in layers}
        fused = next(lyr for lyr in layers if lyr.source() == first["OUTPUT"])
        before = fused.renderer().redBand()
        res = processing.run("hsifusion:style", {"INPUT": fused.id(), "PRESET": 1, "OUTPUT": str(OUT / "cir.qml")})
        out["style"] = {"red_before": before, "red_after": fused.renderer().redBand(), "bands": res["BANDS"],
                        "qml": res["OUTPUT"]}
    except Exception:  # reported to the test
        out["error"] = traceback.format_exc()
    (OUT / "result.json").write_text(json.dumps(out, indent=1))
    QgsApplication.exit(0)


QTimer.singleShot(1000, check)
