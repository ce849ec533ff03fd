"""Window-by-window raster writer: temp name in the target folder, checked close, rename on success only.

A failed or cancelled run leaves no valid-looking file (EnMAP-Box #214): the temporary file has a
non-raster suffix, is removed on any exception and at interpreter exit, and replaces the final name
only after GDAL closed it without error and it reopens (an existing file is never deleted first). An
input is never overwritten (:mod:`.outputs`), and the whole output is never held in memory.
"""
from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
import threading
import uuid
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
from osgeo import gdal

from ..errors import OutputError
from ..pipeline.memory import release_free_memory
from .outputs import check_output_path, raster_driver
from .wavelengths import write_wavelengths

gdal.UseExceptions()

__all__ = ["RasterWriter", "check_output_path", "float_nodata", "merge_creation_options", "DEFAULT_NODATA"]

DEFAULT_CREATION_OPTIONS = ("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=BAND",
                            "BIGTIFF=IF_SAFER")  # GTiff only; other formats get the user's options alone
DEFAULT_NODATA = -9999.0
TRIM_EVERY_WRITES = 8  # blocks written between two returns of free heap memory to the OS
TEMP_SUFFIX = ".partial"  # not a raster extension: file browsers and QGIS do not list it as a raster
_LIVE_TEMP_FILES: Set[str] = set()  # temporary files of open writers, removed at exit if still there
_CLOSING = threading.Lock()  # see collect_gdal_errors


def float_nodata(input_nodata: Optional[float]) -> float:
    """Nodata of a Float32 output made from an input with ``input_nodata``.

    An input's nodata is kept only when no computed value can plausibly equal it (NaN, or at most
    ``DEFAULT_NODATA``): a uint16 input's nodata 0 on a Float32 output would turn every exact 0 the
    computation produces into nodata, so it becomes ``DEFAULT_NODATA`` (-9999).
    """
    if input_nodata is not None and (math.isnan(input_nodata) or input_nodata <= DEFAULT_NODATA):
        return float(input_nodata)
    return DEFAULT_NODATA


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def remove_temp_files(tmp_path: str) -> None:
    """Remove a writer's temporary file and its companions (``.name.id.*``: ENVI header, .aux.xml)."""
    prefix = os.path.basename(tmp_path[:-len(TEMP_SUFFIX)]) + "."
    folder = os.path.dirname(tmp_path)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        names = []
    for n in names:
        _remove_quietly(os.path.join(folder, n))
    _LIVE_TEMP_FILES.discard(tmp_path)


def _remove_live_temp_files() -> None:
    for p in list(_LIVE_TEMP_FILES):
        remove_temp_files(p)


atexit.register(_remove_live_temp_files)


@contextlib.contextmanager
def collect_gdal_errors(closing: bool = False) -> Iterator[List[str]]:
    """Collect GDAL's failure messages raised in the block, in this thread.

    GDAL's handlers are per thread; "File too large" / "No space left" come as a message before the
    exception's own text.

    ``closing``: the block destroys a dataset. GDAL 3.6's Python bindings raise close errors inside the
    destructor, where Python only prints "Exception ignored" and a traceback; that unraisable
    RuntimeError is silenced (the messages are collected here). The hook is process-wide, so closing
    blocks run one at a time (QGIS may run two algorithms at once).
    """
    errors: List[str] = []

    def collect(err_class, _err_no, message) -> None:
        if err_class >= gdal.CE_Failure:
            errors.append(str(message))

    lock = _CLOSING if closing else contextlib.nullcontext()
    with lock:
        hook = sys.unraisablehook
        if closing:
            sys.unraisablehook = lambda u: None if issubclass(u.exc_type, RuntimeError) else hook(u)
        gdal.PushErrorHandler(collect)
        try:
            yield errors
        finally:
            gdal.PopErrorHandler()
            if closing:
                sys.unraisablehook = hook


