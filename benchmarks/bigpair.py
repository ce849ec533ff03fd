"""Large real-data pairs for the throughput and memory benchmarks.

The HR reference is the bundled real EnMAP block (``sample/enmap_potsdam_reference.tif``, 128 x 64 px,
224 bands) mirror-tiled: a *period* GeoTIFF (the block and its flips, 2 x 2 blocks repeated up to
``PERIOD`` px a side, written window by window with GDAL) and a VRT that repeats the period up to the
requested size, so a 4096² x 224-band reference costs ~1 GB of disk, not 15 GB. Mirror tiling with
a period that is a multiple of twice the block is seamless: the VRT's plain repetition of the period
is the mirror tiling itself.

LR-HSI (x4) and HR-MSI (Sentinel-2A, the 12 bands EnMAP covers) come from ``engine.api.simulate`` on
that reference (Gaussian PSF FWHM = 4 HR px, no noise, seed 0) up to ``SIMULATE_MAX`` px; larger pairs
repeat the largest simulated pair 2 x 2 ... and are written out as GeoTIFFs with the engine's creation
options (the report says which). Written, not left as VRTs: a mosaic VRT keeps every source dataset open
with block structures of its own (~0.5 GB more peak memory at 4096², measured), which would charge the
benchmark's input format to the engine and make two sizes incomparable (the smaller pairs are GeoTIFFs).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SAMPLE, SEED, log, register_package

REFERENCE_BLOCK = SAMPLE / "enmap_potsdam_reference.tif"
PERIOD = 1024
SIMULATE_MAX = 2048
RATIO = 4
S2A_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]


def _copy_band_metadata(src_ds, dst_ds) -> None:
    for k in ("", "ENVI"):
        md = src_ds.GetMetadata(k)
        if md:
            dst_ds.SetMetadata(md, k)
    for i in range(1, src_ds.RasterCount + 1):
        s, d = src_ds.GetRasterBand(i), dst_ds.GetRasterBand(i)
        for dom in ("", "IMAGERY"):
            md = s.GetMetadata(dom)
            if md:
                d.SetMetadata(md, dom)
        if s.GetNoDataValue() is not None:
            d.SetNoDataValue(s.GetNoDataValue())
        if s.GetScale() not in (None, 1.0):
            d.SetScale(s.GetScale())
        if s.GetOffset() not in (None, 0.0):
            d.SetOffset(s.GetOffset())
        if s.GetDescription():
            d.SetDescription(s.GetDescription())


def build_period(out: Path, side: int = PERIOD, src: Path = REFERENCE_BLOCK) -> Path:
    """``side`` x ``side`` mirror tiling of ``src`` (side a multiple of twice the block's sides)."""
    import numpy as np
    from osgeo import gdal

    if out.exists():
        return out
    ds = gdal.Open(str(src))
    w, h, b = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
    if side % (2 * w) or side % (2 * h):
        raise ValueError(f"period {side} must be a multiple of {2 * w} and {2 * h}")
    block = ds.ReadAsArray().astype(np.float32)       # 128 x 64 x 224: 7 MB
    flips = {(fy, fx): np.ascontiguousarray(block[:, ::(-1 if fy else 1), ::(-1 if fx else 1)])
             for fy in (0, 1) for fx in (0, 1)}
    tmp = out.with_suffix(".partial.tif")
    dst = gdal.GetDriverByName("GTiff").Create(str(tmp), side, side, b, gdal.GDT_Float32,
                                              options=["TILED=YES", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER"])
    gt = ds.GetGeoTransform()
    dst.SetGeoTransform(gt)
    dst.SetProjection(ds.GetProjection())
    _copy_band_metadata(ds, dst)
    for i in range(side // h):
        for j in range(side // w):
            a = flips[(i % 2, j % 2)]
            dst.WriteRaster(j * w, i * h, w, h, a.tobytes(), buf_type=gdal.GDT_Float32)
    dst.FlushCache()
    dst = None
    tmp.rename(out)
    return out


def mosaic_vrt(period: Path, out: Path, size: int) -> Path:
    """A VRT of ``size`` x ``size`` px repeating ``period`` (size a multiple of the period)."""
    from osgeo import gdal

    if out.exists():
        return out
    pds = gdal.Open(str(period))
    p = pds.RasterXSize
    if size % p:
        raise ValueError(f"size {size} is not a multiple of the period {p}")
    return _repeat_vrt(period, out, size // p, size // p, pds)


def _repeat_vrt(src: Path, out: Path, nx: int, ny: int, src_ds=None) -> Path:
    """VRT repeating ``src`` nx x ny times on its own grid (shifted copies via VRT placement)."""
    from osgeo import gdal

    ds = src_ds or gdal.Open(str(src))
    w, h = ds.RasterXSize, ds.RasterYSize
    gt = ds.GetGeoTransform()
    parts = []
    for i in range(ny):
        for j in range(nx):
            part = out.parent / f"{out.stem}.part_{i}_{j}.vrt"
            ulx, uly = gt[0] + j * w * gt[1], gt[3] + i * h * gt[5]
            gdal.Translate(str(part), str(src), format="VRT",
                           outputBounds=[ulx, uly, ulx + w * gt[1], uly + h * gt[5]])
            parts.append(str(part))
    vrt = gdal.BuildVRT(str(out), parts)
    _copy_band_metadata(ds, vrt)
    vrt.FlushCache()
    vrt = None
    return out


def materialise(vrt: Path, out: Path) -> Path:
    """Write ``vrt`` to a GeoTIFF with the engine's creation options; the VRT and its parts are removed."""
    from osgeo import gdal

    register_package()
    from hsifusion.engine.io.writer import DEFAULT_CREATION_OPTIONS

    tmp = out.with_suffix(".partial.tif")
    gdal.Translate(str(tmp), str(vrt), format="GTiff", creationOptions=list(DEFAULT_CREATION_OPTIONS))
    tmp.rename(out)
    for part in vrt.parent.glob(f"{vrt.stem}*.vrt"):
        part.unlink()
    return out


def build_pair(work: Path, size: int, feedback=None) -> Dict:
    """HR reference, LR-HSI x4 and HR-MSI of ``size`` x ``size`` HR px under ``work``; cached."""
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / f"pair_{size}.json"
    if stamp.exists():
        info = json.loads(stamp.read_text())
        if all(Path(info[k]).exists() for k in ("reference", "hsi", "msi")):
            return info
    register_package()
    from hsifusion.engine import api

    side = min(PERIOD, size)
    period = build_period(work / f"enmap_period_{side}.tif", side)
    if size <= SIMULATE_MAX:
        t0 = time.perf_counter()
        ref = mosaic_vrt(period, work / f"reference_{size}.vrt", size)
        hsi, msi = work / f"lr_hsi_x4_{size}.tif", work / f"msi_s2a_{size}.tif"
        log(f"simulating the {size}² pair (engine.api.simulate) ...")
        res = api.simulate(str(ref), str(hsi), str(msi), ratio=RATIO, psf={"kind": "gaussian", "fwhm": 4.0},
                           sensor="sentinel2a_msi", bands=S2A_BANDS, seed=SEED, feedback=feedback)
        how = (f"engine.api.simulate on the {size}² mirror-tiled EnMAP reference "
               f"({time.perf_counter() - t0:.0f} s, {res.get('TILES')} tiles)")
    else:
        base = build_pair(work, SIMULATE_MAX, feedback)
        n = size // SIMULATE_MAX
        if size % SIMULATE_MAX:
            raise ValueError(f"size {size} must be a multiple of {SIMULATE_MAX}")
        ref = mosaic_vrt(period, work / f"reference_{size}.vrt", size)
        log(f"writing the {size}² pair (the {SIMULATE_MAX}² pair repeated {n} x {n}) ...")
        hsi = materialise(_repeat_vrt(Path(base["hsi"]), work / f"lr_hsi_x4_{size}.vrt", n, n),
                          work / f"lr_hsi_x4_{size}.tif")
        msi = materialise(_repeat_vrt(Path(base["msi"]), work / f"msi_s2a_{size}.vrt", n, n),
                          work / f"msi_s2a_{size}.tif")
        how = (f"the simulated {SIMULATE_MAX}² pair repeated {n} x {n} (simulation not rerun), "
               "written out as GeoTIFFs like the smaller pairs")
    info = {"size": size, "reference": str(ref), "hsi": str(hsi), "msi": str(msi), "how": how,
            "ratio": RATIO, "bands": 224, "msi_bands": len(S2A_BANDS)}
    stamp.write_text(json.dumps(info, indent=1))
    return info


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--work", default="/tmp/hsifusion-bench")
    a = ap.parse_args()
    print(json.dumps(build_pair(Path(a.work), a.size), indent=1))
