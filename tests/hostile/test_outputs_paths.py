"""Output paths that cannot work are refused before any work; the format follows the extension.

No progress is reported before a refusal; an extension without a supported format is refused naming
the allowed ones; Float32 nodata stays out of the data's range.
"""

import math
import os

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import OutputError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.io.writer import DEFAULT_NODATA, float_nodata
from rasterkit import make_raster, read, synthetic_pair


@pytest.fixture()
def pair(tmp_path):
    return synthetic_pair(tmp_path, lr_size=(6, 5), bands=8)


def _refused_before_work(tmp_path, pair, out, match, **kw):
    hsi, msi = pair
    fb = LogFeedback()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputError, match=match):
        api.fuse(hsi, msi, str(out), "upsample", {}, feedback=fb, **kw)
    assert fb.progress == []  # refused before the first tile
    assert sorted(os.listdir(tmp_path)) == before


def test_output_that_is_a_folder(tmp_path, pair):
    (tmp_path / "out.tif").mkdir()
    _refused_before_work(tmp_path, pair, tmp_path / "out.tif", "is a folder")


def test_output_in_a_missing_folder(tmp_path, pair):
    _refused_before_work(tmp_path, pair, tmp_path / "nope" / "out.tif", "folder .*nope does not exist")


def test_output_under_a_plain_file(tmp_path, pair):
    _refused_before_work(tmp_path, pair, tmp_path / "hsi.tif" / "out.tif", "does not exist")


@pytest.mark.parametrize("name", ["out.jpg", "out.png", "out", "out.vrt", "out.nc"])
def test_unsupported_extension_names_the_allowed_ones(tmp_path, pair, name):
    _refused_before_work(tmp_path, pair, tmp_path / name, r"use one of .*\.tif")


def test_tile_folder_that_is_a_file(tmp_path, pair):
    _refused_before_work(tmp_path, pair, tmp_path / "m.vrt", "is a file, not a folder",
                         scheduler="local:1", tile_dir=str(tmp_path / "msi.tif"))


def test_save_checkpoint_into_a_missing_folder_is_refused_before_training(tmp_path, pair, cli_run):
    pytest.importorskip("torch")
    hsi, msi = pair
    code, out, err = cli_run("fuse", "ssjcn", "--hsi", hsi, "--msi", msi, "-o", tmp_path / "o.tif",
                             "--iterations", "100000", "--save-checkpoint", tmp_path / "missing" / "w.pt")
    assert code == 1 and "SAVE_CHECKPOINT folder" in err and "missing does not exist" in err
    assert "%" not in err  # no progress: nothing trained
    assert not (tmp_path / "o.tif").exists()


def _fused_reference(tmp_path, pair):
    hsi, msi = pair
    ref = str(tmp_path / "ref.tif")
    api.fuse(hsi, msi, ref, "upsample", {"mode": "bilinear"})
    return gdal.Open(ref)


@pytest.mark.parametrize("ext, driver", [(".img", "HFA"), (".dat", "ENVI"), (".bsq", "ENVI"), (".tiff", "GTiff")])
def test_output_format_follows_the_extension(tmp_path, pair, ext, driver):
    hsi, msi = pair
    ref = _fused_reference(tmp_path, pair)
    out = tmp_path / f"fused{ext}"
    res = api.fuse(hsi, msi, str(out), "upsample", {"mode": "bilinear"})
    assert res["OUTPUT"] == str(out)
    ds = gdal.Open(str(out))
    assert ds.GetDriver().ShortName == driver
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (ref.RasterXSize, ref.RasterYSize, ref.RasterCount)
    assert np.allclose(ds.GetGeoTransform(), ref.GetGeoTransform(), rtol=0, atol=1e-9)
    assert ds.GetSpatialRef().IsSame(ref.GetSpatialRef())
    assert np.allclose(ds.ReadAsArray(), ref.ReadAsArray(), rtol=1e-6, atol=0)
    if driver == "ENVI":
        assert os.path.exists(tmp_path / "fused.hdr")
    assert not [n for n in os.listdir(tmp_path) if "partial" in n]


