"""Corpus training (engine/learning/corpus_training.py) on the bundled real EnMAP sample, with tiny budgets."""
import csv

import numpy as np
import pytest
import torch
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import Cancelled, CheckpointError, InputError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.io.windows import intersection
from hsifusion.engine.learning.checkpoint import load_checkpoint
from hsifusion.engine.learning.corpus_training import random_core, split_regions, val_cores
from rasterkit import REFERENCE, SAMPLE_HSI, SAMPLE_MSI, read, synthetic_pair, without_bad_band_list

TINY = dict(ratio=4, steps_per_epoch=1, patch_size=32, batch_size=1, validation=0.3, device="cpu",
            hyper={"width": 8}, max_val_patches=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    ck = str(tmp / "ssjcn.pt")
    fb = LogFeedback()
    out = api.train("ssjcn", ck, references=[str(REFERENCE)], epochs=2, feedback=fb, keep_window_log=True, **TINY)
    return ck, out, fb


def test_checkpoint_is_complete_and_plain(trained):
    ck, out, fb = trained
    p = torch.load(ck, weights_only=True)
    assert p["network"] == "ssjcn" and p["ratio"] == 4 and p["hsi_bands"] == 224 and p["msi_bands"] == 12
    assert len(p["hsi_wavelengths"]) == 224 and len(p["msi_wavelengths"]) == 12
    assert np.allclose(np.sum(p["srf"], axis=1), 1.0) and p["psf"]["fwhm_hr_px"] == pytest.approx(4.0)
    assert p["norm"]["hsi"] > 0 and p["norm"]["msi"] > 0 and p["plugin_version"]
    assert p["training"]["epochs"] == 2 and len(p["training"]["history"]) == 2
    assert p["training"]["sources"][0]["validation_axis"] == "columns"
    assert p["metrics"]["validation"]["psnr"] > 0 and p["metrics"]["validation"]["sam"] >= 0
    assert p["resume"]["iteration"] == 2 and "state" in p["resume"]["optimizer"]
    rows = list(csv.DictReader(open(out["LOG"])))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[-1]["val_psnr"]) > 0
    assert out["PLOT"] and open(out["PLOT"], "rb").read(4) == b"\x89PNG"
    assert any("epoch 2/2: train loss" in m and "validation loss" in m for m in fb.messages)


def test_reload_and_fuse_the_sample_pair(trained, tmp_path):
    ck, _, _ = trained
    res = api.fuse(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "f.tif"), "ssjcn",
                   {"checkpoint": ck, "device": "cpu"})
    assert res["mode"] == "checkpoint"
    out = read(res["OUTPUT"])
    assert out.shape == (224, 64, 128) and np.isfinite(out).all()


def test_mismatched_checkpoint_is_refused(trained, tmp_path):
    ck, _, _ = trained
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(8, 8), bands=10, msi_bands=3)
    with pytest.raises(CheckpointError, match="224 HSI bands, input has 10"):
        api.fuse(hsi, msi, str(tmp_path / "o.tif"), "ssjcn", {"checkpoint": ck, "device": "cpu"})
    with pytest.raises(CheckpointError, match="network is ssjcn, not cofusion"):
        api.train("cofusion", str(tmp_path / "c.pt"), references=[str(REFERENCE)], resume=ck, epochs=3, **TINY)


def test_resume_continues_the_epoch_count(trained, tmp_path):
    ck, _, _ = trained
    ck2 = str(tmp_path / "more.pt")
    out = api.train("ssjcn", ck2, references=[str(REFERENCE)], resume=ck, epochs=3, **TINY)
    p = load_checkpoint(ck2)
    assert out["ITERATIONS"] == 3 and p["training"]["epochs"] == 3
    assert [h["epoch"] for h in p["training"]["history"]] == [1, 2, 3]
    assert p["norm"] == load_checkpoint(ck)["norm"]
    with pytest.raises(InputError, match="already holds 3 epoch"):
        api.train("ssjcn", str(tmp_path / "x.pt"), references=[str(REFERENCE)], resume=ck2, epochs=3, **TINY)


