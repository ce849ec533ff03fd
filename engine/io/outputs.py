"""The one output guard of the engine: every file an algorithm writes is checked here before the run.

An output must not be, or share a file with, any input — compared against every file GDAL reads for
that input (``GetFileList()``: ENVI headers, VRT sources followed recursively, the archive behind a
``/vsizip/`` path), resolved through links. It must not be a folder, and its folder must exist and be
writable. All of this is checked before any work starts, so a bad path costs nothing (README,
Data conventions: Outputs).
"""
from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from typing import Iterable, Iterator, List, Mapping, Optional, Set

from osgeo import gdal

from ..errors import OutputError

gdal.UseExceptions()

ARCHIVE_PREFIXES = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")
# Raster output formats by extension: drivers with Create() whose file reopens as ONE multi-band Float32
# raster with its georeferencing (netCDF does not: Create() makes one variable per band, reopened as
# subdatasets). ENVI is band-sequential, so only .dat/.bsq name it (.img is Erdas Imagine).
RASTER_FORMATS = {".tif": "GTiff", ".tiff": "GTiff", ".img": "HFA", ".dat": "ENVI", ".bsq": "ENVI"}


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _archive_file(vsi_path: str) -> Optional[str]:
    """The local archive behind ``/vsizip/…/pair.zip/h.tif`` (or ``/vsizip/{…}/h.tif``), else None."""
    for prefix in ARCHIVE_PREFIXES:
        if vsi_path.startswith(prefix):
            rest = vsi_path[len(prefix):]
            if rest.startswith("{") and "}" in rest:
                return rest[1:rest.index("}")]
            if rest.startswith("/vsi"):  # a chain: the archive is itself inside something
                return _archive_file(rest)
            parts = rest.split("/")
            for k in range(1, len(parts) + 1):
                candidate = "/".join(parts[:k])
                if candidate and os.path.isfile(candidate):
                    return candidate
            return None
    return None


def _local_file(path: str) -> Optional[str]:
    """A GDAL file name as a resolved local path; None for remote or in-memory files."""
    path = str(path)
    if path.startswith("/vsi"):
        archive = _archive_file(path)
        return _real(archive) if archive else None
    return _real(path)


def _vrt_sources(ds: gdal.Dataset, vrt_path: str) -> List[str]:
    """``SourceFilename`` entries of a VRT, made absolute (GetFileList names only the leaf files)."""
    try:
        xml = (ds.GetMetadata("xml:VRT") or [""])[0]
        root = ET.fromstring(xml)
    except (RuntimeError, ET.ParseError, TypeError):
        return []
    out = []
    for el in root.iter("SourceFilename"):
        name = (el.text or "").strip()
        if name and el.get("relativeToVRT") == "1" and not name.startswith("/"):
            name = os.path.join(os.path.dirname(vrt_path), name)
        if name:
            out.append(name)
    return out


def input_files(path: str, _seen: Optional[Set[str]] = None) -> Set[str]:
    """Every local file (resolved) that reading ``path`` touches.

    The file itself, the files GDAL lists for it, VRT sources recursively and the archive of a
    ``/vsizip/``-style path. A path GDAL cannot open (a CSV, a checkpoint) is just itself.
    """
    seen = set() if _seen is None else _seen
    files: Set[str] = set()
    own = _local_file(path)
    if own:
        files.add(own)
    if path in seen:
        return files
    seen.add(path)
    try:
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            ds = gdal.OpenEx(str(path), gdal.OF_RASTER)
        finally:
            gdal.PopErrorHandler()
    except RuntimeError:
        return files
    if ds is None:
        return files
    for name in ds.GetFileList() or []:
        local = _local_file(name)
        if local:
            files.add(local)
    if ds.GetDriver().ShortName == "VRT":
        for src in _vrt_sources(ds, str(path)):
            files |= input_files(src, seen)
    return files


