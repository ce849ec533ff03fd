"""Metric kernels against independent formulas (scikit-image, literal ports, closed forms)."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine.quality import metrics as M

SAMPLE = "sample/enmap_potsdam_reference.tif"


@pytest.fixture(scope="module")
def real_pair():
    """A crop of real EnMAP data and a blurred, noisy estimate of it (raw units)."""
    from scipy.ndimage import gaussian_filter

    from conftest import ROOT

    x = gdal.Open(str(ROOT / SAMPLE)).ReadAsArray(0, 0, 64, 48).astype(np.float64)[::8]  # 28 bands
    rng = np.random.default_rng(1)
    y = gaussian_filter(x, (0, 0.8, 0.8)) + rng.normal(0, 15, x.shape)
    return x, y


def test_sam_identical_and_scaled_are_zero(real_pair):
    x, _ = real_pair
    nonzero = np.abs(x).sum(0) > 0                     # the crop holds a few all-zero spectra
    a, ok = M.sam_degrees(x, x)
    assert np.array_equal(ok, nonzero) and np.all(a[ok] == 0)
    a, ok = M.sam_degrees(x, 3.7 * x)
    assert np.array_equal(ok, nonzero) and a[ok].max() < 1e-6


def test_sam_matches_arccos_and_zero_norm_excluded(real_pair):
    x, y = real_pair
    a, ok = M.sam_degrees(x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (x * y).sum(0) / np.linalg.norm(x, axis=0) / np.linalg.norm(y, axis=0)
    np.testing.assert_allclose(a[ok], np.degrees(np.arccos(np.clip(cos[ok], -1, 1))), atol=1e-6)
    assert np.isnan(a[~ok]).all()
    z = x.copy()
    z[:, 3, 4] = 0
    a2, ok2 = M.sam_degrees(z, y)
    assert not ok2[3, 4] and np.isnan(a2[3, 4]) and ok2.sum() == ok.sum() - int(ok[3, 4])


def test_psnr_cc_match_independent_formulas(real_pair):
    from skimage.metrics import peak_signal_noise_ratio

    x, y = real_pair
    m = M.BandMoments(x.shape[0])
    flat_x, flat_y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    m.add(flat_x[:, :1000], flat_y[:, :1000])         # two chunks: the parallel update must merge exactly
    m.add(flat_x[:, 1000:], flat_y[:, 1000:])
    t = M.band_table(m, flat_x.max(1))
    ref_psnr = [peak_signal_noise_ratio(x[b], y[b], data_range=x[b].max()) for b in range(x.shape[0])]
    np.testing.assert_allclose(t["PSNR"], ref_psnr, atol=1e-6)
    ref_cc = [np.corrcoef(flat_x[b], flat_y[b])[0, 1] for b in range(x.shape[0])]
    np.testing.assert_allclose(t["CC"], ref_cc, atol=1e-10)


def test_ssim_matches_skimage(real_pair):
    from skimage.metrics import structural_similarity

    x, y = real_pair
    r = M.SSIM_RADIUS
    peaks = x.reshape(x.shape[0], -1).max(1)
    ok = np.zeros(x.shape[1:], bool)
    ok[r:-r, r:-r] = True
    # pad the tile by the window radius: the padded values are never centres, so any padding works
    xp = np.pad(x, ((0, 0), (r, r), (r, r)), mode="reflect")
    yp = np.pad(y, ((0, 0), (r, r), (r, r)), mode="reflect")
    sums, n = M.ssim_sums(xp, yp, ok, peaks)
    ours = sums / n
    ref = [structural_similarity(x[b], y[b], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=peaks[b]) for b in range(x.shape[0])]
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.max(np.abs(ours - ref)) < 1e-8


def test_window_all_valid():
    v = np.ones((20, 30), bool)
    v[10, 12] = False
    c = M.window_all_valid(v, 2)
    assert c.shape == (16, 26)
    assert not c[6:11, 8:13].any() and c.sum() == 16 * 26 - 25


def test_ergas_closed_form():
    rmse, mu = np.array([10.0, 10.0]), np.array([100.0, 200.0])
    assert M.ergas(rmse, mu, 4) == pytest.approx(25 * np.sqrt((0.1 ** 2 + 0.05 ** 2) / 2), rel=1e-12)


def test_uiqi_blocks_match_direct_formula(real_pair):
    x, y = real_pair
    xs, ys = x[:, :32, :32], y[:, :32, :32]
    s, n = M.block_uiqi(xs, ys, np.ones((32, 32), bool))
    for b in range(3):
        a, c = xs[b].ravel(), ys[b].ravel()
        cov = np.mean((a - a.mean()) * (c - c.mean()))
        q = 4 * cov * a.mean() * c.mean() / ((a.var() + c.var()) * (a.mean() ** 2 + c.mean() ** 2))
        assert s[b] / n[b] == pytest.approx(q, rel=1e-10)


# ---------------------------------------------------------------- Q2n: literal port of q2n.m's block
def _onion_mult_literal(o1, o2):
    """Scalar transcription of onion_mult.m (1-D vectors)."""
    n = len(o1)
    if n == 1:
        return o1 * o2
    h = n // 2
    a, b = o1[:h].copy(), o1[h:].copy()
    b[1:] = -b[1:]
    c, d = o2[:h].copy(), o2[h:].copy()
    d[1:] = -d[1:]
    if n == 2:
        return np.array([a[0] * c[0] - d[0] * b[0], a[0] * d[0] + c[0] * b[0]])
    bb = np.concatenate([b[:1], -b[1:]])
    aa = np.concatenate([a[:1], -a[1:]])
    return np.concatenate([_onion_mult_literal(a, c) - _onion_mult_literal(d, bb),
                           _onion_mult_literal(aa, d) + _onion_mult_literal(c, b)])


def _onions_quality_literal(d1, d2):
    """onions_quality.m on one block (bands, h, w), pixel loop for the hypercomplex product."""
    d1, d2 = d1.astype(np.float64).copy(), d2.astype(np.float64).copy()
    d2[1:] = -d2[1:]
    n3 = d1.shape[0]
    p = d1.shape[1] * d1.shape[2]
    for i in range(n3):
        s, t = d1[i].mean(), d1[i].std(ddof=1)
        if t == 0:
            t = np.finfo(float).eps
        d1[i] = (d1[i] - s) / t + 1
        if s == 0:
            d2[i] = d2[i] - s + 1 if i == 0 else -(-d2[i] - s + 1)
        else:
            d2[i] = (d2[i] - s) / t + 1 if i == 0 else -((-d2[i] - s) / t + 1)
    m1, m2 = d1.mean((1, 2)), d2.mean((1, 2))
    f = p / (p - 1)
    t3 = f * (d1 ** 2).sum(0).mean() + f * (d2 ** 2).sum(0).mean() - f * ((m1 ** 2).sum() + (m2 ** 2).sum())
    bias = 2 * np.sqrt((m1 ** 2).sum() * (m2 ** 2).sum()) / ((m1 ** 2).sum() + (m2 ** 2).sum())
    if t3 == 0:
        return bias
    v1, v2 = d1.reshape(n3, -1), d2.reshape(n3, -1)
    qu = np.mean([_onion_mult_literal(v1[:, k], v2[:, k]) for k in range(p)], axis=0)
    q = (f * qu - f * _onion_mult_literal(m1, m2)) * bias * 2 / t3
    return np.sqrt((q ** 2).sum())


@pytest.mark.parametrize("bands", [4, 5, 8])
def test_q2n_block_matches_literal_port(real_pair, bands):
    x, y = real_pair
    xs, ys = x[:bands, :32, :32], y[:bands, :32, :32]
    n3 = M.next_pow2(bands)
    pad = np.zeros((n3 - bands, 32, 32))
    ref = _onions_quality_literal(np.concatenate([xs, pad]), np.concatenate([ys, pad]))
    ours = M.block_q2n(xs, ys, np.ones((32, 32), bool))
    assert ours.shape == (1,)
    assert ours[0] == pytest.approx(ref, rel=1e-9)
    assert 0 < ours[0] < 1


def test_q2n_identical_is_one_and_table_is_the_product(real_pair):
    x, _ = real_pair
    v = M.block_q2n(x[:, :32, :64], x[:, :32, :64], np.ones((32, 64), bool))
    np.testing.assert_allclose(v, 1.0, atol=1e-9)
    idx, sign = M.onion_table(16)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    np.testing.assert_allclose((a[:, None] * b[idx] * sign).sum(0), _onion_mult_literal(a, b), atol=1e-12)


def test_block_partial_validity_and_skips():
    rng = np.random.default_rng(3)
    x = rng.uniform(1, 2, (4, 40, 40))
    valid = np.ones((40, 40), bool)
    s, n = M.block_uiqi(x, x, valid)
    # 2x2 blocks: the 32x32 one, two 32x8 edge blocks (256 px, kept) and an 8x8 corner (skipped)
    assert np.all(n == 3) and np.allclose(s / n, 1.0)
    valid[:32, :32] = False
    valid[0, 0] = True
    s, n = M.block_uiqi(x, x, valid)
    assert np.all(n == 2)


def test_qnr_of_consistent_images():
    acc = M.QnrAccumulator(3, 2)
    rng = np.random.default_rng(5)
    f = rng.uniform(1, 2, (3, 64, 64))
    m = rng.uniform(1, 2, (2, 64, 64))
    acc.add_hr(f, m, np.ones((64, 64), bool))
    acc.add_lr(f, m, np.ones((64, 64), bool))          # same statistics at both scales: no distortion
    r = acc.result()
    assert r["D_LAMBDA"] == pytest.approx(0, abs=1e-12) and r["D_S"] == pytest.approx(0, abs=1e-12)
    assert r["QNR"] == pytest.approx(1)
