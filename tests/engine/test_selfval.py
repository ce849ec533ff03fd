"""Self-validation at the reduced scale (engine/quality/selfval.py) and the reduced-scale injection gains.

* the reduced pair is the LR-HSI and the MSI degraded once more (against an independent dense PSF);
* the scores match independent formulas (scikit-image's PSNR, arccos SAM);
* the MMSE gain never raises a band's error above the base's, and recovers a known gain;
* on the bundled sample, every classical method with its default (reduced-scale) gains is, band by
  band, no worse than bicubic on the reduced pair it was fitted on;
* ``validate`` + ``rank`` order candidates by PSNR then SAM.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classical_pair import SAMPLE_HSI, SAMPLE_MSI, gaussian_degrade
from hsifusion.engine.errors import InputError, OutputError
from hsifusion.engine.methods import _kernels as cm
from hsifusion.engine.methods import get_method
from hsifusion.engine.quality import selfval

CLASSICAL = ["gsa", "glp", "sfim", "cnmf"]
FAST = {"cnmf": {"endmembers": 10, "iterations": 60}}


@pytest.fixture(scope="module")
def scene():
    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.scene import build_scene

    return build_scene(validate_pair(raster_info(str(SAMPLE_HSI)), raster_info(str(SAMPLE_MSI))))


def test_reduce_pair_against_dense_psf():
    rng = np.random.default_rng(1)
    r = 3
    lr = rng.random((5, 13, 10)).astype(np.float32)  # 13 x 10 -> cropped to 12 x 9
    hr = rng.random((2, 39, 30)).astype(np.float32)
    p = selfval.reduce_pair(lr, hr, r, mtf_gain=cm.FWHM_GAIN)
    extra = cm.psf_taps(r, cm.mtf_sigma(r, cm.FWHM_GAIN))[1]
    assert p.target.shape == (5, 12, 9) and p.lr.shape == (5, 4, 3) and p.hr.shape == (2, 12, 9)
    np.testing.assert_array_equal(p.target, lr[:, :12, :9])
    np.testing.assert_allclose(p.lr, gaussian_degrade(lr[:, :12, :9], r, float(r), extra), atol=1e-5)
    np.testing.assert_allclose(p.hr, gaussian_degrade(hr[:, :36, :27], r, float(r), extra), atol=1e-5)
    with pytest.raises(InputError, match="too small"):
        selfval.reduce_pair(lr[:, :5, :5], hr[:, :15, :15], r)
    with pytest.raises(InputError, match="is not 3 x"):
        selfval.reduce_pair(lr, hr[:, :30], r)


def test_score_matches_independent_formulas():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(2)
    t = rng.random((4, 6, 6)) + 0.5
    e = t + 0.05 * rng.standard_normal(t.shape)
    p = selfval.ReducedPair(lr=t[:, ::2, ::2], hr=t[:2], target=t.astype(np.float32), valid=np.ones((6, 6), bool),
                            good=np.array([True, True, False, True]), ratio=2)
    s = selfval.score(e, p)
    t32 = t.astype(np.float32).astype(np.float64)
    for b in (0, 1, 3):
        assert s.psnr_bands[b] == pytest.approx(peak_signal_noise_ratio(t32[b], e[b], data_range=t32[b].max()),
                                                abs=1e-6)
    assert np.isnan(s.psnr_bands[2])
    g = [0, 1, 3]
    cos = (t32[g] * e[g]).sum(0) / np.linalg.norm(t32[g], axis=0) / np.linalg.norm(e[g], axis=0)
    assert s.sam == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), abs=1e-4)


def test_injection_gains_recover_and_never_hurt():
    rng = np.random.default_rng(3)
    base = rng.random((3, 20, 20))
    d = rng.standard_normal((3, 20, 20))
    noise = 0.01 * rng.standard_normal((3, 20, 20))
    target = base + np.array([0.7, -0.5, 5.0])[:, None, None] * d + noise
    valid = np.ones((20, 20), bool)
    g = selfval.injection_gains(base, d, target, valid)
    assert g[0] == pytest.approx(0.7, abs=0.01)
    assert g[1] == 0.0  # detail anti-correlated with what is missing: shrunk to interpolation
    assert g[2] == selfval.GAIN_MAX
    for b in range(3):
        assert ((base[b] + g[b] * d[b] - target[b]) ** 2).sum() <= ((base[b] - target[b]) ** 2).sum()


@pytest.mark.parametrize("method", CLASSICAL)
def test_reduced_scale_gains_no_band_worse_than_bicubic(scene, method):
    """Fitted on the full pair, applied to the reduced crop its gains were fitted on: per band MSE <= bicubic."""
    m = get_method(method, **FAST.get(method, {}))
    m.fit(scene)
    s = m.sample(scene)
    r = scene.ratio
    p = selfval.reduce_pair(s.lr, s.hr, r, s.lr_valid, s.good, m.mtf_gain)
    inner = p.valid.copy()
    inner[:r], inner[-r:], inner[:, :r], inner[:, -r:] = False, False, False, False
    p.valid = inner if inner.sum() >= 16 else p.valid
    margin = m.margin(r)  # the context the gains were fitted with (the tile loop's mirror at an edge)
    est = selfval.score(selfval.apply_mirrored(m, p.lr, p.hr, r), p)
    bic = selfval.score(selfval.apply_mirrored(get_method("upsample", mode="bicubic"), p.lr, p.hr, r,
                                               margin_hr=margin), p)
    good = s.good
    assert np.all(est.mse[good] <= bic.mse[good] * (1 + 1e-4) + 1e-9), np.flatnonzero(est.mse > bic.mse)
    assert est.psnr > bic.psnr  # and the pair's detail does help on this sample


def test_validate_and_rank(scene):
    rows = selfval.validate(scene, [("upsample", get_method("upsample", mode="bicubic")),
                                    ("glp", get_method("glp")), ("nearest", get_method("upsample", mode="nearest"))])
    assert [r["method"] for r in rows] == ["upsample", "glp", "nearest"]
    assert all(np.isfinite(r["PSNR"]) and r["seconds"] >= 0 for r in rows)
    ranked = selfval.rank(rows + [{"method": "broken", "error": "InputError: x"}])
    assert ranked[-1]["method"] == "broken"
    psnrs = [r["PSNR"] for r in ranked[:-1]]
    assert psnrs == sorted(psnrs, reverse=True) and ranked[0]["method"] == "glp"
    tie = selfval.rank([{"method": "a", "PSNR": 30.001, "SAM": 3.0}, {"method": "b", "PSNR": 30.0, "SAM": 2.0}])
    assert [r["method"] for r in tie] == ["b", "a"]  # equal to 0.01 dB: the smaller angle wins


def _write_like(path, data, template, pixel_factor):
    """GeoTIFF of ``data`` on ``template``'s grid with the pixel ``pixel_factor`` times larger."""
    from osgeo import gdal

    t = gdal.Open(str(template))
    gt = list(t.GetGeoTransform())
    gt[1] *= pixel_factor
    gt[5] *= pixel_factor
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0],
                                              gdal.GDT_Float32)
    ds.SetGeoTransform(gt)
    ds.SetProjection(t.GetProjection())
    for i in range(data.shape[0]):
        b, tb = ds.GetRasterBand(i + 1), t.GetRasterBand(i + 1)
        b.WriteArray(data[i])
        b.SetMetadata(tb.GetMetadata())
        b.SetScale(tb.GetScale() or 1.0)
        b.SetOffset(tb.GetOffset() or 0.0)
        if tb.GetNoDataValue() is not None:
            b.SetNoDataValue(tb.GetNoDataValue())
    ds = None
    return str(path)


