"""Entry points the QGIS algorithms and the command line call. Each validates, runs, and writes
atomically; each returns a dict of what it produced."""
from __future__ import annotations

import json
import time
from typing import Dict, Optional, Sequence, Union

from .. import __version__
from .feedback import Feedback, ensure_feedback
from .methods import get_method
from .methods.base import FusionMethod
from .pair import require_positive_tile, validate_pair
from .raster import raster_info
from .scene import build_scene
from .tiling import fuse_tiles
from .writer import DEFAULT_NODATA, RasterWriter, check_output_path


def fuse(hsi: str, msi: str, output: str, method: Union[str, FusionMethod] = "upsample",
         method_params: Optional[Dict] = None, tile_size: int = 256,
         feedback: Optional[Feedback] = None, creation_options: Optional[Sequence[str]] = None,
         hsi_wavelengths=None, msi_wavelengths=None) -> Dict:
    """Fuse an LR-HSI with an HR-MSI onto the MSI grid, tile by tile.

    Args:
        hsi, msi: raster paths (any GDAL format).
        output: GeoTIFF path; written under a temporary name and renamed on success.
        method: a registered method name or a :class:`FusionMethod` instance.
        method_params: keyword arguments for the method's factory.
        tile_size: HR core tile side (rounded to the method's alignment).

    Returns:
        dict with OUTPUT, RATIO, TILES, SECONDS and the method's description.
    """
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    tile_size = require_positive_tile(tile_size)
    hsi_info = raster_info(hsi, hsi_wavelengths)
    msi_info = raster_info(msi, msi_wavelengths)
    pair = validate_pair(hsi_info, msi_info)
    check_output_path(output, (hsi, msi))
    if isinstance(method, str):
        method = get_method(method, **(method_params or {}))
    feedback.pushInfo(f"{method.name}: HSI {hsi_info.width}x{hsi_info.height}x{hsi_info.bands}, "
                      f"MSI {msi_info.width}x{msi_info.height}x{msi_info.bands}, ratio {pair.ratio}, "
                      f"output {pair.region.width}x{pair.region.height}")
    scene = build_scene(pair)
    method.fit(scene, feedback)
    if method.device_reason:
        feedback.pushInfo(method.device_reason)
    nodata = hsi_info.nodata if hsi_info.nodata is not None else DEFAULT_NODATA
    with RasterWriter(output, pair.region.width, pair.region.height, hsi_info.bands, pair.out_geotransform,
                      pair.out_wkt, nodata=nodata, inputs=(hsi, msi),
                      creation_options=creation_options) as writer:
        writer.set_band_names(hsi_info.band_names)
        writer.set_wavelengths(hsi_info.wavelengths, hsi_info.fwhm)
        writer.set_scale_offset(hsi_info.scale, hsi_info.offset)
        writer.set_metadata({"HSIFUSION_VERSION": __version__, "HSIFUSION_HSI": hsi, "HSIFUSION_MSI": msi,
                             "HSIFUSION_RATIO": str(pair.ratio),
                             "HSIFUSION_METHOD": json.dumps(method.describe())})
        span = (100.0 * getattr(method, "fit_share", 0.0), 100.0)
        n = fuse_tiles(scene, method, lambda a, w: writer.write(a, w.col, w.row), tile_size, nodata, feedback,
                       span)
        path = writer.commit()
    seconds = time.perf_counter() - t0
    feedback.pushInfo(f"wrote {path} ({n} tiles) in {seconds:.1f} s")
    return {"OUTPUT": path, "RATIO": pair.ratio, "TILES": n, "SECONDS": seconds, **method.describe()}


# Wald-protocol simulation and spectral resampling (engine/simulate.py).
from .simulate import simulate, spectral_resample  # noqa: E402,F401
