"""Networks anchored on a classical base (engine/methods/anchored.py).

Held-out split and scores, the validated loop, the fallback to the base, radiometry on a mismatched pair, the time
budget, and quality on the bundled sample against its reference.
"""
import math
import time

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import InputError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.learning.loops import optimise_validated, robust_range
from hsifusion.engine.methods import anchored, get_method
from hsifusion.engine.methods.network import NetworkMethod
from rasterkit import REFERENCE, SAMPLE_HSI, SAMPLE_MSI, make_raster, read, synthetic_pair

FAST = {"ssjcn": {"iterations": 3}, "uds2c2": {"iterations": 30}}
SLOW = {"cofusion": {"iterations": 2, "hyper": {"lite": True}}, "amsfnet": {"iterations": 2},
        "umsft": {"iterations": 2, "hyper": {"lite": True, "init_steps": 2}}}


def sam_deg(x: np.ndarray, r: np.ndarray) -> float:
    dot = (x * r).sum(0)
    n = np.linalg.norm(x, axis=0) * np.linalg.norm(r, axis=0)
    return float(np.degrees(np.arccos(np.clip(dot[n > 0] / n[n > 0], -1, 1))).mean())


def psnr(x: np.ndarray, r: np.ndarray) -> float:
    """Mean per-band PSNR with the reference band's maximum as peak (written apart from engine/metrics)."""
    mse = ((x.astype(np.float64) - r) ** 2).mean(axis=(1, 2))
    return float(np.mean(10 * np.log10(r.max(axis=(1, 2)).astype(np.float64) ** 2 / mse)))


# ----------------------------------------------------------------------------------- pure pieces
def test_split_holdout_is_disjoint_aligned_and_complete():
    y = np.arange(3 * 10 * 20, dtype=np.float32).reshape(3, 10, 20)
    z = np.arange(2 * 20 * 40, dtype=np.float32).reshape(2, 20, 40)
    (yt, zt), (yv, zv) = anchored.split_holdout(y, z, 2)
    assert yt.shape[2] % 2 == 0 and yv.shape[2] % 2 == 0 and yv.shape[2] >= 2
    assert zt.shape[2] == 2 * yt.shape[2] and zv.shape[2] == 2 * yv.shape[2]
    np.testing.assert_array_equal(np.concatenate([yt, yv], axis=2), y)
    np.testing.assert_array_equal(np.concatenate([zt, zv], axis=2), z)
    assert 0.15 <= yv.shape[2] / y.shape[2] <= 0.35
    with pytest.raises(InputError, match="too small to hold out"):
        anchored.split_holdout(y[:, :2, :2], z[:, :4, :4], 2)


def test_heldout_score_is_the_smaller_of_mse_and_sam_gains():
    rng = np.random.default_rng(0)
    target = rng.random((5, 8, 8)) + 1.0
    noise = rng.normal(0, 0.05, target.shape)
    base, better = target + 2 * noise, target + noise
    good = np.ones(5, bool)
    mse_gain = 10 * math.log10(np.mean((base - target) ** 2) / np.mean((better - target) ** 2))
    sam_gain = 10 * math.log10(sam_deg(base, target) / sam_deg(better, target))
    assert mse_gain == pytest.approx(10 * math.log10(4), abs=1e-9)
    assert anchored.heldout_gain_db(better, base, target, good) == pytest.approx(min(mse_gain, sam_gain), rel=1e-6)
    assert anchored.heldout_gain_db(base, base, target, good) == 0.0
    assert anchored.heldout_gain_db(base, better, target, good) < 0
    # a uniform scale error keeps every angle: no SAM gain, so no gain at all
    assert anchored.heldout_gain_db(target * 1.01, target * 1.01, target, good) == 0.0


@pytest.mark.parametrize("true_gain", [0.3, -0.5, 2.0])
def test_blend_gain_is_the_clipped_least_squares_fit(true_gain):
    rng = np.random.default_rng(1)
    base, net = rng.random((4, 6, 6)), rng.random((4, 6, 6))
    target = base + true_gain * (net - base) + rng.normal(0, 0.01, base.shape)
    d = (net - base).reshape(-1, 1)
    expected = np.linalg.lstsq(d, (target - base).ravel(), rcond=None)[0][0]
    assert anchored.blend_gain(net, base, target) == pytest.approx(min(max(expected, 0.0), 1.0), abs=1e-9)
    assert anchored.blend_gain(base, base, target) == 0.0


