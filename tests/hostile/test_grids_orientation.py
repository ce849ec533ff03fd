"""Grids that are not north-up are refused by name, CRS or not.

A negative x or positive y pixel size, rotation terms, no geotransform (GCPs only): each is refused
whether or not the raster has a CRS. A north-up pair without a CRS, and a pair simulated from an
ungeoreferenced reference, fuse onto the right grid.
"""

import os

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import GridError
from rasterkit import make_raster, read, synthetic_pair

LR_GT = (1000.0, 120.0, 0.0, 2000.0, 0.0, -120.0)
HR_GT = (1000.0, 30.0, 0.0, 2000.0, 0.0, -30.0)


def _pair(tmp_path, lr_gt=LR_GT, hr_gt=HR_GT, wkt=None):
    rng = np.random.default_rng(5)
    hsi = make_raster(tmp_path / "hsi.tif", rng.random((6, 5, 4)) + 1, lr_gt, wkt=wkt,
                      wavelengths=np.linspace(450, 900, 6))
    msi = make_raster(tmp_path / "msi.tif", rng.random((3, 20, 16)) + 1, hr_gt, wkt=wkt)
    return hsi, msi


def _refused(tmp_path, hsi, msi, match):
    with pytest.raises(GridError, match=match):
        api.fuse(hsi, msi, str(tmp_path / "out.tif"), "upsample", {})
    assert sorted(os.listdir(tmp_path)) == ["hsi.tif", "msi.tif"]


def _flip_x(gt):
    return (gt[0] + 4 * gt[1], -gt[1], 0.0, gt[3], 0.0, gt[5])


def _south_up(gt, rows):
    return (gt[0], gt[1], 0.0, gt[3] + rows * gt[5], 0.0, -gt[5])


@pytest.mark.parametrize("crs", ["utm", ""])
@pytest.mark.parametrize("role", ["HSI", "MSI"])
def test_negative_x_pixel_size(tmp_path, crs, role):
    wkt = None if crs else ""
    lr, hr = (_flip_x(LR_GT), HR_GT) if role == "HSI" else (LR_GT, _flip_x(HR_GT))
    hsi, msi = _pair(tmp_path, lr, hr, wkt=wkt)
    _refused(tmp_path, hsi, msi, rf"{role} .* not north-up: x pixel size -\d+ is not positive")


@pytest.mark.parametrize("crs", ["utm", ""])
def test_south_up_pair(tmp_path, crs):
    """Both south-up: before, origins compared with |y size| gave a flipped or 'no overlap' result."""
    hsi, msi = _pair(tmp_path, _south_up(LR_GT, 5), _south_up(HR_GT, 20), wkt=None if crs else "")
    _refused(tmp_path, hsi, msi, r"HSI .* y pixel size 120 is not negative \(south-up\)")


def test_rotated_msi(tmp_path):
    hsi, msi = _pair(tmp_path, hr_gt=(1000.0, 30.0, 2.0, 2000.0, 2.0, -30.0))
    _refused(tmp_path, hsi, msi, r"MSI .* rotated geotransform \(rotation terms 2, 2\)")


def test_gcp_only_msi_says_no_geotransform(tmp_path):
    hsi, msi = _pair(tmp_path)
    plain = str(tmp_path / "plain.tif")
    ds = gdal.GetDriverByName("GTiff").Create(plain, 16, 20, 3, gdal.GDT_Float32)
    gcps = [gdal.GCP(1000 + 30 * c, 2000 - 30 * r, 0, c, r) for c, r in ((0, 0), (16, 0), (0, 20), (16, 20))]
    ds.SetGCPs(gcps, gdal.Open(msi).GetProjection())
    ds = None
    os.replace(plain, msi)
    probe = gdal.Open(msi)
    assert probe.GetGCPCount() == 4 and probe.GetGeoTransform(can_return_null=True) is None
    probe = None
    _refused(tmp_path, hsi, msi, "MSI .* has no geotransform")


