"""UDS2C2 (docs/networks.md#uds2c2).

Module shapes at ratios 2/4/8, the spec's parameter counts, gradients, determinism, input checks, and a tiny
per-pair fit (loss falls, cancel works, tiles are exact).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsifusion.models import uds2c2
from hsifusion.models.catalogue import entry
from hsifusion.models.registry import count_parameters, get_spec
from invariance import assert_tile_invariant

CAVE_SPANS = [list(range(20, 31)), list(range(10, 23)), list(range(0, 12))]
TINY = (30, 30, 8)


def _structured_pair(bands, msi, ratio, hr=32, seed=0):
    """A smooth low-rank scene X, Y = block mean of X, Z = SRF · X (rows summing to 1)."""
    g = torch.Generator().manual_seed(seed)
    abund = F.interpolate(torch.rand(1, 4, hr // 8, hr // 8, generator=g), size=(hr, hr), mode="bilinear",
                          align_corners=False)
    spectra = torch.rand(4, bands, generator=g)
    x = torch.einsum("kc,bkhw->bchw", spectra, abund)
    x = x / x.max()
    srf = torch.rand(msi, bands, generator=g)
    srf = srf / srf.sum(dim=1, keepdim=True)
    y = F.avg_pool2d(x, ratio)
    z = torch.einsum("kc,bchw->bkhw", srf, x)
    return y, z, x, srf


def test_parameter_counts_match_spec():
    m = uds2c2.UDS2C2(31, 3, 4, spans=CAVE_SPANS)
    assert count_parameters(m.spe_u) == 2_988
    assert count_parameters(m.gce) == 1_224
    assert count_parameters(m.spa_d) == 16
    assert count_parameters(m.spe_d) == sum(len(s) for s in CAVE_SPANS) == 36
    assert count_parameters(uds2c2.SpeU(3, 31, k_scf=3)) == 7_732
    assert count_parameters(uds2c2.SpeU(4, 128, k_scf=1)) == 50_473
    assert count_parameters(uds2c2.SpeU(4, 128, k_scf=3)) == 181_681
    assert count_parameters(uds2c2.GCE(4)) == 1_581


@pytest.mark.parametrize("ratio,bands,msi,psf_kernel", [(2, 8, 1, "r"), (4, 12, 3, "kr"), (8, 10, 3, "r"),
                                                        (3, 6, 1, "kr")])
def test_module_shapes(ratio, bands, msi, psf_kernel, torch_device):
    torch.manual_seed(0)
    m = uds2c2.UDS2C2(bands, msi, ratio, psf_kernel=psf_kernel).to(torch_device)
    hr = 4 * ratio * 2
    z = torch.rand(2, msi, hr, hr, device=torch_device)
    y = torch.rand(2, bands, hr // ratio, hr // ratio, device=torch_device)
    assert m.spa_d(z).shape == (2, msi, hr // ratio, hr // ratio)
    assert m.spe_d(y).shape == (2, msi, hr // ratio, hr // ratio)
    assert m.gce(m.spe_d(y)).shape == (2, msi, hr // ratio, hr // ratio)
    assert m(z).shape == (2, bands, hr, hr)


def test_gce_starts_as_identity_and_scfconv_is_per_sample():
    gce = uds2c2.GCE(3)
    u = torch.rand(2, 3, 8, 8)
    assert torch.equal(gce(u), u)
    scf = uds2c2.SCFConv(6, 4, 3, groups=2)
    a, b = torch.rand(1, 6, 8, 8), torch.rand(1, 6, 8, 8) * 3
    both = scf(torch.cat([a, b]))
    assert torch.allclose(both[:1], scf(a), atol=1e-6) and torch.allclose(both[1:], scf(b), atol=1e-6)


def test_backward_pass():
    torch.manual_seed(0)
    m = uds2c2.UDS2C2(8, 3, 2, k_scf=3)
    y, z, _, _ = _structured_pair(8, 3, 2, hr=16)
    x_hat = m(z)
    loss = (F.l1_loss(m.gce(m.spe_d(y)), m.spa_d(z)) + F.l1_loss(m.spa_d(x_hat), y)
            + F.l1_loss(m.gce(m.spe_d(x_hat)), z))
    loss.backward()
    for name, p in m.named_parameters():
        if name.startswith("gce.scf"):  # behind the zero-initialised projection: no gradient at init
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_spans_from_srf():
    srf = torch.tensor([[0.0, 0.005, 0.5, 1.0, 0.2], [1.0, 0.0, 0.0, 0.0, 0.02]])
    assert uds2c2.spans_from_srf(srf) == [[2, 3, 4], [0, 4]]
    assert uds2c2.spans_from_srf(None, 4, 2) == [[0, 1, 2, 3]] * 2


def test_fit_lowers_loss_and_tiles_are_exact():
    y, z, _, _ = _structured_pair(12, 3, 4)
    calls = []
    m = uds2c2.fit(y, z, 4, iterations=TINY, callback=lambda *a: calls.append(a) or True)
    assert not m.cancelled
    assert [len(m.losses[s]) for s in ("s1", "s2", "s3")] == list(TINY)
    assert len(calls) == sum(TINY) and calls[0][:3] == ("s1", 1, TINY[0]) and calls[-1][:3] == ("s3", 8, 8)
    assert m.losses["s1"][-1] < m.losses["s1"][0]
    assert m.losses["s2"][-1] < m.losses["s2"][0]
    whole = m.predict(z)
    assert whole.shape == (1, 12, 32, 32) and torch.isfinite(whole).all()
    tiled = torch.zeros_like(whole)
    for rows in (slice(0, 20), slice(20, 32)):
        for cols in (slice(0, 12), slice(12, 32)):
            tiled[..., rows, cols] = m.predict(y, z[..., rows, cols])  # predict(y, z) form too
    assert_tile_invariant(tiled.detach().numpy(), whole.detach().numpy(), "UDS2C2 tiled predict")
    # state_dict round trip keeps the frozen attention
    clone = uds2c2.build(12, 3, 4)
    clone.load_state_dict(m.state_dict())
    assert_tile_invariant(clone.predict(z[..., :8, :8]).detach().numpy(), whole[..., :8, :8].detach().numpy(),
                          "UDS2C2 crop")


@pytest.mark.parametrize("k_scf,psf_kernel", [(1, "r"), (3, "r"), (1, "kr")])
def test_stage3_strips_equal_the_whole_image(k_scf, psf_kernel, monkeypatch):
    """Stage 3's HR terms in checkpointed strips (bounded memory): same loss and gradients as on the whole image.

    Tolerance: float32 summation order only (the strips add partial sums; 1e-5 of the loss, 1e-4 of the largest
    gradient entry per parameter). ``kr`` (reflect-padded SpaD) takes the whole-image path by design.
    """
    torch.manual_seed(0)
    m = uds2c2.UDS2C2(31, 3, 4, k_scf=k_scf, psf_kernel=psf_kernel)
    with torch.no_grad():
        for p in m.parameters():  # away from the identity init, so GCE's and SCFConv's terms matter
            p.add_(0.05 * torch.randn_like(p))
    y, z = torch.rand(1, 31, 10, 6), torch.rand(1, 3, 40, 24)

    def grads(loss):
        m.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    x_hat = m.spe_u(z)
    whole = F.l1_loss(m.gce(m.spe_d(x_hat)), z) + F.l1_loss(m.spa_d(x_hat), y)
    g_whole = grads(whole)
    import torch.utils.checkpoint as ckpt

    calls, real = [], ckpt.checkpoint
    monkeypatch.setattr(ckpt, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(uds2c2, "STRIP_MIN_PIXELS", 0)  # strips on this small image too
    strips = uds2c2.cross_terms(m, y, z, rows=8)
    g_strips = grads(strips)
    assert (len(calls) > 0) == (psf_kernel == "r")  # the strip path ran (kr: the whole image, by design)
    assert abs(strips.item() - whole.item()) <= 1e-5 * whole.item()
    assert g_whole.keys() == g_strips.keys() and len(g_whole) > 10
    for n, g in g_whole.items():
        assert (g_strips[n] - g).abs().max() <= 1e-4 * g.abs().max() + 1e-12, n


def test_fit_non_blind_and_determinism():
    y, z, x, srf = _structured_pair(10, 3, 2)
    psf = torch.ones(2, 2) / 4
    a = uds2c2.fit(y, z, 2, srf=srf, psf=psf, iterations=(5, 5, 3), seed=7)
    b = uds2c2.fit(y, z, 2, srf=srf, psf=psf, iterations=(5, 5, 3), seed=7)
    assert not a.spa_d.blind and not a.spe_d.blind
    assert torch.allclose(a.spe_d.matrix(), srf / srf.sum(1, keepdim=True))
    assert torch.allclose(a.spa_d(x), y, atol=1e-6)  # block mean = the frozen 2x2 box PSF
    assert torch.equal(a.predict(z), b.predict(z))
    c = uds2c2.fit(y, z, 2, srf=srf, psf=psf, iterations=(5, 5, 3), seed=8)
    assert not torch.equal(a.predict(z), c.predict(z))


def test_callback_cancels():
    y, z, _, _ = _structured_pair(8, 3, 4)
    seen = []

    def cb(stage, i, n, loss):
        seen.append((stage, i))
        return not (stage == "s2" and i == 3)

    m = uds2c2.fit(y, z, 4, iterations=(4, 10, 10), callback=cb)
    assert m.cancelled
    assert seen[-1] == ("s2", 3) and len(m.losses["s3"]) == 0
    assert m.predict(z).shape == (1, 8, 32, 32)


@pytest.mark.parametrize(
    "y_shape,z_shape,match",
    [
        ((1, 8, 8, 8), (1, 3, 30, 32), "ratio"),
        ((2, 8, 8, 8), (2, 3, 32, 32), "one pair"),
        ((8, 8, 8), (1, 3, 32, 32), "one pair"),
    ],
)
def test_wrong_shapes_raise(y_shape, z_shape, match):
    with pytest.raises(ValueError, match=match):
        uds2c2.fit(torch.rand(*y_shape), torch.rand(*z_shape), 4, iterations=(1, 1, 1))


def test_wrong_srf_and_predict_shape_raise():
    with pytest.raises(ValueError, match="SRF"):
        uds2c2.UDS2C2(8, 3, 4, srf=torch.ones(2, 8))
    with pytest.raises(ValueError, match="predict"):
        uds2c2.UDS2C2(8, 3, 4).predict(torch.rand(1, 4, 8, 8))


def test_registry_entry():
    spec = get_spec("uds2c2")
    assert entry("uds2c2").supervised is False and spec.fit is uds2c2.fit
    assert (spec.margin(4), spec.align(4), spec.align(3), spec.min_hr_size(4)) == (4, 4, 3, 16)
    assert isinstance(spec.build(31, 3, 4, psf_kernel="r", k_scf=1), uds2c2.UDS2C2)
