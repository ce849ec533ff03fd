"""The one tolerance for "the same result whatever the tiling / the worker / the shape".

A tile, a worker or a GPU-out-of-memory retry computes the same pixels with matrices of other widths.
BLAS (and torch's convolution/interpolation kernels) pick different code paths for different widths
and CPUs, so sums are accumulated in another order and float32 results differ in the last bits;
an iterative method amplifies that (CNMF, 60 iterations, on the bundled sample: tiles of 24 vs 512 px
differ by up to 2e-6 of the largest value on the development CPU, by other amounts on others). Bit
identity is therefore not a property the engine can promise across machines; what it promises is
that tiling adds no *error*: edge effects, a wrong offset or a missing margin change values by
percent, which this tolerance (1e-4 of the largest magnitude: 50x the measured CNMF spread) still
catches by two orders of magnitude.

Exact comparisons stay where the arithmetic is the same by construction: the same run repeated, and
per-pixel code with a fixed order of operations whatever the tile (simulate's tap-by-tap blur and
band-by-band SRF, seeded per-pixel noise, assess' per-pixel spectral angle, nearest upsampling).
"""
from __future__ import annotations

import numpy as np

TILE_RTOL = 1e-4
"""Largest allowed deviation, relative to the largest absolute value of the reference."""


def assert_tile_invariant(actual, expected, what: str = "", rtol: float = TILE_RTOL, nodata=None) -> None:
    """Assert that two results agree within the tile tolerance.

    Assert equal shapes, the same non-finite (and ``nodata``) pixels, and the other values within
    ``rtol * max|expected|`` (the maximum taken over valid pixels only).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    finite = np.isfinite(e)
    assert np.array_equal(np.isfinite(a), finite), f"{what}: non-finite values at other pixels"
    if nodata is not None:
        hole = finite & (e == nodata)
        assert np.array_equal(finite & (a == nodata), hole), f"{what}: nodata at other pixels"
        finite &= ~hole
    if not finite.any():
        return
    scale = float(np.abs(e[finite]).max())
    np.testing.assert_allclose(a[finite], e[finite], rtol=0, atol=rtol * scale,
                               err_msg=f"{what}: differs by more than {rtol:g} x {scale:g}")
