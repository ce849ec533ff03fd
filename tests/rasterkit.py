"""Tiny rasters from arrays for tests (EnMAP-Box testcase.py style), and the sample's paths."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal, osr

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample"
REFERENCE = SAMPLE / "enmap_potsdam_reference.tif"
SAMPLE_HSI = SAMPLE / "potsdam_lr_hsi_x4.tif"
SAMPLE_MSI = SAMPLE / "potsdam_msi_s2a.tif"


def utm_wkt(zone: int = 33) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32600 + zone)
    return srs.ExportToWkt()


def make_raster(path, array: np.ndarray, geotransform=(365055.0, 30.0, 0.0, 5807085.0, 0.0, -30.0),
                wkt: Optional[str] = None, nodata: Optional[float] = None,
                wavelengths: Optional[Sequence[float]] = None, dtype=gdal.GDT_Float32) -> str:
    """Write a (bands, rows, cols) array as GeoTIFF; returns the path."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    b, h, w = array.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, b, dtype)
    if geotransform is not None:  # None: a raster without georeferencing
        ds.SetGeoTransform(tuple(geotransform))
    ds.SetProjection(utm_wkt() if wkt is None else wkt)
    for i in range(b):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(array[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if wavelengths is not None:
            band.SetMetadataItem("wavelength", str(wavelengths[i]))
            band.SetMetadataItem("wavelength_units", "Nanometers")
    ds = None
    return str(path)


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def synthetic_pair(tmp_path, ratio: int = 4, lr_size=(12, 10), bands: int = 16, msi_bands: int = 3,
                   seed: int = 0, lr_gt=None, msi_gt=None, **kw):
    """A smooth random LR-HSI and an HR-MSI on aligned grids; returns (hsi_path, msi_path)."""
    rng = np.random.default_rng(seed)
    h, w = lr_size
    lr = rng.random((bands, h, w)).astype(np.float32) + 1.0
    hr = rng.random((msi_bands, h * ratio, w * ratio)).astype(np.float32) + 1.0
    lr_gt = lr_gt or (1000.0, 30.0 * ratio, 0.0, 2000.0, 0.0, -30.0 * ratio)
    msi_gt = msi_gt or (1000.0, 30.0, 0.0, 2000.0, 0.0, -30.0)
    wl = np.linspace(450, 2400, bands)
    hsi = make_raster(tmp_path / "hsi.tif", lr, lr_gt, wavelengths=wl, **kw)
    msi = make_raster(tmp_path / "msi.tif", hr, msi_gt, **kw)
    return hsi, msi


def without_bad_band_list(src, dst) -> str:
    """A copy of ``src`` without its bands' ``bbl`` items: bad bands are then only nodata everywhere."""
    gdal.Translate(str(dst), str(src))
    ds = gdal.Open(str(dst), gdal.GA_Update)
    for i in range(ds.RasterCount):
        md = ds.GetRasterBand(i + 1).GetMetadata()
        md.pop("bbl", None)
        ds.GetRasterBand(i + 1).SetMetadata(md)
    ds = None
    return str(dst)