def test_robust_range_maps_percentiles_to_unit_interval():
    rng = np.random.default_rng(2)
    a = rng.random(10000) * 3000 + 500
    offset, scale = robust_range(a)
    n = (a - offset) / scale
    assert np.mean(n < 0) == pytest.approx(0.001, abs=5e-4) and np.mean(n > 1) == pytest.approx(0.001, abs=5e-4)
    assert robust_range(np.full(5, 7.0)) == (7.0, 7.0)


def test_inference_load_counts_cores_margins_and_edges():
    class M:
        def align(self, r):
            return 4

        def margin(self, r):
            return 64

        def min_hr_size(self, r):
            return 16

        def preferred_tile(self, r):  # the tile TILE_SIZE 0 (automatic, inference_load's default) takes
            return 256

    # one 128x64 tile: 16 px of mirrored context at each raster edge (engine.pipeline.tile_geometry.EDGE_PAD)
    assert anchored.inference_load(M(), 4, 128, 64) == (1, (128 + 32) * (64 + 32))
    # 2 x 1 tiles of 256: one inner boundary, where both tiles read a 64-px margin
    assert anchored.inference_load(M(), 4, 512, 100) == (2, (512 + 32 + 128) * (100 + 32))


def test_optimise_validated_keeps_the_best_and_stops_early():
    scores = iter([0.0, 0.5, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    kept, steps = [], []
    hist = optimise_validated(lambda i: steps.append(i) or 1.0, lambda: next(scores), lambda: kept.append(len(steps)),
                              100, lambda: 1.0, LogFeedback(), validate_every=2, patience=3)
    assert hist.best_score == 1.0 and hist.best_iteration == 4 and kept == [0, 2, 4]
    assert hist.stopped_by == "early stop" and hist.iterations == 10


def test_optimise_validated_honours_a_budget_measured_on_the_way():
    left = iter([5.0, 3.0, 1.0, 0.0, -1.0])
    hist = optimise_validated(lambda i: 1.0, lambda: 0.0, lambda: None, 100, lambda: next(left), LogFeedback(),
                              validate_every=50)
    assert hist.stopped_by == "time budget" and hist.iterations == 3


def test_optimise_validated_does_not_start_a_step_it_cannot_finish():
    """Steps of 0.2 s within 0.7 s: three fit, a fourth would end at 0.8 s."""
    t0 = time.perf_counter()
    hist = optimise_validated(lambda i: time.sleep(0.2) or 1.0, lambda: 0.0, lambda: None, 100,
                              lambda: 0.7 - (time.perf_counter() - t0), LogFeedback(), validate_every=1000)
    assert hist.stopped_by == "time budget" and time.perf_counter() - t0 < 0.75 and hist.iterations <= 3


# ----------------------------------------------------------------------------------- factory
def test_factory_anchors_by_default_and_runs_alone_when_asked(tmp_path):
    assert isinstance(get_method("ssjcn"), anchored.AnchoredNetwork)
    assert get_method("ssjcn").max_seconds == anchored.DEFAULT_MAX_SECONDS
    assert isinstance(get_method("ssjcn", base="none"), NetworkMethod)
    assert isinstance(get_method("ssjcn", save_checkpoint=str(tmp_path / "w.pt")), NetworkMethod)
    with pytest.raises(InputError, match="base"):
        get_method("ssjcn", base="pca")


# ----------------------------------------------------------------------------------- through the engine
@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    return synthetic_pair(tmp_path_factory.mktemp("pair"), ratio=2, lr_size=(16, 16), bands=12, msi_bands=3)


def test_without_a_validated_gain_the_output_is_the_base(small_pair, tmp_path, monkeypatch):
    hsi, msi = small_pair
    monkeypatch.setattr(anchored, "MIN_GAIN_DB", math.inf)
    fb = LogFeedback()
    api.fuse(hsi, msi, str(tmp_path / "net.tif"), "ssjcn", {"iterations": 2, "batch_size": 1, "device": "cpu"},
             feedback=fb)
    api.fuse(hsi, msi, str(tmp_path / "glp.tif"), "glp")
    a, b = read(tmp_path / "net.tif"), read(tmp_path / "glp.tif")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())
    assert any("the output is the GLP base" in m for m in fb.messages)


def _spectrally_distorting_refine(monkeypatch):
    """A 'network' that tilts every spectrum (+-30 % from the first band to the last).

    Its estimate degraded by the ratio no longer fits the LR-HSI.
    """
    refine = anchored.AnchoredNetwork._refine

    def tilted(self, lr, hr, ratio, base, feedback=None, crop=None):
        out = refine(self, lr, hr, ratio, base, feedback, crop)
        if not self.use_net:
            return out
        return (base * (1.0 + 0.3 * np.linspace(-1.0, 1.0, len(base)))[:, None, None]).astype(np.float32)

    monkeypatch.setattr(anchored.AnchoredNetwork, "_refine", tilted)
    monkeypatch.setattr(anchored, "MIN_GAIN_DB", -math.inf)  # whatever it scored one scale down passes


@pytest.mark.parametrize("gate", [True, False])
def test_a_network_less_consistent_with_the_lr_hsi_than_its_base_gives_the_base(gate, small_pair, tmp_path,
                                                                               monkeypatch):
    """Step 6: a held-out 'gain' whose degraded full-resolution output fits the LR-HSI worse than the base's is dropped.

    Without the gate (the control) the distorted output would be written.
    """
    hsi, msi = small_pair
    _spectrally_distorting_refine(monkeypatch)
    if not gate:
        monkeypatch.setattr(anchored, "MIN_CONSISTENCY_DB", -math.inf)
    fb = LogFeedback()
    res = api.fuse(hsi, msi, str(tmp_path / "net.tif"), "ssjcn", {"iterations": 2, "batch_size": 1, "device": "cpu"},
                   feedback=fb)
    api.fuse(hsi, msi, str(tmp_path / "glp.tif"), "glp")
    a, b = read(tmp_path / "net.tif"), read(tmp_path / "glp.tif")
    assert res["consistency_gain_db"] < -1.0
    if gate:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())
        assert not res["network_used"] and any("does not carry over" in m for m in fb.messages)
    else:
        assert res["network_used"] and np.abs(a - b).max() > 0.1 * np.abs(b).max()


