"""The Spectral MLP on the real-like pair of test_real_like_pair (MSI x4 + 500, nodata holes, 1-px shift).

Alone (BASE=none) and with its default (BASE=glp): output on the MSI grid, MSI nodata stays nodata, values finite
and within the LR-HSI's range widened by half its span, PSNR not below bicubic's.
"""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from classical_pair import SAMPLE_HSI, reference_cube
from hsifusion.engine import api
from test_real_like_pair import psnr_valid, real_like  # noqa: F401  (the fixture)


@pytest.mark.parametrize("base", ["none", "glp"])
def test_spectral_mlp_on_a_real_like_pair(real_like, base):  # noqa: F811
    msi, hole, tmp = real_like
    out = tmp / f"spectralmlp_{base}.tif"
    api.fuse(str(SAMPLE_HSI), msi, str(out), "spectralmlp", {"base": base, "seed": 0, "iterations": 200})
    ds, m = gdal.Open(str(out)), gdal.Open(msi)
    assert (ds.RasterXSize, ds.RasterYSize) == (m.RasterXSize, m.RasterYSize)
    assert ds.GetGeoTransform() == m.GetGeoTransform()
    est = ds.ReadAsArray().astype(np.float64)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    ref, _, good, _ = reference_cube()
    assert est.shape[0] == ref.shape[0]
    assert (est[:, hole] == nodata).all()
    lr = gdal.Open(str(SAMPLE_HSI)).ReadAsArray().astype(np.float64)[good]
    vals = est[good][:, ~hole]
    lo, hi = lr.min(), lr.max()
    assert np.isfinite(vals).all()
    assert vals.min() >= lo - 0.5 * (hi - lo) and vals.max() <= hi + 0.5 * (hi - lo), (vals.min(), vals.max())
    up = tmp / "spectralmlp_bicubic.tif"
    if not up.exists():
        api.fuse(str(SAMPLE_HSI), msi, str(up), "upsample", {"mode": "bicubic"})
    bic = gdal.Open(str(up)).ReadAsArray().astype(np.float64)
    assert psnr_valid(est, ref, good, ~hole) >= psnr_valid(bic, ref, good, ~hole)
