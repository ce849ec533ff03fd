"""UMSFT (docs/networks.md#umsft).

Lite forward shapes at ratios 2/4/8 (c = 1 and 3), the spec's parameter counts (full config, no forward),
gradients, determinism, input checks and a tiny lite fit (loss falls, cancel works).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsifusion.models import umsft
from hsifusion.models.catalogue import FIT_ONCE, entry
from hsifusion.models.registry import count_parameters, get_spec
from invariance import assert_tile_invariant

CAVE_SPANS = [list(range(20, 31)), list(range(10, 23)), list(range(0, 12))]


def _structured_pair(bands, msi, ratio, hr=64, seed=0):
    """A smooth low-rank scene X, Y = block mean of X, Z = SRF · X (rows summing to 1)."""
    g = torch.Generator().manual_seed(seed)
    abund = F.interpolate(torch.rand(1, 4, hr // 8, hr // 8, generator=g), size=(hr, hr), mode="bilinear",
                          align_corners=False)
    x = torch.einsum("kc,bkhw->bchw", torch.rand(4, bands, generator=g), abund)
    x = x / x.max()
    srf = torch.rand(msi, bands, generator=g)
    srf = srf / srf.sum(dim=1, keepdim=True)
    return F.avg_pool2d(x, ratio), torch.einsum("kc,bchw->bkhw", srf, x), srf


def test_parameter_counts_match_spec():
    """CAVE 31/3 x4 (docs/networks.md#umsft-defaults).

    Non-VGG 6 790 812 excludes SpeD (48) and SpaD (25), although SpeD's parameters also belong to the fusion
    net through RM; the two truncated VGGs hold 3 491 712.
    """
    m = umsft.UMSFT(31, 3, 4, spans=CAVE_SPANS)
    vgg = count_parameters(m.net.vgg_h) + count_parameters(m.net.vgg_m)
    assert vgg == 3_491_712
    assert count_parameters(m.spe_d) == 48
    assert count_parameters(m.spa_d) == 25
    assert count_parameters(m.net) == 6_790_812 + 48 + vgg
    assert count_parameters(m) == 6_790_812 + 48 + 25 + vgg  # 10.28 M effective
    assert abs(count_parameters(m.net.skip1) - 2.92e6) < 0.005e6
    assert abs(count_parameters(m.net.skip2) - 1.86e6) < 0.005e6
    assert count_parameters(m.net.fca[0]) == 3_720
    chik = umsft.UMSFT(128, 4, 4)
    non_vgg = count_parameters(chik) - sum(count_parameters(v) for v in (chik.net.vgg_h, chik.net.vgg_m))
    assert abs(non_vgg - count_parameters(chik.spe_d) - count_parameters(chik.spa_d) - 8.66e6) < 0.005e6


@pytest.mark.parametrize("ratio,msi", [(2, 1), (4, 3), (8, 1), (8, 3)])
def test_lite_forward_shape(ratio, msi, torch_device):
    torch.manual_seed(0)
    m = umsft.UMSFT(6, msi, ratio, lite=True).to(torch_device)
    y = torch.rand(1, 6, 64 // ratio, 64 // ratio, device=torch_device)
    z = torch.rand(1, msi, 64, 64, device=torch_device)
    with torch.no_grad():
        x = m(y, z)
    assert x.shape == (1, 6, 64, 64) and torch.isfinite(x).all()


def test_backward_pass_and_qk_flag():
    torch.manual_seed(0)
    m = umsft.UMSFT(5, 3, 4, lite=True, qk_from="hsi")
    y, z, _ = _structured_pair(5, 3, 4)
    out = m(y, z)
    (F.l1_loss(m.spa_d(out), y) + F.l1_loss(m.spe_d(out), z)).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    "y_shape,z_shape,match",
    [
        ((1, 5, 12, 12), (1, 3, 48, 48), "lcm"),  # not a multiple of 64
        ((1, 5, 16, 16), (1, 3, 64, 60), "ratio"),
        ((1, 4, 16, 16), (1, 3, 64, 64), "bands"),
        ((2, 5, 16, 16), (2, 3, 64, 64), "batch"),
    ],
)
def test_wrong_shapes_raise(y_shape, z_shape, match):
    m = umsft.UMSFT(5, 3, 4, lite=True)
    with pytest.raises(ValueError, match=match):
        m(torch.rand(*y_shape), torch.rand(*z_shape))
    if y_shape[1] == 5:
        with pytest.raises(ValueError, match=match):
            umsft.fit(torch.rand(*y_shape), torch.rand(*z_shape), 4, iterations=1, init_steps=1, lite=True)


def test_tiny_lite_fit_lowers_loss_and_is_deterministic():
    y, z, _ = _structured_pair(6, 3, 4)
    spans = [[0, 1, 2], [2, 3], [3, 4, 5]]
    calls = []
    x1, info = umsft.fit(y, z, 4, spans=spans, iterations=6, init_steps=4, lite=True,
                         callback=lambda *a: calls.append(a[:3]) or True)
    assert x1.shape == (1, 6, 64, 64) and torch.isfinite(x1).all()
    assert not info["cancelled"]
    assert [s for s, i, n in calls if i == 1] == ["sped_init", "spad_init", "coupled_init", "main"]
    assert calls[-1] == ("main", 6, 6)
    assert info["losses"]["sped_init"][-1] < info["losses"]["sped_init"][0]
    assert info["losses"]["main_data"][-1] < info["losses"]["main_data"][0]
    x2, _ = umsft.fit(y, z, 4, spans=spans, iterations=6, init_steps=4, lite=True)
    assert torch.equal(x1, x2)


def test_blind_sped_starts_at_the_normalised_gaussians():
    """REC: identity-initialised smoothing convs, so every SRF row starts as its span's Gaussian (sum 1)."""
    torch.manual_seed(0)
    m = umsft.UMSFT(10, 3, 4, spans=[[0, 1, 2, 3], [3, 4, 5], [5, 6, 7, 8, 9]], lite=True)
    rows = m.spe_d.matrix().detach()
    assert torch.allclose(rows.sum(1), torch.ones(3)) and (rows > 0).sum(1).tolist() == [4, 3, 5]
    assert torch.allclose(rows[0, :4], m.spe_d.vectors[0].detach())


def test_hsi_skip_starts_at_bicubic_and_floors_the_estimate():
    """REC option: V3 = bicubic(Y) + zero-initialised head, level-3 attention and RM adding nothing at init."""
    torch.manual_seed(0)
    y = torch.rand(1, 5, 16, 16) + 0.5
    z = torch.rand(1, 3, 64, 64)
    m = umsft.UMSFT(5, 3, 4, lite=True, hsi_skip=True)
    with torch.no_grad():
        x = m(y, z)
    bicubic = torch.nn.functional.interpolate(y, size=(64, 64), mode="bicubic", align_corners=False)
    assert torch.allclose(x, bicubic, atol=1e-5)
    assert umsft.SPEC.defaults["hsi_skip"] is True
    y0, z0, _ = _structured_pair(6, 3, 4)
    x_hat, _ = umsft.fit(y0, z0, 4, iterations=2, init_steps=2, lite=True, hsi_skip=True)
    assert x_hat.min() >= min(0.0, float(y0.min()))


def test_non_blind_fit_and_cancel():
    y, z, srf = _structured_pair(6, 1, 2)
    seen = []

    def cb(stage, i, n, loss):
        seen.append(stage)
        return i < 2

    x, info = umsft.fit(y, z, 2, srf=srf, psf=torch.ones(2, 2) / 4, iterations=5, init_steps=4, lite=True,
                        callback=cb)
    assert info["cancelled"] and seen == ["main", "main"]  # no init steps with frozen operators
    assert x.shape == (1, 6, 64, 64)
    y, z, _ = _structured_pair(6, 3, 4)
    x, info = umsft.fit(y, z, 4, iterations=5, init_steps=4, lite=True, callback=lambda s, i, n, loss: False)
    assert info["cancelled"] and x is None and len(info["losses"]["sped_init"]) == 1


def test_vgg_weights_round_trip(tmp_path):
    src = umsft.VGGFeatures(3)
    state = {f"features.{k}": v for k, v in src.layers.state_dict().items()}
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    m = umsft.UMSFT(5, 3, 4, lite=True, vgg_weights=str(path))
    assert torch.equal(m.net.vgg_m.layers[0].weight, src.layers[0].weight)
    assert torch.equal(m.net.vgg_h.layers[3].weight, src.layers[3].weight)
    assert not torch.equal(m.net.vgg_h.layers[0].weight[:, :3], src.layers[0].weight)  # fresh first conv


def test_registry_entry():
    spec = get_spec("umsft")
    e = entry("umsft")
    assert e.supervised is False and e.kind == FIT_ONCE and e.per_tile_option
    assert spec.fit is umsft.fit_once and spec.fit_per_tile is umsft.fit_any_size
    assert (spec.margin(4), spec.align(4), spec.align(3), spec.min_hr_size(8)) == (32, 4, 3, 8)
    assert isinstance(spec.build(6, 3, 4, lite=True), umsft.UMSFT)


@pytest.mark.parametrize("ratio,lr", [(4, (3, 5)), (2, (32, 7)), (3, (1, 1))])
def test_mirror_to_size_rule_is_numpys_symmetric_pad(ratio, lr):
    h, w = lr
    y = torch.arange(2 * h * w, dtype=torch.float32).reshape(1, 2, h, w)
    z = torch.arange(h * w * ratio * ratio, dtype=torch.float32).reshape(1, 1, h * ratio, w * ratio)
    Y, Z = umsft.mirror_to_size_rule(y, z, ratio)
    a = math.lcm(64, ratio)
    assert Z.shape[-2] % a == 0 and Z.shape[-1] % a == 0 and Z.shape[-2:] == (ratio * Y.shape[-2], ratio * Y.shape[-1])
    ph, pw = Y.shape[-2] - h, Y.shape[-1] - w
    assert np.array_equal(Y.numpy(), np.pad(y.numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)), mode="symmetric"))
    assert np.array_equal(Z.numpy(), np.pad(z.numpy(), ((0, 0), (0, 0), (0, ph * ratio), (0, pw * ratio)),
                                            mode="symmetric"))


