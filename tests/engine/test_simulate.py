"""hsifusion.engine.sensors.simulate: Wald-protocol simulation end to end on the bundled EnMAP reference."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from osgeo import gdal

from conftest import SAMPLE
from hsifusion.engine import api
from hsifusion.engine.errors import Cancelled, GridError, InputError, NoValidDataError, WavelengthError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.io.pair import validate_pair
from hsifusion.engine.io.raster import open_raster, raster_info
from hsifusion.engine.io.wavelengths import write_wavelengths
from hsifusion.engine.sensors.simulate import simulate, spectral_resample
from hsifusion.engine.sensors.srf import list_sensors

REF = str(SAMPLE / "enmap_potsdam_reference.tif")
S2_BANDS = ["B2", "B3", "B4", "B8", "B11"]


def _read(path):
    return open_raster(path).ReadAsArray().astype(np.float64)


def _tifs(folder):
    return sorted(p for p in os.listdir(folder) if p.endswith(".tif"))


def _write(path, cube, gt=(500000.0, 10.0, 0.0, 5800000.0, 0.0, -10.0), epsg=32633, wl=None, nodata=None,
           georef=True, good=None):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cube.shape[2], cube.shape[1], cube.shape[0],
                                              gdal.GDT_Float32)
    if georef:
        ds.SetGeoTransform(gt)
        from osgeo import osr
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for i in range(cube.shape[0]):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(cube[i].astype(np.float32))
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if good is not None:
            b.SetMetadataItem("bbl", "1" if good[i] else "0")
    if wl is not None:
        write_wavelengths(ds, wl[0], wl[1])
    ds = None
    return str(path)


@pytest.fixture(scope="module")
def ref_info():
    return raster_info(REF)


def test_bundled_pair_is_what_the_engine_makes(tmp_path):
    """sample/make_sample.py reproduces the bundled files."""
    sys.path.insert(0, str(SAMPLE))
    try:
        import make_sample
    finally:
        sys.path.remove(str(SAMPLE))
    res = make_sample.main(tmp_path)
    for name in ("potsdam_lr_hsi_x4.tif", "potsdam_msi_s2a.tif"):
        np.testing.assert_array_equal(_read(tmp_path / name), _read(SAMPLE / name))
    assert res["LR_SIZE"] == [32, 16]


def test_bundled_pair_grid_and_metadata(ref_info):
    lr = raster_info(str(SAMPLE / "potsdam_lr_hsi_x4.tif"))
    ms = raster_info(str(SAMPLE / "potsdam_msi_s2a.tif"))
    g = ref_info.geotransform
    assert lr.geotransform == (g[0], 120.0, 0.0, g[3], 0.0, -120.0)  # exact
    assert ms.geotransform == g and (lr.width, lr.height) == (32, 16) and (ms.width, ms.height) == (128, 64)
    pair = validate_pair(lr, ms)
    assert pair.ratio == 4 and pair.region.width == 128 and pair.region.height == 64
    assert lr.bands == 224 and lr.nodata == -32768 and lr.scale[0] == pytest.approx(1e-4)
    np.testing.assert_allclose(lr.wavelengths, ref_info.wavelengths, rtol=1e-5)
    np.testing.assert_allclose(lr.fwhm, ref_info.fwhm, rtol=1e-5)
    assert np.array_equal(lr.good_bands, ref_info.good_bands)
    assert ms.band_names == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
    assert abs(ms.wavelengths[3] - 664.6) < 0.5 and ms.scale[0] == pytest.approx(1e-4)
    rec = json.loads(open_raster(lr.path).GetMetadataItem("HSIFUSION_SIMULATION"))
    for key in ("ratio", "psf", "fwhm_hr_px", "sigma_hr_px", "sampling_phase", "snr_hsi_db", "snr_msi_db",
                "seed", "spectral", "kernel_size", "noise", "nodata_rule"):
        assert key in rec
    assert rec["ratio"] == 4 and rec["fwhm_hr_px"] == 4.0 and rec["snr_hsi_db"] is None
    R = np.array(json.loads(open_raster(ms.path).GetMetadataItem("HSIFUSION_SRF_MATRIX")))
    assert R.shape == (12, 224)
    lrd = _read(lr.path)
    assert np.all(lrd[~lr.good_bands] == -32768) and np.all(lrd[lr.good_bands] != -32768)


def test_lr_is_blur_then_block_centred_decimation(tmp_path, ref_info):
    """Independent check with scipy.

    Gaussian filter (sigma = FWHM/2.3548) on the mirrored reference, sampled at the block centres.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates
    ref = _read(REF)[50]
    lr = _read(str(SAMPLE / "potsdam_lr_hsi_x4.tif"))[50]
    sig = 4 / 2.354820045
    blurred = gaussian_filter(ref, sig, mode="mirror", truncate=4.0)
    # block centre of LR pixel (i, j) = HR (4i + 1.5, 4j + 1.5): average the 2x2 neighbours' blur exactly
    ii, jj = np.meshgrid(np.arange(16) * 4 + 1.5, np.arange(32) * 4 + 1.5, indexing="ij")
    # the engine samples the continuous Gaussian at half-pixel offsets; compare in the interior only
    est = map_coordinates(blurred, [ii, jj], order=1)
    inner = (slice(2, -2), slice(2, -2))
    rel = np.abs(est[inner] - lr[inner]) / np.abs(lr[inner]).mean()
    assert np.median(rel) < 0.01
    assert abs(lr.mean() - ref.mean()) / ref.mean() < 0.01


