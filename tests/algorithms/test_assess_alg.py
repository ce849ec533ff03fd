"""hsifusion:assess through QGIS Processing: numeric outputs, HTML output, SAM post-processor, QNR."""
from __future__ import annotations

import math

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputHtml,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingOutputNumber,
    QgsProject,
    QgsRasterLayer,
)

from conftest import SAMPLE

NUMBERS_FILES = ("enmap_potsdam_reference.tif", "potsdam_lr_hsi_x4.tif", "potsdam_msi_s2a.tif")


def _copy_samples():
    """QGIS writes histogram .aux.xml files next to rasters it loads: work on copies, keep sample/ clean."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="hsif_assess_"))
    atexit.register(shutil.rmtree, folder, True)
    for name in NUMBERS_FILES:
        if (SAMPLE / name).exists():
            shutil.copy(SAMPLE / name, folder / name)
    return folder


_COPIES = _copy_samples()
REF = str(_COPIES / "enmap_potsdam_reference.tif")
LR = _COPIES / "potsdam_lr_hsi_x4.tif"
MSI = _COPIES / "potsdam_msi_s2a.tif"
NUMBERS = ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N", "QNR", "D_LAMBDA", "D_S")


@pytest.fixture(scope="module")
def estimate(tmp_path_factory):
    from scipy.ndimage import gaussian_filter

    src = gdal.Open(REF)
    a = src.ReadAsArray().astype(np.float64)
    est = gaussian_filter(a, (0, 0.8, 0.8))
    est[a == -32768] = -32768
    path = str(tmp_path_factory.mktemp("est") / "est.tif")
    ds = gdal.GetDriverByName("GTiff").CreateCopy(path, src)
    for i in range(a.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(est[i].astype(np.float32))
    ds = None
    return path


def test_registered_with_outputs(hsifusion_provider):
    alg = hsifusion_provider.algorithm("assess")
    assert alg is not None and alg.group() == "Quality" and alg.groupId() == "quality"
    assert hsifusion_provider.algorithm("style") is not None
    for m in NUMBERS:
        assert isinstance(alg.outputDefinition(m), QgsProcessingOutputNumber), m
    assert isinstance(alg.outputDefinition("OUTPUT_REPORT"), QgsProcessingOutputHtml)   # results viewer
    help_text = alg.shortHelpString()
    for k in ("ERGAS: 100 / RATIO", "peak_b", "sigma 1.5", "zero spectra", "Q2N", "QNR"):
        assert k in help_text


def test_assess_returns_numbers_and_files(run_alg, estimate, tmp_path):
    from hsifusion.engine.quality.assess import assess

    sam, table, report = tmp_path / "sam.tif", tmp_path / "t.csv", tmp_path / "r.html"
    res = run_alg("hsifusion:assess", {"REFERENCE": REF, "ESTIMATE": estimate, "RATIO": 4, "BORDER": 2,
                                       "OUTPUT_SAM": str(sam), "OUTPUT_TABLE": str(table),
                                       "OUTPUT_REPORT": str(report)})
    direct = assess(REF, estimate, 4, border=2)
    for m in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N"):
        assert res[m] == pytest.approx(direct[m], rel=1e-12), m
    assert res["QNR"] is None or math.isnan(res["QNR"])
    assert res["OUTPUT_SAM"] == str(sam) and sam.exists() and table.exists() and report.exists()
    assert res["OUTPUT_REPORT"] == str(report)


def test_sam_output_gets_the_sam_style_when_loaded(run_alg, estimate, tmp_path, qgis_new_project):
    from hsifusion.provider.styling import StylePostProcessor

    sam = str(tmp_path / "sam.tif")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    res = run_alg("hsifusion:assess", {"REFERENCE": REF, "ESTIMATE": estimate, "RATIO": 4,
                                       "OUTPUT_SAM": QgsProcessingOutputLayerDefinition(sam, QgsProject.instance())},
                  context=context)
    assert res["OUTPUT_SAM"] == sam and context.willLoadLayerOnCompletion(sam)
    details = context.layerToLoadOnCompletionDetails(sam)
    proc = details.postProcessor()
    assert isinstance(proc, StylePostProcessor) and proc.kind == "sam"
    assert details.name == "SAM (degrees): sam"              # named after the file the user chose
    layer = QgsRasterLayer(sam, "sam")
    proc.postProcessLayer(layer, context, QgsProcessingFeedback())
    r = layer.renderer()
    assert r.type() == "singlebandpseudocolor"
    assert (r.classificationMin(), r.classificationMax()) == (0.0, 20.0)


def test_no_reference_mode_with_sample_pair(run_alg, tmp_path):
    if not (LR.exists() and MSI.exists()):
        pytest.skip("simulated sample pair not present")
    # the reference itself as a (perfect) estimate: QNR high; the LR-HSI upsampled nearest: lower
    res = run_alg("hsifusion:assess", {"ESTIMATE": REF, "LR_HSI": str(LR), "MSI": str(MSI), "RATIO": 0,
                                       "OUTPUT_REPORT": str(tmp_path / "r.html")})
    assert 0 < res["QNR"] <= 1 and res["QNR"] == pytest.approx((1 - res["D_LAMBDA"]) * (1 - res["D_S"]))
    assert res["PSNR"] is None or math.isnan(res["PSNR"])
    assert not res.get("OUTPUT_SAM")
    assert (tmp_path / "r.html").exists()


def test_errors_become_processing_exceptions(run_alg, estimate, tmp_path):
    few = str(tmp_path / "few.tif")
    gdal.Translate(few, REF, bandList=[1, 2, 3])
    with pytest.raises(QgsProcessingException, match="bands"):
        run_alg("hsifusion:assess", {"REFERENCE": REF, "ESTIMATE": few, "RATIO": 4,
                                     "OUTPUT_SAM": "TEMPORARY_OUTPUT"})
    with pytest.raises(QgsProcessingException, match="REFERENCE"):
        run_alg("hsifusion:assess", {"ESTIMATE": estimate, "RATIO": 4})


def test_headless_qgis_process_json(estimate, tmp_path):
    import json
    import os
    import subprocess

    from test_upsample_alg import QGIS_PROCESS, qgis_process_env

    if not os.path.exists(QGIS_PROCESS):
        pytest.skip("qgis_process.bin not installed")
    env = qgis_process_env(tmp_path)
    report = tmp_path / "r.html"
    proc = subprocess.run([QGIS_PROCESS, "--json", "run", "hsifusion:assess", "--", f"REFERENCE={REF}",
                           f"ESTIMATE={estimate}", "RATIO=4", f"OUTPUT_SAM={tmp_path / 's.tif'}",
                           f"OUTPUT_REPORT={report}"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
    for m in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N"):
        assert isinstance(results[m], float), m
    assert 0 < results["SSIM"] < 1 and results["OUTPUT_REPORT"] == str(report) and report.exists()
