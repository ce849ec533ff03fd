"""One measured job in its own process (so its peak memory is its own). Prints one JSON line.

    python benchmarks/job.py fuse --hsi LR.tif --msi MS.tif --out OUT.tif --method gsa [--params JSON]
                                  [--tile 256] [--phases] [--profile FILE.prof] [--keep]
    python benchmarks/job.py io   --hsi LR.tif --msi MS.tif --out OUT.tif [--tile 256]

``fuse`` runs :func:`engine.api.fuse` (the same call as the Toolbox and the CLI). Times: total, fit
(scene statistics + training), and the tile phase. ``--phases`` adds the summed thread time of tile
reads, method compute and writes (the three stages of ``engine.pipeline.tiling.pipeline``). ``io`` is the I/O
limit: a plain GDAL windowed read of both inputs over the same core tiles and a windowed write of a
Float32 GeoTIFF of the output's size and band count with the engine's creation options, no threads.
Peak RSS = VmHWM of /proc/self/status at the end (this process image, all threads).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import register_package


def _status_mib(key: str) -> float:
    """A ``kB`` field of /proc/self/status in MiB; NaN where that file does not exist."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def peak_mib() -> float:
    """Peak RSS of this process image: /proc/self/status VmHWM.

    (``getrusage(RUSAGE_SELF).ru_maxrss`` is only the fallback: Linux carries the parent's high-water mark
    over ``exec``, so a child started by a big parent would report the parent's size.)
    """
    peak = _status_mib("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Phases:
    """Thread-safe accumulators of seconds per stage."""

    def __init__(self):
        self.lock = threading.Lock()
        self.t = {}

    def wrap(self, key, fn):
        def inner(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with self.lock:
                    self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - t0
        return inner


def cmd_fuse(a) -> dict:
    register_package()
    # Libraries imported up front: their import (~1.5 s for scipy) is a per-process constant, not fit time.
    import scipy.linalg
    import scipy.ndimage
    import scipy.optimize  # noqa: F401
    import torch  # noqa: F401

    from hsifusion.engine import api
    from hsifusion.engine.io.writer import RasterWriter
    from hsifusion.engine.methods import get_method
    from hsifusion.engine.pipeline import tiling

    params = json.loads(a.params or "{}")
    rss0 = rss_mib()
    method = get_method(a.method, **params)
    marks = {}
    phases = Phases()
    fit = method.fit

    def timed_fit(scene, feedback=None):
        marks["fit0"] = time.perf_counter()
        fit(scene, feedback)
        marks["fit1"] = time.perf_counter()

    method.fit = timed_fit
    if a.phases:
        tiling.read_tile = phases.wrap("read", tiling.read_tile)
        tiling.finish_tile = phases.wrap("compute", tiling.finish_tile)
        RasterWriter.write = phases.wrap("write", RasterWriter.write)
        RasterWriter.commit = phases.wrap("commit (flush)", RasterWriter.commit)
        api.build_scene = phases.wrap("scene statistics", api.build_scene)
    prof = None
    if a.profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    res = api.fuse(a.hsi, a.msi, a.out, method, tile_size=a.tile)
    t1 = time.perf_counter()
    if prof is not None:
        prof.disable()
        prof.dump_stats(a.profile)
    from osgeo import gdal
    ds = gdal.Open(a.out)
    w, h, b = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
    ds = None
    out = {"method": a.method, "params": params, "seconds": t1 - t0,
           "fit_seconds": marks.get("fit1", t0) - marks.get("fit0", t0),
           "tile_seconds": t1 - marks.get("fit1", t0), "tiles": res.get("TILES"),
           "width": w, "height": h, "bands": b, "mpx": w * h / 1e6,
           "rss_after_import_mib": rss0, "peak_rss_mib": peak_mib(), "tile": a.tile,
           "describe": {k: v for k, v in res.items() if k not in ("OUTPUT",)}}
    out["mpx_per_s"] = out["mpx"] / out["seconds"]
    out["tile_mpx_per_s"] = out["mpx"] / out["tile_seconds"] if out["tile_seconds"] > 0 else None
    if a.phases:
        out["phases"] = phases.t
        out["phases"]["fit (training / statistics)"] = out["fit_seconds"]
    if not a.keep:
        os.remove(a.out)
    return out


def cmd_io(a) -> dict:
    """The I/O limit on the engine's tile grid (core windows, no margin), single thread."""
    register_package()
    import numpy as np
    from osgeo import gdal

    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import open_raster, raster_info
    from hsifusion.engine.io.writer import DEFAULT_CREATION_OPTIONS, merge_creation_options
    from hsifusion.engine.pipeline.tiling import iter_cores

    hsi, msi = raster_info(a.hsi), raster_info(a.msi)
    pair = validate_pair(hsi, msi)
    r = pair.ratio
    region = pair.region
    tile = max(r, (a.tile // r) * r)
    cores = list(iter_cores(region, tile, r))
    rng = np.random.default_rng(0)
    buf = rng.random((hsi.bands, tile, tile), dtype=np.float32)  # made before timing
    rss0 = rss_mib()
    t0 = time.perf_counter()
    hds, mds = open_raster(a.hsi), open_raster(a.msi)  # opened as the engine opens them (direct I/O)
    drv = gdal.GetDriverByName("GTiff")
    opts = merge_creation_options(None)
    out = drv.Create(a.out, region.width, region.height, hsi.bands, gdal.GDT_Float32, options=opts)
    out.SetGeoTransform(pair.out_geotransform)
    tr = tw = 0.0
    for c in cores:
        cw = min(c.col_end, region.col_end) - c.col
        ch = min(c.row_end, region.row_end) - c.row
        ta = time.perf_counter()
        lr = hds.ReadAsArray(c.col // r, c.row // r, -(-cw // r), -(-ch // r), buf_type=gdal.GDT_Float32)
        m = pair.to_msi(c)
        hr = mds.ReadAsArray(m.col, m.row, cw, ch, buf_type=gdal.GDT_Float32)
        tb = time.perf_counter()
        blk = np.ascontiguousarray(buf[:, :ch, :cw])
        out.WriteRaster(c.col - region.col, c.row - region.row, cw, ch, blk, buf_xsize=cw,
                        buf_ysize=ch, buf_type=gdal.GDT_Float32)
        tr += tb - ta
        tw += time.perf_counter() - tb
        del lr, hr
    tc = time.perf_counter()
    out.FlushCache()
    out = None
    t1 = time.perf_counter()
    mpx = region.width * region.height / 1e6
    res = {"method": "io", "seconds": t1 - t0, "read_seconds": tr, "write_seconds": tw,
           "flush_seconds": t1 - tc, "width": region.width, "height": region.height, "bands": hsi.bands,
           "mpx": mpx, "mpx_per_s": mpx / (t1 - t0), "tiles": len(cores), "tile": tile,
           "creation_options": list(DEFAULT_CREATION_OPTIONS), "rss_after_import_mib": rss0,
           "peak_rss_mib": peak_mib()}
    if not a.keep:
        os.remove(a.out)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("job", choices=("fuse", "io"))
    ap.add_argument("--hsi", required=True)
    ap.add_argument("--msi", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", default="upsample")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--phases", action="store_true")
    ap.add_argument("--profile")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    res = cmd_fuse(a) if a.job == "fuse" else cmd_io(a)
    print(json.dumps(res, default=str), flush=True)


if __name__ == "__main__":
    main()