def test_tiled_equals_untiled_with_noise(tmp_path):
    kw = dict(ratio=4, sensor="sentinel2a_msi", bands=S2_BANDS, snr_hsi=30, snr_msi=35, seed=7)
    simulate(REF, str(tmp_path / "a_lr.tif"), str(tmp_path / "a_ms.tif"), tile_size=4096, **kw)
    fb = LogFeedback()
    res = simulate(REF, str(tmp_path / "b_lr.tif"), str(tmp_path / "b_ms.tif"), tile_size=24, feedback=fb, **kw)
    assert res["TILES"] > 10
    for n in ("lr", "ms"):
        assert np.array_equal(_read(tmp_path / f"a_{n}.tif"), _read(tmp_path / f"b_{n}.tif"))
    assert fb.progress[-1] == pytest.approx(100.0)


def test_seed_and_snr(tmp_path):
    kw = dict(ratio=4, sensor="sentinel2a_msi", bands=S2_BANDS, snr_hsi=25, snr_msi=30)
    a = simulate(REF, str(tmp_path / "a_lr.tif"), str(tmp_path / "a_ms.tif"), seed=3, **kw)
    simulate(REF, str(tmp_path / "b_lr.tif"), str(tmp_path / "b_ms.tif"), seed=3, **kw)
    simulate(REF, str(tmp_path / "c_lr.tif"), str(tmp_path / "c_ms.tif"), seed=4, **kw)
    clean = simulate(REF, str(tmp_path / "d_lr.tif"), str(tmp_path / "d_ms.tif"), seed=3,
                     ratio=4, sensor="sentinel2a_msi", bands=S2_BANDS)
    assert clean["NOISE_SIGMA_HSI"] == 0
    for n in ("lr", "ms"):
        A, B, C, D = (_read(tmp_path / f"{k}_{n}.tif") for k in "abcd")
        assert np.array_equal(A, B) and not np.array_equal(A, C)
        good = D[:, 0, 0] != -32768
        sig = (A - D)[good]
        snr = 10 * np.log10(np.mean((D[good] * 1e-4) ** 2) / np.mean((sig * 1e-4) ** 2))
        assert abs(snr - (25 if n == "lr" else 30)) < 0.5, snr
    rec = json.loads(open_raster(str(tmp_path / "a_ms.tif")).GetMetadataItem("HSIFUSION_SIMULATION"))
    assert rec["seed"] == 3 and rec["snr_msi_db"] == 30 and rec["noise_sigma_msi"] == a["NOISE_SIGMA_MSI"] > 0


