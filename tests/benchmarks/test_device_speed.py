"""benchmarks/device_speed.py.

The GPU machine's benchmark must run without GDAL, and its whole-sample protocol must give what the engine's
tile loop gives (so its CPU and GPU rows compare with the others).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsifusion.engine.io.pair import validate_pair
from hsifusion.engine.io.raster import raster_info
from hsifusion.engine.io.scene import build_scene
from hsifusion.engine.methods import get_method
from hsifusion.engine.pipeline.tiling import fuse_tiles
from rasterkit import SAMPLE_HSI, SAMPLE_MSI

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import device_speed  # noqa: E402


@pytest.fixture(scope="module")
def sample():
    return device_speed.load_sample()


def _tile_loop(method) -> np.ndarray:
    scene = build_scene(validate_pair(raster_info(str(SAMPLE_HSI)), raster_info(str(SAMPLE_MSI))))
    method.fit(scene, None)
    h, w = scene.pair.region.height, scene.pair.region.width
    out = np.zeros((scene.pair.hsi.bands, h, w), np.float32)

    def write(a, win):
        out[:, win.row:win.row + win.height, win.col:win.col + win.width] = a

    fuse_tiles(scene, method, write, 256, -9999.0)
    return out


@pytest.mark.parametrize("name,params", [("upsample", {}), ("gsa", {}),
                                         ("amsfnet", {"iterations": 1, "device": "cpu", "base": "none"})])
def test_whole_sample_protocol_matches_the_tile_loop(sample, name, params):
    """apply_whole (arrays, no GDAL) == engine.pipeline.tiling.fuse_tiles on the same clean sample.

    AMSF-Net has a 32-px step, so its edge context differs from the others' 16 px.
    """
    ratio = sample["msi"].shape[1] // sample["lr"].shape[1]
    scene = device_speed.ArrayScene(sample, ratio)
    method = get_method(name, **params)
    expected = _tile_loop(method)  # fits the method on the GDAL scene, then the tile loop applies it
    got = device_speed.apply_whole(method, scene)
    good = sample["lr_good"]  # the tile loop writes nodata into bad bands; PSNR skips them
    assert good.sum() >= 200
    np.testing.assert_allclose(got[good], expected[good], rtol=1e-5, atol=1e-3)


def test_psnr_matches_engine_metrics(sample):
    """The script's PSNR == engine.quality.metrics' streaming band table (the quality benchmark's definition)."""
    from hsifusion.engine.quality.metrics import BandMoments, band_table

    ref, good, valid = sample["ref"], sample["ref_good"], sample["ref_valid"]
    est = ref + np.random.default_rng(0).normal(0, 20, ref.shape).astype(np.float32)
    x, y = ref[good][:, valid].astype(np.float64), est[good][:, valid].astype(np.float64)
    m = BandMoments(int(good.sum()))
    m.add(x[:, : x.shape[1] // 2], y[:, : y.shape[1] // 2])
    m.add(x[:, x.shape[1] // 2:], y[:, y.shape[1] // 2:])
    expected = float(np.mean(band_table(m, x.max(axis=1))["PSNR"]))
    assert device_speed.psnr_good_bands(ref, est, valid, good) == pytest.approx(expected, abs=1e-9)


def test_runs_without_gdal_from_the_exported_sample(tmp_path):
    """What the GPU machine does: --export-npz here, then a process in which osgeo cannot be imported."""
    npz = tmp_path / "sample.npz"
    subprocess.run([sys.executable, str(BENCH / "device_speed.py"), "--export-npz", str(npz)], check=True)
    code = f"""
import sys, json
sys.modules['osgeo'] = None  # any GDAL import now fails
sys.path.insert(0, {str(BENCH)!r})
import device_speed
res = device_speed.run('cpu', ['uds2c2'], [64, 96], True, 1, 10, npz={str(npz)!r}, save=False)
print(json.dumps({{'bicubic': res['bicubic_psnr'], 'rows': res['inference'][0]['rows']}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    assert 20 < res["bicubic"] < 30  # bicubic on the sample (real reference), not a made-up number
    rows = res["rows"]
    assert [r["tile"] for r in rows] == [64, 96]
    assert all(r["mpx_per_s"] > 0 and r["core"] == r["tile"] - 2 * r["margin"] for r in rows)
