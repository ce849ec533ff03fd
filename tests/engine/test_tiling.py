"""The tile loop: tiled == untiled, nodata handling, partial overlap, cancel leaves nothing."""
import mmap
import os

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import Cancelled
from hsifusion.engine.feedback import LogFeedback
from invariance import assert_tile_invariant
from rasterkit import make_raster, read, synthetic_pair


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest"])
def test_tiled_equals_untiled(tmp_path, mode):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(13, 11))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": mode}, tile_size=4096)
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), "upsample", {"mode": mode}, tile_size=8)
    a, b = read(tmp_path / "a.tif"), read(tmp_path / "b.tif")
    assert a.shape == (16, 52, 44)
    assert_tile_invariant(b, a, mode)


def test_untiled_equals_direct_interpolation_with_mirrored_edges(tmp_path):
    """The whole-raster run equals torch bicubic on the symmetric-padded array, cropped."""
    hsi, msi = synthetic_pair(tmp_path, lr_size=(6, 5))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "bicubic"}, tile_size=4096)
    import torch
    import torch.nn.functional as F

    lr = np.pad(read(hsi).astype(np.float32), ((0, 0), (2, 2), (2, 2)), mode="symmetric")
    ref = F.interpolate(torch.from_numpy(lr)[None], scale_factor=4.0, mode="bicubic",
                        align_corners=False)[0].numpy()[:, 8:-8, 8:-8]
    np.testing.assert_allclose(read(tmp_path / "a.tif"), ref, rtol=0, atol=2e-6)


def test_nearest_is_block_replication(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(5, 4), ratio=3)
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "nearest"}, tile_size=6)
    lr = read(hsi)
    np.testing.assert_array_equal(read(tmp_path / "a.tif"), lr.repeat(3, 1).repeat(3, 2))


def test_partial_overlap_output_covers_intersection_on_msi_grid(tmp_path):
    # MSI starts 2 HR px right of and 5 HR px below the HSI origin, and ends beyond it.
    hsi, _ = synthetic_pair(tmp_path, lr_size=(6, 6))
    msi = make_raster(tmp_path / "m.tif", np.ones((3, 30, 30), np.float32),
                      (1000 + 2 * 30, 30, 0, 2000 - 5 * 30, 0, -30))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "bicubic"}, tile_size=8)
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), "upsample", {"mode": "bicubic"}, tile_size=1000)
    o = gdal.Open(str(tmp_path / "a.tif"))
    assert o.GetGeoTransform() == (1060.0, 30.0, 0.0, 1850.0, 0.0, -30.0)
    assert (o.RasterXSize, o.RasterYSize) == (22, 19)
    assert_tile_invariant(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"))


def test_nodata_in_msi_and_hsi_marks_output_and_does_not_leak(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(8, 8), nodata=-32768.0)
    ds = gdal.Open(hsi, gdal.GA_Update)
    arr = ds.ReadAsArray()
    arr[:, 2, 3] = -32768
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    ds = gdal.Open(msi, gdal.GA_Update)
    m = ds.GetRasterBand(1).ReadAsArray()
    m[20, 21] = -32768
    ds.GetRasterBand(1).WriteArray(m)
    ds = None
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "bicubic"}, tile_size=8)
    out = read(tmp_path / "a.tif")
    assert (out[:, 8:12, 12:16] == -32768).all()          # the HR block under the LR nodata pixel
    assert (out[:, 20, 21] == -32768).all()               # the MSI nodata pixel
    valid = out[:, out[0] != -32768]
    assert valid.min() > 0.5 and valid.max() < 2.5        # filled with band means, not -32768 smeared
    assert gdal.Open(str(tmp_path / "a.tif")).GetRasterBand(1).GetNoDataValue() == -32768


def test_all_nodata_tiles_are_skipped(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(8, 8), nodata=-1.0)
    ds = gdal.Open(msi, gdal.GA_Update)
    for i in range(3):
        m = ds.GetRasterBand(i + 1).ReadAsArray()
        m[:, :16] = -1
        ds.GetRasterBand(i + 1).WriteArray(m)
    ds = None
    fb = LogFeedback()
    res = api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {}, tile_size=16, feedback=fb)
    assert res["TILES"] == 2 and any("skipped" in m for m in fb.messages)
    out = read(tmp_path / "a.tif")
    ds = gdal.Open(str(tmp_path / "a.tif"))
    nodata = ds.GetRasterBand(1).GetNoDataValue()  # -9999, not the input's -1: see writer.float_nodata
    assert (out[:, :, :16] == nodata).all() and (out[:, :, 16:] != nodata).all()


