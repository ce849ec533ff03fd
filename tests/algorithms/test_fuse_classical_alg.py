"""hsifusion:fuse_gsa ... fuse_cnmf through QGIS Processing."""
import numpy as np
import pytest
from osgeo import gdal

from rasterkit import read, synthetic_pair

IDS = ["hsifusion:fuse_gsa", "hsifusion:fuse_glp", "hsifusion:fuse_sfim", "hsifusion:fuse_cnmf"]


def test_provider_lists_classical_algorithms(hsifusion_provider):
    algs = {a.id(): a for a in hsifusion_provider.algorithms()}
    for alg_id in IDS:
        assert alg_id in algs
        alg = algs[alg_id]
        assert alg.groupId() == "classical"
        assert "Reference" in alg.shortHelpString()
        names = {p.name() for p in alg.parameterDefinitions()}
        assert {"HSI", "MSI", "TILE_SIZE", "OUTPUT"} <= names
    names = {p.name() for p in algs["hsifusion:fuse_cnmf"].parameterDefinitions()}
    assert {"ITERATIONS", "ENDMEMBERS"} <= names


def test_fuse_gsa_via_processing_keeps_msi_grid(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    out = str(tmp_path / "gsa.tif")
    res = run_alg("hsifusion:fuse_gsa", {"HSI": hsi, "MSI": msi, "TILE_SIZE": 16, "OUTPUT": out})
    assert res["OUTPUT"] == out
    o, m = gdal.Open(out), gdal.Open(msi)
    assert o.GetGeoTransform() == m.GetGeoTransform()
    assert o.RasterCount == gdal.Open(hsi).RasterCount
    assert np.isfinite(read(out)).all()


@pytest.mark.parametrize("alg_id,extra", [("hsifusion:fuse_cnmf", {"ITERATIONS": 5, "ENDMEMBERS": 3}),
                                          ("hsifusion:fuse_sfim", {"SMOOTHING": 1})])
def test_method_parameters_reach_the_engine(run_alg, tmp_path, alg_id, extra):
    hsi, msi = synthetic_pair(tmp_path)
    out = str(tmp_path / "o.tif")
    run_alg(alg_id, {"HSI": hsi, "MSI": msi, "OUTPUT": out, **extra})
    meta = gdal.Open(out).GetMetadataItem("HSIFUSION_METHOD")
    assert ('"iterations": "5"' in meta) if "cnmf" in alg_id else ('"smoothing": "box"' in meta)
