"""Band presets by wavelength (QGIS-free)."""
from __future__ import annotations

import numpy as np
import pytest

from hsifusion.engine.errors import InputError, WavelengthError
from hsifusion.engine.io.presets import (
    PRESETS,
    choose_bands,
    cumulative_cut,
    default_preset,
    parse_wavelength_triplet,
    require_preset,
)
from hsifusion.engine.io.raster import raster_info

S2 = np.array([443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190], float)


@pytest.fixture(scope="module")
def enmap():
    from conftest import SAMPLE

    return raster_info(str(SAMPLE / "enmap_potsdam_reference.tif"))


def test_enmap_presets_pick_nearest_bands(enmap):
    wl = enmap.wavelengths
    for name, targets in PRESETS.items():
        c = choose_bands(wl, name, good_bands=enmap.good_bands)
        assert c.available, c.describe()
        good = np.flatnonzero(enmap.good_bands)
        for t, b in zip(targets, c.bands):
            assert b == good[np.argmin(np.abs(wl[good] - t))]
            assert abs(wl[b] - t) < 15
    tc = choose_bands(wl, "true_colour")
    assert [round(w) for w in tc.wavelengths] == [round(wl[b]) for b in tc.bands]
    assert tc.wavelengths[0] > tc.wavelengths[1] > tc.wavelengths[2]


def test_sentinel2_true_colour_and_swir():
    assert choose_bands(S2, "true_colour").bands == (3, 2, 1)       # B4, B3, B2
    assert choose_bands(S2, "swir").bands == (12, 11, 8)            # B12, B11, B8A (865 nm)
    assert choose_bands(S2, "colour_infrared").bands == (8, 3, 2)


def test_unavailable_preset_is_reported_not_faked():
    vnir = np.linspace(400, 1000, 60)
    c = choose_bands(vnir, "swir")
    assert not c.available and c.bands is None and set(c.missing) == {2200.0, 1600.0}
    assert "unavailable" in c.describe() and "2200" in c.describe()
    with pytest.raises(WavelengthError, match="2200"):
        require_preset(vnir, "swir")
    with pytest.raises(WavelengthError, match="no band wavelengths"):
        require_preset(None, "true_colour")
    assert default_preset(vnir).name == "true_colour"
    nir_only = np.linspace(800, 1000, 10)
    assert default_preset(nir_only) is None


def test_custom_preset_and_bad_bands():
    wl = np.array([450.0, 550.0, 650.0, 800.0, 810.0])
    c = choose_bands(wl, "805, 0.55, 450")                     # micrometres accepted
    assert c.available and c.name.startswith("custom") and c.bands[1] == 1
    good = np.array([True, True, True, False, True])
    c = choose_bands(wl, (800, 650, 450), good_bands=good)
    assert c.bands == (4, 2, 0)                                  # bad band 4 (800 nm) avoided
    with pytest.raises(InputError):
        parse_wavelength_triplet("800, 650")
    assert not choose_bands(wl, (2000, 650, 450), tolerance=50).available


def test_cumulative_cut():
    v = np.arange(1000, dtype=float)
    lo, hi = cumulative_cut(np.append(v, [-9999] * 50), 2, 98, nodata=-9999)
    assert lo == pytest.approx(np.percentile(v, 2)) and hi == pytest.approx(np.percentile(v, 98))
