"""Entry points the QGIS algorithms and the command line call.

Each validates, runs, and writes atomically; each returns a dict of what it produced.
"""
from __future__ import annotations

import functools
import json
import time
from typing import Dict, Optional, Sequence, Union

from .errors import InputError
from .feedback import Feedback, ensure_feedback
from .io.outputs import check_output_folder, check_outputs, raster_driver
from .io.pair import require_tile_or_auto, validate_pair
from .io.raster import raster_info
from .io.scene import build_scene
from .io.writer import RasterWriter, float_nodata
from .methods import get_method
from .methods.base import FusionMethod
from .pipeline.memory import TILE_BUFFERS
from .pipeline.tile_geometry import AUTO_TILE
from .pipeline.tiling import fuse_tiles
from .version import __version__


def fuse(hsi: str, msi: str, output: str, method: Union[str, FusionMethod] = "upsample",
         method_params: Optional[Dict] = None, tile_size: int = AUTO_TILE,
         feedback: Optional[Feedback] = None, creation_options: Optional[Sequence[str]] = None,
         hsi_wavelengths=None, msi_wavelengths=None, scheduler=None, max_in_flight: Optional[int] = None,
         tile_dir: Optional[str] = None, metadata: Optional[Dict[str, str]] = None) -> Dict:
    """Fuse an LR-HSI with an HR-MSI onto the MSI grid, tile by tile.

    Args:
        hsi: low-resolution hyperspectral raster path (any GDAL format).
        msi: high-resolution multispectral raster path; its grid is the output grid.
        output: raster path, format by extension (:func:`.io.outputs.raster_driver`); written under a
            temporary name and moved over ``output`` on success only.
        method: a registered method name or a :class:`FusionMethod` instance.
        method_params: keyword arguments for the method's factory.
        tile_size: HR core tile side (rounded to the method's alignment); 0 = the method's preferred tile
            (256 for the classical methods, measured per network).
        feedback: progress, messages and cancel (QgsProcessingFeedback's method names).
        creation_options: GDAL ``KEY=VALUE`` creation options, overriding the defaults key by key.
        hsi_wavelengths: HSI wavelengths in nm when the raster lacks them (list, string or CSV).
        msi_wavelengths: MSI wavelengths in nm when the raster lacks them.
        scheduler: None/"" = in-process; ``local:N`` = a Dask LocalCluster of N worker processes;
            ``tcp://host:port`` = a running Dask scheduler (engine/pipeline/distributed.py); or an open
            :class:`~.pipeline.distributed.DaskSession`.
        max_in_flight: with a scheduler, at most this many pending tile tasks.
        tile_dir: with a scheduler, workers write per-tile GeoTIFFs there and ``output`` (*.vrt) is
            their VRT mosaic (when the client's bandwidth is the limit).
        metadata: extra items for the output's metadata (e.g. fuse auto's table).

    Returns:
        dict with OUTPUT, RATIO, TILES, SECONDS and the method's description.
    """
    feedback = ensure_feedback(feedback)
    t0 = time.perf_counter()
    tile_size = require_tile_or_auto(tile_size)
    hsi_info = raster_info(hsi, hsi_wavelengths)
    msi_info = raster_info(msi, msi_wavelengths)
    pair = validate_pair(hsi_info, msi_info)
    if isinstance(method, str):
        method = get_method(method, **(method_params or {}))
    check_fuse_outputs(output, (hsi, msi), tile_dir, getattr(method, "save_path", None))
    if isinstance(scheduler, str) or (scheduler is None and tile_dir):
        if not (scheduler or "").strip():
            if tile_dir:
                raise InputError("per-tile output (tile_dir) needs a Dask scheduler")
            scheduler = None
        else:  # inputs checked above, before any cluster starts; the session lives for this run
            from .pipeline.distributed import open_cluster
            with open_cluster(scheduler, feedback, inputs=(hsi, msi)) as session:
                return fuse(hsi, msi, output, method, tile_size=tile_size, feedback=feedback,
                            creation_options=creation_options, hsi_wavelengths=hsi_wavelengths,
                            msi_wavelengths=msi_wavelengths, scheduler=session, max_in_flight=max_in_flight,
                            tile_dir=tile_dir, metadata=metadata)
    feedback.pushInfo(f"{method.name}: HSI {hsi_info.width}x{hsi_info.height}x{hsi_info.bands}, "
                      f"MSI {msi_info.width}x{msi_info.height}x{msi_info.bands}, ratio {pair.ratio}, "
                      f"output {pair.region.width}x{pair.region.height}")
    scene = build_scene(pair, feedback)
    method.fit(scene, feedback)
    if method.device_reason:
        feedback.pushInfo(method.device_reason)
    nodata = float_nodata(hsi_info.nodata)
    writer_cls = RasterWriter
    if tile_dir:
        from .pipeline.distributed import TileVrtWriter
        writer_cls = functools.partial(TileVrtWriter, tile_dir=tile_dir)
    with writer_cls(output, pair.region.width, pair.region.height, hsi_info.bands, pair.out_geotransform,
                    pair.out_wkt, nodata=nodata, inputs=(hsi, msi),
                    creation_options=creation_options) as writer:
        writer.set_band_names(hsi_info.band_names)
        writer.set_wavelengths(hsi_info.wavelengths, hsi_info.fwhm)
        writer.set_scale_offset(hsi_info.scale, hsi_info.offset)
        writer.set_metadata({"HSIFUSION_VERSION": __version__, "HSIFUSION_HSI": hsi, "HSIFUSION_MSI": msi,
                             "HSIFUSION_RATIO": str(pair.ratio),
                             "HSIFUSION_METHOD": json.dumps(method.describe()), **(metadata or {})})
        span = (100.0 * getattr(method, "fit_share", 0.0), 100.0)
        if scheduler is not None:
            from .pipeline.distributed import fuse_tiles_distributed
            n = fuse_tiles_distributed(scene, method, lambda a, w: writer.write(a, w.col, w.row), tile_size,
                                       nodata, feedback, span, scheduler, max_in_flight,
                                       writer if tile_dir else None)
        else:
            def write_and_recycle(block, w) -> None:
                writer.write(block, w.col, w.row)
                TILE_BUFFERS.give(block)  # GDAL has copied it: the next tile's array (engine/pipeline/memory.py)

            try:
                n = fuse_tiles(scene, method, write_and_recycle, tile_size, nodata, feedback, span)
            finally:
                TILE_BUFFERS.clear()
        path = writer.commit()
    seconds = time.perf_counter() - t0
    feedback.pushInfo(f"wrote {path} ({n} tiles) in {seconds:.1f} s")
    return {"OUTPUT": path, "RATIO": pair.ratio, "TILES": n, "SECONDS": seconds, **method.describe()}


