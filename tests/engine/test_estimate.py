"""Blind SRF/PSF estimation (engine/sensors/blind_srf_psf.py).

On a pair simulated from real EnMAP with the real Sentinel-2A SRF and a known Gaussian PSF.
"""
import numpy as np
import pytest

from hsifusion.engine import api
from hsifusion.engine.errors import InputError
from hsifusion.engine.io.raster import raster_info
from hsifusion.engine.sensors import srf
from rasterkit import REFERENCE, without_bad_band_list

TRUE_FWHM = 5.0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("est")
    lr, msi = str(tmp / "lr.tif"), str(tmp / "msi.tif")
    api.simulate(str(REFERENCE), lr, msi, 4, psf={"kind": "gaussian", "fwhm": TRUE_FWHM}, sensor="sentinel2a_msi")
    return tmp, lr, msi


@pytest.fixture(scope="module")
def estimated(simulated):
    tmp, lr, msi = simulated
    return api.estimate_srf_psf(lr, msi, str(tmp / "srf.csv"))


def _true_srf(lr, msi):
    li, mi = raster_info(lr), raster_info(msi)
    sens = srf.load_sensor("sentinel2a_msi").select(mi.band_names)   # the real ESA S2A responses
    return srf.srf_matrix(sens, li.wavelengths, li.fwhm, li.good_bands), li.good_bands


def test_srf_correlates_with_the_true_one(simulated, estimated):
    _, lr, msi = simulated
    true, good = _true_srf(lr, msi)
    est = np.asarray(estimated["SRF"])
    cc = [np.corrcoef(est[k, good], true[k, good])[0, 1] for k in range(true.shape[0])]
    assert min(cc) > 0.95, np.round(cc, 3)
    assert np.allclose(est.sum(1), 1.0) and (est >= 0).all() and (est[:, ~good] == 0).all()
    assert np.allclose(estimated["GAIN"], 1.0, atol=0.02)


def test_psf_fwhm_within_15_percent(estimated):
    assert abs(estimated["FWHM"] - TRUE_FWHM) / TRUE_FWHM < 0.15
    assert estimated["PHASE"] == [0, 0]


def test_csv_is_a_custom_srf_usable_by_simulate(simulated, estimated, tmp_path):
    _, lr, msi = simulated
    sens = srf.load_srf_csv(estimated["OUTPUT_SRF"])
    assert sens.band_names == raster_info(msi).band_names
    true, good = _true_srf(lr, msi)
    li = raster_info(lr)
    again = srf.srf_matrix(sens, li.wavelengths, li.fwhm, good)
    cc = [np.corrcoef(again[k, good], true[k, good])[0, 1] for k in range(true.shape[0])]
    assert min(cc) > 0.9, np.round(cc, 3)
    out = api.simulate(str(REFERENCE), None, str(tmp_path / "m.tif"), 4, srf_file=estimated["OUTPUT_SRF"])
    assert len(out["BANDS"]) == 12
    report = open(estimated["OUTPUT_REPORT"]).read()
    assert "FWHM" in report and "B8A" in report


def test_fixed_fwhm_and_bad_input(simulated, tmp_path):
    _, lr, msi = simulated
    res = api.estimate_srf_psf(lr, msi, str(tmp_path / "s.csv"), fwhm=TRUE_FWHM, search_phase=False)
    assert res["FWHM"] == TRUE_FWHM
    with pytest.raises(InputError, match="SMOOTHNESS"):
        api.estimate_srf_psf(lr, msi, str(tmp_path / "s.csv"), smoothness=-1)


def test_bands_without_data_and_no_bad_band_list_are_left_out(simulated, estimated, tmp_path):
    """The simulated LR-HSI with its bad-band list removed (bad bands are nodata everywhere) estimates the same."""
    _, lr, msi = simulated
    unflagged = without_bad_band_list(lr, tmp_path / "lr_unflagged.tif")
    assert raster_info(unflagged).good_flags.all()
    again = api.estimate_srf_psf(unflagged, msi, str(tmp_path / "srf.csv"))
    assert again["FWHM"] == pytest.approx(estimated["FWHM"], abs=1e-6)
    assert np.allclose(again["SRF"], estimated["SRF"], atol=1e-9)
