"""engine.quality.assess on real EnMAP data: oracles, SAM map, tiling invariance, errors, QNR."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from osgeo import gdal, osr

from hsifusion.engine.errors import BandError, Cancelled, CrsMismatchError, GridError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.quality.assess import assess
from rasterkit import make_raster

METRIC_KEYS = ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N")


def _like(src_path, path, data, gt=None, wkt=None, nodata="same"):
    """Copy ``src_path``'s metadata (wavelengths, bbl, scale, nodata) with new pixel values."""
    src = gdal.Open(str(src_path))
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.CreateCopy(str(path), src) if data.shape[0] == src.RasterCount and \
        data.shape[1:] == (src.RasterYSize, src.RasterXSize) else None
    if ds is None:
        ds = drv.Create(str(path), data.shape[2], data.shape[1], data.shape[0], gdal.GDT_Float32)
        ds.SetGeoTransform(src.GetGeoTransform())
        ds.SetProjection(src.GetProjection())
    for i in range(data.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    if gt is not None:
        ds.SetGeoTransform(gt)
    if wkt is not None:
        ds.SetProjection(wkt)
    ds = None
    return str(path)


@pytest.fixture(scope="module")
def ref_path():
    from conftest import SAMPLE

    return str(SAMPLE / "enmap_potsdam_reference.tif")


@pytest.fixture(scope="module")
def ref_data(ref_path):
    return gdal.Open(ref_path).ReadAsArray().astype(np.float64)


@pytest.fixture(scope="module")
def est_path(ref_path, ref_data, tmp_path_factory):
    """Reference blurred and noised (nodata bands kept nodata)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    est = gaussian_filter(ref_data, (0, 0.7, 0.7)) + rng.normal(0, 10, ref_data.shape)
    est[ref_data == -32768] = -32768
    return _like(ref_path, tmp_path_factory.mktemp("est") / "est.tif", est.astype(np.float32))


def test_assess_agrees_with_skimage_on_real_data(ref_path, est_path, ref_data, tmp_path):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    sam = tmp_path / "sam.tif"
    r = assess(ref_path, est_path, 4, out_sam=str(sam), tile_size=64)
    good = ~(ref_data == -32768).all((1, 2))
    x = ref_data[good]
    y = gdal.Open(est_path).ReadAsArray().astype(np.float64)[good]
    psnr = [peak_signal_noise_ratio(x[b], y[b], data_range=x[b].max()) for b in range(len(x))]
    ssim = [structural_similarity(x[b], y[b], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=x[b].max()) for b in range(len(x))]
    assert r["PSNR"] == pytest.approx(np.mean(psnr), abs=1e-6)
    assert r["SSIM"] == pytest.approx(np.mean(ssim), abs=1e-4)
    np.testing.assert_allclose(r["BANDS"]["PSNR"], psnr, atol=1e-6)
    np.testing.assert_allclose(r["BANDS"]["SSIM"], ssim, atol=1e-4)
    rmse_b = np.sqrt(((x - y) ** 2).mean((1, 2)))
    assert r["RMSE"] == pytest.approx(np.sqrt(((x - y) ** 2).mean()), rel=1e-9)
    assert r["ERGAS"] == pytest.approx(25 * np.sqrt(np.mean((rmse_b / x.mean((1, 2))) ** 2)), rel=1e-9)
    assert 0.9 < r["CC"] < 1 and 0 < r["Q2N"] < 1 and 0 < r["UIQI"] < 1
    # the SAM map: georeferenced like the estimate, its valid mean is the SAM output
    ds, e = gdal.Open(str(sam)), gdal.Open(est_path)
    assert ds.GetGeoTransform() == e.GetGeoTransform() and ds.GetProjection() == e.GetProjection()
    band = ds.GetRasterBand(1)
    m = band.ReadAsArray().astype(np.float64)
    valid = m != band.GetNoDataValue()
    assert valid.sum() == r["SAM_PIXELS"]
    assert m[valid].mean() == pytest.approx(r["SAM"], rel=1e-6)
    zero = (np.abs(x).sum(0) == 0) | (np.abs(y).sum(0) == 0)
    assert np.array_equal(~valid, zero)


def test_identical_and_scaled(ref_path, ref_data, tmp_path):
    r = assess(ref_path, ref_path, 4, tile_size=64)
    assert r["SAM"] == 0 and r["ERGAS"] == 0 and r["RMSE"] == 0
    assert r["SSIM"] == pytest.approx(1) and r["CC"] == pytest.approx(1) and r["Q2N"] == pytest.approx(1)
    assert r["UIQI"] == pytest.approx(1) and r["PSNR"] == np.inf
    scaled = np.where(ref_data == -32768, -32768, ref_data * 1.5).astype(np.float32)
    r = assess(ref_path, _like(ref_path, tmp_path / "x15.tif", scaled), 4, tile_size=64)
    assert r["SAM"] < 1e-6 and r["ERGAS"] > 1


def test_tiled_equals_untiled_with_border_and_mask(ref_path, est_path, tmp_path):
    mask = np.ones((1, 64, 128), np.float32)
    mask[0, 20:30, 40:90] = 0
    mask_path = _like(ref_path, tmp_path / "mask.tif", mask)
    kw = dict(mask=mask_path, border=3)
    a = assess(ref_path, est_path, 4, out_sam=str(tmp_path / "a.tif"), tile_size=32, **kw)
    b = assess(ref_path, est_path, 4, out_sam=str(tmp_path / "b.tif"), tile_size=512, **kw)
    for k in METRIC_KEYS + ("VALID_PIXELS", "SSIM_PIXELS", "SAM_PIXELS", "BLOCKS"):
        assert a[k] == pytest.approx(b[k], rel=1e-10, abs=1e-12), k
    sa = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert np.array_equal(sa, gdal.Open(str(tmp_path / "b.tif")).ReadAsArray())
    assert (sa[:3] == -9999).all() and (sa[:, -3:] == -9999).all() and (sa[20:30, 40:90] == -9999).all()
    assert a["VALID_PIXELS"] == 58 * 122 - 10 * 50
    full = assess(ref_path, est_path, 4, tile_size=512)
    assert full["VALID_PIXELS"] == 128 * 64 and full["PSNR"] != pytest.approx(a["PSNR"], rel=1e-9)


def test_ergas_constructed_case(tmp_path):
    """Bands of mean 100 and 200, estimate off by 10 everywhere: ERGAS = 25 sqrt((0.1^2 + 0.05^2)/2)."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    yy, xx = np.mgrid[:40, :40]
    checker = np.where((yy + xx) % 2 == 0, -10.0, 10.0)
    ref = np.stack([100 + checker, 200 + checker]).astype(np.float32)
    paths = []
    for name, data in (("r.tif", ref), ("e.tif", ref + 10)):
        ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), 40, 40, 2, gdal.GDT_Float32)
        ds.SetGeoTransform((500000, 30, 0, 5800000, 0, -30))
        ds.SetProjection(srs.ExportToWkt())
        for i in range(2):
            ds.GetRasterBand(i + 1).WriteArray(data[i])
        ds = None
        paths.append(str(tmp_path / name))
    r = assess(paths[0], paths[1], 4)
    assert r["RMSE"] == pytest.approx(10, rel=1e-12)
    assert r["ERGAS"] == pytest.approx(25 * np.sqrt((0.1 ** 2 + 0.05 ** 2) / 2), rel=1e-12)


