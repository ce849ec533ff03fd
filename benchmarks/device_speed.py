"""Network speed on one device (a GPU where there is one).

Inference Mpx/s per tile size, the tile size that maximises it, peak device memory, and scene-adaptive
training time to bicubic + 3 dB.

    python benchmarks/device_speed.py [--device auto|cuda|cpu] [--tiles 128,256,512,1024]
                                      [--nets ID,ID,...] [--quick] [--sample-npz FILE]
    python benchmarks/device_speed.py --export-npz FILE     # the bundled sample as arrays (needs GDAL)

Why a script of its own: the GPU machine lent to some sessions has torch but no GDAL. Everything here
goes through the engine's QGIS- and GDAL-free layers (``engine.methods``: the same ``NetworkMethod.fit``
and ``apply`` the tile loop calls) on arrays; the bundled sample is read with GDAL where it is installed,
else from an ``.npz`` made here with ``--export-npz`` (the folder carried to the GPU machine). The same
command on the CPU gives the CPU row, so both come from one protocol.

1. **Time to bicubic + 3 dB** (supervised nets, as ``benchmarks/training_speed.py``): ``NetworkMethod.fit``
   on the sample with the engine's default iterations (``--quick``: 60), the training clock paused every
   ``--every`` steps to apply the current weights to the whole sample (one tile with the mirrored
   context the tile loop gives a small raster: tested equal to the tile loop) and compute PSNR against the
   real reference (per good band, peak = band max over valid pixels). Device work is synchronised before each reading.
2. **Inference per tile size**: the sample mirror-tiled to a ``T``² HR tile (its LR tile ``T/r``); one
   warm-up call, then the median of ``--repeats`` calls of ``apply`` (host -> device -> host included,
   as in the tile loop). Mpx/s counts the tile's *core*: ``T - 2 x margin`` a side, what an interior tile
   of the tile loop delivers. Supervised nets use the weights from step 1 (or a short fit when step 1
   did not run them); UDS2C2 is fitted on the sample first; UMSFT optimises every tile (10 + 10 steps,
   as benchmarks/throughput.py; no warm-up call for it; on a CPU the smallest tile only). On GPU
   out-of-memory the row says so and larger tiles are skipped.

Writes ``benchmarks/results/device_speed_<device type>.json``; ``run_all.py`` assembles every such file.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MARK_DB,
    NETWORKS,
    PER_TILE,
    SAMPLE,
    SEED,
    SUPERVISED,
    catalogue,
    curve_summary,
    fmt,
    load_result,
    log,
    machine_info,
    md_table,
    psnr_good_bands,
    register_package,
    save_result,
    training_probe,
)

PER_TILE_STEPS = 10   # per-tile nets: optimisation steps (main loop and each init step) in the inference sweep


# ------------------------------------------------------------------------------------------ data
def load_sample(npz: Optional[str] = None) -> Dict:
    """The bundled sample as arrays.

    ``lr`` (C,h,w), msi (c,H,W), ref (C,H,W), good bands, valid pixels, wavelengths/FWHM of both sides. From
    GDAL when it is there, else from ``npz`` (``--export-npz``).
    """
    if npz:
        with np.load(npz) as f:
            return {k: f[k] for k in f.files}
    register_package()
    from osgeo import gdal

    from hsifusion.engine.io.raster import raster_info, valid_mask

    out = {}
    for key, name in (("lr", "potsdam_lr_hsi_x4.tif"), ("msi", "potsdam_msi_s2a.tif"),
                      ("ref", "enmap_potsdam_reference.tif")):
        info = raster_info(str(SAMPLE / name))
        arr = gdal.Open(str(SAMPLE / name)).ReadAsArray().astype(np.float32)
        good = info.good_bands if info.good_bands is not None else np.ones(info.bands, bool)
        valid = valid_mask(arr, info.nodata, good)
        out[key], out[key + "_valid"], out[key + "_good"] = arr, valid, good
        if key in ("lr", "msi"):
            out[key + "_wavelengths"], out[key + "_fwhm"] = info.wavelengths, info.fwhm
    return out


def fill_invalid(arr: np.ndarray, valid: np.ndarray, good: np.ndarray) -> np.ndarray:
    """As the engine reads a window (engine.io.scene.fill_invalid).

    Invalid pixels take the band's mean over the valid ones, whole bad bands 0.
    """
    out = arr.copy()
    if not valid.all():
        means = arr[:, valid].mean(axis=1) if valid.any() else np.zeros(len(arr))
        out[:, ~valid] = means.astype(np.float32)[:, None]
    out[~good] = 0.0
    return out


class ArrayScene:
    """What ``NetworkMethod.fit`` reads of a scene (``engine.io.scene.Scene``), on in-memory arrays."""

    def __init__(self, s: Dict, ratio: int):
        self.ratio = ratio
        self.lr = fill_invalid(s["lr"], s["lr_valid"], s["lr_good"])
        self.msi = fill_invalid(s["msi"], s["msi_valid"], s["msi_good"])
        hsi = SimpleNamespace(bands=len(self.lr), good_bands=s["lr_good"], wavelengths=s.get("lr_wavelengths"),
                              fwhm=s.get("lr_fwhm"))
        msi = SimpleNamespace(bands=len(self.msi), good_bands=None, wavelengths=s.get("msi_wavelengths"),
                              fwhm=s.get("msi_fwhm"))
        region = SimpleNamespace(width=self.msi.shape[2], height=self.msi.shape[1])  # the output's HR extent
        self.pair = SimpleNamespace(hsi=hsi, msi=msi, region=region)

    def read_crop(self, max_lr_side: int = 128, centre=None):
        r = self.ratio
        h, w = min(self.lr.shape[1], max_lr_side), min(self.lr.shape[2], max_lr_side)
        r0, c0 = (self.lr.shape[1] - h) // 2, (self.lr.shape[2] - w) // 2
        z = self.msi[:, r0 * r:(r0 + h) * r, c0 * r:(c0 + w) * r]
        return self.lr[:, r0:r0 + h, c0:c0 + w], z, np.ones(z.shape[1:], bool)


def mirror_tile(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """``arr`` mirror-tiled (half-sample symmetric, repeated) to ``height`` x ``width``."""
    return np.ascontiguousarray(np.pad(arr, ((0, 0), (0, max(0, height - arr.shape[1])),
                                             (0, max(0, width - arr.shape[2]))), mode="symmetric")[:, :height, :width])


def size_rule(method, ratio: int, side: int) -> int:
    """The smallest HR side >= ``side`` the method accepts (its align step and minimum size)."""
    step = method.align(ratio)
    return max(-(-side // step) * step, -(-method.min_hr_size(ratio) // step) * step)


def edge_context(method, ratio: int) -> int:
    """HR px of mirrored context the tile loop gives a tile at the raster's edge (engine.pipeline.tile_geometry)."""
    from hsifusion.engine.pipeline.tile_geometry import edge_pad, tile_geometry

    step, margin, _ = tile_geometry(method, ratio, 0)
    return edge_pad(step, margin)