def test_flat_spectrum_stays_flat_every_sensor(tmp_path, ref_info):
    cube = np.full((224, 16, 16), 1234.0)
    cube[~ref_info.good_bands] = -32768
    src = _write(tmp_path / "flat.tif", cube, wl=(ref_info.wavelengths, ref_info.fwhm), nodata=-32768,
                 good=ref_info.good_bands)
    for key in list_sensors():
        out = tmp_path / f"{key}.tif"
        res = simulate(src, str(tmp_path / "lr.tif") if key == "enmap_hsi" else None, str(out), ratio=2,
                       sensor=key)
        np.testing.assert_allclose(_read(out), 1234.0, rtol=1e-6, err_msg=key)
        assert res["BANDS"]
    np.testing.assert_allclose(_read(tmp_path / "lr.tif")[ref_info.good_bands], 1234.0, rtol=1e-6)


def test_spectral_resample_equals_simulated_msi(tmp_path):
    out = tmp_path / "s2.tif"
    api.spectral_resample(REF, str(out), sensor="sentinel2a_msi",
                          bands=["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"],
                          tile_size=40)
    np.testing.assert_array_equal(_read(out), _read(SAMPLE / "potsdam_msi_s2a.tif"))
    info = raster_info(str(out))
    assert info.geotransform == raster_info(REF).geotransform and info.band_names[3] == "B4"
    with pytest.raises(WavelengthError, match="B10"):
        api.spectral_resample(REF, str(tmp_path / "x.tif"), sensor="sentinel2a_msi", bands=["B10"])
    assert not (tmp_path / "x.tif").exists()


