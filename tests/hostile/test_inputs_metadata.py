"""Hostile inputs, metadata: wavelengths and SRF files that are not what they claim.

Wavelengths that are not numbers, bad-band flags, SRF files with text, short
rows or absurd widths, and a coarsely tabulated SRF whose result is checked against the analytic value.

Each case: exit status 1 with a message naming the file / band / row and the value (never a traceback,
never a half-written output), or a verified-correct output; CLI and engine API.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine.errors import WavelengthError
from hsifusion.engine.io.raster import raster_info
from rasterkit import make_raster, read, synthetic_pair

from .inputs_kit import assert_cli_error


@pytest.fixture()
def pair(tmp_path):
    return synthetic_pair(tmp_path, ratio=4, lr_size=(6, 5), bands=6, msi_bands=3)


def fuse_argv(hsi, msi, out, *extra):
    return ["fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", out, *extra]


def set_band_item(path, band, key, value):
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.GetRasterBand(band).SetMetadataItem(key, value)
    ds = None


def test_text_in_wavelength_metadata(tmp_path, pair, cli_run):
    hsi, msi = pair
    set_band_item(hsi, 2, "wavelength", "abc")
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, fuse_argv(hsi, msi, out), "band 2 wavelength metadata: 'abc' is not a number",
                     output=out)
    with pytest.raises(WavelengthError, match="band 2 wavelength metadata"):
        raster_info(hsi)


def test_text_in_fwhm_metadata(tmp_path, pair, cli_run):
    hsi, msi = pair
    set_band_item(hsi, 4, "fwhm", "wide")
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, fuse_argv(hsi, msi, out), "band 4 fwhm metadata: 'wide' is not a number", output=out)


def test_text_in_bad_band_flag(tmp_path, pair, cli_run):
    hsi, msi = pair
    set_band_item(hsi, 1, "bbl", "yes")
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, fuse_argv(hsi, msi, out), "band 1 bbl (bad band flag): 'yes' is not a number",
                     output=out)


def test_text_in_an_envi_header_wavelength_list(tmp_path, cli_run):
    data = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    ds = gdal.GetDriverByName("ENVI").Create(str(tmp_path / "cube.img"), 8, 8, 3, gdal.GDT_Float32)
    ds.SetGeoTransform((1000.0, 30.0, 0.0, 2000.0, 0.0, -30.0))
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds = None
    hdr = tmp_path / "cube.hdr"
    hdr.write_text(hdr.read_text() + "wavelength units = Nanometers\nwavelength = {500, 6x0, 700}\n")
    with pytest.raises(WavelengthError, match="'6x0' is not a number"):
        raster_info(str(tmp_path / "cube.img"))


@pytest.mark.parametrize("given,needle", [
    ("1,2,abc,4,5,6", "given wavelengths: 'abc' is not a number"),
    ("500,600,nan,700,800,900", "given wavelengths: 'nan' is not a finite number"),
    ("500,600,-700,800,900,1000", "given wavelengths must be positive numbers; value 3 is -700"),
    ("500,600", "2 wavelengths given for a raster with 6 bands"),
])
def test_bad_wavelength_lists_on_the_command_line(tmp_path, pair, cli_run, given, needle):
    hsi, msi = pair
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, fuse_argv(hsi, msi, out, "--hsi-wavelengths", given), needle, output=out)


def test_a_binary_file_as_wavelength_list(tmp_path, pair, cli_run):
    hsi, msi = pair
    junk = tmp_path / "wl.csv"
    junk.write_bytes(b"\xff\xfe\x00\x81" * 64)
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, fuse_argv(hsi, msi, out, "--hsi-wavelengths", junk),
                     f"wavelength file {junk} cannot be read as CSV text", output=out)


# ------------------------------------------------------------------------------------- SRF files
REF = str(Path(__file__).resolve().parents[2] / "sample" / "enmap_potsdam_reference.tif")


def simulate_argv(srf, out):
    return ["simulate", "--reference", REF, "--srf-file", srf, "--output-msi", out]


@pytest.mark.parametrize("rows,needle", [
    ("B1,560,abc\n", "row 2 (band B1) holds a non-numeric centre or FWHM: '560', 'abc'"),
    ("B1,560,30\nB2,665\n", "row 3 has 2 value(s) (B2,665)"),
    ("B1,560,1e9\n", "row 2 (band B1): FWHM 1e9 nm must be > 0 and at most 2000 nm"),
], ids=["text", "short-row", "fwhm-1e9"])
def test_centre_fwhm_srf_file_errors(tmp_path, cli_run, rows, needle):
    srf = tmp_path / "cf.csv"
    srf.write_text("# format: centre_fwhm\nband,centre_nm,fwhm_nm\n" + rows)
    out = tmp_path / "msi.tif"
    t0 = time.perf_counter()
    assert_cli_error(cli_run, simulate_argv(srf, out), str(srf), needle, output=out)
    assert time.perf_counter() - t0 < 30  # FWHM 1e9 once tried to allocate 45 GiB


def test_coarse_triangle_srf_gives_the_analytic_band_value(tmp_path, cli_run):
    """A 3-row triangular SRF gives the analytic band value.

    An SRF tabulated as 3 rows (0 at 500, 1 at 520, 0 at 600 nm) on a cube whose value is its own
    wavelength: the simulated band must be the triangle's mean wavelength, (500+520+600)/3 = 540 nm
    (the old support turned the table into a spike at 520 nm).
    """
    wl = np.arange(440.0, 661.0, 2.0)
    cube = np.broadcast_to(wl[:, None, None], (wl.size, 16, 16)).astype(np.float32)
    ref = make_raster(tmp_path / "ramp.tif", cube, (1000.0, 30.0, 0.0, 2000.0, 0.0, -30.0), wavelengths=wl)
    set_fwhm = gdal.Open(ref, gdal.GA_Update)
    for i in range(wl.size):
        set_fwhm.GetRasterBand(i + 1).SetMetadataItem("fwhm", "2")
    set_fwhm = None
    srf = tmp_path / "tri.csv"
    srf.write_text("wavelength,tri\n500,0\n520,1\n600,0\n")
    out = tmp_path / "msi.tif"
    code, _, err = cli_run("simulate", "--reference", ref, "--srf-file", srf, "--output-msi", out)
    assert code == 0, err
    np.testing.assert_allclose(read(out), (500 + 520 + 600) / 3, atol=0.05)
