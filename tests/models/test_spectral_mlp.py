"""Spectral MLP (docs/networks.md#spectral-mlp): per-pixel map, tiles, LR consistency of the injection, budget.

Tiny pairs and budgets: seconds each.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsifusion.engine.sensors.degradation import PSF, blur_decimate
from hsifusion.models import spectral_mlp
from hsifusion.models.registry import get_spec
from invariance import assert_tile_invariant

RATIO = 4


def wald_degrade(x: np.ndarray, ratio: int) -> np.ndarray:
    """The engine's numpy degradation (Gaussian PSF FWHM = ratio, block-centred, reflected edges)."""
    psf = PSF(kind="gaussian", fwhm=float(ratio))
    m = psf.margin(ratio)
    padded = np.pad(x.astype(np.float64), ((0, 0), (m, m), (m, m)), mode="reflect")
    y, _ = blur_decimate(padded, psf, ratio, m - (psf.size(ratio) - ratio) // 2, x.shape[1] // ratio,
                         x.shape[2] // ratio)
    return y


def nonlinear_pair(bands=24, msi=4, hr=64, ratio=RATIO, seed=0):
    """X with a non-linear spectral mixture (no linear map reproduces it from Z), Z = SRF X, Y = D X."""
    g = torch.Generator().manual_seed(seed)
    abund = F.interpolate(torch.rand(1, 3, hr // 8, hr // 8, generator=g), size=(hr, hr), mode="bicubic",
                          align_corners=False)[0].clamp(0, 1).numpy()
    spectra = torch.rand(3, bands, generator=g).numpy()
    x = np.einsum("kc,khw->chw", spectra, abund) + 0.5 * np.einsum("c,hw->chw", spectra[0], abund[1] * abund[2])
    srf = torch.rand(msi, bands, generator=g).numpy()
    srf /= srf.sum(axis=1, keepdims=True)
    z = np.einsum("kc,chw->khw", srf, x)
    y = wald_degrade(x, ratio)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]  # noqa: E731
    return as_t(y), as_t(z), x


@pytest.fixture(scope="module")
def fitted():
    y, z, x = nonlinear_pair()
    return spectral_mlp.fit(y, z, RATIO, iterations=60, seed=0), y, z, x


def test_registry_and_shapes(fitted):
    model, y, z, _ = fitted
    spec = get_spec("spectralmlp")
    assert spec.fit is spectral_mlp.fit
    out = model.predict(y, z)
    assert out.shape == (1, y.shape[1], z.shape[2], z.shape[3]) and torch.isfinite(out).all()
    assert model.predict(z).shape == out.shape


def test_map_is_per_pixel(fitted):
    """F alone on any window, unaligned and without context, equals the whole image's f there."""
    model, _, z, _ = fitted
    whole = model.predict(z)[0].numpy()
    part = model.predict(z[:, :, 5:23, 7:50])[0].numpy()
    assert_tile_invariant(part, whole[:, 5:23, 7:50], "f on a window")


def test_injected_output_is_tile_exact(fitted):
    """Tiles of 16 HR px read with the declared margin give the whole image's output on their cores."""
    model, y, z, _ = fitted
    whole = model.predict(y, z)[0].numpy()
    m, core, hr = spectral_mlp.SpectralMLP.margin(RATIO), 16, z.shape[-1]
    checked = 0
    for r0 in range(m, hr - m - core + 1, core):
        for c0 in range(m, hr - m - core + 1, core):
            zw = z[:, :, r0 - m:r0 + core + m, c0 - m:c0 + core + m]
            yw = y[:, :, (r0 - m) // RATIO:(r0 + core + m) // RATIO, (c0 - m) // RATIO:(c0 + core + m) // RATIO]
            tile = model.predict(yw, zw)[0].numpy()[:, m:m + core, m:m + core]
            assert_tile_invariant(tile, whole[:, r0:r0 + core, c0:c0 + core], f"tile at {r0},{c0}")
            checked += 1
    assert checked >= 4


def test_injection_restores_the_lr_hsi(fitted):
    """Degrading the output with the engine's operator gives back Y far better than f(Z) alone does."""
    model, y, z, x = fitted
    target = y[0].numpy().astype(np.float64)
    err = {}
    for name, out in (("f", model.predict(z)), ("injected", model.predict(y, z))):
        err[name] = float(np.sqrt(np.mean((wald_degrade(out[0].numpy(), RATIO) - target) ** 2)))
    assert err["f"] > 0
    assert err["injected"] < 0.35 * err["f"], err


def test_fit_lowers_the_training_loss_and_stops_on_callback():
    y, z, _ = nonlinear_pair(hr=256, seed=1)  # LR 64x64: its scale check one scale down has 16x16 pixels
    model = spectral_mlp.fit(y, z, RATIO, iterations=80, seed=0)
    assert np.mean(model.losses[-10:]) < np.mean(model.losses[:5])
    calls = []
    stopped = spectral_mlp.fit(y, z, RATIO, iterations=500, seed=0,
                               callback=lambda s, i, n, loss: calls.append((s, i)) or i < 7)
    assert stopped.cancelled and calls == [("scale check", i) for i in range(1, 8)]


def test_small_pairs_get_the_ridge_map_alone():
    """Too few pixels one scale down for the scale check: the MLP is not trained (same output as 0 steps)."""
    y, z, _ = nonlinear_pair(hr=64, seed=1)
    a = spectral_mlp.fit(y, z, RATIO, iterations=50, seed=0)
    b = spectral_mlp.fit(y, z, RATIO, iterations=0, seed=0)
    assert a.best_iteration == 0 and not a.losses
    assert torch.allclose(a.predict(y, z), b.predict(y, z))


def test_fit_is_seeded():
    y, z, _ = nonlinear_pair(seed=2)
    a = spectral_mlp.fit(y, z, RATIO, iterations=20, seed=3).predict(y, z)
    b = spectral_mlp.fit(y, z, RATIO, iterations=20, seed=3).predict(y, z)
    assert torch.equal(a, b)


def test_bad_shapes_are_refused():
    y, z, _ = nonlinear_pair()
    with pytest.raises(ValueError, match="ratio"):
        spectral_mlp.fit(y, z[:, :, :-4], RATIO, iterations=1)
    model = spectral_mlp.fit(y, z, RATIO, iterations=1)
    with pytest.raises(ValueError, match="ratio"):
        model.predict(y[:, :, :-1], z)
    with pytest.raises(ValueError, match="MSI bands"):
        model.predict(z[:, :2])


def test_time_budget_stops_the_fit(tmp_path):
    """MAX_SECONDS (BASE=none) stops a fit asked for far more iterations than the budget allows."""
    from hsifusion.engine import api
    from hsifusion.engine.feedback import LogFeedback
    from rasterkit import synthetic_pair

    hsi, msi = synthetic_pair(tmp_path, RATIO, lr_size=(64, 64), bands=20, msi_bands=4)  # a scale check can run
    fb = LogFeedback()
    t0 = time.perf_counter()
    api.fuse(str(hsi), str(msi), str(tmp_path / "out.tif"), "spectralmlp",
             {"base": "none", "iterations": 10_000_000, "max_seconds": 2.0, "seed": 0}, feedback=fb)
    elapsed = time.perf_counter() - t0
    # 10 million steps take hours; the budget stops the fit after 2 s (imports, I/O and inference on top)
    assert elapsed < 60, elapsed
    steps = [m for m in fb.messages if ": iteration " in m]
    assert steps and all("/10000000" in m for m in steps) and not any("iteration 10000000/" in m for m in steps)
    assert any("budget" in m for m in fb.messages)
