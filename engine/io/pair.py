"""Validate an LR-HSI / HR-MSI pair and derive the output grid (:class:`PairGrid`).

Processing coordinates are HR pixels counted from the HSI origin: LR pixel (i, j) covers HR rows
r*i .. r*i+r-1 (README, Data conventions), so every LR window is an HR window divided by r.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from osgeo import osr

from ..errors import BandError, CrsMismatchError, GridError, InputError
from .raster import RasterInfo
from .windows import Window

RATIO_TOLERANCE = 1e-6  # relative, on the pixel size ratio
ALIGN_TOLERANCE = 1e-3  # in HR pixels, on the origin offset


@dataclass(frozen=True)
class PairGrid:
    """A validated pair and the output grid.

    Attributes:
        region: the output in processing coordinates (HR px from the HSI origin).
        msi_offset: (col, row) of the MSI origin in processing coordinates.
        out_geotransform / out_wkt: the output grid, on the MSI grid exactly.
    """

    hsi: RasterInfo
    msi: RasterInfo
    ratio: int
    region: Window
    msi_offset: Tuple[int, int]
    out_geotransform: Tuple[float, ...]
    out_wkt: str

    def to_msi(self, w: Window) -> Window:
        """A processing-coordinate window in MSI pixel coordinates."""
        return w.shift(-self.msi_offset[0], -self.msi_offset[1])


def crs_name(wkt: str) -> str:
    """Readable CRS name with its authority code, for messages."""
    if not wkt:
        return "no CRS"
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    code = srs.GetAuthorityCode(None)
    return f"{srs.GetName()}" + (f" (EPSG:{code})" if code else "")


def same_crs(a: str, b: str) -> bool:
    """Compare full definitions (not only the authid): two custom CRSs with one code differ."""
    if not a and not b:
        return True
    if not a or not b:
        return False
    sa, sb = osr.SpatialReference(), osr.SpatialReference()
    sa.ImportFromWkt(a)
    sb.ImportFromWkt(b)
    return bool(sa.IsSame(sb))


def check_north_up(info: RasterInfo, role: str) -> None:
    """Refuse a grid that is not north-up, CRS or not.

    No geotransform (GCPs only), rotation terms, a negative x or a positive y pixel size: pixel offsets
    between the two grids assume north-up.
    """
    gt = info.geotransform
    fix = "warp it north-up first (gdalwarp)"
    if not info.has_geotransform:
        raise GridError(f"{role} {info.path} has no geotransform (not georeferenced, or GCPs only); {fix}")
    if gt[2] != 0 or gt[4] != 0:
        raise GridError(f"{role} {info.path} has a rotated geotransform (rotation terms {gt[2]:g}, "
                        f"{gt[4]:g}); {fix}")
    if not gt[1] > 0:
        raise GridError(f"{role} {info.path} is not north-up: x pixel size {gt[1]:g} is not positive; {fix}")
    if not gt[5] < 0:
        raise GridError(f"{role} {info.path} is not north-up: y pixel size {gt[5]:g} is not negative "
                        f"(south-up); {fix}")


def integer_ratio(hsi: RasterInfo, msi: RasterInfo) -> int:
    """HSI pixel size / MSI pixel size as an integer, same in x and y, else :class:`GridError`."""
    (hx, hy), (mx, my) = hsi.pixel_size, msi.pixel_size
    rx, ry = hx / mx, hy / my
    r = round(rx)
    if r < 1 or abs(rx - r) > RATIO_TOLERANCE * rx or abs(ry - r) > RATIO_TOLERANCE * ry:
        raise GridError(
            f"pixel sizes give no integer ratio: HSI {hx:g} x {hy:g}, MSI {mx:g} x {my:g} "
            f"(ratio {rx:.6g} in x, {ry:.6g} in y); resample one of them so the ratio is an integer")
    if r < 2:
        raise GridError(f"HSI and MSI have the same pixel size ({hx:g}); the HSI must be coarser")
    return r


def validate_pair(hsi: RasterInfo, msi: RasterInfo, min_hsi_bands: int = 3) -> PairGrid:
    """Check orientation, CRS, bands, ratio, alignment and overlap; return the output grid."""
    check_north_up(hsi, "HSI")
    check_north_up(msi, "MSI")
    if not same_crs(hsi.wkt, msi.wkt):
        raise CrsMismatchError(
            f"HSI and MSI are in different CRSs: HSI {crs_name(hsi.wkt)} ({hsi.path}), "
            f"MSI {crs_name(msi.wkt)} ({msi.path}); reproject one to the other's CRS")
    if hsi.bands < min_hsi_bands:
        raise BandError(f"HSI {hsi.path} has {hsi.bands} band(s); at least {min_hsi_bands} are needed")
    if msi.bands > hsi.bands:
        raise BandError(f"MSI has more bands ({msi.bands}) than the HSI ({hsi.bands}); "
                        "are the HSI and MSI inputs swapped?")
    r = integer_ratio(hsi, msi)
    mx, my = msi.pixel_size
    dx = (msi.geotransform[0] - hsi.geotransform[0]) / mx
    dy = (hsi.geotransform[3] - msi.geotransform[3]) / my
    if abs(dx - round(dx)) > ALIGN_TOLERANCE or abs(dy - round(dy)) > ALIGN_TOLERANCE:
        raise GridError(
            f"HSI grid is not aligned with the MSI grid: HSI origin ({hsi.geotransform[0]:.6f}, "
            f"{hsi.geotransform[3]:.6f}), MSI origin ({msi.geotransform[0]:.6f}, {msi.geotransform[3]:.6f}), "
            f"offset {dx:.4f} x {dy:.4f} MSI pixels (must be whole pixels)")
    dx, dy = int(round(dx)), int(round(dy))
    col0, row0 = max(0, dx), max(0, dy)
    col1 = min(hsi.width * r, dx + msi.width)
    row1 = min(hsi.height * r, dy + msi.height)
    if col1 <= col0 or row1 <= row0:
        raise GridError(f"HSI {hsi.path} and MSI {msi.path} do not overlap")
    region = Window(col0, row0, col1 - col0, row1 - row0)
    gt = msi.geotransform
    out_gt = (gt[0] + (col0 - dx) * gt[1], gt[1], 0.0, gt[3] + (row0 - dy) * gt[5], 0.0, gt[5])
    return PairGrid(hsi=hsi, msi=msi, ratio=r, region=region, msi_offset=(dx, dy),
                    out_geotransform=out_gt, out_wkt=msi.wkt)


def require_tile_or_auto(tile_size: int) -> int:
    """TILE_SIZE for fusion: a positive integer, or 0 = automatic (the method's preferred tile)."""
    if tile_size is None or int(tile_size) < 0:
        raise InputError(f"TILE_SIZE must be a positive number of pixels or 0 (automatic), got {tile_size}")
    return int(tile_size)


def require_positive_tile(tile_size: int) -> int:
    """TILE_SIZE must be a positive integer."""
    if tile_size is None or int(tile_size) <= 0:
        raise InputError(f"TILE_SIZE must be a positive number of pixels, got {tile_size}")
    return int(tile_size)
