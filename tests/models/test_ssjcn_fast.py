"""SSJCN's channels-last inference against the plain NCHW forward (docs/networks.md#ssjcn).

The stages are layout-agnostic; the network converts its inputs to channels-last (oneDNN's native CPU
layout) and returns NCHW. Float32 sums in another order differ in the last bits: relative tolerance.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsifusion.models import ssjcn
from hsifusion.models.blocks import SA7, SE

RTOL = 1e-5  # of the largest |value|


def _reference(net, y, z):
    """The plain NCHW forward; each stage's reconstruction in its three-step form ``x + SA7(SE(E))``."""
    x0 = F.interpolate(y, size=z.shape[-2:], mode="bicubic", align_corners=False)
    with torch.enable_grad():  # the stages' autograd path: the formula as written, no in-place fusion
        return net.stage2(net.stage1(x0, y, z), y, z).detach()


def test_se_and_sa_split_into_their_weights_and_the_product():
    g = torch.Generator().manual_seed(2)
    se, sa = SE(8, 4), SA7()
    x = torch.randn(2, 8, 10, 12, generator=g)
    s = torch.sigmoid(se.excite(F.relu(se.squeeze(x.mean(dim=(2, 3), keepdim=True)))))
    pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
    torch.testing.assert_close(se(x), x * s)
    torch.testing.assert_close(sa(x), x * torch.sigmoid(sa.conv(pooled)))


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
