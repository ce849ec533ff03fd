"""hsifusion:upsample through QGIS Processing and through headless qgis_process."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from rasterkit import ROOT, read, synthetic_pair


def test_provider_lists_algorithms(hsifusion_provider):
    ids = {a.id() for a in hsifusion_provider.algorithms()}
    assert "hsifusion:upsample" in ids
    assert hsifusion_provider.name() == "HSI Fusion"


def test_upsample_via_processing_keeps_msi_grid(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    out = str(tmp_path / "up.tif")
    res = run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "METHOD": 2, "TILE_SIZE": 16, "OUTPUT": out})
    assert res["OUTPUT"] == out
    o, m = gdal.Open(out), gdal.Open(msi)
    assert o.GetProjection() == m.GetProjection() and o.GetGeoTransform() == m.GetGeoTransform()
    assert float(o.GetRasterBand(3).GetMetadataItem("wavelength")) == pytest.approx(np.linspace(450, 2400, 16)[2])


def test_bad_input_becomes_processing_exception(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    with pytest.raises(QgsProcessingException, match="one of the inputs"):
        run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "OUTPUT": msi})


def test_cancel_through_qgis_feedback_leaves_no_output(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(16, 16))
    out = tmp_path / "up.tif"

    class CancelSoon(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p > 10:
                self.cancel()

    run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "TILE_SIZE": 8, "OUTPUT": str(out)},
            feedback=CancelSoon())
    assert not out.exists()


QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


def qgis_process_env(tmp_path):
    """Environment for headless qgis_process with this checkout installed as plugin 'hsifusion'."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    link = plugins / "hsifusion"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins),
               HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if "site-packages" in p))
    (tmp_path / "home").mkdir(exist_ok=True)
    subprocess.run([QGIS_PROCESS, "plugins", "enable", "hsifusion"], env=env, capture_output=True, timeout=120)
    return env


@pytest.mark.skipif(not os.path.exists(QGIS_PROCESS), reason="qgis_process.bin not installed")
def test_headless_qgis_process_run(tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    out = str(tmp_path / "qp.tif")
    env = qgis_process_env(tmp_path)
    proc = subprocess.run([QGIS_PROCESS, "--json", "run", "hsifusion:upsample", "--", f"HSI={hsi}", f"MSI={msi}",
                           f"OUTPUT={out}"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert payload["results"]["OUTPUT"] == out
    o, m = gdal.Open(out), gdal.Open(msi)
    assert o.GetProjection() == m.GetProjection() and o.GetGeoTransform() == m.GetGeoTransform()
    assert read(out).shape == (16, 48, 40)


def test_every_algorithm_has_plain_text_help(hsifusion_provider):
    for alg in hsifusion_provider.algorithms():
        text = alg.shortHelpString()
        assert len(text) > 200, f"{alg.id()} has no help"
        import re

        assert not re.search(r"</?(p|br|b|i|h[1-6]|ul|li|div|span|table)\b", text), \
            f"{alg.id()} help should be plain text (HTML is unreadable in qgis_process help)"
