"""SSJCN (docs/networks.md#ssjcn).

Shapes at ratios 2/3/4/8, parameter count vs the spec, gradients, determinism, input checks, registry entry
and the optimiser recipe.
"""
from __future__ import annotations

import pytest
import torch

from hsifusion.models import ssjcn
from hsifusion.models.catalogue import entry
from hsifusion.models.registry import count_parameters, get_spec


def _pair(bands, msi, ratio, hr, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, bands, hr // ratio, hr // ratio, generator=g)
    z = torch.rand(batch, msi, hr, hr, generator=g)
    return y, z


@pytest.mark.parametrize("ratio,bands,msi", [(2, 8, 1), (4, 12, 3), (8, 10, 1), (8, 9, 3), (3, 6, 3)])
def test_output_shape(ratio, bands, msi, torch_device):
    torch.manual_seed(0)
    hr = ssjcn.SSJCN.min_hr_size(ratio)
    net = ssjcn.SSJCN(bands, msi, ratio, width=16).to(torch_device).eval()
    y, z = _pair(bands, msi, ratio, hr, batch=2)
    with torch.no_grad():
        x = net(y.to(torch_device), z.to(torch_device))
    assert x.shape == (2, bands, hr, hr)
    assert torch.isfinite(x).all()


def test_rectangular_and_full_width():
    torch.manual_seed(0)
    net = ssjcn.SSJCN(5, 3, 4).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 5, 4, 8), torch.rand(1, 3, 16, 32)).shape == (1, 5, 16, 32)


def test_parameter_counts_match_spec():
    # docs/networks.md#ssjcn-defaults: CAVE 31/3 x4 ≈ 2.11 M, x8 2.13 M, PaviaU 103/4 2.30 M, 128/4 2.37 M.
    n = count_parameters(ssjcn.SSJCN(31, 3, 4))
    assert n == 2_105_882
    assert abs(n - 2.11e6) / 2.11e6 < 0.005
    assert abs(count_parameters(ssjcn.SSJCN(31, 3, 8)) - 2.13e6) < 0.005e6
    assert abs(count_parameters(ssjcn.SSJCN(103, 4, 4)) - 2.30e6) < 0.005e6
    assert abs(count_parameters(ssjcn.SSJCN(128, 4, 4)) - 2.37e6) < 0.005e6


def test_share_stages_halves_stage_parameters():
    full = count_parameters(ssjcn.SSJCN(31, 3, 4))
    shared = ssjcn.SSJCN(31, 3, 4, share_stages=True)
    assert shared.stage1 is shared.stage2
    assert count_parameters(shared) * 2 == full


def test_backward_pass_reaches_every_parameter():
    torch.manual_seed(0)
    net = ssjcn.SSJCN(6, 3, 4, width=8)
    y, z = _pair(6, 3, 4, 16)
    x = torch.rand(1, 6, 16, 16)
    ssjcn.loss(net(y, z), x).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


def test_deterministic_with_seed():
    y, z = _pair(6, 3, 2, 16)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        net = ssjcn.SSJCN(6, 3, 2, width=8).eval()
        with torch.no_grad():
            outs.append(net(y, z))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize(
    "y_shape,z_shape,match",
    [
        ((1, 7, 4, 4), (1, 3, 16, 16), "bands"),  # wrong HSI band count
        ((1, 6, 4, 4), (1, 2, 16, 16), "bands"),  # wrong MSI band count
        ((1, 6, 4, 4), (1, 3, 20, 16), "ratio"),  # HR not r x LR
        ((1, 6, 3, 3), (1, 3, 9, 9), "lcm"),  # r = 3: 9 is not a multiple of lcm(4, 3) = 12
        ((6, 4, 4), (1, 3, 16, 16), "4-D"),
        ((2, 6, 4, 4), (1, 3, 16, 16), "batch"),
    ],
)
def test_wrong_shapes_raise(y_shape, z_shape, match):
    net = ssjcn.SSJCN(6, 3, 3 if match == "lcm" else 4, width=8)
    with pytest.raises(ValueError, match=match):
        net(torch.rand(*y_shape), torch.rand(*z_shape))


def test_registry_entry():
    spec = get_spec("ssjcn")
    assert entry("ssjcn").supervised is True and spec.fit is None
    assert (spec.margin(4), spec.margin(8), spec.margin(3), spec.margin(2)) == (24, 48, 24, 24)
    assert (spec.align(4), spec.align(8), spec.align(3)) == (4, 8, 12)
    assert (spec.min_hr_size(4), spec.min_hr_size(8), spec.min_hr_size(3)) == (16, 16, 24)
    net = spec.build(31, 3, 4, **spec.defaults)
    assert isinstance(net, ssjcn.SSJCN)
    assert spec.paper_params is None and "docs/networks.md#ssjcn" in spec.reference


def test_default_optimizer_recipe():
    net = ssjcn.SSJCN(4, 1, 2, width=8)
    opt, sched = ssjcn.default_optimizer(net.parameters(), iterations=50)
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-5)