def test_consistency_is_scored_on_the_valid_pixels_of_the_fit_crop(tmp_path, monkeypatch):
    """Nodata is filled in the fit crop; a filled LR pixel must not count in step 6's score."""
    lr = gdal.Translate(str(tmp_path / "holed.tif"), str(SAMPLE_HSI))
    nodata = lr.GetRasterBand(1).GetNoDataValue()
    for i in range(lr.RasterCount):
        lr.GetRasterBand(i + 1).WriteArray(np.full((4, 6), nodata, np.float32), 2, 3)  # LR cols 2-7, rows 3-6
    lr = None
    scored = []
    score = anchored.heldout_gain_db
    monkeypatch.setattr(anchored, "heldout_gain_db",
                        lambda e, b, t, g, valid=None: scored.append(valid) or score(e, b, t, g, valid))
    monkeypatch.setattr(anchored, "MIN_GAIN_DB", -math.inf)
    api.fuse(str(tmp_path / "holed.tif"), str(SAMPLE_MSI), str(tmp_path / "out.tif"), "spectralmlp",
             {"device": "cpu"})
    valid = [v for v in scored if v is not None]
    assert len(valid) == 1 and valid[0].shape == (16, 32)
    assert not valid[0][3:7, 2:8].any() and valid[0].sum() == 16 * 32 - 24


def test_heldout_score_counts_only_the_valid_pixels():
    rng = np.random.default_rng(0)
    target = rng.uniform(1, 2, (5, 4, 4))
    base = target + 0.1
    est = target.copy()
    est[:, 0, 0] += 10.0  # far worse on one pixel, exact elsewhere
    valid = np.ones((4, 4), bool)
    good = np.ones(5, bool)
    assert anchored.heldout_gain_db(est, base, target, good) < 0
    valid[0, 0] = False
    assert anchored.heldout_gain_db(est, base, target, good, valid) > 20.0


@pytest.mark.parametrize("name, lr_side", [("ssjcn", 16), ("uds2c2", 16), ("ssjcn", 9)])
def test_a_pair_too_small_to_validate_one_scale_down_gives_the_base(name, lr_side, tmp_path):
    """x8 on a 16 x 16 LR pair: the training area is 2 LR px one scale down; on 9 x 9 no strip can be held out."""
    hsi, msi = synthetic_pair(tmp_path, ratio=8, lr_size=(lr_side, lr_side), bands=12, msi_bands=3)
    fb = LogFeedback()
    api.fuse(hsi, msi, str(tmp_path / "net.tif"), name, {"iterations": 2, "device": "cpu"}, feedback=fb)
    api.fuse(hsi, msi, str(tmp_path / "glp.tif"), "glp")
    a, b = read(tmp_path / "net.tif"), read(tmp_path / "glp.tif")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * np.abs(b).max())
    assert any("too small to validate" in m for m in fb.messages)
    assert not any("iteration" in m for m in fb.messages)  # nothing trained


