"""The example model (simulate -> fuse_cofusion -> assess) runs in Processing and headless."""
import json
import os
import shutil
import subprocess

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm

from rasterkit import REFERENCE, ROOT
from test_upsample_alg import QGIS_PROCESS, qgis_process_env

MODEL = ROOT / "modeler" / "wald_protocol_cofusion.model3"


@pytest.fixture()
def reference_copy(tmp_path):
    """QGIS writes .aux.xml next to rasters it opens: work on a copy."""
    dst = tmp_path / "reference.tif"
    shutil.copy(REFERENCE, dst)
    return str(dst)


def test_model_runs_in_processing(hsifusion_provider, reference_copy, tmp_path):
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL))
    fused = str(tmp_path / "fused.tif")
    params = {"reference": reference_copy, "ratio": 4, "iterations": 2,
              "fuse_cofusion:Fused HR-HSI": fused, "assess:Quality report": str(tmp_path / "r.html"),
              "assess:SAM map": str(tmp_path / "sam.tif")}
    ok, msg = model.checkParameterValues(params, QgsProcessingContext())
    assert ok, msg
    res = model.run(params, QgsProcessingContext(), QgsProcessingFeedback())[0]
    assert os.path.exists(fused)
    o, r = gdal.Open(fused), gdal.Open(reference_copy)
    assert o.GetGeoTransform() == r.GetGeoTransform() and o.RasterCount == 224
    assert os.path.getsize(tmp_path / "r.html") > 1000
    assert res is not None


@pytest.mark.skipif(not os.path.exists(QGIS_PROCESS), reason="qgis_process.bin not installed")
def test_model_runs_headless(reference_copy, tmp_path):
    env = qgis_process_env(tmp_path)
    fused = str(tmp_path / "fused_qp.tif")
    proc = subprocess.run([QGIS_PROCESS, "--json", "run", str(MODEL), "--", f"reference={reference_copy}",
                           "ratio=4", "iterations=1", f"fuse_cofusion:Fused HR-HSI={fused}",
                           f"assess:SAM map={tmp_path / 'sam.tif'}",
                           f"assess:Quality report={tmp_path / 'r.html'}"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert os.path.exists(fused) and payload["results"]
