"""PSF kernels, block-centred decimation and noise (engine/sensors/degradation.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hsifusion.engine.errors import InputError
from hsifusion.engine.sensors.degradation import (
    NOISE_BLOCK,
    PSF,
    blur_decimate,
    gaussian_kernel,
    gaussian_sigma_from_mtf,
    measured_fwhm,
    noise_sigma,
    noise_window,
    read_kernel_file,
)


def _impulse_kernel(psf: PSF, r: int) -> np.ndarray:
    """Recover the effective 1-D PSF the decimation applies, by moving an impulse across HR positions.

    Returns the profile sampled at HR offsets from the block centre of LR pixel 2.
    """
    K = psf.size(r)
    m = psf.margin(r)
    start = m - (K - r) // 2
    n_lr = 5
    size = n_lr * r + 2 * m
    prof = {}
    for p in range(size):
        x = np.zeros((1, size, size))
        x[0, p, :] = 1.0  # a line: the row profile of the separable PSF
        y, _ = blur_decimate(x, psf, r, start, n_lr, n_lr)
        prof[p - m - (2 * r + (r - 1) / 2)] = y[0, 2, 2]
    offs = np.array(sorted(prof))
    return offs, np.array([prof[o] for o in offs])


@pytest.mark.parametrize("r,fwhm", [(2, 2.0), (3, 3.0), (4, 4.0), (4, 2.5), (4, 6.0), (8, 8.0), (3, 4.7)])
def test_gaussian_psf_measured_fwhm_within_2_percent(r, fwhm):
    psf = PSF("gaussian", fwhm=fwhm)
    k, _ = psf.kernel(r)
    assert k.shape[0] % 2 == r % 2 and abs(k.sum() - 1) < 1e-12
    assert np.allclose(k, k[::-1, ::-1]) and np.allclose(k, k.T)
    assert abs(measured_fwhm(k) - fwhm) / fwhm < 0.02
    # through the decimation itself: the profile seen by LR pixel 2 is centred on its block centre
    offs, prof = _impulse_kernel(psf, r)
    centre = (offs * prof).sum() / prof.sum()
    assert abs(centre) < 1e-9
    fw = math.sqrt((offs ** 2 * prof).sum() / prof.sum()) * 2 * math.sqrt(2 * math.log(2))
    assert abs(fw - fwhm) / fwhm < 0.02, fw
    # least-squares Gaussian fit (log profile against squared offset) of the samples above 1 % of the peak
    sel = prof > 0.01 * prof.max()
    slope = np.polyfit(offs[sel] ** 2, np.log(prof[sel]), 1)[0]
    fit_fwhm = math.sqrt(-1 / (2 * slope)) * 2 * math.sqrt(2 * math.log(2))
    assert abs(fit_fwhm - fwhm) / fwhm < 0.02, fit_fwhm


def test_default_fwhm_is_ratio_and_sigma_convention():
    psf = PSF()
    assert abs(psf.sigma(4) - 4 / 2.354820045) < 1e-6
    d = psf.describe(4)
    assert d["fwhm_hr_px"] == 4.0 and "block-centred" in d["sampling_phase"]
    # sigma = 0.666 r style requests are a FWHM of 0.666 r * 2.3548
    assert abs(PSF(fwhm=0.666 * 4 * 2.354820045).sigma(4) - 0.666 * 4) < 1e-6


@pytest.mark.parametrize("r", [2, 4, 5])
def test_mtf_gain_at_nyquist(r):
    gain = 0.3
    psf = PSF("mtf", gain=gain)
    assert abs(psf.sigma(r) - gaussian_sigma_from_mtf(gain, r)) < 1e-12
    taps = psf.separable(r)
    x = np.arange(taps.size) - (taps.size - 1) / 2
    f = 1.0 / (2 * r)
    mtf = abs((taps * np.exp(-2j * np.pi * f * x)).sum())
    assert abs(mtf - gain) < 0.01
    with pytest.raises(InputError):
        PSF("mtf", gain=1.5).sigma(r)


def test_block_centred_phase_on_a_ramp():
    """A linear ramp: LR pixel j must equal the HR coordinate of its block centre r*j + (r-1)/2."""
    for r in (2, 3, 4):
        psf = PSF()
        K, m = psf.size(r), psf.margin(r)
        n = 6
        cols = np.arange(-m, n * r + m, dtype=np.float64)
        x = np.broadcast_to(cols, (1, cols.size, cols.size)).copy()
        y, v = blur_decimate(x, psf, r, m - (K - r) // 2, n, n)
        np.testing.assert_allclose(y[0, 0], r * np.arange(n) + (r - 1) / 2, atol=1e-9)
        assert v.all()


def test_user_kernel_file(tmp_path):
    k7 = gaussian_kernel(2.0, 3)  # 7 x 7 sigma 2 style (the kernel size chosen by r=3 at 3 sigma differs)
    k = np.outer(np.exp(-0.5 * (np.arange(-3, 4) / 2.0) ** 2), np.exp(-0.5 * (np.arange(-3, 4) / 2.0) ** 2))
    p = tmp_path / "k.csv"
    np.savetxt(p, k, delimiter=",")
    psf = PSF("kernel", path=str(p))
    kk, padded = psf.kernel(3)  # odd ratio, odd kernel: used as is
    assert kk.shape == (7, 7) and not padded and abs(kk.sum() - 1) < 1e-12
    kk, padded = psf.kernel(4)  # even ratio: a zero row/col appended, documented
    assert kk.shape == (8, 8) and padded and np.all(kk[-1] == 0)
    assert psf.describe(4)["parity_padded"] is True
    np.save(tmp_path / "k.npy", k)
    assert PSF("kernel", path=str(tmp_path / "k.npy")).kernel(3)[0].shape == (7, 7)
    (tmp_path / "rect.csv").write_text("1,2\n3,4\n5,6\n")
    with pytest.raises(InputError, match="square"):
        read_kernel_file(str(tmp_path / "rect.csv"))
    (tmp_path / "neg.csv").write_text("0,-1\n-1,0\n")
    with pytest.raises(InputError, match="positive sum"):
        read_kernel_file(str(tmp_path / "neg.csv"))
    with pytest.raises(InputError, match="does not exist"):
        PSF("kernel", path=str(tmp_path / "none.csv")).kernel(4)
    with pytest.raises(InputError):
        PSF("kernel")
    assert k7.sum() == pytest.approx(1.0)


def test_kernel_decimation_matches_separable():
    """The generic 2-D kernel path equals the separable Gaussian path."""
    rng = np.random.default_rng(1)
    r = 4
    g = PSF(fwhm=3.0)
    k, _ = g.kernel(r)
    user = PSF("kernel", array=tuple(map(tuple, k)))
    m, K = g.margin(r), g.size(r)
    x = rng.random((3, 8 * r + 2 * m, 8 * r + 2 * m))
    a, _ = blur_decimate(x, g, r, m - (K - r) // 2, 8, 8)
    b, _ = blur_decimate(x, user, r, m - (K - r) // 2, 8, 8)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_nodata_rule():
    r, psf = 4, PSF()
    m, K = psf.margin(r), psf.size(r)
    x = np.full((2, 4 * r + 2 * m, 4 * r + 2 * m), 7.0)
    valid = np.ones(x.shape[1:], bool)
    valid[m + 5, m + 6] = False  # inside the block of LR pixel (1, 1)
    x[:, ~valid] = -9999
    y, v = blur_decimate(x, psf, r, m - (K - r) // 2, 4, 4, valid)
    assert not v[1, 1] and v.sum() == 15
    np.testing.assert_allclose(y[:, v], 7.0)  # neighbours renormalised over valid pixels


def test_noise_deterministic_and_tiling_independent():
    a = noise_window(5, 0, 3, 0, 0, 300, 200)
    b = noise_window(5, 0, 3, 0, 0, 300, 200)
    assert np.array_equal(a, b)
    sub = noise_window(5, 0, 3, 77, 130, 100, 50)  # crosses fixed block borders
    assert np.array_equal(sub, a[:, 130:180, 77:177])
    assert not np.array_equal(noise_window(6, 0, 3, 0, 0, 300, 200), a)
    assert not np.array_equal(noise_window(5, 1, 3, 0, 0, 300, 200), a)
    assert abs(a.std() - 1) < 0.01 and abs(a.mean()) < 0.01
    assert NOISE_BLOCK == 128
    assert noise_sigma(100.0, 20.0) == pytest.approx(1.0)
    assert noise_sigma(100.0, None) == 0.0