def test_no_geotransform_at_all_is_not_called_same_pixel_size(tmp_path):
    rng = np.random.default_rng(6)
    for name, shape in (("hsi.tif", (6, 5, 4)), ("msi.tif", (3, 20, 16))):
        ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), shape[2], shape[1], shape[0],
                                                  gdal.GDT_Float32)
        ds.WriteRaster(0, 0, shape[2], shape[1], (rng.random(shape) + 1).astype(np.float32).tobytes())
        ds = None
    _refused(tmp_path, str(tmp_path / "hsi.tif"), str(tmp_path / "msi.tif"), "HSI .* has no geotransform")


def test_north_up_pair_without_crs_fuses_onto_the_msi_grid(tmp_path):
    """Offset pair, no CRS: the output covers the overlap on the MSI grid, values from the right LR pixels."""
    hr_gt = (1000.0 + 4 * 30, 30.0, 0.0, 2000.0 - 8 * 30, 0.0, -30.0)  # MSI starts 1 LR px right, 2 down
    hsi, msi = _pair(tmp_path, LR_GT, hr_gt, wkt="")
    out = str(tmp_path / "out.tif")
    res = api.fuse(hsi, msi, out, "upsample", {"mode": "nearest"})
    ds = gdal.Open(out)
    assert ds.GetProjection() == "" and res["RATIO"] == 4
    assert ds.GetGeoTransform() == hr_gt
    assert (ds.RasterXSize, ds.RasterYSize) == (12, 12)  # LR 4x5 minus 1 column, 2 rows, times 4
    lr = read(hsi)
    expected = np.repeat(np.repeat(lr[:, 2:5, 1:4], 4, axis=1), 4, axis=2)
    assert np.allclose(ds.ReadAsArray(), expected, rtol=1e-6, atol=0)


def test_pair_simulated_from_an_ungeoreferenced_reference_is_north_up(tmp_path):
    rng = np.random.default_rng(7)
    ref = str(tmp_path / "ref.tif")
    ds = gdal.GetDriverByName("GTiff").Create(ref, 16, 16, 12, gdal.GDT_Float32)
    for i, wl in enumerate(np.linspace(420, 950, 12), 1):
        band = ds.GetRasterBand(i)
        band.WriteArray((rng.random((16, 16)) + 1).astype(np.float32))
        band.SetMetadataItem("wavelength", f"{wl:.1f}")
        band.SetMetadataItem("wavelength_units", "Nanometers")
    ds = None
    lr, ms = str(tmp_path / "lr.tif"), str(tmp_path / "ms.tif")
    api.simulate(ref, lr, ms, ratio=4, sensor="sentinel2a_msi", bands="B2,B3,B4")
    lr_ds, ms_ds = gdal.Open(lr), gdal.Open(ms)
    assert lr_ds.GetGeoTransform() == (0.0, 4.0, 0.0, 0.0, 0.0, -4.0)
    assert ms_ds.GetGeoTransform() == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    lr_ds = ms_ds = None
    res = api.fuse(lr, ms, str(tmp_path / "f.tif"), "upsample", {})
    assert res["RATIO"] == 4 and read(tmp_path / "f.tif").shape == (12, 16, 16)


def test_cli_grid_error_exits_1_with_the_reason(tmp_path, cli_run):
    hsi, msi = _pair(tmp_path, _south_up(LR_GT, 5), _south_up(HR_GT, 20), wkt="")
    code, out, err = cli_run("fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", tmp_path / "o.tif")
    assert code == 1 and out == "" and "south-up" in err and "gdalwarp" in err
    assert not (tmp_path / "o.tif").exists()


def test_estimate_refuses_a_south_up_pair_too(tmp_path):
    """The check lives in validate_pair: every algorithm that pairs rasters gets it."""
    hsi, msi = synthetic_pair(tmp_path, lr_gt=_south_up(LR_GT, 10), msi_gt=_south_up(HR_GT, 40), wkt="")
    with pytest.raises(GridError, match="south-up"):
        api.estimate_srf_psf(hsi, msi, str(tmp_path / "srf.csv"))


def test_processing_run_refuses_negative_x_with_qgs_exception(tmp_path, run_alg):
    from qgis.core import QgsProcessingException

    hsi, msi = _pair(tmp_path, LR_GT, _flip_x(HR_GT))
    with pytest.raises(QgsProcessingException, match="x pixel size -30 is not positive"):
        run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "OUTPUT": str(tmp_path / "o.tif")})
    assert sorted(os.listdir(tmp_path)) == ["hsi.tif", "msi.tif"]
