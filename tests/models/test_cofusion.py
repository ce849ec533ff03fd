"""CoFusion (docs/networks.md#cofusion).

Shapes at several ratios (lite config), spec parameter counts (paper config, no forward), gradients,
determinism, input checks, SSIM / loss and optimiser recipe.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hsifusion.models import cofusion
from hsifusion.models.catalogue import entry
from hsifusion.models.registry import count_parameters, get_spec

LITE = (2, 2, 2)


def _pair(bands, msi, ratio, hr, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, bands, hr // ratio, hr // ratio, generator=g)
    z = torch.rand(batch, msi, hr, hr, generator=g)
    return y, z


@pytest.mark.parametrize("ratio,bands,msi", [(2, 8, 1), (4, 12, 3), (8, 31, 1), (3, 9, 3)])
def test_output_shape_smallest_admissible(ratio, bands, msi, torch_device):
    torch.manual_seed(0)
    hr = cofusion.CoFusion.min_hr_size(ratio)
    assert hr >= 32 and hr % cofusion.CoFusion.align(ratio) == 0
    net = cofusion.CoFusion(bands, msi, ratio, blocks=LITE).to(torch_device).eval()
    y, z = _pair(bands, msi, ratio, hr)
    with torch.no_grad():
        x = net(y.to(torch_device), z.to(torch_device))
    assert x.shape == (1, bands, hr, hr)
    assert torch.isfinite(x).all()


def test_rectangular_tile():
    torch.manual_seed(0)
    net = cofusion.CoFusion(8, 3, 2, blocks=(1, 1, 1)).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 8, 16, 24), torch.rand(1, 3, 32, 48)).shape == (1, 8, 32, 48)


@pytest.mark.parametrize("bands,msi,expected", [(31, 3, 4_863_606), (103, 4, 4_914_430), (128, 4, 4_932_055)])
def test_parameter_count_paper_config_matches_spec(bands, msi, expected):
    net = cofusion.build(bands, msi, 4, **cofusion.SPEC.defaults)
    assert net.blocks == (6, 12, 21)
    assert count_parameters(net) == expected


def test_module_parameter_counts_match_spec():
    block = cofusion.DualBlock(64, 8)
    assert count_parameters(block.spa) == 28_800
    assert count_parameters(block.spe) == 18_497
    assert count_parameters(block.fuse) == 60_112


def test_lite_config_size():
    net = cofusion.build(31, 3, 4, blocks=(6, 12, 21), lite=True)
    assert net.blocks == LITE
    assert 1_300_000 < count_parameters(net) < 1_400_000


def test_gradients_flow():
    torch.manual_seed(0)
    net = cofusion.CoFusion(8, 1, 2, blocks=(1, 1, 1)).train()
    y, z = _pair(8, 1, 2, 32, batch=2)
    cofusion.loss(net(y, z), torch.rand(2, 8, 32, 32)).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.head_z.weight.grad.abs().sum() > 0 and net.head_y3.weight.grad.abs().sum() > 0


def test_deterministic_with_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        net = cofusion.CoFusion(8, 3, 4, blocks=(1, 1, 1))
        y, z = _pair(8, 3, 4, 32, seed=3)
        outs.append(net.train()(y, z).detach())  # train mode: dropout draws from the seeded RNG too
        outs.append(net.eval()(y, z).detach())
    assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[3])


@pytest.mark.parametrize(
    "y_shape,z_shape,match",
    [
        ((1, 8, 8, 8), (1, 3, 24, 24), "ratio"),  # z is not r*h
        ((1, 8, 5, 5), (1, 3, 20, 20), "multiple of 8"),  # H not a multiple of lcm(8, r)
        ((1, 7, 8, 8), (1, 3, 32, 32), "bands"),
        ((1, 8, 8, 8), (3, 32, 32), "4-D"),
    ],
)
def test_wrong_shapes_raise(y_shape, z_shape, match):
    net = cofusion.CoFusion(8, 3, 4, blocks=(1, 1, 1))
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(y_shape), torch.zeros(z_shape))


def test_ssim_matches_skimage_interior():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 40, 40, generator=g, dtype=torch.float64)
    x_hat = (x + 0.1 * torch.randn(1, 3, 40, 40, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = cofusion.ssim_map(x_hat, x)[0]
    for band in range(3):
        _, ref = metrics.structural_similarity(
            x_hat[0, band].numpy(), x[0, band].numpy(), data_range=1.0, gaussian_weights=True,
            sigma=1.5, use_sample_covariance=False, full=True,
        )
        # skimage reflects at the border where the spec pads with zeros: compare the interior only
        np.testing.assert_allclose(ours[band, 5:-5, 5:-5].numpy(), ref[5:-5, 5:-5], atol=1e-10)
    assert cofusion.ssim(x, x).item() == pytest.approx(1.0)


def test_loss_and_optimizer_recipe():
    x = torch.rand(2, 4, 16, 16)
    assert cofusion.loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    x_hat = x + 0.05
    expected = 0.05 + 0.1 * (1 - cofusion.ssim(x_hat, x))
    assert torch.isclose(cofusion.loss(x_hat, x), expected)
    opt, sched = cofusion.default_optimizer([torch.nn.Parameter(torch.zeros(1))], 100)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(1e-4)
    for _ in range(100):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)


def test_spec_registered():
    spec = get_spec("cofusion")
    assert spec is cofusion.SPEC and entry("cofusion").supervised and spec.paper_params == 4_910_000
    expected = {2: (8, 64, 32), 3: (24, 72, 48), 4: (8, 64, 32), 8: (8, 64, 32)}
    for r, (a, m, smallest) in expected.items():
        assert (spec.align(r), spec.margin(r), spec.min_hr_size(r)) == (a, m, smallest)
        assert m % a == 0 and a % r == 0
        lite = spec.margin_of(r, lite=True)  # 48 rounded up to the step, never more than the paper's
        assert lite % a == 0 and 48 <= lite < 48 + a and lite <= m


def test_engine_tiles_lite_at_its_own_margin():
    """The tile loop asks the method; a lite run (option or checkpoint hyper) gets the lite margin."""
    from hsifusion.engine.methods.network import NetworkMethod

    spec = get_spec("cofusion")
    assert NetworkMethod("cofusion", lite=True).margin(4) == spec.margin_of(4, lite=True)
    assert NetworkMethod("cofusion", lite=False).margin(4) == spec.margin(4) > spec.margin_of(4, lite=True)
    assert NetworkMethod("cofusion").margin(4) == spec.margin_of(4, lite=True)  # lite by default (catalogue)
