"""SSJCN's channels-last inference against the plain NCHW forward (docs/networks.md#ssjcn).

The stages are layout-agnostic; the network converts its inputs to channels-last (oneDNN's native CPU
layout) and returns NCHW. Float32 sums in another order differ in the last bits: relative tolerance.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsifusion.models import ssjcn

RTOL = 1e-5  # of the largest |value|


def _reference(net, y, z):
    x0 = F.interpolate(y, size=z.shape[-2:], mode="bicubic", align_corners=False)
    return net.stage2(net.stage1(x0, y, z), y, z)


@pytest.mark.parametrize("ratio", [3, 4])
def test_channels_last_forward_matches_nchw_reference(ratio):
    torch.manual_seed(0)
    net = ssjcn.SSJCN(9, 3, ratio, width=16).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():  # off the initial values: SE/SA gates and PReLU slopes all matter
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        hh, ww = 12 * ratio, 8 * ratio  # multiples of lcm(4, r), rectangular
        y, z = torch.rand(1, 9, hh // ratio, ww // ratio, generator=g), torch.rand(1, 3, hh, ww, generator=g)
        fast, ref = net(y, z), _reference(net, y, z)
    assert fast.is_contiguous()
    assert (fast - ref).abs().max().item() <= RTOL * ref.abs().max().item()