def test_grid_band_and_crs_errors(ref_path, ref_data, tmp_path):
    data = ref_data.astype(np.float32)
    src = gdal.Open(ref_path)
    gt = list(src.GetGeoTransform())
    gt[0] += 30
    shifted = _like(ref_path, tmp_path / "shift.tif", data, gt=tuple(gt))
    with pytest.raises(GridError, match="shift.tif") as err:
        assess(ref_path, shifted, 4)
    assert "enmap_potsdam_reference.tif" in str(err.value)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    other = _like(ref_path, tmp_path / "crs.tif", data, wkt=srs.ExportToWkt())
    with pytest.raises(CrsMismatchError, match="crs.tif"):
        assess(ref_path, other, 4)
    few = tmp_path / "few.tif"
    gdal.Translate(str(few), ref_path, bandList=[1, 2, 3])
    with pytest.raises(BandError, match="224"):
        assess(ref_path, str(few), 4)


def test_table_report_and_cancel(ref_path, est_path, tmp_path):
    table, report, sam = tmp_path / "t.csv", tmp_path / "r.html", tmp_path / "s.tif"
    r = assess(ref_path, est_path, 4, out_sam=str(sam), out_table=str(table), out_report=str(report))
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 224 and rows[0]["wavelength_nm"].startswith("418.2")
    assert sum(int(row["used"]) for row in rows) == 218 and rows[130]["psnr"] == ""
    assert float(rows[50]["psnr"]) == pytest.approx(r["BANDS"]["PSNR"][50])
    text = report.read_text()
    assert text.count("data:image/png;base64,") >= 4
    assert "src=\"http" not in text and "<link" not in text
    for k in ("ERGAS", "Q2N", "PSNR and RMSE per band", "SAM histogram", "true colour", "Spectra at"):
        assert k in text
    fb = LogFeedback(cancel_after_progress=10)
    out = tmp_path / "cancelled.tif"
    with pytest.raises(Cancelled):
        assess(ref_path, est_path, 4, out_sam=str(out), tile_size=32, feedback=fb)
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_nodata_pixels_excluded(ref_path, ref_data, est_path, tmp_path):
    est = gdal.Open(est_path).ReadAsArray()
    est[:, 10:14, 20:30] = -32768
    holed = _like(ref_path, tmp_path / "holed.tif", est)
    r = assess(ref_path, holed, 4, out_sam=str(tmp_path / "s.tif"))
    assert r["VALID_PIXELS"] == 128 * 64 - 40
    s = gdal.Open(str(tmp_path / "s.tif")).ReadAsArray()
    assert (s[10:14, 20:30] == -9999).all()