def _mismatched_pair(tmp_path, scale=4.0, offset=300.0):
    """The sample's HSI with its MSI in other units (x4 plus an offset) and a nodata block."""
    msi = gdal.Open(str(SAMPLE_MSI))
    z = msi.ReadAsArray().astype(np.float32) * scale + offset
    z[:, 10:30, 40:70] = -9999.0
    path = make_raster(tmp_path / "msi_x4.tif", z, msi.GetGeoTransform(), msi.GetProjection(), nodata=-9999.0)
    return str(SAMPLE_HSI), path


def _fitted_with_the_network_forced(name, params, hsi, msi):
    """Fit, then make the network's contribution count whatever validation said (gains 1).

    What the clamp and the normalisation must keep within the data's range.
    """
    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.scene import build_scene

    scene = build_scene(validate_pair(raster_info(hsi), raster_info(msi)))
    method = get_method(name, device="cpu", seed=0, max_seconds=60, **params)
    method.fit(scene, LogFeedback())
    method.use_net = True
    if method.model is not None:
        method.model.gain.data.fill_(1.0)
    else:
        method.gains = np.ones(len(method.good), np.float32)
    return scene, method


def _run_tiles(scene, method):
    from hsifusion.engine.pipeline.tiling import fuse_tiles

    r = scene.pair.region
    out = np.full((scene.pair.hsi.bands, r.height, r.width), np.nan, np.float32)

    def write(a, w):
        out[:, w.row:w.row + w.height, w.col:w.col + w.width] = a

    fuse_tiles(scene, method, write, 256, np.nan)
    return out


def _check_within_data_range(name, params, tmp_path):
    hsi, msi = _mismatched_pair(tmp_path)
    scene, method = _fitted_with_the_network_forced(name, params, hsi, msi)
    est = _run_tiles(scene, method)
    lr = gdal.Open(hsi).ReadAsArray().astype(np.float64)
    good = method.good & (lr[:, 0, 0] != -32768)
    e = est[good]
    ok = np.isfinite(e)
    assert ok.mean() > 0.8  # nodata block aside
    lo, hi = lr[good].min(), lr[good].max()
    span = hi - lo
    assert e[ok].min() >= lo - 0.5 * span - 1e-3 and e[ok].max() <= hi + 0.5 * span + 1e-3
    # no change of scale (UDS2C2 alone once returned 4x the data): the mean over all bands within 2x of
    # the LR-HSI's, and no band's mean off by more than the brightest band's mean (the forced network is
    # barely trained, so its spectra are rough; ratios per band are meaningless for near-zero bands)
    means = np.nanmean(np.where(ok, e, np.nan), axis=(1, 2))
    lr_means = lr[good].mean(axis=(1, 2))
    assert 0.5 < means.mean() / lr_means.mean() < 2.0
    assert np.abs(means - lr_means).max() < lr_means.max()


