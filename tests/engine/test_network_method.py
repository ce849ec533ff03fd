"""Networks through the engine: checkpoint round trip, mismatch errors, tiled == untiled, seeds, fit-once budgets."""
import time

import numpy as np
import pytest
import torch

from hsifusion.engine import api
from hsifusion.engine.errors import CheckpointError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.learning.checkpoint import load_checkpoint
from hsifusion.engine.methods import get_method, list_methods, method_specs
from hsifusion.models.catalogue import FIT_ONCE, NETWORKS, PER_TILE, SUPERVISED, network_ids
from hsifusion.models.registry import list_networks
from invariance import assert_tile_invariant
from rasterkit import read, synthetic_pair

# Every supervised network, in its quickest configuration; CKPT_NET is the one the checkpoint tests train.
SUPERVISED_FAST = {e.id: {"lite": True} if e.lite else {} for e in NETWORKS if e.kind == SUPERVISED}
CKPT_NET, OTHER_NET = network_ids(SUPERVISED)[-1], network_ids(SUPERVISED)[0]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pair")
    return synthetic_pair(tmp, ratio=4, lr_size=(16, 16), bands=12, msi_bands=3)


@pytest.fixture(scope="module")
def net_ckpt(pair, tmp_path_factory):
    hsi, msi = pair
    tmp = tmp_path_factory.mktemp("ck")
    ck = str(tmp / f"{CKPT_NET}.pt")
    api.fuse(hsi, msi, str(tmp / "o.tif"), CKPT_NET,
             {"iterations": 3, "device": "cpu", "save_checkpoint": ck, "batch_size": 1})
    return ck


def test_every_catalogued_network_is_a_method():
    assert list_networks() == sorted(network_ids()) and len(NETWORKS) >= 5
    assert set(network_ids()) <= set(list_methods())
    assert [s.id for s in method_specs("network")] == sorted(network_ids())


def test_checkpoint_is_plain_and_complete(net_ckpt):
    ck = torch.load(net_ckpt, weights_only=True)
    assert ck["network"] == CKPT_NET and ck["hsi_bands"] == 12 and ck["msi_bands"] == 3 and ck["ratio"] == 4
    assert len(ck["hsi_wavelengths"]) == 12 and ck["norm"]["hsi"] > 0
    assert ck["training"]["iterations"] == 3


def test_checkpoint_inference_tiled_equals_untiled(pair, net_ckpt, tmp_path):
    hsi, msi = pair
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    api.fuse(hsi, msi, a, CKPT_NET, {"checkpoint": net_ckpt, "device": "cpu"}, tile_size=1024)
    api.fuse(hsi, msi, b, CKPT_NET, {"checkpoint": net_ckpt, "device": "cpu"}, tile_size=16)
    assert_tile_invariant(read(b), read(a), CKPT_NET)


def test_checkpoint_with_other_band_count_is_refused(net_ckpt, tmp_path):
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(16, 16), bands=10, msi_bands=3)
    with pytest.raises(CheckpointError, match="12 HSI bands, input has 10"):
        api.fuse(hsi, msi, str(tmp_path / "o.tif"), CKPT_NET, {"checkpoint": net_ckpt, "device": "cpu"})
    assert not (tmp_path / "o.tif").exists()


def test_checkpoint_with_other_ratio_is_refused(net_ckpt, tmp_path):
    hsi, msi = synthetic_pair(tmp_path, ratio=2, lr_size=(16, 16), bands=12, msi_bands=3)
    with pytest.raises(CheckpointError, match="ratio 4, inputs have ratio 2"):
        api.fuse(hsi, msi, str(tmp_path / "o.tif"), CKPT_NET, {"checkpoint": net_ckpt, "device": "cpu"})


def test_checkpoint_of_other_network_is_refused(pair, net_ckpt, tmp_path):
    hsi, msi = pair
    with pytest.raises(CheckpointError, match=f"network is {CKPT_NET}, not {OTHER_NET}"):
        api.fuse(hsi, msi, str(tmp_path / "o.tif"), OTHER_NET, {"checkpoint": net_ckpt, "device": "cpu"})


def test_corrupt_and_foreign_files(tmp_path, pair):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable hsifusion checkpoint"):
        load_checkpoint(str(bad))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an hsifusion checkpoint"):
        load_checkpoint(str(foreign))


@pytest.mark.parametrize("net", sorted(SUPERVISED_FAST))
def test_scene_adaptive_same_seed_same_output(tmp_path, net):
    # Ratio 2 keeps AMSF-Net's 40r margin small enough for CI; 16 x 16 LR px leave the anchored default a
    # training area of 6 x 8 LR px one scale down (a smaller pair gives the base untrained).
    hsi, msi = synthetic_pair(tmp_path, ratio=2, lr_size=(16, 16), bands=12, msi_bands=3)
    par = dict(SUPERVISED_FAST[net], iterations=2, device="cpu", batch_size=1, seed=7)
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    fb = LogFeedback()
    api.fuse(hsi, msi, a, net, par, feedback=fb)
    api.fuse(hsi, msi, b, net, par)
    np.testing.assert_array_equal(read(a), read(b))
    assert any("iteration 2/2" in m for m in fb.messages)


