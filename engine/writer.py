"""Window-by-window GeoTIFF writer: temp name in the target folder, rename on success only.

A failed or cancelled run leaves no valid-looking file (EnMAP-Box #214), an input is never
overwritten, and the whole output is never held in memory.
"""
from __future__ import annotations

import os
import uuid
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from .errors import OutputError
from .memory import release_free_memory
from .raster import same_file
from .wavelengths import write_wavelengths

gdal.UseExceptions()

DEFAULT_CREATION_OPTIONS = ("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=BAND",
                            "BIGTIFF=IF_SAFER")
DEFAULT_NODATA = -9999.0
TRIM_EVERY_WRITES = 8  # blocks written between two returns of free heap memory to the OS


def check_output_path(path: str, inputs: Iterable[str]) -> str:
    """Refuse an output that is an input or sits in a missing / read-only folder."""
    if not path:
        raise OutputError("no output path given")
    path = os.path.abspath(str(path))
    for src in inputs:
        if src and same_file(path, str(src)):
            raise OutputError(f"output {path} is one of the inputs; choose another file name")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return path


def merge_creation_options(user: Optional[Sequence[str]]) -> list:
    """Defaults overridden key by key by the user's ``KEY=VALUE`` options."""
    opts: Dict[str, str] = {}
    for item in list(DEFAULT_CREATION_OPTIONS) + list(user or []):
        if "=" in item:
            k, v = item.split("=", 1)
            opts[k.strip().upper()] = v.strip()
    return [f"{k}={v}" for k, v in opts.items()]


class RasterWriter:
    """Create a Float32 GeoTIFF under a temporary name; write windows; ``commit`` renames it.

    Use as a context manager: leaving the block by an exception deletes the temporary file.
    """

    def __init__(self, path: str, width: int, height: int, bands: int, geotransform: Tuple[float, ...],
                 wkt: str, nodata: Optional[float] = DEFAULT_NODATA,
                 inputs: Iterable[str] = (), creation_options: Optional[Sequence[str]] = None,
                 dtype: int = gdal.GDT_Float32) -> None:
        self.path = check_output_path(path, inputs)
        folder, name = os.path.split(self.path)
        self.tmp_path = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.partial.tif")
        driver = gdal.GetDriverByName("GTiff")
        opts = merge_creation_options(creation_options)
        if min(width, height) < 256:
            opts = [o for o in opts if not o.startswith(("BLOCKXSIZE", "BLOCKYSIZE"))]
            opts += ["BLOCKXSIZE=%d" % max(16, -(-min(width, 256) // 16) * 16),
                     "BLOCKYSIZE=%d" % max(16, -(-min(height, 256) // 16) * 16)]
        try:
            self.ds = driver.Create(self.tmp_path, int(width), int(height), int(bands), dtype, options=opts)
        except RuntimeError as exc:
            raise OutputError(f"cannot create {self.path}: {exc}") from None
        self.ds.SetGeoTransform(tuple(geotransform))
        if wkt:
            self.ds.SetProjection(wkt)
        self.nodata = nodata
        if nodata is not None:
            for i in range(1, bands + 1):
                self.ds.GetRasterBand(i).SetNoDataValue(float(nodata))
        self.committed = False
        self._writes = 0

    # -- metadata setters (EnMAP-Box rasterwriter style: small and explicit) --
    def set_band_names(self, names: Sequence[str]) -> None:
        for i, n in enumerate(names, 1):
            self.ds.GetRasterBand(i).SetDescription(str(n))

    def set_wavelengths(self, wavelengths_nm: Optional[Sequence[float]], fwhm_nm=None) -> None:
        if wavelengths_nm is not None:
            write_wavelengths(self.ds, wavelengths_nm, fwhm_nm)

    def set_scale_offset(self, scale: Sequence[float], offset: Sequence[float]) -> None:
        for i, (s, o) in enumerate(zip(scale, offset), 1):
            if s != 1.0 or o != 0.0:
                self.ds.GetRasterBand(i).SetScale(float(s))
                self.ds.GetRasterBand(i).SetOffset(float(o))

    def set_metadata(self, items: Dict[str, str], domain: str = "") -> None:
        for k, v in items.items():
            self.ds.SetMetadataItem(str(k), str(v), domain)

    def write(self, array: np.ndarray, col: int, row: int) -> None:
        """Write a (bands, h, w) block at output pixel (col, row)."""
        arr = np.ascontiguousarray(array, dtype=np.float32)
        # The array itself (buffer protocol), not arr.tobytes(): no extra copy of the block (benchmarks:
        # half the time of a 224-band 256² write call, one tile less of peak memory).
        self.ds.WriteRaster(int(col), int(row), arr.shape[2], arr.shape[1], arr,
                            buf_xsize=arr.shape[2], buf_ysize=arr.shape[1], buf_type=gdal.GDT_Float32)
        self._flush_whole_blocks(int(col), int(row), arr.shape[2], arr.shape[1])
        self._writes += 1
        if self._writes % TRIM_EVERY_WRITES == 0:
            release_free_memory()  # in the writer thread, overlapping compute (engine/memory.py)

    def _flush_whole_blocks(self, col: int, row: int, width: int, height: int) -> None:
        """Hand the blocks just written to the disk now, in the writer thread.

        That overlaps the disk writes with compute, rather than leaving the blocks in GDAL's process-wide
        block cache (5 % of RAM by default) until ``commit``.

        Only while every write so far covered whole blocks (the default: 256-px tiles on 256-px blocks),
        so no block is ever flushed half-filled (no read-modify-write, no second compressed copy). The
        first write that is not block-aligned turns this off for the rest of the file.
        """
        if not getattr(self, "_whole_blocks", True):
            return
        bx, by = self.ds.GetRasterBand(1).GetBlockSize()
        W, H = self.ds.RasterXSize, self.ds.RasterYSize
        if col % bx or row % by or (width % bx and col + width != W) or (height % by and row + height != H):
            self._whole_blocks = False
            return
        self.ds.FlushCache()

    def commit(self) -> str:
        """Flush, close and move the file to its final name; returns the final path."""
        self.ds.FlushCache()
        self.ds = None
        if os.path.exists(self.path):
            os.remove(self.path)
            for side in (self.path + ".aux.xml",):
                if os.path.exists(side):
                    os.remove(side)
        os.replace(self.tmp_path, self.path)
        self.committed = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (idempotent)."""
        self.ds = None
        for p in (self.tmp_path, self.tmp_path + ".aux.xml"):
            if os.path.exists(p):
                os.remove(p)

    def __enter__(self) -> "RasterWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()
