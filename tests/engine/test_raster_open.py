"""engine.io.raster.open_raster: read-only GeoTIFFs bypass GDAL's block cache, values unchanged."""
from __future__ import annotations

import numpy as np
from osgeo import gdal

from hsifusion.engine.io.raster import READ_CONFIG, open_raster


def _tiled_tif(path, bands=8, side=512) -> np.ndarray:
    data = np.random.default_rng(1).random((bands, side, side), dtype=np.float32)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), side, side, bands, gdal.GDT_Float32,
                                              options=["TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128",
                                                       "INTERLEAVE=BAND"])
    ds.WriteRaster(0, 0, side, side, data.tobytes())
    ds = None
    return data


def _read_windows(ds, side=512, step=96):
    """Overlapping windows, as the tile loop reads them (margins re-read by neighbours)."""
    return [(c, r, ds.ReadAsArray(c, r, min(step + 16, side - c), min(step + 16, side - r)))
            for r in range(0, side, step) for c in range(0, side, step)]


def test_direct_io_reads_the_same_values_without_filling_the_block_cache(tmp_path):
    path = tmp_path / "tiled.tif"
    data = _tiled_tif(path)
    gdal.SetCacheMax(256 * 1024 * 1024)
    gdal.GetDriverByName("GTiff")  # cache accounting is process-wide: measure differences only

    before = gdal.GetCacheUsed()
    direct = open_raster(path)
    for c, r, win in _read_windows(direct):
        np.testing.assert_array_equal(win, data[:, r:r + win.shape[1], c:c + win.shape[2]])
    direct_growth = gdal.GetCacheUsed() - before
    direct = None

    before = gdal.GetCacheUsed()
    cached = gdal.Open(str(path))
    _read_windows(cached)
    cached_growth = gdal.GetCacheUsed() - before
    cached = None

    assert cached_growth >= data.nbytes // 2  # the ordinary path keeps the blocks it read
    assert direct_growth < cached_growth / 10


def test_the_open_option_is_restored_after_open(tmp_path):
    path = tmp_path / "tiled.tif"
    _tiled_tif(path, bands=1, side=128)
    for key in READ_CONFIG:
        gdal.SetThreadLocalConfigOption(key, "NO")
    try:
        open_raster(path)
        assert all(gdal.GetThreadLocalConfigOption(k, None) == "NO" for k in READ_CONFIG)
    finally:
        for key in READ_CONFIG:
            gdal.SetThreadLocalConfigOption(key, None)
    open_raster(path)
    assert all(gdal.GetThreadLocalConfigOption(k, None) is None for k in READ_CONFIG)


def test_update_mode_is_not_direct(tmp_path):
    """Update handles write through the cache (direct I/O is a read path); writes still land."""
    path = tmp_path / "tiled.tif"
    _tiled_tif(path, bands=1, side=128)
    ds = open_raster(path, update=True)
    ds.GetRasterBand(1).WriteArray(np.full((128, 128), 7, np.float32))
    ds = None
    assert (open_raster(path).ReadAsArray() == 7).all()