def _random_local_map(bands, msi, ratio):
    torch.manual_seed(1)
    m = umsft.LocalMap(bands, msi, ratio)
    torch.nn.init.normal_(m.body[-1].weight, std=0.1)  # not the zero (bicubic) initialisation
    return m.eval()


@pytest.mark.parametrize("ratio", [2, 4])
def test_local_map_tiles_equal_the_whole_image_with_the_declared_margin(ratio):
    """The fit-once map is local: a tile with umsft.margin context reproduces the whole image's core."""
    y = torch.rand(1, 6, 32, 32)
    z = torch.rand(1, 3, 32 * ratio, 32 * ratio)
    m = _random_local_map(6, 3, ratio)
    whole = m.predict(y, z)
    margin, core, c0 = umsft.UMSFT.margin(ratio), 8 * ratio, 12 * ratio
    a, b = c0 - margin, c0 + core + margin
    tile = m.predict(y[..., a // ratio:b // ratio, a // ratio:b // ratio], z[..., a:b, a:b])
    assert_tile_invariant(tile[..., margin:margin + core, margin:margin + core],
                          whole[..., c0:c0 + core, c0:c0 + core], "umsft local map")
    # a context of one LR pixel is not enough (the bicubic upsampling reads two): the check can fail
    a, b = c0 - ratio, c0 + core + ratio
    short = m.predict(y[..., a // ratio:b // ratio, a // ratio:b // ratio], z[..., a:b, a:b])
    assert (short[..., ratio:ratio + core, ratio:ratio + core] - whole[..., c0:c0 + core, c0:c0 + core]).abs().max() \
        > 1e-3 * whole.abs().max()


def test_untrained_local_map_is_bicubic_floored():
    y, z, _ = _structured_pair(6, 3, 4)
    m = umsft.LocalMap(6, 3, 4)
    m.floor = torch.zeros(1, 6, 1, 1)
    expected = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False).clamp_min(0)
    assert torch.allclose(m.predict(y, z), expected, atol=1e-6)
    with pytest.raises(ValueError, match="predict expects"):
        m.predict(y, z[..., :-4, :])


def test_fit_once_distils_umsft_and_stops_on_request():
    y, z, _ = _structured_pair(6, 3, 4)
    stages = []

    def record(stage, i, n, loss):
        stages.append((stage, loss))

    fitted = umsft.fit_once(y, z, 4, iterations=(2, 2, 2, 2, 6), lite=True, hsi_skip=True, callback=record)
    assert isinstance(fitted, umsft.LocalMap) and not fitted.cancelled
    assert [s for s, _ in stages] == ["sped_init"] * 2 + ["spad_init"] * 2 + ["coupled_init"] * 2 + ["main"] * 2 \
        + ["distil"] * 6
    distil = [loss for s, loss in stages if s == "distil"]
    assert distil[-1] < distil[0]
    x = fitted.predict(y, z)
    assert x.shape == (1, 6, 64, 64) and torch.isfinite(x).all() and not x.requires_grad

    stopped = umsft.fit_once(y, z, 4, iterations=(2, 2, 2, 2, 6), lite=True, hsi_skip=True,
                             callback=lambda stage, i, n, loss: stage != "main")
    assert stopped.cancelled  # stopped in the main loop: the untrained map, i.e. bicubic (floored)
    bicubic = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(stopped.predict(y, z), torch.maximum(bicubic, stopped.floor), atol=1e-6)


def test_floor_at_input_minimum_per_band():
    from hsifusion.models.blocks import floor_at_input_minimum

    y = torch.tensor([[[[0.2, 0.5]], [[-0.3, 0.1]]]])  # band 0 >= 0, band 1 has a negative minimum
    x = torch.tensor([[[[-0.1, 0.4]], [[-0.5, -0.2]]]])
    out = floor_at_input_minimum(x, y)
    assert torch.equal(out, torch.tensor([[[[0.0, 0.4]], [[-0.3, -0.2]]]]))


def test_output_ema_averages_the_iterates():
    """REC option: 0 returns the last iterate (as coded); a > 0 an exponential average of the iterates."""
    y, z, _ = _structured_pair(6, 3, 4)
    last, _ = umsft.fit(y, z, 4, iterations=3, init_steps=2, lite=True)
    ema, _ = umsft.fit(y, z, 4, iterations=3, init_steps=2, lite=True, output_ema=0.5)
    one_a, _ = umsft.fit(y, z, 4, iterations=1, init_steps=2, lite=True)
    one_b, _ = umsft.fit(y, z, 4, iterations=1, init_steps=2, lite=True, output_ema=0.5)
    assert torch.equal(one_a, one_b) and not torch.equal(last, ema)
    assert umsft.SPEC.defaults["output_ema"] == 0.7