def test_cancelled_run_leaves_no_file(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(16, 16))
    out = tmp_path / "a.tif"
    fb = LogFeedback(cancel_after_progress=20)
    with pytest.raises(Cancelled):
        api.fuse(hsi, msi, str(out), "upsample", {}, tile_size=8, feedback=fb)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_progress_reported_per_tile(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(8, 8))
    fb = LogFeedback()
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {}, tile_size=8, feedback=fb)
    assert len(fb.progress) == 16 and fb.progress[-1] == pytest.approx(100)


def test_failed_run_leaves_no_file(tmp_path, monkeypatch):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(8, 8))
    from hsifusion.engine.methods import interpolate

    calls = {"n": 0}

    def boom(self, lr, hr, ratio, crop, feedback=None):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("disk on fire")
        return interpolate.FusionMethod.apply_cropped(self, lr, hr, ratio, crop, feedback)

    monkeypatch.setattr(interpolate.Upsample, "apply_cropped", boom)
    with pytest.raises(RuntimeError):
        api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {}, tile_size=8)
    assert not os.listdir(tmp_path) or not (tmp_path / "a.tif").exists()
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


def test_existing_output_replaced_only_on_success(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(8, 8))
    out = tmp_path / "a.tif"
    out.write_bytes(b"old")
    fb = LogFeedback(cancel_after_progress=10)
    with pytest.raises(Cancelled):
        api.fuse(hsi, msi, str(out), "upsample", {}, tile_size=8, feedback=fb)
    assert out.read_bytes() == b"old"
    api.fuse(hsi, msi, str(out), "upsample", {}, tile_size=8)
    assert read(out).shape == (16, 32, 32)


class _OomOnBigTiles:
    """Bicubic that fails like CUDA out-of-memory above a size, then (optionally) only on 'GPU'."""

    name, needs_torch, crops_itself = "fake_gpu", False, False  # a GPU method: the OOM-retry path

    def __init__(self, limit: int, cpu_after_fallback: bool = False):
        from hsifusion.engine.methods.interpolate import Upsample

        self.inner, self.limit, self.on_cpu, self.cpu_ok = Upsample("bicubic"), limit, False, cpu_after_fallback
        self.sizes = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def apply(self, lr, hr, ratio, feedback=None):
        self.sizes.append(hr.shape[1:])
        if hr.shape[1] * hr.shape[2] > self.limit and not self.on_cpu:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.apply(lr, hr, ratio, feedback)

    def fallback_to_cpu(self):
        if self.cpu_ok and not self.on_cpu:
            self.on_cpu = True
            return True
        return False


def test_gpu_out_of_memory_halves_tiles_and_output_is_unchanged(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(16, 16))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "bicubic"}, tile_size=4096)
    method = _OomOnBigTiles(limit=40 * 40)
    fb = LogFeedback()
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), method, tile_size=64, feedback=fb)
    assert_tile_invariant(read(tmp_path / "b.tif"), read(tmp_path / "a.tif"))
    assert any("retrying as tiles of 32x32" in w for w in fb.warnings)


def test_gpu_out_of_memory_on_smallest_tile_falls_back_to_cpu(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(4, 4))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "bicubic"}, tile_size=4096)
    method = _OomOnBigTiles(limit=1, cpu_after_fallback=True)
    fb = LogFeedback()
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), method, tile_size=16, feedback=fb)
    assert_tile_invariant(read(tmp_path / "b.tif"), read(tmp_path / "a.tif"))
    assert any("continuing on the CPU" in w for w in fb.warnings)


