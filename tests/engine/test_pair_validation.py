"""Bad input -> a typed error naming the problem, and nothing written."""
import os

import numpy as np
import pytest

from hsifusion.engine import api
from hsifusion.engine.errors import BandError, CrsMismatchError, GridError, InputError, OutputError, RasterOpenError
from rasterkit import make_raster, synthetic_pair, utm_wkt


def _fuse(tmp_path, hsi, msi, out=None, **kw):
    out = out or str(tmp_path / "out.tif")
    return api.fuse(hsi, msi, out, "upsample", {"mode": "bilinear"}, **kw), out


def test_valid_pair_output_grid_equals_msi(tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    res, out = _fuse(tmp_path, hsi, msi)
    from osgeo import gdal
    o, m = gdal.Open(out), gdal.Open(msi)
    assert o.GetGeoTransform() == m.GetGeoTransform()
    assert o.GetProjection() == m.GetProjection()
    assert (o.RasterXSize, o.RasterYSize, o.RasterCount) == (m.RasterXSize, m.RasterYSize, 16)
    assert res["RATIO"] == 4


def test_different_crs_names_both(tmp_path):
    hsi, _ = synthetic_pair(tmp_path)
    msi = make_raster(tmp_path / "msi32.tif", np.ones((3, 48, 40)), (1000, 30, 0, 2000, 0, -30), wkt=utm_wkt(32))
    with pytest.raises(CrsMismatchError, match=r"zone 33N.*zone 32N"):
        _fuse(tmp_path, hsi, msi)
    assert not os.path.exists(tmp_path / "out.tif")


def test_same_authid_different_definition_is_a_mismatch(tmp_path):
    """Compare WKT, not only the authority code."""
    from osgeo import osr
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    srs.SetTM(0, 16, 0.9996, 500000, 0)  # a custom CRS still labelled like the original
    hsi, _ = synthetic_pair(tmp_path)
    msi = make_raster(tmp_path / "msi_custom.tif", np.ones((3, 48, 40)), (1000, 30, 0, 2000, 0, -30),
                      wkt=srs.ExportToWkt())
    with pytest.raises(CrsMismatchError):
        _fuse(tmp_path, hsi, msi)


def test_non_integer_ratio(tmp_path):
    hsi, _ = synthetic_pair(tmp_path)
    msi = make_raster(tmp_path / "m.tif", np.ones((3, 40, 40)), (1000, 35, 0, 2000, 0, -35))
    with pytest.raises(GridError, match=r"no integer ratio.*120.*35"):
        _fuse(tmp_path, hsi, msi)


def test_ratio_differs_between_x_and_y(tmp_path):
    hsi, _ = synthetic_pair(tmp_path)
    msi = make_raster(tmp_path / "m.tif", np.ones((3, 40, 40)), (1000, 30, 0, 2000, 0, -60))
    with pytest.raises(GridError, match="integer ratio"):
        _fuse(tmp_path, hsi, msi)


def test_misaligned_grids(tmp_path):
    hsi, _ = synthetic_pair(tmp_path)
    msi = make_raster(tmp_path / "m.tif", np.ones((3, 48, 40)), (1010, 30, 0, 2000, 0, -30))
    with pytest.raises(GridError, match=r"not aligned.*1000\.0.*1010\.0"):
        _fuse(tmp_path, hsi, msi)


def test_disjoint_extents(tmp_path):
    hsi, _ = synthetic_pair(tmp_path)
    msi = make_raster(tmp_path / "m.tif", np.ones((3, 48, 40)), (901000, 30, 0, 2000, 0, -30))
    with pytest.raises(GridError, match="do not overlap"):
        _fuse(tmp_path, hsi, msi)


def test_msi_with_more_bands_than_hsi(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, bands=4, msi_bands=6)
    with pytest.raises(BandError, match="more bands"):
        _fuse(tmp_path, hsi, msi)


def test_hsi_with_fewer_than_three_bands(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, bands=2, msi_bands=1)
    with pytest.raises(BandError, match="at least 3"):
        _fuse(tmp_path, hsi, msi)


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a raster")
    _, msi = synthetic_pair(tmp_path)
    with pytest.raises(RasterOpenError, match="bad.tif"):
        _fuse(tmp_path, str(bad), msi)


def test_output_in_missing_folder(tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        _fuse(tmp_path, hsi, msi, out=str(tmp_path / "nope" / "out.tif"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_output_in_read_only_folder(tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(OutputError, match="not writable"):
        _fuse(tmp_path, hsi, msi, out=str(ro / "out.tif"))


def test_read_only_folder_check_without_permissions(tmp_path, monkeypatch):
    """The writable check itself (root bypasses chmod, so simulate the access answer)."""
    hsi, msi = synthetic_pair(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p).endswith("ro") else real_access(p, m))
    (tmp_path / "ro").mkdir()
    with pytest.raises(OutputError, match="not writable"):
        _fuse(tmp_path, hsi, msi, out=str(tmp_path / "ro" / "out.tif"))


def test_output_equal_to_an_input_is_refused_and_input_untouched(tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    before = open(msi, "rb").read()
    with pytest.raises(OutputError, match="one of the inputs"):
        _fuse(tmp_path, hsi, msi, out=msi)
    assert open(msi, "rb").read() == before


@pytest.mark.parametrize("tile", [-1, -5])  # 0 = automatic (tests/engine/test_auto_tile.py)
def test_tile_size_negative(tmp_path, tile):
    hsi, msi = synthetic_pair(tmp_path)
    with pytest.raises(InputError, match="TILE_SIZE"):
        _fuse(tmp_path, hsi, msi, tile_size=tile)


def test_same_pixel_size_is_refused(tmp_path):
    hsi = make_raster(tmp_path / "h.tif", np.ones((8, 10, 10)), (1000, 30, 0, 2000, 0, -30))
    msi = make_raster(tmp_path / "m.tif", np.ones((3, 10, 10)), (1000, 30, 0, 2000, 0, -30))
    with pytest.raises(GridError, match="coarser"):
        _fuse(tmp_path, hsi, msi)