def test_bands_without_data_are_left_out_like_flagged_bad_bands(ref_path, ref_data, est_path, tmp_path):
    """Bad bands stored as nodata everywhere without a bad-band list score as if flagged (bbl = 0)."""
    from rasterkit import make_raster

    src = gdal.Open(ref_path)
    gt, wkt = src.GetGeoTransform(), src.GetProjection()
    ref = make_raster(tmp_path / "ref_unflagged.tif", ref_data.astype(np.float32), gt, wkt, nodata=-32768)
    est = make_raster(tmp_path / "est_unflagged.tif", gdal.Open(est_path).ReadAsArray(), gt, wkt, nodata=-32768)
    fb = LogFeedback()
    unflagged = assess(ref, est, 4, feedback=fb)
    flagged = assess(ref_path, est_path, 4)
    empty = np.flatnonzero((ref_data == -32768).all((1, 2))) + 1
    named = [w for w in fb.warnings if w.startswith("reference band(s)") and "hold no valid value" in w]
    assert empty.size and len(named) == 1 and all(f"{k} (" in named[0] for k in empty)
    for k in METRIC_KEYS:
        assert unflagged[k] == pytest.approx(flagged[k], rel=1e-9, abs=1e-12), k


def test_an_estimate_band_without_data_is_an_incomplete_estimate(ref_path, est_path, tmp_path):
    """Scoring the other bands would hide a missing band: a BandError naming it, in both modes."""
    est = gdal.Open(est_path).ReadAsArray()
    est[[10, 20]] = -32768
    holed = _like(ref_path, tmp_path / "holed.tif", est)
    with pytest.raises(BandError, match=r"band\(s\) 11, 21 hold no valid value where the reference"):
        assess(ref_path, holed, 4)
    est[:] = -32768
    empty = _like(ref_path, tmp_path / "empty.tif", est)
    lr = str(tmp_path / "lr.tif")
    gdal.Translate(lr, ref_path, width=32, height=16, resampleAlg="average")
    with pytest.raises(BandError, match="the estimate is incomplete"):
        assess(None, empty, None, lr_hsi=lr, msi=ref_path)