def test_writer_returns_free_heap_memory_every_few_tiles(tmp_path, monkeypatch):
    """The long tile loop hands freed heap pages back to the OS; output unchanged.

    It does so every TRIM_EVERY_WRITES blocks (peak memory grew with the raster without it:
    benchmarks/NOTES.md).
    """
    import sys

    from hsifusion.engine.io import writer
    from hsifusion.engine.pipeline import memory

    if sys.platform.startswith("linux"):
        assert memory.release_free_memory() is True
    calls = []
    monkeypatch.setattr(writer, "release_free_memory", lambda: calls.append(1) or True)
    hsi, msi = synthetic_pair(tmp_path, lr_size=(16, 16))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", {"mode": "bicubic"}, tile_size=8)  # 64 tiles
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), "upsample", {"mode": "bicubic"}, tile_size=4096)
    assert len(calls) == 64 // writer.TRIM_EVERY_WRITES
    assert_tile_invariant(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"))


def test_tile_buffers_reuse_written_arrays_of_the_same_shape():
    from hsifusion.engine.pipeline.memory import TileBuffers

    pool = TileBuffers(limit=2)
    a = pool.take((3, 4, 5))
    assert a.dtype == np.float32 and a.shape == (3, 4, 5)
    assert isinstance(a.base, mmap.mmap) and len(a.base) == a.nbytes  # a mapping of its own, outside the heap
    pool.give(a)
    assert pool.take((3, 4, 6)) is not a  # another shape: a fresh array
    assert pool.take((3, 4, 5)) is a      # the same shape: the array handed back
    assert pool.take((3, 4, 5)) is not a  # taken once only
    pool.give(a[:, :2])                   # a view: not taken back (its base may still be read)
    pool.give(np.zeros((3, 4, 5)))        # float64: not taken back
    pool.give(np.empty((7, 7), np.float32))  # a shape nobody asked for: not kept
    assert pool.held() == []
    pool.take((1, 2, 2))
    for _ in range(3):
        pool.give(np.empty((1, 2, 2), np.float32))
    assert pool.held() == [(1, 2, 2)] * 2  # bounded: the oldest dropped
    pool.clear()
    pool.give(np.empty((1, 2, 2), np.float32))  # clear() forgets the wanted shapes too
    assert pool.held() == []


def test_fuse_recycles_tile_arrays_and_the_output_is_unchanged(tmp_path, monkeypatch):
    """api.fuse recycles tile arrays; same bytes as without recycling.

    Each written tile array is handed back and the next tile of that shape reuses it (no fresh 58 MB mapping
    per tile); the pool is empty after the call.
    """
    from hsifusion.engine.pipeline import memory

    hsi, msi = synthetic_pair(tmp_path, lr_size=(16, 16))
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), "gsa", tile_size=8)  # 64 tiles, every one 8x8
    assert memory.TILE_BUFFERS.held() == []
    gave, taken = [], []
    real_take = memory.TILE_BUFFERS.take

    def counting_take(shape):
        arr = real_take(shape)
        taken.append(id(arr))
        return arr

    monkeypatch.setattr(memory.TILE_BUFFERS, "take", counting_take)
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), "gsa", tile_size=8)
    assert len(set(taken)) < len(taken) / 4  # arrays went round, not 64 new ones
    monkeypatch.setattr(memory.TILE_BUFFERS, "give", lambda a: gave.append(1))  # recycling off
    api.fuse(hsi, msi, str(tmp_path / "c.tif"), "gsa", tile_size=8)
    assert len(gave) == 64  # every written tile was offered back
    np.testing.assert_array_equal(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"))
    np.testing.assert_array_equal(read(tmp_path / "b.tif"), read(tmp_path / "c.tif"))


def test_padded_tiles_are_cropped_into_recycled_arrays(tmp_path, monkeypatch):
    """A method returning its padded tile (the networks): the crops go into recycled arrays; same bytes as without."""
    from hsifusion.engine.pipeline import memory

    hsi, msi = synthetic_pair(tmp_path, lr_size=(16, 16))
    with monkeypatch.context() as m:
        m.setattr(memory.TILE_BUFFERS, "give", lambda a: None)  # recycling off: a fresh array per tile
        api.fuse(hsi, msi, str(tmp_path / "a.tif"), _OomOnBigTiles(limit=10 ** 9), tile_size=8)  # 64 tiles
    taken = []
    real_take = memory.TILE_BUFFERS.take

    def counting_take(shape):
        arr = real_take(shape)
        if tuple(shape[-2:]) == (8, 8):  # the cropped cores (the bicubic inside takes padded tiles too)
            taken.append(arr)
        return arr

    monkeypatch.setattr(memory.TILE_BUFFERS, "take", counting_take)
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), _OomOnBigTiles(limit=10 ** 9), tile_size=8)
    assert len(taken) == 64 and len({id(a) for a in taken}) < 16  # arrays went round, not one new per tile
    assert memory.TILE_BUFFERS.held() == []
    np.testing.assert_array_equal(read(tmp_path / "a.tif"), read(tmp_path / "b.tif"))
