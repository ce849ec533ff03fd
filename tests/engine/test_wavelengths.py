"""Wavelengths from every convention, normalised to nm."""
import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine.errors import WavelengthError
from hsifusion.engine.io.raster import raster_info
from hsifusion.engine.io.wavelengths import read_wavelengths, to_nanometres, write_wavelengths
from rasterkit import REFERENCE, make_raster


def test_enmap_sample_band_items():
    info = raster_info(str(REFERENCE))
    assert info.bands == 224 and info.nodata == -32768
    assert info.wavelengths[0] == pytest.approx(418.24) and info.wavelengths[-1] == pytest.approx(2445.53)
    assert np.isfinite(info.fwhm).all()
    assert (~info.good_bands).sum() == 6
    assert info.scale[0] == pytest.approx(1e-4)


def test_imagery_domain_in_micrometres(tmp_path):
    p = make_raster(tmp_path / "a.tif", np.zeros((3, 4, 4)))
    ds = gdal.Open(p, gdal.GA_Update)
    for i, wl in enumerate([0.45, 0.55, 0.65], 1):
        ds.GetRasterBand(i).SetMetadataItem("CENTRAL_WAVELENGTH_UM", str(wl), "IMAGERY")
        ds.GetRasterBand(i).SetMetadataItem("FWHM_UM", "0.01", "IMAGERY")
    ds = None
    wl, fw = read_wavelengths(gdal.Open(p))
    np.testing.assert_allclose(wl, [450, 550, 650])
    np.testing.assert_allclose(fw, [10, 10, 10])


def test_band_items_in_micrometres(tmp_path):
    p = make_raster(tmp_path / "a.tif", np.zeros((2, 4, 4)))
    ds = gdal.Open(p, gdal.GA_Update)
    for i, wl in enumerate([0.5, 1.6], 1):
        ds.GetRasterBand(i).SetMetadata({"wavelength": str(wl), "wavelength_units": "Micrometers"})
    ds = None
    np.testing.assert_allclose(read_wavelengths(gdal.Open(p))[0], [500, 1600])


def test_envi_header_list(tmp_path):
    ds = gdal.GetDriverByName("ENVI").Create(str(tmp_path / "a.bsq"), 4, 4, 3, gdal.GDT_Float32)
    del ds  # closes the file and writes the header
    hdr = tmp_path / "a.hdr"
    hdr.write_text(hdr.read_text() + "wavelength units = Micrometers\nwavelength = { 0.45, 0.55, 0.65 }\n"
                   "fwhm = { 0.01, 0.01, 0.02 }\n")
    info = raster_info(str(tmp_path / "a.bsq"))
    np.testing.assert_allclose(info.wavelengths, [450, 550, 650])
    np.testing.assert_allclose(info.fwhm, [10, 10, 20])


def test_user_csv_overrides_and_count_checked(tmp_path):
    p = make_raster(tmp_path / "a.tif", np.zeros((3, 4, 4)))
    csv = tmp_path / "wl.csv"
    csv.write_text("band,nm,fwhm\n0,400,5\n1,500,5\n2,600,6\n")
    info = raster_info(p, str(csv))
    np.testing.assert_allclose(info.wavelengths, [400, 500, 600])
    np.testing.assert_allclose(info.fwhm, [5, 5, 6])
    with pytest.raises(WavelengthError, match="2 wavelengths given for a raster with 3 bands"):
        raster_info(p, [400, 500])


def test_write_both_conventions_round_trip(tmp_path):
    p = make_raster(tmp_path / "a.tif", np.zeros((2, 4, 4)))
    ds = gdal.Open(p, gdal.GA_Update)
    write_wavelengths(ds, [443.0, 865.0], [20.0, 21.0])
    ds = None
    ds = gdal.Open(p)
    assert ds.GetRasterBand(2).GetMetadata("IMAGERY")["CENTRAL_WAVELENGTH_UM"] == "0.865"
    assert ds.GetRasterBand(2).GetMetadataItem("wavelength") == "865"
    np.testing.assert_allclose(read_wavelengths(ds)[1], [20, 21])


def test_units_conversion():
    np.testing.assert_allclose(to_nanometres([0.5], "micrometers"), [500])
    np.testing.assert_allclose(to_nanometres([500], "Nanometers"), [500])
    np.testing.assert_allclose(to_nanometres([0.5], None), [500])