def merge_creation_options(user: Optional[Sequence[str]],
                           defaults: Sequence[str] = DEFAULT_CREATION_OPTIONS) -> list:
    """``defaults`` overridden key by key by the user's ``KEY=VALUE`` options."""
    opts: Dict[str, str] = {}
    for item in list(defaults) + list(user or []):
        if "=" in item:
            k, v = item.split("=", 1)
            opts[k.strip().upper()] = v.strip()
    return [f"{k}={v}" for k, v in opts.items()]


def _gtiff_options(user: Optional[Sequence[str]], width: int, height: int) -> list:
    """Tiled band-interleaved GeoTIFF; blocks shrunk (multiples of 16) for rasters under 256 px."""
    opts = merge_creation_options(user)
    if min(width, height) < 256:
        opts = [o for o in opts if not o.startswith(("BLOCKXSIZE", "BLOCKYSIZE"))]
        opts += ["BLOCKXSIZE=%d" % max(16, -(-min(width, 256) // 16) * 16),
                 "BLOCKYSIZE=%d" % max(16, -(-min(height, 256) // 16) * 16)]
    return opts


class RasterWriter:
    """Create a Float32 raster under a temporary name; write windows; ``commit`` renames it.

    The format follows the output's extension (:func:`.outputs.raster_driver`: GeoTIFF for .tif).
    Use as a context manager: leaving the block by an exception deletes the temporary file.
    """

    def __init__(self, path: str, width: int, height: int, bands: int, geotransform: Tuple[float, ...],
                 wkt: str, nodata: Optional[float] = DEFAULT_NODATA,
                 inputs: Sequence[str] = (), creation_options: Optional[Sequence[str]] = None,
                 dtype: int = gdal.GDT_Float32) -> None:
        self.path = check_output_path(path, inputs)
        self.driver = raster_driver(self.path)
        folder, name = os.path.split(self.path)
        self.tmp_path = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
        opts = (_gtiff_options(creation_options, width, height) if self.driver == "GTiff"
                else merge_creation_options(creation_options, ()))
        self.committed = False
        self._writes = 0
        self.ds = None
        _LIVE_TEMP_FILES.add(self.tmp_path)
        try:
            self.ds = gdal.GetDriverByName(self.driver).Create(self.tmp_path, int(width), int(height),
                                                               int(bands), dtype, options=opts)
        except RuntimeError as exc:
            self.abort()
            raise OutputError(f"cannot create {self.path}: {exc}") from None
        self.ds.SetGeoTransform(tuple(geotransform))
        if wkt:
            self.ds.SetProjection(wkt)
        self.nodata = nodata
        if nodata is not None:
            for i in range(1, bands + 1):
                self.ds.GetRasterBand(i).SetNoDataValue(float(nodata))

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
        """Write a (bands, h, w) block at output pixel (col, row); a full disk is an :class:`OutputError`."""
        arr = np.ascontiguousarray(array, dtype=np.float32)
        with collect_gdal_errors() as errors:
            try:
                # The array itself (buffer protocol), not arr.tobytes(): no extra copy of the block
                # (benchmarks: half the time of a 224-band 256² write call, one tile less of peak memory).
                self.ds.WriteRaster(int(col), int(row), arr.shape[2], arr.shape[1], arr,
                                    buf_xsize=arr.shape[2], buf_ysize=arr.shape[1], buf_type=gdal.GDT_Float32)
                self._flush_whole_blocks(int(col), int(row), arr.shape[2], arr.shape[1])
            except RuntimeError as exc:
                errors.append(str(exc))  # raised below, outside this block: its traceback holds the dataset
        if errors:
            raise OutputError(f"cannot write {self.path}: {'; '.join(dict.fromkeys(errors))} "
                              "(disk full or file size limit?)")
        self._writes += 1
        if self._writes % TRIM_EVERY_WRITES == 0:
            release_free_memory()  # in the writer thread, overlapping compute (engine/pipeline/memory.py)

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

    def _temp_files(self) -> List[str]:
        """The temporary file and its companions (an ENVI header, .aux.xml) as GDAL lists them."""
        try:
            ds = gdal.OpenEx(self.tmp_path, gdal.OF_RASTER)
            files = list(ds.GetFileList() or [self.tmp_path])
        except RuntimeError:
            files = [self.tmp_path]
        aux = self.tmp_path + ".aux.xml"
        return files + [aux] if os.path.exists(aux) and aux not in files else files

    def _final_name(self, tmp_file: str) -> str:
        """Where a temporary file goes.

        ``.out.bsq.ab12.partial`` -> ``out.bsq``, its ``.out.bsq.ab12.hdr`` -> ``out.hdr``,
        ``….partial.aux.xml`` -> ``out.bsq.aux.xml``.
        """
        if tmp_file.startswith(self.tmp_path):
            return self.path + tmp_file[len(self.tmp_path):]
        stem = self.tmp_path[:-len(TEMP_SUFFIX)]
        if not tmp_file.startswith(stem + "."):
            raise OutputError(f"{self.path}: GDAL wrote an unexpected companion file {tmp_file}")
        return os.path.splitext(self.path)[0] + tmp_file[len(stem):]

    def _verify_temp(self, width: int, height: int, bands: int) -> None:
        """Reopen the closed file and read its last pixel: a file whose tail never reached the disk fails."""
        try:
            ds = gdal.Open(self.tmp_path)
            ok = (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (width, height, bands)
            if ok:
                ds.GetRasterBand(bands).ReadRaster(width - 1, height - 1, 1, 1)
            ds = None
        except RuntimeError as exc:
            raise OutputError(f"{self.path} was not written completely ({exc}); the previous file, "
                              "if any, is unchanged") from None
        if not ok:
            raise OutputError(f"{self.path} reopened with another size; the previous file, if any, is unchanged")

    def _close(self) -> List[str]:
        """Flush and close the dataset (this writer holds the only reference); GDAL's failure messages."""
        ds, self.ds = self.ds, None
        with collect_gdal_errors(closing=True) as errors:
            try:
                ds.FlushCache()
                if hasattr(ds, "Close"):  # GDAL >= 3.8 reports close errors here
                    ds.Close()
            except RuntimeError as exc:
                errors.append(str(exc))
            del ds  # GDAL < 3.8 writes the rest and reports its errors in the destructor
        return list(dict.fromkeys(errors))

    def commit(self) -> str:
        """Close (checking GDAL's errors), verify, then move the file over its final name; returns that path.

        On any failure the temporary file is removed and an existing file at the final name is untouched.
        """
        self.finish()
        return self.publish()

    def finish(self) -> None:
        """First half of :meth:`commit`: close checking GDAL's errors and verify the temporary file.

        Writers of outputs that belong together finish all, then publish all.
        """
        if self.ds is None:
            return
        size = (self.ds.RasterXSize, self.ds.RasterYSize, self.ds.RasterCount)
        errors = self._close()
        try:
            if errors:
                raise OutputError(f"cannot write {self.path}: {'; '.join(errors)} (disk full or file size "
                                  "limit?); the previous file, if any, is unchanged")
            self._verify_temp(*size)
        except BaseException:
            self.abort()
            raise

    def publish(self) -> str:
        """Second half of :meth:`commit`: move the finished file(s) over the final name (os.replace)."""
        try:
            moves = [(f, self._final_name(f)) for f in self._temp_files()]
            if not any(f.endswith(".aux.xml") for f, _ in moves):
                _remove_quietly(self.path + ".aux.xml")  # statistics of the file being replaced
            for src, dst in moves:
                os.replace(src, dst)  # atomic per file; an existing file is replaced, never deleted first
        except BaseException:
            self.abort()
            raise
        _LIVE_TEMP_FILES.discard(self.tmp_path)
        self.committed = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file(s) (idempotent)."""
        if self.ds is not None:
            self._close()
        remove_temp_files(self.tmp_path)

    def __enter__(self) -> "RasterWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()