def test_validation_windows_never_overlap_training_reads(trained):
    _, out, _ = trained
    src = out["SOURCES"][0]
    assert out["VALIDATION_WINDOWS"] and out["TRAIN_WINDOWS"]
    rng = np.random.default_rng(0)
    reads = [c.pad(src.margin) for _, c in out["TRAIN_WINDOWS"]]
    reads += [random_core(src, out["PATCH_SIZE"], 4, rng).pad(src.margin) for _ in range(500)]
    for _, v in out["VALIDATION_WINDOWS"]:
        assert all(intersection(v, t).empty for t in reads)
    # pure geometry on another raster shape: rows held out when taller than wide
    src.region = src.region.__class__(0, 0, 64, 200)
    split_regions(src, 0.25, 4)
    assert src.val_axis == "rows" and src.train.row_end + src.margin <= src.val.row
    assert all(intersection(c, src.train).empty for c in val_cores(src, 32, 100))


def test_cancel_keeps_the_last_weights(tmp_path):
    ck = str(tmp_path / "c.pt")
    fb = LogFeedback(cancel_after_progress=40.0)
    par = dict(TINY, steps_per_epoch=2)
    with pytest.raises(Cancelled):
        api.train("ssjcn", ck, references=[str(REFERENCE)], epochs=1, feedback=fb, **par)
    p = load_checkpoint(ck)
    assert p["training"]["interrupted"] and p["resume"]["iteration"] == 1 and p["resume"]["epochs_done"] == 0
    out = api.train("ssjcn", ck, references=[str(REFERENCE)], resume=ck, epochs=1, **par)
    assert out["ITERATIONS"] == 2 and load_checkpoint(ck)["training"]["epochs"] == 1


def test_real_pair_mode_and_bad_requests(tmp_path):
    ck = str(tmp_path / "p.pt")
    out = api.train("ssjcn", ck, pairs=[(str(SAMPLE_HSI), str(SAMPLE_MSI))], epochs=1,
                    **dict(TINY, ratio=None, patch_size=16, validation=0.0))
    p = load_checkpoint(ck)
    assert out["MODE"].startswith("real pairs") and p["ratio"] == 4 and p["srf"] is None
    with pytest.raises(InputError, match="unsupervised"):
        api.train("uds2c2", ck, references=[str(REFERENCE)])
    with pytest.raises(InputError, match="not both"):
        api.train("ssjcn", ck, references=[str(REFERENCE)], pairs=[(str(SAMPLE_HSI), str(SAMPLE_MSI))])
    with pytest.raises(InputError, match="PATCH_SIZE"):
        api.train("ssjcn", ck, references=[str(REFERENCE)], epochs=1, **dict(TINY, patch_size=128))


def test_bands_without_data_and_no_bad_band_list_are_left_out(trained, tmp_path):
    """A reference / LR-HSI whose bad bands are nodata everywhere, without a bad-band list, trains as if flagged."""
    ref = without_bad_band_list(REFERENCE, tmp_path / "ref_unflagged.tif")
    fb = LogFeedback()
    api.train("ssjcn", str(tmp_path / "r.pt"), references=[ref], epochs=1, feedback=fb, **TINY)
    assert np.allclose(load_checkpoint(str(tmp_path / "r.pt"))["srf"], load_checkpoint(trained[0])["srf"])
    assert any("hold no valid value" in w and "left out of training" in w for w in fb.warnings)
    hsi = without_bad_band_list(SAMPLE_HSI, tmp_path / "hsi_unflagged.tif")
    out = api.train("ssjcn", str(tmp_path / "p.pt"), pairs=[(hsi, str(SAMPLE_MSI))], epochs=1,
                    **dict(TINY, ratio=None, patch_size=16, validation=0.0))
    assert out["ITERATIONS"] == 1


def test_a_band_without_data_in_one_pair_is_left_out_of_every_pair(tmp_path):
    """Else the band would be trained towards 0 on that pair's patches and towards its data on the others'."""
    from hsifusion.engine.learning.corpus_training import _pair_sources

    holed = gdal.Translate(str(tmp_path / "hsi_holed.tif"), str(SAMPLE_HSI))
    holed.GetRasterBand(11).Fill(holed.GetRasterBand(11).GetNoDataValue())
    holed = None
    fb = LogFeedback()
    pairs = [(str(SAMPLE_HSI), str(SAMPLE_MSI)), (str(tmp_path / "hsi_holed.tif"), str(SAMPLE_MSI))]
    sources, *_ = _pair_sources(pairs, None, None, None, fb)
    first, second = (src.good for src in sources)
    assert np.array_equal(first, second) and not first[10] and first.sum() == second.sum()
    assert any("band(s) 11 (" in w and "in every pair" in w for w in fb.warnings)