def test_psf_options_and_kernel_file(tmp_path):
    k = np.outer(*(2 * [np.exp(-0.5 * (np.arange(-3, 4) / 2.0) ** 2)]))
    np.savetxt(tmp_path / "k.txt", k)
    fb = LogFeedback()
    simulate(REF, str(tmp_path / "k.tif"), None, ratio=3, psf={"kind": "kernel", "path": str(tmp_path / "k.txt")},
             feedback=fb)
    simulate(REF, str(tmp_path / "m.tif"), None, ratio=4, psf="mtf")
    rec = json.loads(open_raster(str(tmp_path / "m.tif")).GetMetadataItem("HSIFUSION_SIMULATION"))
    assert rec["psf"] == "mtf" and rec["gain"] == 0.3 and abs(rec["mtf_at_nyquist"] - 0.3) < 1e-6
    info = raster_info(str(tmp_path / "k.tif"))
    assert (info.width, info.height) == (128 // 3, 64 // 3)
    assert info.geotransform[1] == 90.0
    assert any("not a multiple of ratio 3" in w for w in fb.warnings)


def test_uncovered_bands_dropped_with_warning(tmp_path):
    fb = LogFeedback()
    res = simulate(REF, None, str(tmp_path / "ms.tif"), ratio=4, sensor="sentinel2a_msi", feedback=fb)
    assert res["BANDS_DROPPED"] == ["B10"] and len(res["BANDS"]) == 12
    assert any("B10" in w for w in fb.warnings)


def test_nodata_and_ungeoreferenced(tmp_path, ref_info):
    cube = _read(REF)[:, :32, :32]
    cube[:, 5, 6] = -32768
    src = _write(tmp_path / "plain.tif", cube, wl=(ref_info.wavelengths, ref_info.fwhm), nodata=-32768,
                 georef=False, good=ref_info.good_bands)
    fb = LogFeedback()
    simulate(src, str(tmp_path / "lr.tif"), str(tmp_path / "ms.tif"), ratio=4, bands=S2_BANDS, feedback=fb)
    assert any("no georeferencing" in w for w in fb.warnings)
    lr, ms = _read(tmp_path / "lr.tif"), _read(tmp_path / "ms.tif")
    assert lr[10, 1, 1] == -32768 and (lr[10] == -32768).sum() == 1
    assert ms[0, 5, 6] == -32768 and (ms[0] == -32768).sum() == 1
    a, b = raster_info(str(tmp_path / "lr.tif")), raster_info(str(tmp_path / "ms.tif"))
    assert a.geotransform[1] == 4 * b.geotransform[1]
    assert validate_pair(a, b).ratio == 4


def _good_band_cube(ref_info, side=32):
    """The reference's good bands (a cube without bad-band flags) and their wavelengths."""
    good = np.asarray(ref_info.good_bands, bool)
    wl = (np.asarray(ref_info.wavelengths)[good], np.asarray(ref_info.fwhm)[good])
    return _read(REF)[good][:, :side, :side], wl


def test_bands_without_data_become_bad_bands(tmp_path, ref_info):
    """A band stored as nodata everywhere (no bad-band list) would make every pixel nodata: it becomes a bad band."""
    cube, wl = _good_band_cube(ref_info)
    full = _write(tmp_path / "full.tif", cube, wl=wl, nodata=-32768)
    holed = cube.copy()
    holed[[3, 7]] = -32768
    src = _write(tmp_path / "holed.tif", holed, wl=wl, nodata=-32768)
    fb = LogFeedback()
    simulate(src, str(tmp_path / "lr.tif"), str(tmp_path / "ms.tif"), ratio=4, bands=S2_BANDS, feedback=fb)
    simulate(full, str(tmp_path / "lr_full.tif"), None, ratio=4)
    assert any(w.startswith("reference band(s) 4 (") and ", 8 (" in w and "hold no valid value" in w
               for w in fb.warnings)
    lr, lr_full, ms = _read(tmp_path / "lr.tif"), _read(tmp_path / "lr_full.tif"), _read(tmp_path / "ms.tif")
    others = np.setdiff1d(np.arange(len(cube)), [3, 7])
    assert np.all(lr[[3, 7]] == -32768) and np.array_equal(lr[others], lr_full[others])
    assert not np.any(ms == -32768)
    assert list(raster_info(str(tmp_path / "lr.tif")).good_bands) == [k not in (3, 7) for k in range(len(cube))]
    spectral_resample(src, str(tmp_path / "resampled.tif"), bands=S2_BANDS)
    assert np.allclose(_read(tmp_path / "resampled.tif"), ms, rtol=1e-6, atol=1e-3)


def test_an_output_without_a_valid_pixel_is_an_error(tmp_path, ref_info):
    """Nothing is published when an output would be nodata everywhere."""
    cube, wl = _good_band_cube(ref_info)
    cube[5, ::4, ::4] = -32768  # one nodata HR pixel in every 4 x 4 block: no LR pixel is valid
    src = _write(tmp_path / "every_block.tif", cube, wl=wl, nodata=-32768)
    _expect_nothing_written(tmp_path, NoValidDataError, "LR-HSI would hold no valid pixel", reference=src)
    cube[:] = -32768
    empty = _write(tmp_path / "empty.tif", cube, wl=wl, nodata=-32768)
    _expect_nothing_written(tmp_path, NoValidDataError, "no valid value in any good band", reference=empty)


def _expect_nothing_written(tmp_path, exc, match, **kw):
    before = _tifs(tmp_path)
    args = dict(ratio=4, sensor="sentinel2a_msi", bands=S2_BANDS)
    args.update(kw)
    ref = args.pop("reference", REF)
    with pytest.raises(exc, match=match):
        simulate(ref, str(tmp_path / "o_lr.tif"), str(tmp_path / "o_ms.tif"), **args)
    assert _tifs(tmp_path) == before
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_bad_inputs(tmp_path, ref_info):
    nowl = _write(tmp_path / "nowl.tif", _read(REF)[:, :16, :16])
    _expect_nothing_written(tmp_path, WavelengthError, "no band wavelengths", reference=nowl)
    # ... and works with WAVELENGTHS given
    simulate(nowl, None, str(tmp_path / "w_ms.tif"), ratio=2, bands=S2_BANDS,
             wavelengths=",".join(f"{w:.3f}" for w in ref_info.wavelengths))
    os.remove(tmp_path / "w_ms.tif")
    for bad in (1, 0, 2.5, "x", -4):
        _expect_nothing_written(tmp_path, InputError, "RATIO must be an integer >= 2", ratio=bad)
    small = _write(tmp_path / "small.tif", _read(REF)[:, :10, :10], wl=(ref_info.wavelengths, ref_info.fwhm))
    os.remove(tmp_path / "small.tif.aux.xml") if (tmp_path / "small.tif.aux.xml").exists() else None
    _expect_nothing_written(tmp_path, InputError, "smaller than the PSF", reference=small)
    order = tmp_path / "order.csv"
    order.write_text("wavelength,a\n500,0\n520,1\n510,0\n")
    _expect_nothing_written(tmp_path, WavelengthError, "increasing", srf_file=str(order), bands=None)
    neg = tmp_path / "neg.csv"
    neg.write_text("wavelength,a\n500,0\n510,-0.1\n520,1\n530,0\n")
    _expect_nothing_written(tmp_path, InputError, "negative", srf_file=str(neg), bands=None)
    _expect_nothing_written(tmp_path, WavelengthError, r"band B10 .*lies outside", bands=["B4", "B10"])
    far = tmp_path / "far.csv"
    far.write_text("wavelength,far\n2500,0\n2550,1\n2600,0\n")
    _expect_nothing_written(tmp_path, WavelengthError, "band far", srf_file=str(far), bands=None)
    _expect_nothing_written(tmp_path, InputError, "unknown sensor", sensor="nope")
    gt_rot = _write(tmp_path / "rot.tif", _read(REF)[:, :32, :32], gt=(0, 10, 1, 0, 1, -10),
                    wl=(ref_info.wavelengths, ref_info.fwhm))
    _expect_nothing_written(tmp_path, GridError, "rotated", reference=gt_rot)


def test_cancel_leaves_nothing(tmp_path):
    fb = LogFeedback(cancel_after_progress=10)
    with pytest.raises(Cancelled):
        simulate(REF, str(tmp_path / "lr.tif"), str(tmp_path / "ms.tif"), ratio=4, bands=S2_BANDS, tile_size=16,
                 feedback=fb)
    assert os.listdir(tmp_path) == []


def test_shared_block_tiled_equals_untiled(tmp_path, shared_data):
    src = str(shared_data / "enmap_potsdam_tiles" / "enmap_potsdam_block_64x128.tif")
    kw = dict(ratio=3, bands=S2_BANDS, snr_hsi=35, seed=1, psf={"kind": "gaussian", "fwhm": 4.5})
    simulate(src, str(tmp_path / "a.tif"), str(tmp_path / "am.tif"), tile_size=999, **kw)
    simulate(src, str(tmp_path / "b.tif"), str(tmp_path / "bm.tif"), tile_size=21, **kw)
    assert np.array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "b.tif"))
    assert np.array_equal(_read(tmp_path / "am.tif"), _read(tmp_path / "bm.tif"))
    info = raster_info(str(tmp_path / "a.tif"))
    g = raster_info(src).geotransform
    assert info.geotransform == (g[0], 90.0, 0.0, g[3], 0.0, -90.0)


def test_spectral_resample_default_bands_skip_uncovered(tmp_path):
    fb = LogFeedback()
    res = spectral_resample(REF, str(tmp_path / "s2.tif"), feedback=fb)
    assert res["BANDS_DROPPED"] == ["B10"] and len(res["BANDS"]) == 12
    np.testing.assert_array_equal(_read(tmp_path / "s2.tif"), _read(SAMPLE / "potsdam_msi_s2a.tif"))
