"""AMSF-Net (docs/networks.md#amsf-net).

Shapes at several ratios, spec parameter counts, gradients, determinism, input checks, loss and optimiser
recipe.
"""
from __future__ import annotations

import pytest
import torch

from hsifusion.models import amsf_net
from hsifusion.models.catalogue import entry
from hsifusion.models.registry import count_parameters, get_spec


def _pair(bands, msi, ratio, hr, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, bands, hr // ratio, hr // ratio, generator=g)
    z = torch.rand(batch, msi, hr, hr, generator=g)
    return y, z


@pytest.mark.parametrize("ratio,bands,msi", [(2, 8, 1), (4, 12, 3), (8, 31, 1), (3, 9, 3)])
def test_output_shape_smallest_admissible(ratio, bands, msi, torch_device):
    torch.manual_seed(0)
    hr = amsf_net.AMSFNet.min_hr_size(ratio)
    assert hr == amsf_net.AMSFNet.align(ratio) == 8 * ratio
    net = amsf_net.AMSFNet(bands, msi, ratio).to(torch_device).eval()
    y, z = _pair(bands, msi, ratio, hr)
    with torch.no_grad():
        x = net(y.to(torch_device), z.to(torch_device))
    assert x.shape == (1, bands, hr, hr)
    assert torch.isfinite(x).all()


def test_rectangular_tile():
    torch.manual_seed(0)
    net = amsf_net.AMSFNet(8, 3, 2).eval()
    y = torch.rand(1, 8, 8, 16)
    z = torch.rand(1, 3, 16, 32)
    with torch.no_grad():
        assert net(y, z).shape == (1, 8, 16, 32)


@pytest.mark.parametrize("bands,msi,expected", [(31, 3, 6_947_689), (46, 3, 6_991_894), (110, 8, 7_318_454)])
def test_parameter_count_matches_spec(bands, msi, expected):
    assert count_parameters(amsf_net.AMSFNet(bands, msi, 4)) == expected


def test_gradients_flow():
    torch.manual_seed(0)
    net = amsf_net.AMSFNet(8, 1, 2).train()
    y, z = _pair(8, 1, 2, 16, batch=2)
    target = torch.rand(2, 8, 16, 16)
    amsf_net.loss(net(y, z), target, edge_loss=True).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.z_head.weight.grad.abs().sum() > 0 and net.y_head1.weight.grad.abs().sum() > 0


def test_deterministic_with_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        net = amsf_net.AMSFNet(8, 3, 2).eval()
        y, z = _pair(8, 3, 2, 16, seed=5)
        with torch.no_grad():
            outs.append(net(y, z))
    assert torch.equal(outs[0], outs[1])


def test_shared_att_is_single_instance():
    net = amsf_net.AMSFNet(8, 3, 4)
    assert sum(isinstance(m, amsf_net.ATT) for m in net.modules()) == 1


def test_xavier_init_applied():
    torch.manual_seed(0)
    w = amsf_net.AMSFNet(8, 3, 4).pcp1.entry[0].weight  # Kaiming would be replaced by Xavier bound
    fan_in, fan_out = w.shape[1], w.shape[0]
    bound = (6.0 / (fan_in + fan_out)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound


@pytest.mark.parametrize(
    "y_shape,z_shape,match",
    [
        ((1, 8, 4, 4), (1, 3, 32, 32), "ratio"),  # z is not r*h
        ((1, 8, 6, 6), (1, 3, 24, 24), "multiple of 32"),  # H not a multiple of 8r
        ((1, 7, 8, 8), (1, 3, 32, 32), "bands"),
        ((1, 8, 8, 8), (1, 2, 32, 32), "bands"),
        ((8, 8, 8), (1, 3, 32, 32), "4-D"),
    ],
)
def test_wrong_shapes_raise(y_shape, z_shape, match):
    net = amsf_net.AMSFNet(8, 3, 4)
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(y_shape), torch.zeros(z_shape))


def test_loss_and_optimizer_recipe():
    x = torch.rand(2, 5, 8, 8)
    assert amsf_net.loss(x, x) == 0
    x_hat = x + 0.1
    assert torch.isclose(amsf_net.loss(x_hat, x), torch.tensor(0.01))
    assert torch.isclose(amsf_net.loss(x_hat, x, edge_loss=True), torch.tensor(0.01))  # constant shift
    opt, sched = amsf_net.default_optimizer([torch.nn.Parameter(torch.zeros(1))], 20000)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-4
    for _ in range(500):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.95e-4)


def test_spec_registered():
    spec = get_spec("amsfnet")
    assert spec is amsf_net.SPEC and entry("amsfnet").supervised and spec.paper_params is None
    for r in (2, 3, 4, 8):
        assert spec.align(r) == 8 * r and spec.margin(r) == 40 * r and spec.min_hr_size(r) == 8 * r
        assert spec.margin(r) % spec.align(r) == 0
    assert isinstance(spec.build(8, 1, 3, **spec.defaults), amsf_net.AMSFNet)


def test_hsi_skip_starts_at_bicubic_and_learns():
    """REC scene-adaptive option: X^ = bicubic(Y) + g * net, g = 0 at init (one extra parameter)."""
    torch.manual_seed(0)
    net = amsf_net.AMSFNet(8, 3, 2, hsi_skip=True).train()
    assert count_parameters(net) == count_parameters(amsf_net.AMSFNet(8, 3, 2)) + 1
    y, z = _pair(8, 3, 2, 16)
    out = net(y, z)
    bicubic = torch.nn.functional.interpolate(y, size=z.shape[-2:], mode="bicubic", align_corners=False)
    assert torch.equal(out, bicubic)
    amsf_net.loss(out, torch.rand_like(out)).backward()
    assert net.skip_gain.grad is not None and net.skip_gain.grad.abs() > 0
    assert amsf_net.SPEC.defaults["hsi_skip"] is True
    assert amsf_net.SPEC.build(8, 3, 2, **amsf_net.SPEC.defaults).skip_gain is not None