def test_mirror_to_step_pads_with_scene_content():
    from hsifusion.engine.methods.network import mirror_to_step

    y = np.arange(2 * 4 * 8, dtype=np.float32).reshape(2, 4, 8)
    z = np.arange(1 * 8 * 16, dtype=np.float32).reshape(1, 8, 16)
    yp, zp = mirror_to_step(y, z, 2, 8)
    assert yp.shape == (2, 8, 8) and zp.shape == (1, 16, 16)
    assert np.array_equal(yp[:, 4:], y[:, ::-1]) and np.array_equal(zp[:, 8:], z[:, ::-1])
    same = mirror_to_step(y, z, 2, 4)
    assert same[0] is y and same[1] is z


def test_metadata_spans_follow_the_band_centres():
    """UMSFT's SRF spans from wavelengths/FWHM (docs/design.md#srf-spans); None without MSI FWHM."""
    from types import SimpleNamespace

    from hsifusion.engine.methods.network import metadata_spans

    hsi = SimpleNamespace(wavelengths=np.arange(400.0, 1000.0, 10.0), fwhm=np.full(60, 10.0), good_bands=None)
    msi = SimpleNamespace(bands=2, wavelengths=np.array([500.0, 800.0]), fwhm=np.array([40.0, 40.0]))
    spans = metadata_spans(hsi, msi)
    assert len(spans) == 2 and 10 in spans[0] and 40 in spans[1]
    assert max(spans[0]) < min(spans[1]) and len(spans[0]) < 60
    assert metadata_spans(hsi, SimpleNamespace(bands=2, wavelengths=msi.wavelengths, fwhm=None)) is None


@pytest.mark.parametrize("net", [e.id for e in NETWORKS if e.stage_shares])
def test_fit_stages_split_the_iterations(net):
    """A fit-once net's ITERATIONS are shared over its stages in the catalogue's proportions."""
    shares = next(e for e in NETWORKS if e.id == net).stage_shares
    for n in (len(shares), 7, 100, 600):
        stages = get_method(net, iterations=n).stage_iterations()
        assert len(stages) == len(shares) and min(stages) >= 1 and sum(stages) == n
        for got, share in zip(stages[:-1], shares[:-1]):
            assert abs(got - n * share) < 1


FIT_ONCE_NETS = network_ids(FIT_ONCE)
PER_TILE_OPTION = [e.id for e in NETWORKS if e.per_tile_option]


@pytest.mark.parametrize("net", [e.id for e in NETWORKS])
def test_per_tile_parameter_is_declared_once_from_the_catalogue(net):
    """PER_TILE exists exactly where the catalogue offers it, and its help quotes the catalogue's costs."""
    e = next(x for x in NETWORKS if x.id == net)
    params = {p.name: p for p in next(s for s in method_specs("network") if s.id == net).params}
    assert ("per_tile" in params) == e.per_tile_option
    if e.per_tile_option:
        assert params["per_tile"].default is False
        for kind in (FIT_ONCE, PER_TILE):
            assert f"{e.seconds_per_mpx[kind]:g} s per HR Mpx" in params["per_tile"].help
        assert get_method(net, base="none", per_tile=True).kind == PER_TILE
        assert get_method(net, base="none").kind == FIT_ONCE


@pytest.mark.parametrize("net", PER_TILE_OPTION)
def test_fit_once_tiled_equals_untiled(net, tmp_path):
    """The fit-once map, fitted on the same crop, gives the same pixels whatever the tiling."""
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(24, 20), bands=8, msi_bands=3)
    params = {"iterations": 5, "lite": True, "device": "cpu", "base": "none", "max_seconds": 0}
    one, many = api.fuse(hsi, msi, str(tmp_path / "a.tif"), net, params, tile_size=4096), \
        api.fuse(hsi, msi, str(tmp_path / "b.tif"), net, params, tile_size=32)
    assert one["TILES"] == 1 and many["TILES"] > 4
    a = read(str(tmp_path / "a.tif"))
    assert np.isfinite(a).all()
    assert_tile_invariant(read(str(tmp_path / "b.tif")), a, net)


@pytest.mark.parametrize("net", PER_TILE_OPTION)
def test_per_tile_option_optimises_each_tile(net, tmp_path):
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(16, 8), bands=8, msi_bands=3)
    fb = LogFeedback()
    out = str(tmp_path / "o.tif")
    api.fuse(hsi, msi, out, net, {"iterations": 5, "lite": True, "device": "cpu", "base": "none", "per_tile": True},
             tile_size=32, feedback=fb)
    x = read(out)
    assert x.shape == (8, 64, 32) and np.isfinite(x).all()
    assert sum("tile main: iteration 1/" in m for m in fb.messages) == 2  # two tiles, each optimised


@pytest.mark.parametrize("net", FIT_ONCE_NETS)
def test_fit_once_net_ends_within_max_seconds(net, tmp_path):
    """A budget far below what ITERATIONS need: the stages stop, the log says so, and a result is written."""
    # 64 x 64 LR px: large enough that every fit-once net optimises (the spectral MLP keeps its ridge map alone
    # below 256 LR px one scale down, with nothing to stop)
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(64, 64), bands=8, msi_bands=3)
    budget, slack = 4.0, 15.0  # slack: torch start-up, the scene, one step past the deadline, the writer
    fb = LogFeedback()
    out = str(tmp_path / "o.tif")
    t = time.perf_counter()
    api.fuse(hsi, msi, out, net, {"iterations": 100000, "device": "cpu", "base": "none", "max_seconds": budget},
             feedback=fb)
    assert time.perf_counter() - t < budget + slack
    assert any("time budget reached" in m for m in fb.messages)
    assert any("inference estimate" in m for m in fb.messages)
    assert np.isfinite(read(out)).all()
