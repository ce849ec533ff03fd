"""hsifusion:estimate_srf_psf through QGIS Processing on the bundled simulated pair."""
import pytest

from hsifusion.engine.sensors.srf import load_srf_csv
from rasterkit import SAMPLE_HSI, SAMPLE_MSI


def test_estimate_via_processing(run_alg, tmp_path):
    out = str(tmp_path / "srf.csv")
    res = run_alg("hsifusion:estimate_srf_psf", {"HSI": str(SAMPLE_HSI), "MSI": str(SAMPLE_MSI),
                                                 "SEARCH_PHASE": False, "OUTPUT_SRF": out})
    assert res["OUTPUT_SRF"] == out and res["OUTPUT_REPORT"].endswith("_report.txt")
    assert res["FWHM_HR_PX"] == pytest.approx(4.0, rel=0.15)   # the sample was simulated with FWHM 4
    assert load_srf_csv(out).bands == 12