def check_fuse_outputs(output: str, inputs: Sequence[str], tile_dir: Optional[str] = None,
                       save_checkpoint: Optional[str] = None) -> None:
    """Check every file a fusion run writes, before any work.

    The raster (a format GDAL can create, or a .vrt mosaic with ``tile_dir``), the tile folder and a
    network's checkpoint.
    """
    check_outputs({"OUTPUT": output, "SAVE_CHECKPOINT": save_checkpoint}, inputs)
    if tile_dir:
        check_output_folder(tile_dir, inputs, "tile folder")
    else:
        raster_driver(output)


# Wald-protocol simulation and spectral resampling (engine/sensors/simulate.py).
from .sensors.simulate import simulate, spectral_resample  # noqa: E402,F401


def assess(reference: Optional[str], estimate: str, ratio: Optional[float] = None, out_sam: Optional[str] = None,
           out_table: Optional[str] = None, out_report: Optional[str] = None, mask: Optional[str] = None,
           border: int = 0, tile_size: int = 256, feedback: Optional[Feedback] = None, **kwargs) -> Dict:
    """Quality of a fused image; see :func:`engine.quality.assess.assess`.

    Metrics are defined in engine/quality/metrics.py.

    Full reference: PSNR, SSIM, SAM, ERGAS, RMSE, CC, UIQI, Q2N (+ SAM map, CSV, HTML report).
    No reference (``lr_hsi=`` and ``msi=``): QNR, D_LAMBDA, D_S.
    """
    from .quality.assess import assess as _assess

    return _assess(reference, estimate, ratio, out_sam=out_sam, out_table=out_table, out_report=out_report,
                   mask=mask, border=border, tile_size=tile_size, feedback=feedback, **kwargs)


# Method chosen by self-validation at the reduced scale (engine/auto.py, engine/quality/selfval.py).
from .auto import fuse_auto  # noqa: E402,F401
from .learning.corpus_training import train  # noqa: E402,F401

# Corpus training (engine/learning/corpus_training.py) and blind SRF/PSF estimation (engine/sensors/blind_srf_psf.py).
from .sensors.blind_srf_psf import estimate_srf_psf  # noqa: E402,F401