def test_fuse_auto_picks_what_the_reduced_scale_ranks_first(tmp_path):
    """Independent ranking.

    The reduced pair written as rasters (dense PSF), each candidate fused by api.fuse and scored by api.assess
    against the LR-HSI; fuse auto must choose the best of these.
    """
    import json

    from osgeo import gdal

    from hsifusion.engine import api
    from hsifusion.engine.auto import TABLE_KEY

    r = 4
    lr = gdal.Open(str(SAMPLE_HSI)).ReadAsArray().astype(np.float32)
    hr = gdal.Open(str(SAMPLE_MSI)).ReadAsArray().astype(np.float32)
    extra = cm.psf_taps(r, cm.mtf_sigma(r, cm.DEFAULT_MTF_GAIN))[1]
    fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0)) * cm.mtf_sigma(r, cm.DEFAULT_MTF_GAIN)
    red_hsi = _write_like(tmp_path / "red_hsi.tif", gaussian_degrade(lr, r, fwhm, extra), SAMPLE_HSI, r)
    red_msi = _write_like(tmp_path / "red_msi.tif", gaussian_degrade(hr, r, fwhm, extra), SAMPLE_MSI, r)
    candidates = ["upsample", "gsa", "glp", "sfim"]
    psnr = {}
    for m in candidates:
        out = tmp_path / f"red_{m}.tif"
        api.fuse(red_hsi, red_msi, str(out), m, {"mode": "bicubic"} if m == "upsample" else {})
        psnr[m] = api.assess(str(SAMPLE_HSI), str(out), r)["PSNR"]
    res = api.fuse_auto(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "auto.tif"), candidates,
                        out_table=str(tmp_path / "t.csv"), out_report=str(tmp_path / "t.html"))
    assert res["CHOSEN"] == max(psnr, key=psnr.get), (res["TABLE"], psnr)
    table = json.loads(gdal.Open(res["OUTPUT"]).GetMetadataItem(TABLE_KEY))
    assert [row["method"] for row in table] == [row["method"] for row in res["TABLE"]]
    assert table[0]["method"] == res["CHOSEN"] and sorted(row["method"] for row in table) == sorted(candidates)
    for row in table:  # the table's PSNRs agree with the independent ones
        assert row["PSNR"] == pytest.approx(psnr[row["method"]], abs=0.1)
    assert (tmp_path / "t.csv").read_text().splitlines()[1].startswith(f"1,{res['CHOSEN']},")
    assert res["CHOSEN"] in (tmp_path / "t.html").read_text()
    meta = json.loads(gdal.Open(res["OUTPUT"]).GetMetadataItem("HSIFUSION_METHOD"))
    assert meta["method"] == res["CHOSEN"]