def _block_mean(a, r):
    c, h, w = a.shape
    return a.reshape(c, h // r, r, w // r, r).mean((2, 4))


def test_no_reference_qnr(ref_path, ref_data, est_path, tmp_path):
    """QNR from an LR-HSI (4x block mean) and an MSI (4 broad bands) made from the reference."""
    good = ~(ref_data == -32768).all((1, 2))
    x = np.where(ref_data == -32768, 0, ref_data)
    lr = _block_mean(x, 4)
    lr[~good] = -32768
    src = gdal.Open(ref_path)
    gt = list(src.GetGeoTransform())
    drv = gdal.GetDriverByName("GTiff")
    lr_path = str(tmp_path / "lr.tif")
    ds = drv.CreateCopy(lr_path, gdal.Translate("/vsimem/lr.tif", src, width=32, height=16))
    for i in range(224):
        ds.GetRasterBand(i + 1).WriteArray(lr[i].astype(np.float32))
    ds = None
    groups = [(0, 30), (30, 60), (60, 90), (90, 120)]
    msi = np.stack([x[a:b].mean(0) for a, b in groups]).astype(np.float32)
    msi_path = str(tmp_path / "msi.tif")
    ds = drv.Create(msi_path, 128, 64, 4, gdal.GDT_Float32)
    ds.SetGeoTransform(tuple(gt))
    ds.SetProjection(src.GetProjection())
    for i in range(4):
        ds.GetRasterBand(i + 1).WriteArray(msi[i])
        ds.GetRasterBand(i + 1).SetScale(1e-4)
    ds = None
    good_fusion = assess(None, ref_path, None, lr_hsi=lr_path, msi=msi_path)
    assert good_fusion["RATIO"] == 4 and np.isnan(good_fusion["PSNR"])
    nearest = np.repeat(np.repeat(lr, 4, 1), 4, 2).astype(np.float32)
    poor = assess(None, _like(ref_path, tmp_path / "nn.tif", nearest), None, lr_hsi=lr_path, msi=msi_path,
                  tile_size=32)
    for r in (good_fusion, poor):
        assert 0 <= r["D_LAMBDA"] < 1 and 0 <= r["D_S"] < 1
        assert r["QNR"] == pytest.approx((1 - r["D_LAMBDA"]) * (1 - r["D_S"]))
    assert good_fusion["QNR"] > poor["QNR"]
    both = assess(ref_path, est_path, 4, lr_hsi=lr_path, msi=msi_path)
    assert np.isfinite(both["PSNR"]) and np.isfinite(both["QNR"])


def test_simulated_pair_of_a_reference_without_georeferencing_is_assessed(tmp_path):
    """Simulate puts such a reference's outputs on the north-up pixel grid; assess compares it on that grid."""
    from hsifusion.engine import api

    rng = np.random.default_rng(3)
    cube = (rng.random((20, 64, 64)) + 1.0).astype(np.float32)
    ref = make_raster(tmp_path / "ref.tif", cube, geotransform=None, wkt="",
                      wavelengths=[450 + 95 * i for i in range(20)])
    assert gdal.Open(ref).GetGeoTransform(can_return_null=True) is None
    lr, msi = str(tmp_path / "lr.tif"), str(tmp_path / "msi.tif")
    api.simulate(ref, lr, msi, ratio=4, sensor="sentinel2a_msi")
    est = str(tmp_path / "est.tif")
    api.fuse(lr, msi, est, "upsample")
    res = assess(ref, est, ratio=4)
    x = gdal.Open(est).ReadAsArray().astype(np.float64)
    mse = ((x - cube) ** 2).reshape(20, -1).mean(axis=1)
    peak = cube.reshape(20, -1).max(axis=1).astype(np.float64)
    assert res["PSNR"] == pytest.approx(float(np.mean(10 * np.log10(peak ** 2 / mse))), rel=1e-6)
