"""Helpers of the hostile-input cases (test_inputs_*.py).

The CLI's error contract (with conftest's ``cli_run``), and small rasters with masks and alpha bands.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from rasterkit import utm_wkt


def assert_cli_error(cli_run, argv, *needles, output=None) -> str:
    """Exit status 1, every ``needles`` text in stderr, and no ``output`` file (nor a partial one) left.

    ``cli_run`` is conftest's fixture (in-process CLI, never a traceback).
    """
    code, out, err = cli_run(*argv)
    assert code == 1, (code, out, err)
    for text in needles:
        assert text in err, (text, err)
    if output is not None:
        folder = Path(output).parent
        assert not [p.name for p in folder.iterdir() if p.name.startswith(Path(output).name)], err
    return err


def with_mask(path: str, valid: np.ndarray, internal: bool) -> str:
    """Give a GeoTIFF a per-dataset GDAL mask (internal, or a .msk side file); ``valid`` True = data."""
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES" if internal else "NO")
    try:
        ds = gdal.Open(path, gdal.GA_Update)
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        ds.GetRasterBand(1).GetMaskBand().WriteArray(np.where(valid, 255, 0).astype(np.uint8))
        ds = None
    finally:
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    return path


def with_alpha(path: str, data: np.ndarray, valid: np.ndarray, geotransform) -> str:
    """A UInt16 GeoTIFF of ``data`` plus an alpha band (65535 = data, 0 = none) as its last band."""
    b = data.shape[0]
    ds = gdal.GetDriverByName("GTiff").Create(path, data.shape[2], data.shape[1], b + 1, gdal.GDT_UInt16)
    ds.SetGeoTransform(geotransform)
    ds.SetProjection(utm_wkt())
    for i in range(b):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds.GetRasterBand(b + 1).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds.GetRasterBand(b + 1).WriteArray(np.where(valid, 65535, 0).astype(np.uint16))
    ds = None
    return path
