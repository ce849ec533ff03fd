"""Scene-adaptive training speed: time to reach bicubic + 3 dB PSNR on the bundled sample (x4), CPU.

    .venv/bin/python benchmarks/training_speed.py [--quick] [--nets ID,ID,...]   (default: every supervised net)

Each supervised network is trained on the pair itself exactly as ``fuse`` does (``NetworkMethod.fit``,
seed 0, CPU). Every ``--every`` iterations the clock is paused, the current weights are applied to the
whole scene through the engine's tile loop (``engine.pipeline.tiling.fuse_tiles``) and PSNR against the real
reference is computed with the definition of ``engine.quality.metrics`` (per band 10 log10(peak²/MSE), peak =
the reference band's max over valid pixels; mean over good bands). Reported: the first evaluated
iteration at or above bicubic + 3 dB, and the training seconds up to it (evaluation time excluded).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    LITE,
    SAMPLE,
    SEED,
    SUPERVISED,
    curve_summary,
    fmt,
    log,
    md_table,
    psnr_good_bands,
    register_package,
    save_result,
    training_probe,
)


class _Eval:
    def __init__(self, scene, reference: str):
        import numpy as np
        from osgeo import gdal

        from hsifusion.engine.io.raster import raster_info, valid_mask

        self.scene = scene
        info = raster_info(reference)
        self.ref = gdal.Open(reference).ReadAsArray().astype(np.float32)
        self.good = info.good_bands if info.good_bands is not None else np.ones(info.bands, bool)
        self.valid = valid_mask(self.ref, info.nodata, self.good)

    def psnr(self, method) -> float:
        import numpy as np

        from hsifusion.engine.pipeline.tiling import fuse_tiles

        out = np.zeros_like(self.ref)

        def write(a, w):
            out[:, w.row:w.row + w.height, w.col:w.col + w.width] = a

        fuse_tiles(self.scene, method, write, 256, -9999.0)
        return psnr_good_bands(self.ref, out, self.valid, self.good)


def curve(net: str, iterations: int, every: int, quick: bool) -> Dict:
    """Train ``net`` for ``iterations`` steps, PSNR every ``every`` steps (training clock only)."""
    register_package()
    import torch

    from hsifusion.engine.io.pair import validate_pair
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.scene import build_scene
    from hsifusion.engine.methods import get_method

    hsi, msi = str(SAMPLE / "potsdam_lr_hsi_x4.tif"), str(SAMPLE / "potsdam_msi_s2a.tif")
    scene = build_scene(validate_pair(raster_info(hsi), raster_info(msi)))
    ev = _Eval(scene, str(SAMPLE / "enmap_potsdam_reference.tif"))
    bic = get_method("upsample", mode="bicubic")
    bicubic = ev.psnr(bic)
    params = {"device": "cpu", "seed": SEED, "iterations": iterations, "base": "none"}  # the network alone
    if quick and net in LITE:
        params["lite"] = True
    method = get_method(net, **params)
    probe = training_probe(method, iterations, every, lambda: ev.psnr(method))
    torch.manual_seed(SEED)
    method.fit(scene, probe)
    return {"net": net, "params": params, **curve_summary(probe.points, bicubic)}


def run(quick: bool, nets: List[str], iterations: int = None, every: int = None) -> Dict:
    from hsifusion.models.catalogue import entry

    rows = []
    for n in nets:
        its = iterations or (60 if quick else entry(n).iterations)
        ev = every or (10 if quick else 25)
        log(f"training speed: {n}, {its} iterations, PSNR every {ev}")
        try:
            rows.append(curve(n, its, ev, quick))
        except Exception as exc:
            rows.append({"net": n, "error": f"{type(exc).__name__}: {exc}"})
        log(f"  -> {rows[-1].get('seconds_to_mark')} s to mark, final {rows[-1].get('final_psnr')}")
    res = {"quick": quick, "rows": rows, "device": "cpu"}
    save_result("training_speed", res)
    return res


def markdown(res: Dict) -> str:
    rows = []
    for r in res["rows"]:
        if "error" in r:
            rows.append([r["net"], "error: " + r["error"][:100], "", "", "", "", ""])
            continue
        lite = ", lite" if r["params"].get("lite") or (r["params"].get("hyper") or {}).get("lite") else ""
        its = r["params"]["iterations"]
        rows.append([f"{r['net']}{lite}", fmt(r["bicubic_psnr"]), fmt(r["mark"]),
                     str(r["iterations_to_mark"]) if r["reached"] else f"not within {its}",
                     fmt(r["seconds_to_mark"], 1) if r["reached"] else "—",
                     f"{fmt(r['final_psnr'])} @ {r['points'][-1][0]}" if r["points"] else "—",
                     fmt(r["train_seconds"], 1)])
    curves = "; ".join(f"{r['net']}: " + ", ".join(f"{n}→{p:.1f}" for n, _, p in r["points"])
                       for r in res["rows"] if r.get("points"))
    return (md_table(["network (CPU)", "bicubic PSNR", "mark (+3 dB)", "iterations to mark", "seconds to mark",
                      "last PSNR @ iteration", "training s (total)"], rows) +
            f"\n\nPSNR curves (iteration→dB): {curves}.\n\n"
            "On a GPU: 'Networks on one device' (benchmarks/device_speed.py).\n")


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--nets", default=",".join(SUPERVISED))
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--every", type=int)
    a = ap.parse_args(argv)
    register_package()
    res = run(a.quick, a.nets.split(","), a.iterations, a.every)
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