def apply_whole(method, scene: ArrayScene) -> np.ndarray:
    """The method on the whole sample as one tile, as the tile loop runs a raster smaller than a tile.

    Mirrored context of :func:`edge_context` around it (padded further at the bottom/right only if the
    method's size rule asks for it), then cropped back.
    """
    r = scene.ratio
    m = edge_context(method, r) // r  # LR px
    lr = np.pad(scene.lr, ((0, 0), (m, m), (m, m)), mode="symmetric")
    hr = np.pad(scene.msi, ((0, 0), (m * r, m * r), (m * r, m * r)), mode="symmetric")
    H, W = size_rule(method, r, hr.shape[1]), size_rule(method, r, hr.shape[2])
    lr, hr = mirror_tile(lr, H // r, W // r), mirror_tile(hr, H, W)
    x = method.apply(lr, hr, r)
    h, w = scene.msi.shape[1:]
    return x[:, m * r:m * r + h, m * r:m * r + w]


# ------------------------------------------------------------------------------------------ timing
def _sync(device) -> None:
    import torch

    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def train_to_mark(net: str, s: Dict, scene: ArrayScene, device: str, iterations: int, every: int,
                  bicubic: float):
    """(method, row): train ``net`` on the sample, PSNR every ``every`` steps on the paused clock."""
    import torch

    from hsifusion.engine.methods import get_method

    method = get_method(net, device=device, seed=SEED, iterations=iterations, base="none")  # the network alone
    probe = training_probe(
        method, iterations, every,
        lambda: psnr_good_bands(s["ref"], apply_whole(method, scene), s["ref_valid"], s["ref_good"]),
        sync=lambda: _sync(method._device))
    torch.manual_seed(SEED)
    method.fit(scene, probe)
    return method, {"net": net, "iterations": iterations, **curve_summary(probe.points, bicubic)}


def fitted_method(net: str, scene: ArrayScene, device: str, quick: bool):
    """A method ready to ``apply``: a short fit (speed, not quality) for nets step 1 did not train."""
    from hsifusion.engine.methods import get_method

    params: Dict = {"device": device, "seed": SEED, "iterations": 20 if quick else 60, "base": "none"}
    if net in PER_TILE:
        params.update(iterations=PER_TILE_STEPS, hyper={"init_steps": PER_TILE_STEPS})
    method = get_method(net, **params)
    method.fit(scene, None)
    return method


def sweep(method, s: Dict, scene: ArrayScene, tiles: Sequence[int], repeats: int) -> List[Dict]:
    """Seconds per ``apply`` and core Mpx/s for each HR tile side; stops at the first out-of-memory."""
    import torch

    from hsifusion.engine.pipeline.device import is_out_of_memory

    r = scene.ratio
    margin = method.margin(r)
    rows = []
    for t in tiles:
        side = size_rule(method, r, t)
        core = side - 2 * margin
        row = {"tile": side, "core": core, "margin": margin}
        if core <= 0:
            rows.append(dict(row, error=f"margin {margin} px leaves no core"))
            continue
        lr, hr = mirror_tile(scene.lr, side // r, side // r), mirror_tile(scene.msi, side, side)
        dev = method._device
        if dev is not None and dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        warm = 0 if method.name in PER_TILE else 1  # a per-tile net's 40 steps per call warm up by themselves
        try:
            times = []
            for k in range(repeats + warm):  # a first call warms up (kernels, allocator)
                _sync(dev)
                t0 = time.perf_counter()
                method.apply(lr, hr, r)
                _sync(dev)
                if k >= warm:
                    times.append(time.perf_counter() - t0)
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(exc):
                raise
            rows.append(dict(row, error="out of memory"))
            break
        sec = statistics.median(times)
        row.update(seconds=sec, mpx_per_s=core * core / 1e6 / sec, times=times)
        if dev is not None and dev.type == "cuda":
            row["peak_device_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
        rows.append(row)
        log(f"  {method.name} tile {side}: {sec:.3f} s, {row['mpx_per_s']:.4g} Mpx/s")
    return rows


def run(device: str, nets: Sequence[str], tiles: Sequence[int], quick: bool, repeats: int,
        every: int, npz: Optional[str] = None, save: bool = True) -> Dict:
    register_package()
    import torch

    from hsifusion.engine.methods import get_method
    from hsifusion.engine.pipeline.device import resolve_device

    dev, why = resolve_device(device)
    s = load_sample(npz)
    ratio = s["msi"].shape[1] // s["lr"].shape[1]
    scene = ArrayScene(s, ratio)
    bicubic = psnr_good_bands(s["ref"], apply_whole(get_method("upsample", mode="bicubic"), scene), s["ref_valid"],
                              s["ref_good"])
    info = machine_info()
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
        info["device_memory_gib"] = round(torch.cuda.get_device_properties(dev).total_memory / 2**30, 1)
    res: Dict = {"device": dev.type, "device_reason": why, "machine": info, "quick": quick, "tiles": list(tiles),
                 "repeats": repeats, "bicubic_psnr": bicubic, "training": [], "inference": []}
    log(f"device speed on {dev} ({why}); bicubic {bicubic:.2f} dB")
    methods = {}
    for n in [n for n in nets if n in SUPERVISED]:
        its = 60 if quick else catalogue.entry(n).iterations
        log(f"{n}: training to bicubic + {MARK_DB} dB ({its} iterations, PSNR every {every})")
        methods[n], row = train_to_mark(n, s, scene, str(dev), its, every, bicubic)
        res["training"].append(row)
        log(f"  -> {row['seconds_to_mark']} s to mark, final {row['final_psnr']:.2f} dB")
    for n in nets:
        method = methods.get(n) or fitted_method(n, scene, str(dev), quick)
        # A per-tile net optimises every tile (UMSFT: ~20 min for one 512² tile on a CPU): smallest tile only there
        its_tiles = tiles[:1] if n in PER_TILE and dev.type == "cpu" else tiles
        log(f"{n}: inference sweep {list(its_tiles)}")
        res["inference"].append({"net": n, "rows": sweep(method, s, scene, its_tiles, repeats)})
        del method
        methods.pop(n, None)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if save:
        save_result(f"device_speed_{dev.type}", res)
        res["ran"] = load_result(f"device_speed_{dev.type}").get("ran")
    return res


# ------------------------------------------------------------------------------------------ report
def markdown(res: Dict) -> str:
    mi = res["machine"]
    where = (f"{mi.get('device_name')} ({mi.get('device_memory_gib')} GiB)" if res["device"] == "cuda"
             else f"CPU: {mi.get('cpu')}, {mi.get('torch_threads', '?')} torch threads")
    ran = res.get("ran") or {}
    out = [f"**{where}** — `{ran.get('command', '?')}`, {ran.get('finished', mi.get('date'))}; "
           f"bicubic on the sample {res['bicubic_psnr']:.2f} dB "
           f"(whole-sample protocol of this script).\n"]
    rows = []
    for r in res["training"]:
        rows.append([r["net"], str(r["iterations_to_mark"]) if r["reached"] else f"not within {r['iterations']}",
                     fmt(r["seconds_to_mark"], 2) if r["reached"] else "—",
                     fmt(1000 * r["seconds_per_step"], 1) if r.get("seconds_per_step") else "—",
                     f"{fmt(r['final_psnr'])} @ {r['points'][-1][0]}" if r["points"] else "—"])
    if rows:
        out.append(md_table(["network", "iterations to +3 dB", "seconds to +3 dB", "ms per step",
                             "last PSNR @ iteration"], rows))
    rows = []
    for item in res["inference"]:
        ok = [r for r in item["rows"] if "mpx_per_s" in r]
        best = max(ok, key=lambda r: r["mpx_per_s"]) if ok else None
        cells = []
        for r in item["rows"]:
            cells.append(f"{r['tile']}: " + (f"{r['mpx_per_s']:.3g}" if "mpx_per_s" in r else r.get("error", "?"))
                         + (f" ({r['peak_device_mib']:.0f} MiB)" if "peak_device_mib" in r else ""))
        rows.append([item["net"], "; ".join(cells), f"{best['tile']}" if best else "—",
                     f"{best['mpx_per_s']:.3g}" if best else "—"])
    out.append("\nInference, core Mpx/s per HR tile side (margin excluded; peak device memory in brackets on GPU):\n")
    out.append(md_table(["network", "tile: Mpx/s", "best tile", "best Mpx/s"], rows))
    return "\n".join(out)


def export_npz(path: str) -> None:
    s = load_sample()
    np.savez_compressed(path, **{k: v for k, v in s.items() if v is not None})
    log(f"wrote {path}")


def main(argv=None) -> Optional[Dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--nets", default=",".join(NETWORKS))
    ap.add_argument("--tiles", help="HR tile sides (default: GPU 128,256,512,1024,2048; CPU 256,512)")
    ap.add_argument("--quick", action="store_true", help="60 training iterations instead of the defaults")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every", type=int, default=10, help="PSNR every N training steps")
    ap.add_argument("--sample-npz", help="read the sample from this file (made with --export-npz)")
    ap.add_argument("--export-npz", help="write the sample's arrays to this file and stop")
    a = ap.parse_args(argv)
    if a.export_npz:
        export_npz(a.export_npz)
        return None
    register_package()
    from hsifusion.engine.pipeline.device import resolve_device

    gpu = resolve_device(a.device)[0].type == "cuda"
    tiles = [int(t) for t in (a.tiles or ("128,256,512,1024,2048" if gpu else "256,512")).split(",")]
    res = run(a.device, a.nets.split(","), tiles, a.quick, a.repeats, a.every, a.sample_npz)
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