@pytest.mark.parametrize("name", sorted(FAST))
def test_network_stays_in_the_data_range_on_a_mismatched_pair(name, tmp_path):
    _check_within_data_range(name, FAST[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_slow_network_stays_in_the_data_range_on_a_mismatched_pair(name, tmp_path):
    _check_within_data_range(name, SLOW[name], tmp_path)


def _budget_run(name, params, tmp_path, seconds=10.0):
    fb = LogFeedback()
    t = time.perf_counter()
    api.fuse(str(SAMPLE_HSI), str(SAMPLE_MSI), str(tmp_path / "o.tif"), name,
             dict(params, device="cpu", max_seconds=seconds), feedback=fb)
    elapsed = time.perf_counter() - t
    # Training stops before the step that would cross the deadline (minus the estimated inference):
    # the overrun is at most one step or one stage iteration, plus the inference itself.
    assert elapsed < 3 * seconds + 15, elapsed
    assert any("budget" in m for m in fb.messages)


@pytest.mark.parametrize("name", sorted(FAST))
def test_max_seconds_is_honoured(name, tmp_path):
    _budget_run(name, {"iterations": 100000}, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_max_seconds_is_honoured_slow(name, tmp_path):
    _budget_run(name, dict(SLOW[name], iterations=100000), tmp_path)


@pytest.fixture(scope="module")
def glp_on_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("glp") / "glp.tif"
    api.fuse(str(SAMPLE_HSI), str(SAMPLE_MSI), str(out), "glp")
    ref = read(REFERENCE).astype(np.float64)
    good = ref[:, 0, 0] != -32768
    return ref, good, psnr(read(out)[good], ref[good])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["amsfnet", "cofusion", "ssjcn", "uds2c2", "umsft"])
def test_default_network_is_not_worse_than_glp_on_held_out_reference(name, glp_on_sample, tmp_path):
    """The sample's full-resolution reference is never seen by the fit (which validates at reduced scale only).

    The real held-out property, within 0.5 dB of the GLP base.
    """
    ref, good, glp = glp_on_sample
    out = tmp_path / "o.tif"
    api.fuse(str(SAMPLE_HSI), str(SAMPLE_MSI), str(out), name, {"device": "cpu", "max_seconds": 60})
    assert psnr(read(out)[good], ref[good]) >= glp - 0.5


def test_fitted_method_survives_pickling(small_pair):
    """Dask workers get the fitted method by pickle: the copy gives the same tile."""
    import pickle

    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.scene import build_scene

    hsi, msi = small_pair
    scene = build_scene(validate_pair(raster_info(hsi), raster_info(msi)))
    method = get_method("ssjcn", device="cpu", iterations=2, batch_size=1)
    method.fit(scene, LogFeedback())
    method.use_net = True  # exercise the network's path whatever validation decided
    method.model.gain.data.fill_(0.5)
    lr, hr, _ = scene.read_crop(16)
    copy = pickle.loads(pickle.dumps(method))
    np.testing.assert_array_equal(copy.apply(lr, hr, 2), method.apply(lr, hr, 2))
    assert not np.array_equal(method.apply(lr, hr, 2), method.base.apply(lr, hr, 2))


def test_base_auto_takes_the_self_validated_best(small_pair, tmp_path, monkeypatch):
    """BASE=auto runs selfval's ranking (the rule of fuse auto) and refines its winner."""
    from hsifusion.engine.quality import selfval

    hsi, msi = small_pair
    monkeypatch.setattr(selfval, "rank", lambda rows: sorted(rows, key=lambda r: r["method"] != "gsa"))
    fb = LogFeedback()
    res = api.fuse(hsi, msi, str(tmp_path / "o.tif"), "ssjcn",
                   {"iterations": 2, "batch_size": 1, "device": "cpu", "base": "auto"}, feedback=fb)
    assert res["base"] == "gsa"
    assert any("BASE=auto" in m and "glp" in m and "bicubic" in m for m in fb.messages)


def test_amsf_lite_anchored_cropped_tiles_equal_the_uncropped_tiles(tmp_path, monkeypatch):
    """The default (GLP-anchored) AMSF-Net lite through apply_cropped: GLP and the net's HR stage on the core only."""
    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.scene import build_scene
    from hsifusion.engine.pipeline.tiling import fuse_tiles
    from hsifusion.models import amsf_net
    from hsifusion.models.anchor import ResidualOnBase
    from invariance import assert_tile_invariant

    def untrained(self, train, val, feedback):  # the fit without its training: the weights at their init
        self.model = ResidualOnBase(self.net._build(), len(self.good)).eval()
        self.model.net.basis.fit_once(train.data.y_in)

    monkeypatch.setattr(anchored.AnchoredNetwork, "_train", untrained)
    hsi, msi = synthetic_pair(tmp_path, ratio=2, lr_size=(32, 24), bands=12, msi_bands=3)
    scene = build_scene(validate_pair(raster_info(hsi), raster_info(msi)))
    method = get_method("amsfnet", device="cpu", seed=0, max_seconds=0, lite=True)
    method.fit(scene, LogFeedback())
    method.use_net = True  # the network's path, at full strength
    method.model.gain.data.fill_(1.0)
    crops = []
    forward = amsf_net.AMSFNet.forward
    monkeypatch.setattr(amsf_net.AMSFNet, "forward", lambda self, y, z, crop=None: crops.append(crop) or
                        forward(self, y, z, crop))

    def run():
        r = scene.pair.region
        out = np.full((scene.pair.hsi.bands, r.height, r.width), np.nan, np.float32)

        def write(a, w):
            out[:, w.row:w.row + w.height, w.col:w.col + w.width] = a

        fuse_tiles(scene, method, write, 2 * method.align(2), np.nan)
        return out

    cropped = run()
    assert crops and all(c is not None for c in crops) and any(min(c) > 0 for c in crops)
    n = len(crops)
    monkeypatch.setattr(anchored.AnchoredNetwork, "crops_itself", property(lambda self: False))
    former = run()
    assert len(crops) == 2 * n and all(c is None for c in crops[n:])
    assert_tile_invariant(cropped, former, "anchored AMSF-Net lite, cropped HR stage")