def test_existing_output_is_replaced_and_its_stale_statistics_dropped(tmp_path, pair):
    hsi, msi = pair
    out = tmp_path / "o.tif"
    make_raster(out, np.zeros((1, 3, 3)))
    (tmp_path / "o.tif.aux.xml").write_text("<PAMDataset><Metadata><MDI key='STATISTICS_MAXIMUM'>0</MDI>"
                                            "</Metadata></PAMDataset>")
    api.fuse(hsi, msi, str(out), "upsample", {"mode": "bilinear"})
    assert read(out).shape[0] == 8
    assert not (tmp_path / "o.tif.aux.xml").exists()


def test_float_nodata_stays_out_of_the_data_range():
    assert float_nodata(None) == DEFAULT_NODATA
    assert float_nodata(0.0) == DEFAULT_NODATA          # uint16 nodata 0: an exact fused 0 must stay valid
    assert float_nodata(65535.0) == DEFAULT_NODATA
    assert float_nodata(-32768.0) == -32768.0           # already far below any value
    assert math.isnan(float_nodata(float("nan")))


def test_uint16_nodata_zero_input_gives_a_minus_9999_float_output(tmp_path):
    rng = np.random.default_rng(3)
    lr = rng.integers(100, 1000, (8, 6, 5)).astype(np.uint16)
    lr[:, 2, 3] = 0
    hr = rng.integers(100, 1000, (3, 24, 20)).astype(np.uint16)
    hsi = make_raster(tmp_path / "h.tif", lr, (1000, 120, 0, 2000, 0, -120), nodata=0,
                      wavelengths=np.linspace(450, 900, 8), dtype=gdal.GDT_UInt16)
    msi = make_raster(tmp_path / "m.tif", hr, (1000, 30, 0, 2000, 0, -30), nodata=0, dtype=gdal.GDT_UInt16)
    out = str(tmp_path / "o.tif")
    api.fuse(hsi, msi, out, "upsample", {"mode": "nearest"})
    ds = gdal.Open(out)
    assert ds.GetRasterBand(1).GetNoDataValue() == DEFAULT_NODATA
    fused = ds.ReadAsArray()
    assert (fused[:, 8:12, 12:16] == DEFAULT_NODATA).all()          # the HR block under the LR nodata pixel
    valid = np.ones(fused.shape[1:], bool)
    valid[8:12, 12:16] = False
    assert np.array_equal(fused[:, valid], np.repeat(np.repeat(lr, 4, 1), 4, 2)[:, valid].astype(np.float32))


def test_simulate_with_one_unsupported_extension_writes_nothing(tmp_path):
    rng = np.random.default_rng(8)
    ref = make_raster(tmp_path / "ref.tif", rng.random((12, 16, 16)) + 1, (0, 10, 0, 160, 0, -10),
                      wavelengths=np.linspace(450, 900, 12))
    with pytest.raises(OutputError, match=r"ms\.jpg has extension '\.jpg'; use one of"):
        api.simulate(ref, str(tmp_path / "lr.tif"), str(tmp_path / "ms.jpg"), ratio=2,
                     sensor="sentinel2a_msi", bands="B2,B3,B4")
    assert os.listdir(tmp_path) == ["ref.tif"]


def test_processing_run_writes_the_format_of_the_extension(tmp_path, pair, run_alg):
    hsi, msi = pair
    out = str(tmp_path / "fused.img")
    res = run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "OUTPUT": out})
    assert res["OUTPUT"] == out
    ds = gdal.Open(out)
    assert ds.GetDriver().ShortName == "HFA" and ds.RasterCount == 8
    assert not [n for n in os.listdir(tmp_path) if "partial" in n]


@pytest.mark.parametrize("name", ["fused.nc", "fused.jpg"])
def test_processing_run_refuses_an_unsupported_extension(tmp_path, pair, run_alg, name):
    from qgis.core import QgsProcessingException

    hsi, msi = pair
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(QgsProcessingException, match=r"use one of \.tif, \.tiff, \.img, \.dat, \.bsq"):
        run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "OUTPUT": str(tmp_path / name)})
    assert sorted(os.listdir(tmp_path)) == before


def test_provider_offers_the_engine_formats(hsifusion_provider):
    from hsifusion.engine.io.outputs import RASTER_FORMATS

    offered = hsifusion_provider.supportedOutputRasterLayerExtensions()
    assert offered[0] == "tif" and {"." + e for e in offered} <= set(RASTER_FORMATS)
    assert hsifusion_provider.defaultRasterFileExtension() == "tif"
