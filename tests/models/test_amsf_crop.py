"""AMSF-Net lite's cropped HR stage (``forward(y, z, crop)``) and the windowed up-sampling it rests on.

The equality of the cropped forward with the whole forward on trained weights is in test_amsf_tiling.py
(it shares that file's trained checkpoint).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsifusion.models import amsf_net
from hsifusion.models.blocks import core_box, upsample_box


@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_upsample_box_equals_the_whole_upsampling_cut_to_the_box(ratio, mode):
    g = torch.Generator().manual_seed(ratio)
    t = torch.rand(1, 5, 13, 11, generator=g)
    whole = F.interpolate(t, scale_factor=ratio, mode=mode, align_corners=False)
    H, W = whole.shape[-2:]
    for box in [(0, H, 0, W), (1, H - 3, 5, W), (ratio * 3, ratio * 9, 7, 2 * ratio + 9), (H - 2, H, 0, 1)]:
        part = upsample_box(t, ratio, box, mode)
        expected = whole[..., box[0]:box[1], box[2]:box[3]]
        assert part.shape == expected.shape and part.is_contiguous()
        assert torch.allclose(part, expected, rtol=0, atol=1e-6 * float(whole.abs().max())), box


def test_core_box_is_what_the_crop_leaves_and_refuses_an_empty_core():
    assert core_box((1, 3, 40, 48), (1, 2, 3, 4)) == (1, 38, 3, 44)
    assert core_box((40, 48), None) == (0, 40, 0, 48)
    with pytest.raises(ValueError, match="leaves nothing"):
        core_box((40, 48), (20, 20, 0, 0))
    with pytest.raises(ValueError, match="leaves nothing"):
        core_box((40, 48), (0, 0, -1, 0))


@pytest.mark.parametrize("crop", [(0, 0, 0, 0), (160, 160, 160, 160), (37, 161, 1, 48), (49, 50, 51, 52)])
def test_hr_stage_window_keeps_the_margin_at_even_offsets(crop):
    net = amsf_net.build(6, 3, 4, lite=True)
    shape = (1, 3, 384, 416)
    k0, k1, l0, l1 = core_box(shape, crop)
    r0, r1, c0, c1 = net.hr_stage_box(shape, (k0, k1, l0, l1))
    m = amsf_net.HR_STAGE_MARGIN
    for start, kept in ((r0, k0), (c0, l0)):
        assert start % amsf_net.HR_STAGE_STEP == 0 and max(0, kept - m - 1) <= start <= max(0, kept - m)
    for end, kept, size in ((r1, k1, shape[2]), (c1, l1, shape[3])):
        assert (size - end) % amsf_net.HR_STAGE_STEP == 0 and min(size, kept + m) <= end <= min(size, kept + m + 1)


def test_crop_is_refused_by_the_paper_configuration_and_in_training():
    y, z = torch.rand(1, 6, 16, 16), torch.rand(1, 3, 32, 32)
    paper = amsf_net.build(6, 3, 2).eval()
    assert not paper.crops_hr_stage
    with torch.no_grad(), pytest.raises(ValueError, match="lite"):
        paper(y, z, crop=(8, 8, 8, 8))
    lite = amsf_net.build(6, 3, 2, lite=True)
    assert lite.crops_hr_stage
    with pytest.raises(ValueError, match="inference"):
        lite.train()(y, z, crop=(8, 8, 8, 8))
    with pytest.raises(ValueError, match="inference"):
        lite.eval()(y, z, crop=(8, 8, 8, 8))  # autograd on


def test_cropped_forward_of_a_whole_crop_of_zero_is_the_whole_forward():
    """Crop = 0 on every side runs every stage on the whole input: the same arithmetic as no crop."""
    torch.manual_seed(0)
    net = amsf_net.build(6, 3, 2, lite=True).train()
    y, z = torch.rand(1, 6, 32, 32), torch.rand(1, 3, 64, 64)
    net(y, z)  # fixes the basis
    net.eval()
    with torch.inference_mode():
        net.skip_gain.fill_(1.0)
        assert torch.equal(net(y, z, crop=(0, 0, 0, 0)), net(y, z))


def test_lite_runs_under_bfloat16_autocast_cropped_or_not():
    """BACKEND=bf16 (engine/pipeline/runtime.py): the head's code comes out in bfloat16 and is decoded in float32.

    At gain 1 with random weights bfloat16 moves the output by about 0.5 % of its largest value (measured 5.4e-3);
    2e-2 allows for that and still fails on a wrong window or a garbled decode (errors of order 1).
    """
    torch.manual_seed(0)
    net = amsf_net.build(12, 3, 2, lite=True).train()
    y, z = torch.rand(1, 12, 64, 64), torch.rand(1, 3, 128, 128)
    net(y, z)  # fixes the basis
    net.eval()
    crop = (40, 40, 40, 40)
    with torch.inference_mode():
        net.skip_gain.fill_(1.0)
        full = net(y, z)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            whole, cut = net(y, z).float(), net(y, z, crop=crop).float()
    scale = float(full.abs().max())
    assert whole.dtype == cut.dtype == torch.float32 and cut.shape[-2:] == (48, 48)
    assert float((whole - full).abs().max()) <= 2e-2 * scale
    assert float((cut - full[..., 40:-40, 40:-40]).abs().max()) <= 2e-2 * scale


def test_only_amsf_lite_on_the_cpu_crops_its_own_tiles():
    """crops_itself: the cropped path has no GPU out-of-memory retry, and only lite's forward takes a crop."""
    from types import SimpleNamespace

    from hsifusion.engine.methods.anchored import AnchoredNetwork, make_base
    from hsifusion.engine.methods.network import NetworkMethod
    from hsifusion.models import amsf_net
    from hsifusion.models.anchor import ResidualOnBase

    cpu, gpu = torch.device("cpu"), SimpleNamespace(type="cuda")
    method = NetworkMethod("amsfnet", lite=True)
    assert not method.crops_itself  # nothing trained or loaded yet
    method.model, method._device = amsf_net.build(6, 3, 2, lite=True).eval(), cpu
    assert method.crops_itself
    method._device = gpu
    assert not method.crops_itself
    method.model, method._device = amsf_net.build(6, 3, 2).eval(), cpu  # the paper configuration
    assert not method.crops_itself

    anchored = AnchoredNetwork(NetworkMethod("amsfnet", lite=True), "glp")
    assert not anchored.crops_itself  # not fitted
    anchored.base = make_base("glp")
    assert anchored.crops_itself  # the network not used: the base alone, which crops itself
    anchored.use_net, anchored._device = True, cpu
    assert not anchored.crops_itself  # an unsupervised blend: no model
    anchored.model = ResidualOnBase(amsf_net.build(6, 3, 2, lite=True), 6).eval()
    assert anchored.crops_itself
    anchored._device = gpu
    assert not anchored.crops_itself
    anchored._device = cpu
    anchored.net.runtime.backend = "compile"  # a crop per edge tile would compile the network again each time
    assert not anchored.crops_itself
    compiled = NetworkMethod("amsfnet", lite=True, backend="compile")
    compiled.model, compiled._device = amsf_net.build(6, 3, 2, lite=True).eval(), cpu
    assert not compiled.crops_itself
