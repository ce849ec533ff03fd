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


# --- lite configuration (REC, non-paper; docs/networks.md#amsf-net-lite) ---


def _lite(bands, msi, ratio, **kw):
    return amsf_net.build(bands, msi, ratio, **dict(amsf_net.SPEC.defaults, lite=True, **kw))


@pytest.mark.parametrize("ratio,bands,msi", [(2, 8, 1), (4, 20, 3), (3, 9, 3)])
def test_lite_shape_smallest_admissible(ratio, bands, msi):
    torch.manual_seed(0)
    net = _lite(bands, msi, ratio).eval()
    assert net.out2.out_channels == min(amsf_net.LITE_CODE, bands)
    hr = amsf_net.AMSFNet.min_hr_size(ratio)
    y, z = _pair(bands, msi, ratio, hr)
    with torch.no_grad():
        x = net(y, z)
    assert x.shape == (1, bands, hr, hr) and torch.isfinite(x).all()


def test_lite_starts_at_bicubic_and_every_parameter_learns():
    """Zero-initialised residual: the untrained lite net is bicubic(Y); one step reaches every parameter."""
    torch.manual_seed(0)
    net = _lite(20, 3, 2).train()
    y, z = _pair(20, 3, 2, 32, batch=2)
    out = net(y, z)
    bicubic = torch.nn.functional.interpolate(y, size=z.shape[-2:], mode="bicubic", align_corners=False)
    assert torch.equal(out, bicubic)
    from hsifusion.models.anchor import open_inner_gain

    open_inner_gain(net)  # gain 1, as the anchored wrapper sets it: the gradient reaches the body
    amsf_net.loss(net(y, z), torch.rand_like(out)).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_lite_basis_is_the_principal_subspace_of_the_first_training_input():
    """Spectra from a 3-D subspace: a 3-vector basis reproduces them; it is fixed after the first fit."""
    g = torch.Generator().manual_seed(1)
    mix = torch.rand(3, 20, generator=g, dtype=torch.float64)
    y = torch.einsum("bkhw,kc->bchw", torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64), mix).float()
    basis = amsf_net.SpectralBasis(20, 3)
    assert not basis.ready
    basis.fit_once(y)
    b = basis.weight.double()
    gram = b.T @ b  # orthogonal directions, the first of unit length, the others shorter
    assert torch.allclose(gram, torch.diag(torch.diagonal(gram)), atol=1e-5)
    assert gram[0, 0] == pytest.approx(1, abs=1e-5) and (torch.diagonal(gram)[1:] <= 1 + 1e-5).all()
    spectra = y.double().permute(1, 0, 2, 3).reshape(20, -1)
    code = torch.linalg.lstsq(b, spectra).solution
    assert torch.allclose(b @ code, spectra, atol=1e-4 * float(spectra.abs().max()))
    fixed = basis.weight.clone()
    basis.fit_once(torch.rand(2, 20, 8, 8))
    assert torch.equal(basis.weight, fixed) and basis.ready


def test_lite_basis_is_saved_with_the_weights():
    torch.manual_seed(0)
    net = _lite(20, 3, 2).train()
    net(*_pair(20, 3, 2, 32))
    copy = _lite(20, 3, 2)
    copy.load_state_dict(net.state_dict())
    assert copy.basis.ready and torch.equal(copy.basis.weight, net.basis.weight)


def _flops_per_pixel(hyper, hr=64):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):  # shapes only: FLOPs are counted, nothing is computed
        net = amsf_net.build(224, 12, 4, **dict(amsf_net.SPEC.defaults, **hyper)).eval()
        y, z = torch.empty(1, 224, hr // 4, hr // 4), torch.empty(1, 12, hr, hr)
    with FlopCounterMode(display=False) as counter:
        net(y, z)
    return counter.get_total_flops() / hr ** 2


def test_lite_needs_far_fewer_flops_per_pixel_than_the_paper_config():
    """At 224 bands: the paper's HR head alone (3x3 convs 224 -> 224) costs more than the whole lite net."""
    paper, lite = _flops_per_pixel({}), _flops_per_pixel({"lite": True})
    head = 3 * 2 * 9 * 224 * 224  # out2, res1, res2: multiply-adds x 2 per HR pixel
    assert paper > head > lite
    assert lite < paper / 5


def test_lite_is_catalogued_and_reaches_the_builder():
    assert entry("amsfnet").lite
    net = amsf_net.SPEC.build(20, 3, 2, **dict(amsf_net.SPEC.defaults, lite=True))
    assert net.basis is not None and isinstance(net.att.channel, amsf_net.ChannelGate)
    assert net.mff1.drsa.gsa is None
    paper = amsf_net.SPEC.build(20, 3, 2, **amsf_net.SPEC.defaults)
    assert paper.basis is None and isinstance(paper.att.channel, amsf_net.CAttn)
    assert paper.z_head.out_channels == amsf_net.WIDTH and net.z_head.out_channels == amsf_net.LITE_WIDTH


@pytest.mark.parametrize("lite", [False, True])
def test_fast_inference_matches_the_plain_forward(lite):
    """Channels-last layout and in-place skip/floor (inference) vs the NCHW, out-of-place forward."""
    torch.manual_seed(0)
    net = amsf_net.build(12, 3, 2, hsi_skip=True, lite=lite).train()
    y, z = _pair(12, 3, 2, 32)
    net(y, z)  # lite: fixes the basis
    net.eval()
    with torch.no_grad():
        net.skip_gain.fill_(0.7)
        fast = net(y, z)
    net.channels_last = False
    plain = net(y, z).detach()  # computed with gradients enabled: the out-of-place path
    assert fast.is_contiguous() and not torch.equal(fast, torch.nn.functional.interpolate(
        y, size=z.shape[-2:], mode="bicubic", align_corners=False))
    assert torch.allclose(fast, plain, rtol=0, atol=1e-5 * float(plain.abs().max()))
