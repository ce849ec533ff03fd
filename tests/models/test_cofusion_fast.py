"""CoFusion's fast inference path against its straightforward form (docs/networks.md#cofusion).

The model runs channels-last, evaluates SSCFM's two-way mask softmax as a sigmoid, writes the grouped
cross-gating input through a strided view and applies the 1x1 HSI head before the bilinear up-sampling.
Each reference below is the plain formula of the block, on the same weights; float32 sums in another
order differ in the last bits, hence the relative tolerance.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsifusion.models import cofusion

RTOL = 1e-5  # of the largest |value|: float32 reordering, far below any change of formula


def _close(actual, expected):
    scale = expected.abs().max().item()
    assert (actual - expected).abs().max().item() <= RTOL * scale


def _perturbed(module, seed=0):
    """Move every weight off its initial value (gates at 0/1 would hide a wrong formula)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return module.eval()


def _features(seed, n=16, size=24, channels_last=True):
    t = torch.randn(2, n, size, size, generator=torch.Generator().manual_seed(seed))
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def _gsb_reference(block, x):
    a = block.gate(F.max_pool2d(x, 3, stride=1, padding=1))
    return torch.softmax(a, dim=1) * F.gelu(block.value(x)) + x


def _sscfm_reference(block, a, b):
    s, t = block.norm_a(a), block.norm_b(b)
    a3, a5 = block.lka3(s), block.lka5(s)
    w = torch.softmax(torch.stack([a3, a5]), dim=0)
    sa = w[0] * a3 + w[1] * a5
    v = torch.sigmoid(block.sse2(F.relu(block.sse1(t.amax(dim=(2, 3))))))[:, :, None, None]
    bsz, n, hh, ww = s.shape
    p = (sa * t).reshape(bsz, 4, n // 4, hh, ww)
    q = (v * s).reshape(bsz, 4, n // 4, hh, ww)
    return block.out(F.gelu(block.groups(torch.cat([p, q], dim=2).reshape(bsz, 2 * n, hh, ww))))


def _cofusion_reference(net, y, z):
    """The forward in NCHW with the HSI head applied after the up-sampling (the paper's order)."""
    hh, ww = z.shape[-2:]
    sizes = [(hh, ww), (hh // 2, ww // 2), (hh // 4, ww // 4)]
    up = cofusion._resize
    y_up = up(y, sizes[0])
    hz = net.head_z(z)
    l1 = net.enc_l1(torch.cat([hz, net.head_y(y_up)], dim=1))
    l2 = net.enc_l2(up(l1, sizes[1]))
    l3 = net.enc_l3(up(l2, sizes[2]))
    g3 = net.enc_g3(torch.cat([net.head_y3(up(y, sizes[2])), up(hz, sizes[2])], dim=1))
    g2 = net.enc_g2(up(g3, sizes[1]))
    g1 = net.enc_g1(up(g2, sizes[0]))
    r1, r2, r3 = (level(a, b) for level, a, b in zip(net.levels, (l1, l2, l3), (g1, g2, g3)))
    x2 = r2 + net.up2(up(r3, sizes[1]))
    x1 = r1 + net.up1(up(x2, sizes[0]))
    return net.tail2(F.gelu(net.tail1(x1))) + y_up


@pytest.mark.parametrize("channels_last", [True, False])
def test_gated_spatial_block_matches_formula(channels_last):
    torch.manual_seed(0)
    block = _perturbed(cofusion.GatedSpatialBlock(16, 2))
    x = _features(1, channels_last=channels_last)
    with torch.no_grad():
        _close(block(x), _gsb_reference(block, x))


@pytest.mark.parametrize("channels_last", [True, False])
def test_sscfm_inference_matches_formula(channels_last):
    torch.manual_seed(0)
    block = _perturbed(cofusion.SSCFM(16))
    a, b = _features(2, channels_last=channels_last), _features(3, channels_last=channels_last)
    with torch.no_grad():
        fast = block(a, b)
        _close(fast, _sscfm_reference(block, a, b))
    if channels_last:  # the layout is kept (a contiguous result would slow every later convolution)
        assert fast.is_contiguous(memory_format=torch.channels_last)


def test_sscfm_training_path_matches_formula_without_dropout():
    torch.manual_seed(0)
    block = _perturbed(cofusion.SSCFM(16, mask_dropout=0.0)).train()
    a, b = _features(4), _features(5)
    _close(block(a, b).detach(), _sscfm_reference(block, a, b).detach())


@pytest.mark.parametrize("ratio", [2, 4])
def test_network_matches_reference_forward(ratio):
    torch.manual_seed(0)
    net = _perturbed(cofusion.CoFusion(10, 3, ratio, blocks=(1, 1, 1), width=16))
    g = torch.Generator().manual_seed(6)
    y, z = torch.rand(1, 10, 48 // ratio, 40 // ratio, generator=g), torch.rand(1, 3, 48, 40, generator=g)
    with torch.no_grad():
        fast = net(y, z)
        _close(fast, _cofusion_reference(net, y, z))
    assert fast.is_contiguous()  # NCHW out, whatever the layout inside


@pytest.mark.parametrize("ratio, crop", [(4, (8, 8, 8, 8)), (2, (0, 6, 3, 0)), (4, (16, 0, 0, 24))])
def test_cropped_forward_is_the_reference_cut_to_the_core(ratio, crop):
    """``forward(y, z, crop)`` runs the level-1 merge, up1 and the tail on the core plus 3 px only.

    Those layers reach 3 px, so the core is the whole reference forward cut to it (up to float reordering);
    a context of 2 px would change the core's edge (checked below, so the comparison can fail).
    """
    torch.manual_seed(0)
    net = _perturbed(cofusion.CoFusion(10, 3, ratio, blocks=(1, 1, 1), width=16))
    g = torch.Generator().manual_seed(7)
    y, z = torch.rand(1, 10, 48 // ratio, 40 // ratio, generator=g), torch.rand(1, 3, 48, 40, generator=g)
    top, bottom, left, right = crop
    with torch.inference_mode():
        reference = _cofusion_reference(net, y, z)[..., top:48 - bottom, left:40 - right]
        cropped = net(y, z, crop=crop)
        assert cropped.shape == reference.shape and cropped.is_contiguous()
        _close(cropped, reference)
        if any(crop):
            cofusion.TAIL_CONTEXT = 2
            try:
                short = net(y, z, crop=crop)
            finally:
                cofusion.TAIL_CONTEXT = 3
            assert (short - reference).abs().max().item() > 1e3 * RTOL * reference.abs().max().item()


def test_crop_is_refused_in_training():
    net = cofusion.CoFusion(10, 3, 2, blocks=(1, 1, 1), width=16)
    y, z = torch.rand(1, 10, 8, 8), torch.rand(1, 3, 16, 16)
    assert net.crops_hr_stage
    with pytest.raises(ValueError, match="inference"):
        net.train()(y, z, crop=(8, 0, 0, 0))
