"""The real scenes of the quality benchmark, as HR-HSI reference GeoTIFFs.

* EnMAP Potsdam 128 x 64 (bundled ``sample/``; identical to ../shared's ``enmap_potsdam_block_128x64``),
  EnMAP Potsdam 64 x 128 (``../shared/.../enmap_potsdam_block_64x128.tif``): georeferenced, 224 bands,
  MSI = Sentinel-2A (the 12 bands EnMAP's good bands cover).
* Samson (``../shared/.../samson_1.mat``): 95 x 95 x 156, 401-889 nm (nominal centres 401 + 3.15 i nm,
  FWHM = band spacing), VNIR only, MSI = the Nikon 5100 RGB camera. Cropped to 88 x 88 (rows/cols
  0-87), a multiple of 8.
* Paris (``../shared/.../paris_data_hs_ms.mat``, ``HSim``): EO-1 Hyperion 72 x 72 x 128,
  427-2345 nm (nominal centres from hyperion_wavelengths_nominal.csv), MSI = Sentinel-2A (the bands
  the Hyperion bands cover). The real ALI image is not used (Wald's protocol needs the reference).

The .mat scenes are not georeferenced: they are written with **no CRS and the default pixel grid**
(origin 0,0, pixel 1 x 1), a dummy local grid the engine accepts (simulate says so in a warning and
the LR-HSI gets pixel r x r). Values are the files' own (reflectance-like, float32).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SAMPLE, SHARED, register_package

ENMAP_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]


def _write_cube(path: Path, cube, wavelengths, fwhm=None) -> Path:
    """(bands, rows, cols) float32 GeoTIFF without georeferencing, with wavelengths (nm)."""
    import numpy as np
    from osgeo import gdal

    register_package()
    from hsifusion.engine.io.wavelengths import write_wavelengths

    cube = np.ascontiguousarray(cube, dtype=np.float32)
    b, h, w = cube.shape
    tmp = path.with_suffix(".partial.tif")
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp), w, h, b, gdal.GDT_Float32, options=["INTERLEAVE=BAND"])
    for i in range(b):
        ds.GetRasterBand(i + 1).WriteArray(cube[i])
    write_wavelengths(ds, wavelengths, fwhm)
    ds.FlushCache()
    ds = None
    tmp.rename(path)
    return path


def samson(work: Path) -> Path:
    import numpy as np
    from scipy.io import loadmat

    out = work / "samson_88x88.tif"
    if out.exists():
        return out
    m = loadmat(str(SHARED / "samson" / "samson_1.mat"))
    rows, cols, nb = int(np.squeeze(m["nRow"])), int(np.squeeze(m["nCol"])), int(np.squeeze(m["nBand"]))
    cube = m["V"].T.reshape(rows, cols, nb, order="F").transpose(2, 0, 1)[:, :88, :88]
    wl = 401.0 + np.arange(nb) * (889.0 - 401.0) / (nb - 1)
    return _write_cube(out, cube, wl, np.full(nb, (889.0 - 401.0) / (nb - 1)))


def paris(work: Path) -> Path:
    import numpy as np
    from scipy.io import loadmat

    out = work / "paris_hyperion_72x72.tif"
    if out.exists():
        return out
    d = SHARED / "paris_hyperion_ali"
    m = loadmat(str(d / "paris_data_hs_ms.mat"))
    cube = np.asarray(m["HSim"], dtype=np.float32).transpose(2, 0, 1)
    with open(d / "hyperion_wavelengths_nominal.csv") as f:
        wl = np.array([float(r["nominal_center_nm"]) for r in csv.DictReader(f)])
    return _write_cube(out, cube, wl, None)


def scenes(work: Path, quick: bool = False) -> List[Dict]:
    """Scene descriptions; those whose data are missing (no ../shared) are left out."""
    work.mkdir(parents=True, exist_ok=True)
    out = [{"key": "enmap_128x64", "title": "EnMAP Potsdam 128x64 (bundled sample)",
            "reference": str(SAMPLE / "enmap_potsdam_reference.tif"), "sensor": "sentinel2a_msi",
            "bands": ENMAP_BANDS, "ratios": [4, 8],
            "bundled": {4: (str(SAMPLE / "potsdam_lr_hsi_x4.tif"), str(SAMPLE / "potsdam_msi_s2a.tif"))}}]
    if SHARED.is_dir():
        blk = SHARED / "enmap_potsdam_tiles" / "enmap_potsdam_block_64x128.tif"
        if blk.exists():
            out.append({"key": "enmap_64x128", "title": "EnMAP Potsdam 64x128 block", "reference": str(blk),
                        "sensor": "sentinel2a_msi", "bands": ENMAP_BANDS, "ratios": [4, 8]})
        if (SHARED / "samson" / "samson_1.mat").exists():
            out.append({"key": "samson", "title": "Samson 88x88 (VNIR, 156 bands)", "reference": str(samson(work)),
                        "sensor": "nikon5100_rgb", "bands": None, "ratios": [4, 8]})
        if (SHARED / "paris_hyperion_ali" / "paris_data_hs_ms.mat").exists():
            out.append({"key": "paris", "title": "Paris EO-1 Hyperion 72x72 (128 bands)",
                        "reference": str(paris(work)), "sensor": "sentinel2a_msi", "bands": None,
                        "ratios": [4, 8]})
    return out
