"""Hostile inputs, validity: GDAL masks (.msk, internal, alpha) and bands without a single valid pixel.

Each case: the fused output equals the fusion of the same data with the masked pixels written as nodata
(or the empty band flagged bad), or a typed error naming the problem; CLI and engine API.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import NoValidDataError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.io.pair import validate_pair
from hsifusion.engine.io.raster import raster_info
from hsifusion.engine.io.scene import build_scene
from rasterkit import make_raster, read, synthetic_pair

from .inputs_kit import assert_cli_error, with_alpha, with_mask

NODATA = -9999.0
MSI_GT = (1000.0, 30.0, 0.0, 2000.0, 0.0, -30.0)


@pytest.fixture()
def pair(tmp_path):
    """12-band LR-HSI (8x10 px, nodata -9999) and a 3-band HR-MSI at ratio 4; (hsi, msi, hr valid)."""
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(8, 10), bands=12, msi_bands=3, nodata=NODATA)
    valid = np.ones((32, 40), bool)
    valid[5:14, 7:22] = False
    valid[30:, :] = False
    return hsi, msi, valid


def msi_as_nodata(tmp_path, msi, valid) -> str:
    """The control: the same MSI with the masked pixels written as nodata values."""
    data = read(msi)
    data[:, ~valid] = NODATA
    return make_raster(tmp_path / "msi_nodata.tif", data, MSI_GT, nodata=NODATA)


def fuse(hsi, msi, out, method="gsa"):
    api.fuse(hsi, msi, str(out), method, tile_size=16)
    return read(out)


@pytest.mark.parametrize("internal", [False, True], ids=["msk-file", "internal-mask"])
def test_msi_dataset_mask_pixels_are_nodata_not_fused(tmp_path, pair, internal):
    hsi, msi, valid = pair
    with_mask(msi, valid, internal)
    assert Path(msi + ".msk").exists() != internal
    info = raster_info(msi)
    assert info.mask_kind == "dataset mask" and info.bands == 3
    got = fuse(hsi, msi, tmp_path / "masked.tif")
    want = fuse(hsi, msi_as_nodata(tmp_path, msi, valid), tmp_path / "control.tif")
    assert (got[:, ~valid] == NODATA).all() and (got[:, valid] != NODATA).all()
    np.testing.assert_array_equal(got, want)  # same data, same validity, same tiles: same arithmetic


def test_msi_alpha_band_is_a_mask_not_a_spectral_band(tmp_path, pair, cli_run):
    hsi, msi, valid = pair
    data = np.round(read(msi) * 1000).astype(np.uint16)
    alpha = with_alpha(str(tmp_path / "alpha.tif"), data, valid, MSI_GT)
    info = raster_info(alpha)
    assert (info.bands, info.alpha_bands, info.mask_kind) == (3, (4,), "alpha band")
    code, out, err = cli_run("fuse", "gsa", "--hsi", hsi, "--msi", alpha, "-o", tmp_path / "a.tif",
                             "--tile-size", 16)
    assert code == 0, err
    assert "alpha band(s) 4 left out of the spectral bands" in err  # the CLI user's warning
    plain = make_raster(tmp_path / "plain.tif", np.where(valid, data, NODATA).astype(np.float32), MSI_GT,
                        nodata=NODATA)
    want = fuse(hsi, plain, tmp_path / "control.tif")
    got = read(tmp_path / "a.tif")
    assert got.shape == (12, 32, 40)
    np.testing.assert_array_equal(got, want)


def test_hsi_alpha_band_is_left_out_of_the_output_bands(tmp_path, pair):
    hsi, msi, _ = pair
    lr = read(hsi)
    valid = np.ones(lr.shape[1:], bool)
    valid[0, :3] = False
    data = np.round(lr * 1000).astype(np.uint16)
    alpha = with_alpha(str(tmp_path / "hsi_alpha.tif"), data, valid, (1000.0, 120.0, 0.0, 2000.0, 0.0, -120.0))
    res = api.fuse(alpha, msi, str(tmp_path / "o.tif"), "upsample", {"mode": "nearest"},
                   hsi_wavelengths=list(np.linspace(450, 2400, 12)))
    out = read(res["OUTPUT"])
    assert out.shape[0] == 12  # 12 spectral bands, not 13
    nodata = raster_info(res["OUTPUT"]).nodata
    assert (out[:, :4, :12] == nodata).all()  # LR pixels (0, 0..2) transparent -> their 4x4 HR blocks
    np.testing.assert_array_equal(out[:, 4:, :], data.astype(np.float32).repeat(4, 1).repeat(4, 2)[:, 4:, :])


def test_one_all_nodata_hsi_band_becomes_a_bad_band(tmp_path, pair, cli_run):
    hsi, msi, _ = pair
    ds = gdal.Open(hsi, gdal.GA_Update)
    ds.GetRasterBand(3).Fill(NODATA)
    ds = None
    code, out, err = cli_run("fuse", "gsa", "--hsi", hsi, "--msi", msi, "-o", tmp_path / "o.tif",
                             "--tile-size", 16)
    assert code == 0, err
    assert any("HSI band(s) 3" in line and "treated as bad bands" in line for line in err.splitlines())
    got = read(tmp_path / "o.tif")
    assert (got[2] == NODATA).all() and (got[np.arange(12) != 2] != NODATA).all()
    fb = LogFeedback()  # the engine API with a feedback: the warning goes to the run's log
    scene = build_scene(validate_pair(raster_info(hsi), raster_info(msi)), fb)
    assert np.flatnonzero(~scene.pair.hsi.good_bands).tolist() == [2]
    assert any("HSI band(s) 3 (band 3, " in w for w in fb.warnings), fb.warnings
    # control: the same file with band 3 flagged bad (ENVI bbl = 0) up front
    flagged = str(tmp_path / "flagged.tif")
    gdal.Translate(flagged, hsi)
    ds = gdal.Open(flagged, gdal.GA_Update)
    ds.GetRasterBand(3).SetMetadataItem("bbl", "0")
    ds = None
    np.testing.assert_array_equal(got, fuse(flagged, msi, tmp_path / "control.tif"))


def test_all_hsi_bands_nodata_is_a_typed_error(tmp_path, pair, cli_run):
    hsi, msi, _ = pair
    ds = gdal.Open(hsi, gdal.GA_Update)
    for b in range(1, 13):
        ds.GetRasterBand(b).Fill(NODATA)
    ds = None
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, ["fuse", "gsa", "--hsi", hsi, "--msi", msi, "-o", out], "holds no valid pixel",
                     hsi, output=out)
    with pytest.raises(NoValidDataError):
        api.fuse(hsi, msi, str(out), "upsample")


def test_an_all_nodata_msi_band_is_named(tmp_path, pair, cli_run):
    hsi, _, _ = pair
    data = read(pair[1])
    data[1] = NODATA
    msi = make_raster(tmp_path / "msi_b2.tif", data, MSI_GT, nodata=NODATA)
    out = tmp_path / "o.tif"
    assert_cli_error(cli_run, ["fuse", "gsa", "--hsi", hsi, "--msi", msi, "-o", out],
                     "holds no valid pixel in the overlap: band(s) 2 hold no valid value there", output=out)


def test_an_all_nodata_msi_band_is_named_by_every_path_reading_a_pair(tmp_path, pair):
    """Estimating the responses, the no-reference assessment and training from pairs name it too (as fuse does)."""
    hsi, _, _ = pair
    data = read(pair[1])
    data[1] = NODATA
    msi = make_raster(tmp_path / "msi_b2.tif", data, MSI_GT, nodata=NODATA)
    named = r"MSI .*msi_b2.tif: band\(s\) 2 \(.*hold no valid value"
    with pytest.raises(NoValidDataError, match=named):
        api.estimate_srf_psf(hsi, msi, str(tmp_path / "srf.csv"))
    estimate = str(tmp_path / "estimate.tif")
    api.fuse(hsi, pair[1], estimate, "upsample")
    with pytest.raises(NoValidDataError, match=named):
        api.assess(None, estimate, None, lr_hsi=hsi, msi=msi)
    with pytest.raises(NoValidDataError, match=named):
        api.train("ssjcn", str(tmp_path / "w.pt"), pairs=[(hsi, msi)], epochs=1, steps_per_epoch=1, patch_size=4,
                  batch_size=1, validation=0.0, device="cpu", hyper={"width": 8})
    assert not list(tmp_path.glob("srf*")) and not list(tmp_path.glob("w.pt*"))
