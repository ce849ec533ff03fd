"""hsifusion:simulate and hsifusion:spectral_resample through QGIS Processing."""
import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from conftest import SAMPLE
from hsifusion.engine.sensors.srf import list_sensors


@pytest.fixture(scope="module")
def REF(tmp_path_factory):
    """A copy of the bundled reference: QGIS writes a .aux.xml (histograms) next to a raster it loads."""
    import shutil
    dst = tmp_path_factory.mktemp("ref") / "enmap_potsdam_reference.tif"
    shutil.copy(SAMPLE / "enmap_potsdam_reference.tif", dst)
    return str(dst)


def _read(path):
    return gdal.Open(str(path)).ReadAsArray().astype(np.float64)


def test_algorithms_listed(hsifusion_provider):
    algs = {a.id(): a for a in hsifusion_provider.algorithms()}
    for aid in ("hsifusion:simulate", "hsifusion:spectral_resample"):
        assert aid in algs
        assert algs[aid].group() == "Simulation" and algs[aid].groupId() == "simulation"
        assert "TILE_SIZE" in algs[aid].shortHelpString()
    assert "Sampling phase" in algs["hsifusion:simulate"].shortHelpString()
    opts = algs["hsifusion:simulate"].parameterDefinition("SENSOR").options()
    assert any("Gaussian" in o and o.startswith("WorldView-3") for o in opts)   # titles, not keys


def test_simulate_defaults_reproduce_bundled_pair(run_alg, tmp_path, REF):
    res = run_alg("hsifusion:simulate", {
        "REFERENCE": REF, "RATIO": 4, "SENSOR_BANDS": "B1,B2,B3,B4,B5,B6,B7,B8,B8A,B9,B11,B12",
        "OUTPUT_HSI": str(tmp_path / "lr.tif"), "OUTPUT_MSI": str(tmp_path / "ms.tif")})
    assert res["OUTPUT_HSI"] == str(tmp_path / "lr.tif")
    np.testing.assert_array_equal(_read(tmp_path / "lr.tif"), _read(SAMPLE / "potsdam_lr_hsi_x4.tif"))
    np.testing.assert_array_equal(_read(tmp_path / "ms.tif"), _read(SAMPLE / "potsdam_msi_s2a.tif"))


def test_simulate_options_recorded(run_alg, tmp_path, REF):
    run_alg("hsifusion:simulate", {
        "REFERENCE": REF, "RATIO": 2, "PSF": 1, "MTF_GAIN": 0.25, "SENSOR": list_sensors().index("landsat8_oli"),
        "SNR_HSI": 30, "SNR_MSI": 40, "SEED": 9, "TILE_SIZE": 32,
        "OUTPUT_HSI": str(tmp_path / "lr.tif"), "OUTPUT_MSI": str(tmp_path / "ms.tif")})
    ds = gdal.Open(str(tmp_path / "ms.tif"))
    rec = json.loads(ds.GetMetadataItem("HSIFUSION_SIMULATION"))
    assert rec["psf"] == "mtf" and rec["gain"] == 0.25 and rec["ratio"] == 2 and rec["seed"] == 9
    assert rec["snr_hsi_db"] == 30 and rec["snr_msi_db"] == 40 and rec["spectral"]["sensor"] == "landsat8_oli"
    assert ds.GetRasterBand(1).GetDescription() == "B1"
    assert gdal.Open(str(tmp_path / "lr.tif")).GetGeoTransform()[1] == 60.0


def test_spectral_resample_alg(run_alg, tmp_path, REF):
    out = tmp_path / "wv3.tif"
    # WV3 Coastal (400-450 nm edges) starts below EnMAP's first band (418 nm): left out by name
    run_alg("hsifusion:spectral_resample", {"INPUT": REF, "SENSOR": list_sensors().index("worldview3_vnir"),
                                            "SENSOR_BANDS": "Blue,Green,Yellow,Red,RedEdge,NIR1,NIR2",
                                            "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 7 and ds.GetRasterBand(5).GetDescription() == "RedEdge"
    assert ds.GetGeoTransform() == gdal.Open(REF).GetGeoTransform()


def test_errors_become_processing_exceptions(run_alg, tmp_path, REF):
    with pytest.raises(QgsProcessingException, match="B10"):
        run_alg("hsifusion:spectral_resample", {"INPUT": REF, "SENSOR_BANDS": "B4,B10",
                                                "OUTPUT": str(tmp_path / "x.tif")})
    bad = tmp_path / "bad.csv"
    bad.write_text("wavelength,a\n600,0\n590,1\n")
    with pytest.raises(QgsProcessingException, match="increasing"):
        run_alg("hsifusion:simulate", {"REFERENCE": REF, "RATIO": 4, "SRF_FILE": str(bad),
                                       "OUTPUT_HSI": str(tmp_path / "l.tif"), "OUTPUT_MSI": str(tmp_path / "m.tif")})
    with pytest.raises(QgsProcessingException, match="RATIO must be an integer"):
        run_alg("hsifusion:simulate", {"REFERENCE": REF, "RATIO": 2.5,
                                       "OUTPUT_HSI": str(tmp_path / "l.tif"), "OUTPUT_MSI": str(tmp_path / "m.tif")})
    assert not list(tmp_path.glob("*.tif"))
