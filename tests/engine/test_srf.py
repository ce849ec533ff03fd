"""Sensor library and spectral resampling matrix (engine/sensors/srf.py), on the real EnMAP band list."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SAMPLE
from hsifusion.engine.errors import InputError, WavelengthError
from hsifusion.engine.io.raster import open_raster, raster_info
from hsifusion.engine.sensors import srf

REF = str(SAMPLE / "enmap_potsdam_reference.tif")
MSI = str(SAMPLE / "potsdam_msi_s2a.tif")
FOUR_LN2 = 4 * np.log(2)


@pytest.fixture(scope="module")
def ref():
    info = raster_info(REF)
    cube = open_raster(REF).ReadAsArray().astype(np.float64)
    return info, cube


def test_library_has_the_required_sensors():
    keys = srf.list_sensors()
    expected = {"sentinel2a_msi": 13, "sentinel2b_msi": 13, "landsat8_oli": 9, "landsat9_oli2": 9,
                "worldview3_vnir": 8, "planetscope_superdove": 8, "nikon5100_rgb": 3, "enmap_hsi": 224}
    for key, n in expected.items():
        assert key in keys
        s = srf.load_sensor(key)
        assert s.bands == n, key
        assert s.source, key
        assert s.kind in ("measured", "gaussian")
        assert np.all(s.responses >= 0) and np.all(np.diff(s.wavelengths) > 0)
        if s.is_gaussian:
            assert "gaussian" in s.source.lower() or "Gaussian" in s.source
    assert not srf.load_sensor("sentinel2a_msi").is_gaussian
    assert srf.load_sensor("worldview3_vnir").is_gaussian
    # by title, case-insensitive, and band selection
    s = srf.load_sensor("Sentinel-2A MSI", bands=["b4", "B3"])
    assert s.band_names == ("B4", "B3")
    with pytest.raises(InputError, match="no band"):
        srf.load_sensor("sentinel2a_msi", bands=["B13"])
    with pytest.raises(InputError, match="unknown sensor"):
        srf.load_sensor("no_such_sensor")


def test_s2a_centres_match_published():
    s = srf.load_sensor("sentinel2a_msi")
    c = dict(zip(s.band_names, s.centres))
    # ESA S2A central wavelengths (nm), within 2 nm
    for b, v in {"B2": 492.4, "B3": 559.8, "B4": 664.6, "B8": 832.8, "B11": 1613.7, "B12": 2202.4}.items():
        assert abs(c[b] - v) < 2.0


def test_matrix_rows_sum_to_one_and_skip_bad_bands(ref):
    info, _ = ref
    s = srf.load_sensor("sentinel2a_msi").select(
        ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"])
    R = srf.srf_matrix(s, info.wavelengths, info.fwhm, info.good_bands)
    assert R.shape == (12, 224)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(R >= 0)
    assert np.all(R[:, ~info.good_bands] == 0)
    # band-pass overlap, not nearest band: B4 spreads over several EnMAP bands
    assert (R[3] > 0.01).sum() >= 4


def test_flat_spectrum_stays_flat_through_every_sensor(ref):
    info, _ = ref
    for key in srf.list_sensors():
        s = srf.load_sensor(key)
        keep = srf.covered_bands(s, info.wavelengths, info.fwhm, info.good_bands)
        assert keep, key
        R = srf.srf_matrix(s.select(keep), info.wavelengths, info.fwhm, info.good_bands)
        flat = np.full((224, 1, 1), 1234.5)
        flat[~info.good_bands] = -32768  # bad bands hold nodata; they must not leak in
        out = srf.apply_srf(R, flat)
        np.testing.assert_allclose(out, 1234.5, rtol=1e-12, err_msg=key)


def _bandpass_integral(sensor_wl, sensor_resp, hsi_wl, hsi_fwhm, spectra, step=0.01):
    """Independent direct integration.

    Integral S(l) * L(l) dl / integral S(l) dl on a 0.01 nm grid, with L the EnMAP spectrum seen through its
    Gaussian band-passes (normalised per wavelength).
    """
    idx = np.flatnonzero(sensor_resp > 0)
    grid = np.arange(sensor_wl[idx[0] - 1], sensor_wl[idx[-1] + 1] + step / 2, step)
    S = np.interp(grid, sensor_wl, sensor_resp)
    g = np.exp(-FOUR_LN2 * (grid[None] - hsi_wl[:, None]) ** 2 / hsi_fwhm[:, None] ** 2)
    phi = g / g.sum(axis=0)
    weights = (S[None] * phi).sum(axis=1) * step  # rectangle rule on the fine grid
    return weights @ spectra / (S.sum() * step)


def _s2a_b4_curve(shared):
    if shared is not None:
        d = json.loads((shared / "enmap_potsdam_tiles" / "sentinel2a_msi_srf.geojson").read_text())
        f = [f for f in d["features"] if f["properties"]["name"].startswith("B4 ")][0]
        return np.array(f["properties"]["response"]["x"], float), np.array(f["properties"]["response"]["y"], float)
    s = srf.load_sensor("sentinel2a_msi", bands=["B4"])
    return s.wavelengths, s.responses[0]


@pytest.fixture(scope="module")
def shared_or_none():
    from conftest import SHARED
    return SHARED if SHARED.is_dir() else None


def test_s2_b4_from_enmap_equals_direct_integration(ref, shared_or_none):
    """The bundled MSI's band B4 equals the S2A B4 curve integrated over each EnMAP spectrum.

    The MSI was written by the simulate engine; the integration is independent of it; within 1e-4 relative.
    """
    info, cube = ref
    wl, resp = _s2a_b4_curve(shared_or_none)
    good = info.good_bands
    spectra = cube[good].reshape(good.sum(), -1)
    direct = _bandpass_integral(wl, resp, info.wavelengths[good], info.fwhm[good], spectra)
    msi = open_raster(MSI)
    b4 = [i for i in range(1, msi.RasterCount + 1) if msi.GetRasterBand(i).GetDescription() == "B4"][0]
    sim = msi.GetRasterBand(b4).ReadAsArray().astype(np.float64).ravel()
    # Relative error on pixels with B4 >= 0.01 reflectance (100 raw); ~10 % are water pixels with B4 ~ 0
    # in the L2A product, where mixed-sign band values make a relative error meaningless: absolute there.
    ok = np.abs(direct) >= 100
    assert ok.mean() > 0.8
    rel = np.abs(sim[ok] - direct[ok]) / np.abs(direct[ok])
    print("S2A B4 max relative error vs direct integration:", rel.max())
    assert rel.max() < 1e-4, rel.max()
    assert np.abs(sim[~ok] - direct[~ok]).max() < 2e-3  # raw units, i.e. 2e-7 reflectance
    # Sanity against a different integration model: linear interpolation between EnMAP band centres.
    lin = np.array([np.trapz(resp * np.interp(wl, info.wavelengths[good], spectra[:, i]), wl)
                    for i in range(0, spectra.shape[1], 7)]) / np.trapz(resp, wl)
    assert np.median(np.abs(sim[::7] - lin) / np.maximum(np.abs(lin), 50)) < 2e-3


def test_uncovered_band_error_names_band_and_fraction(ref):
    info, _ = ref
    s = srf.load_sensor("sentinel2a_msi", bands=["B10"])
    with pytest.raises(WavelengthError, match=r"B10.*100\.0 %"):
        srf.srf_matrix(s, info.wavelengths, info.fwhm, info.good_bands)
    assert "B10" not in srf.covered_bands(srf.load_sensor("sentinel2a_msi"), info.wavelengths, info.fwhm,
                                          info.good_bands)
    # partly covered: cut the HSI at 660 nm -> B4 (647-683 nm) is partly missing
    cut = info.wavelengths < 660
    with pytest.raises(WavelengthError, match=r"band B4 .* % of its response"):
        srf.srf_matrix(srf.load_sensor("sentinel2a_msi", bands=["B4"]), info.wavelengths[cut], info.fwhm[cut])
    with pytest.raises(WavelengthError, match="no band wavelengths"):
        srf.srf_matrix(s, None)


def test_custom_srf_csv(tmp_path, ref):
    info, _ = ref
    p = tmp_path / "my.csv"
    p.write_text("# title: my camera\nwavelength,red,nir\n0.60,0,0\n0.62,1,0\n0.64,1,0\n0.66,0,0\n"
                 "0.80,0,0\n0.82,0,1\n0.84,0,0\n")
    s = srf.load_srf_csv(str(p))
    assert s.title == "my camera" and s.kind == "custom" and s.band_names == ("red", "nir")
    assert 600 < s.centres[0] < 660  # micrometres converted to nm
    R = srf.srf_matrix(s, info.wavelengths, info.fwhm, info.good_bands)
    np.testing.assert_allclose(R.sum(1), 1)
    bad = tmp_path / "order.csv"
    bad.write_text("wavelength,a\n500,0\n520,1\n510,0\n")
    with pytest.raises(WavelengthError, match="increasing"):
        srf.load_srf_csv(str(bad))
    neg = tmp_path / "neg.csv"
    neg.write_text("wavelength,a\n500,0\n510,-0.2\n520,1\n530,0\n")
    with pytest.raises(InputError, match="negative response"):
        srf.load_srf_csv(str(neg))
    outside = tmp_path / "out.csv"
    outside.write_text("wavelength,far\n2500,0\n2550,1\n2600,0\n")
    with pytest.raises(WavelengthError, match="band far"):
        srf.srf_matrix(srf.load_srf_csv(str(outside)), info.wavelengths, info.fwhm, info.good_bands)
    with pytest.raises(InputError, match="does not exist"):
        srf.load_srf_csv(str(tmp_path / "missing.csv"))


def test_overlapping_bands_not_double_counted():
    """Two interleaved band sets (like EnMAP's VNIR/SWIR overlap) with a flat-top sensor.

    The dense part must not get twice the weight of the sparse part.
    """
    wl = np.concatenate([np.arange(800, 1000, 10.0), np.arange(905, 1100, 10.0)])
    order = np.argsort(wl)
    wl = wl[order]
    fw = np.full(wl.size, 10.0)
    x = np.linspace(0, 1, 401)
    s = srf.Sensor("t", "t", ("b",), 850 + 200 * x, np.ones((1, x.size)), "custom", "test")
    R = srf.srf_matrix(s, wl, fw)
    ramp = wl.copy()  # spectrum = wavelength: the band value must be the response-weighted mean wavelength
    assert abs(R[0] @ ramp - 950.0) < 1.0


@pytest.mark.parametrize("step", [None, 1.0])
def test_coarse_and_fine_tables_integrate_the_whole_triangle(tmp_path, step):
    """Coarse and fine SRF tables are integrated over their whole support.

    A triangular response (0 at 500, 1 at 520, 0 at 600 nm), tabulated as the 3 corner rows or every
    1 nm: the band-pass is the linear interpolation of the table over its whole support, ramps to the
    zero samples included. Through dense narrow HSI bands, a spectrum equal to the wavelength (and to its
    square) must give the analytic mean (and second moment) of that triangle.
    """
    a, c, b = 500.0, 520.0, 600.0
    x = np.array([a, c, b]) if step is None else np.arange(a, b + step / 2, step)
    y = np.interp(x, [a, c, b], [0.0, 1.0, 0.0])
    p = tmp_path / "tri.csv"
    p.write_text("wavelength,tri\n" + "".join(f"{w:g},{v:.12g}\n" for w, v in zip(x, y)))
    sensor = srf.load_srf_csv(str(p))
    assert sensor.support(0) == (a, b)
    wl = np.arange(440.0, 661.0, 2.0)
    R = srf.srf_matrix(sensor, wl, np.full(wl.size, 2.0))[0]
    mean = (a + b + c) / 3  # triangular distribution
    var = (a * a + b * b + c * c - a * b - a * c - b * c) / 18
    assert R @ wl == pytest.approx(mean, abs=0.05)
    # the Gaussian partition of unity over 2-nm bands adds ~ spacing^2/12 of variance: 0.1 % of 467 nm^2
    assert R @ wl ** 2 - (R @ wl) ** 2 == pytest.approx(var, rel=2e-3)


@pytest.mark.parametrize("text,match", [
    ("band,centre,fwhm\nB1,560,abc\n", r"row 2 \(band B1\) holds a non-numeric centre or FWHM: '560', 'abc'"),
    ("band,centre,fwhm\nB1,560,30\nB2,665\n", r"row 3 has 2 value\(s\) \(B2,665\)"),
    ("band,centre,fwhm\nB1,560,1e9\n", r"row 2 \(band B1\): FWHM 1e9 nm must be > 0 and at most"),
    ("band,centre,fwhm\nB1,560,0\n", r"FWHM 0 nm must be > 0"),
    ("band,centre,fwhm\nB1,-5,20\n", r"centre -5 nm is outside"),
    ("band,centre,fwhm\n", r"no band rows"),
])
def test_centre_fwhm_file_errors_name_file_row_and_value(tmp_path, text, match):
    p = tmp_path / "cf.csv"
    p.write_text("# format: centre_fwhm\n" + text)
    with pytest.raises(InputError, match=match) as err:
        srf.load_srf_csv(str(p))
    assert str(p) in str(err.value)


def test_table_beyond_the_optical_range_is_refused(tmp_path):
    p = tmp_path / "far.csv"
    p.write_text("wavelength,a\n500,0\n550,1\n1e9,0\n")
    with pytest.raises(WavelengthError, match=r"wavelength 1e\+09 nm \(row 4\) is outside"):
        srf.load_srf_csv(str(p))
