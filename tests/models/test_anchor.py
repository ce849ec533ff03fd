"""models/anchor.py: a network as a zero-initialised residual on a base estimate."""
import pytest
import torch

from hsifusion.models.anchor import ResidualOnBase
from hsifusion.models.registry import get_spec

SUPERVISED = {"ssjcn": {}, "cofusion": {"lite": True}, "amsfnet": {}}


def _wrapped(net: str, bands: int = 6, msi: int = 3, ratio: int = 2):
    spec = get_spec(net)
    torch.manual_seed(0)
    model = spec.build(bands, msi, ratio, **dict(spec.defaults, **SUPERVISED[net]))
    side = max(spec.min_hr_size(ratio), spec.align(ratio), 32)
    y = torch.rand(1, bands, side // ratio, side // ratio)
    z = torch.rand(1, msi, side, side)
    base = torch.rand(1, bands, side, side)
    return ResidualOnBase(model, bands), y, z, base


@pytest.mark.parametrize("net", sorted(SUPERVISED))
def test_step_zero_returns_the_base_exactly(net):
    wrapped, y, z, base = _wrapped(net)
    for mode in ("train", "eval"):
        getattr(wrapped, mode)()
        with torch.no_grad():
            assert torch.equal(wrapped(y, z, base), base)


@pytest.mark.parametrize("net", sorted(SUPERVISED))
def test_one_step_leaves_the_base(net):
    """The zero gate must not be a dead end.

    Its gradient is non-zero at step 0, and one optimiser step moves the output off the base (AMSF-Net's own zero skip
    gain is opened for this).
    """
    wrapped, y, z, base = _wrapped(net)
    wrapped.train()
    target = base + 0.1 * torch.rand_like(base)
    loss = (wrapped(y, z, base) - target).abs().mean()
    loss.backward()
    assert wrapped.gain.grad.abs().sum() > 0
    torch.optim.Adam(wrapped.parameters(), lr=1e-2).step()
    with torch.no_grad():
        assert not torch.equal(wrapped(y, z, base), base)


def test_residual_of_a_bicubic_skip_net_is_its_branch():
    """SSJCN's estimate is bicubic(y) + correction.

    The residual the gain scales is that correction, so its bicubic skip is replaced by the base (x = base + g *
    correction).
    """
    wrapped, y, z, base = _wrapped("ssjcn")
    wrapped.eval()
    with torch.no_grad():
        wrapped.gain.fill_(1.0)
        up = torch.nn.functional.interpolate(y, size=z.shape[-2:], mode="bicubic", align_corners=False)
        full = wrapped.net(y, z)
        torch.testing.assert_close(wrapped(y, z, base), base + (full - up))


def test_cropped_residual_of_amsf_lite_equals_the_whole_one_cut_to_the_core():
    """AMSF-Net lite crops its HR stage (and bicubic(y)); the wrapper takes the core's base and returns the core."""
    spec = get_spec("amsfnet")
    torch.manual_seed(0)
    net = spec.build(6, 3, 2, **dict(spec.defaults, lite=True))
    side = 8 * spec.align(2)
    y, z = torch.rand(1, 6, side // 2, side // 2), torch.rand(1, 3, side, side)
    net.train()(y, z)  # fixes the spectral basis
    wrapped = ResidualOnBase(net, 6).eval()
    assert wrapped.crops_hr_stage and not ResidualOnBase(spec.build(6, 3, 2, **spec.defaults), 6).crops_hr_stage
    base = torch.rand(1, 6, side, side)
    crop = (3 * spec.align(2), 3, 5, 2 * spec.align(2) + 1)  # HR-stage windows cut off top and right
    top, bottom, left, right = crop
    with torch.inference_mode():
        wrapped.gain.uniform_(0.5, 1.5)
        whole = wrapped(y, z, base)[..., top:side - bottom, left:side - right]
        cut = wrapped(y, z, base[..., top:side - bottom, left:side - right].contiguous(), crop=crop)
    assert cut.shape == whole.shape
    torch.testing.assert_close(cut, whole, rtol=0, atol=1e-5 * float(whole.abs().max()))