def test_fuse_auto_bad_input(tmp_path):
    from hsifusion.engine import api

    with pytest.raises(InputError, match="unknown candidate"):
        api.fuse_auto(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "o.tif"), ["gsa", "nope"])
    with pytest.raises(InputError, match="time budget"):
        api.fuse_auto(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "o.tif"), ["gsa", "ssjcn"])
    with pytest.raises(OutputError, match="same file"):
        api.fuse_auto(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "o.tif"), out_table=str(tmp_path / "t"),
                      out_report=str(tmp_path / "t"))
    with pytest.raises(OutputError, match="inputs"):
        api.fuse_auto(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "o.tif"), out_table=str(SAMPLE_MSI))
    assert not list(tmp_path.iterdir())


def test_cli_fuse_auto(tmp_path, capsys):
    import json

    from hsifusion.engine.cli import main

    out = tmp_path / "o.tif"
    assert main(["fuse", "auto", "--hsi", str(SAMPLE_HSI), "--msi", str(SAMPLE_MSI), "-o", str(out),
                 "--candidates", "upsample,glp", "-q"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["CHOSEN"] == "glp" and out.exists()
    assert main(["fuse", "gsa", "--hsi", str(SAMPLE_HSI), "--msi", str(SAMPLE_MSI), "-o", str(tmp_path / "g.tif"),
                 "--candidates", "gsa"]) == 1


def test_glp_auto_weights_keep_the_better_at_the_reduced_scale(scene):
    scores = {}
    for mode in ("nonneg", "free"):
        m = get_method("glp", weights=mode)
        m.fit(scene)
        scores[mode] = m.reduced_score.psnr
    auto = get_method("glp", weights="auto")
    auto.fit(scene)
    assert auto.chosen_weights == max(scores, key=scores.get)
    assert auto.describe()["weights_chosen"] == auto.chosen_weights


def test_fuse_auto_network_candidate_within_its_budget(tmp_path):
    """The network hook: a network is scored on the reduced pair within NETWORK_SECONDS like any method."""
    pytest.importorskip("torch")
    import time

    from hsifusion.engine import api

    t0 = time.perf_counter()
    res = api.fuse_auto(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "o.tif"), ["upsample", "uds2c2"],
                        network_seconds=0.5)
    rows = {r["method"]: r for r in res["TABLE"]}
    assert set(rows) == {"upsample", "uds2c2"} and res["TABLE"][0]["method"] == res["CHOSEN"]
    net = rows["uds2c2"]  # scored, or stopped at twice its budget (UDS2C2's default 300 iterations take longer)
    assert np.isfinite(net.get("PSNR", np.nan)) or "time budget" in net["error"]
    assert net["seconds"] < 30 and time.perf_counter() - t0 < 120