def files_of_inputs(inputs: Iterable[Optional[str]]) -> Set[str]:
    """Union of :func:`input_files` over the given inputs (None entries skipped)."""
    touched: Set[str] = set()
    for src in inputs:
        if src:
            touched |= input_files(str(src))
    return touched


def _own_files(path: str) -> List[str]:
    """Files writing ``path`` creates besides itself (GDAL's .aux.xml, an ENVI header)."""
    stem = os.path.splitext(path)[0]
    out = [path, path + ".aux.xml"]
    if RASTER_FORMATS.get(os.path.splitext(path)[1].lower()) == "ENVI":
        out.append(stem + ".hdr")
    return out


def check_output_path(path: str, inputs: Iterable[str] = (), what: str = "output") -> str:
    """Refuse an output that is or shares a file with an input, is a folder, or has no writable folder.

    Returns the absolute path.
    """
    if not path or not str(path).strip():
        raise OutputError(f"no {what} path given")
    path = os.path.abspath(str(path))
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; give a file name")
    touched = files_of_inputs(inputs)
    for own in _own_files(path):
        if _real(own) in touched:
            hit = "" if _real(own) == _real(path) else f" (its file {own})"
            raise OutputError(f"{what} {path}{hit} is one of the inputs' files; choose another file name")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise OutputError(f"{what} folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} folder {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path} exists and is read-only")
    return path


def check_output_folder(path: str, inputs: Iterable[str] = (), what: str = "output folder") -> str:
    """Check a folder an algorithm writes into (created if missing); returns the absolute path.

    It must not be an input's file nor a plain file, and its parent must exist and be writable.
    """
    if not path or not str(path).strip():
        raise OutputError(f"no {what} given")
    path = os.path.abspath(str(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{what} {path} is a file, not a folder")
    touched = files_of_inputs(inputs)
    if _real(path) in touched:
        raise OutputError(f"{what} {path} is one of the inputs' files")
    existing = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isdir(existing):
        raise OutputError(f"{what} {path}: its parent folder {existing} does not exist")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {existing} is not writable")
    return path


def check_outputs(outputs: Mapping[str, Optional[str]], inputs: Iterable[str] = ()) -> dict:
    """Check every named output against the inputs and against each other.

    ``outputs`` maps names to paths (``{"OUTPUT_SAM": path, ...}``; None = not written); returns
    ``{name: absolute path}`` of those given.
    """
    inputs = [str(p) for p in inputs if p]
    checked = {}
    for name, p in outputs.items():
        if p:
            checked[name] = check_output_path(p, inputs, name)
    by_file = {}
    for name, p in checked.items():
        other = by_file.setdefault(_real(p), name)
        if other != name:
            raise OutputError(f"{other} and {name} are the same file ({p}); give each its own name")
    return checked


def raster_extensions() -> List[str]:
    """Extensions (without the dot) of the raster formats this GDAL build can write, GeoTIFF first."""
    return [e[1:] for e, d in RASTER_FORMATS.items() if gdal.GetDriverByName(d) is not None]


def raster_driver(path: str) -> str:
    """GDAL driver for a raster output, chosen by its extension; refuse others naming those allowed."""
    ext = os.path.splitext(str(path))[1].lower()
    name = RASTER_FORMATS.get(ext)
    driver = gdal.GetDriverByName(name) if name else None
    if driver is None or driver.GetMetadataItem(gdal.DCAP_CREATE) != "YES":
        allowed = ", ".join("." + e for e in raster_extensions())
        what = f"extension {ext!r}" if ext else "no extension"
        raise OutputError(f"raster output {path} has {what}; use one of {allowed}")
    return name


@contextlib.contextmanager
def replacing(path: str, suffix: str = ".partial") -> Iterator[str]:
    """Write a small output (CSV, report, plot) under a temporary name, then replace ``path``.

    The block writes ``path + suffix``; it is moved over ``path`` with ``os.replace`` when the block
    succeeds and removed on failure (the previous file stays). An ``OSError`` in the block (disk full,
    EFBIG) becomes an :class:`OutputError` naming ``path``.
    """
    tmp = f"{path}{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
