"""The five networks with their defaults (anchored on GLP, MAX_SECONDS 150 s) against GLP and bicubic.

    .venv/bin/python benchmarks/anchored_networks.py [--work DIR] [--methods a,b] [--cases sample,paris_ms_x3]

Cases: ``sample`` = the bundled EnMAP Potsdam block at x4 with its simulated Sentinel-2A MSI (Wald's
protocol, reference = the EnMAP block); ``enmap_256`` = the time-budget case, a 256x256 HR pair with 109
bands (every second good band of the bundled reference, mirror-tiled to 256x256, simulated at x4 with
Sentinel-2A as the quality benchmark simulates: benchmarks/quality.py ``make_pair``); ``enmap_mosaic`` = the
largest real EnMAP scene in ../shared, the 160x192 Potsdam tile mosaic as it is (gaps between tiles and its
water-vapour bands nodata, no bad-band list), simulated at x4 the same way; the real Paris pair
(Hyperion + real ALI MS, ``paris_*``) when ../shared is present (benchmarks/real_pairs.py builds them;
the reference is the real Hyperion cube). Each method runs once through ``engine.api.fuse`` with its
defaults (CPU, seed 0) and is scored by ``engine.api.assess``. The wall time is the whole fuse call (fit,
inference, writing), the figure the 3-minute budget applies to. Writes results/anchored_networks.json and
prints the Markdown table of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK, NETWORKS, SAMPLE, SEED, fmt, load_result, log, md_table, register_package, save_result
from quality import fuse_and_assess

BUDGET_S = 180.0  # each network's default run within 3 minutes on 2 cores
# what an anchored network's fuse call reports about its run, kept in its row
RESULT_KEYS = ("base", "network_used", "heldout_gain_db", "consistency_gain_db", "stopped_by", "fit_seconds")
WITHOUT_STEP_6 = " (without step 6)"  # label suffix of a run with the full-resolution consistency check switched off
METHODS = ["upsample", "glp"] + NETWORKS


def sample_case() -> Dict:
    return {"key": "sample", "title": "EnMAP Potsdam x4, simulated S2A (bundled sample)", "ratio": 4,
            "hsi": str(SAMPLE / "potsdam_lr_hsi_x4.tif"), "msi": str(SAMPLE / "potsdam_msi_s2a.tif"),
            "reference": str(SAMPLE / "enmap_potsdam_reference.tif")}


def enmap_256_case(work: Path) -> Dict:
    """The 3-minute budget's pair: 256x256 HR pixels, ~100 bands, x4 (see the module docstring)."""
    import numpy as np
    from osgeo import gdal

    from quality import make_pair
    from scenes import _write_cube

    register_package()
    from hsifusion.engine.io.raster import raster_info

    ref_path = SAMPLE / "enmap_potsdam_reference.tif"
    info = raster_info(str(ref_path))
    keep = np.flatnonzero(info.good_bands)[::2]
    cube = gdal.Open(str(ref_path)).ReadAsArray().astype(np.float32)[keep]
    cube = np.pad(cube, ((0, 0), (0, 256 - cube.shape[1]), (0, 256 - cube.shape[2])), mode="symmetric")
    ref = work / "enmap_256_reference.tif"
    if not ref.exists():
        _write_cube(ref, cube, np.asarray(info.wavelengths)[keep], np.asarray(info.fwhm)[keep])
        ds = gdal.Open(str(ref), gdal.GA_Update)
        ds.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0))  # north-up pixel grid, as the fused outputs get
        ds = None
    scene = {"key": "enmap_256", "reference": str(ref), "sensor": "sentinel2a_msi", "bands": None}
    hsi, msi, _ = make_pair(scene, 4, work)
    return {"key": "enmap_256", "title": f"EnMAP Potsdam mirror-tiled to 256x256, {len(keep)} bands, x4, "
            "simulated S2A (time-budget case)", "ratio": 4, "hsi": hsi, "msi": msi, "reference": str(ref)}


def enmap_mosaic_case(work: Path) -> List[Dict]:
    """The Potsdam tile mosaic of ../shared at x4 (see the module docstring); none without ../shared."""
    from osgeo import gdal

    from common import SHARED
    from quality import make_pair
    from scenes import ENMAP_BANDS

    folder = SHARED / "enmap_potsdam_tiles"
    if not (folder / "enmap_potsdam_tiles_mosaic.vrt").exists():
        log("../shared EnMAP mosaic absent: enmap_mosaic skipped")
        return []
    register_package()
    from hsifusion.engine.io.raster import raster_info
    from hsifusion.engine.io.wavelengths import write_wavelengths

    ref = work / "enmap_mosaic_reference.tif"
    if not ref.exists():
        tmp = work / "enmap_mosaic_reference.partial.tif"
        gdal.Translate(str(tmp), str(folder / "enmap_potsdam_tiles_mosaic.vrt"))
        info = raster_info(str(tmp), str(folder / "enmap_wavelengths.csv"))
        ds = gdal.Open(str(tmp), gdal.GA_Update)
        write_wavelengths(ds, info.wavelengths, info.fwhm)
        ds = None
        tmp.rename(ref)
    scene = {"key": "enmap_mosaic", "reference": str(ref), "sensor": "sentinel2a_msi", "bands": ENMAP_BANDS}
    hsi, msi, _ = make_pair(scene, 4, work)
    return [{"key": "enmap_mosaic", "title": "EnMAP Potsdam tile mosaic 160x192 (gaps, unflagged water bands), x4, "
             "simulated S2A", "ratio": 4, "hsi": hsi, "msi": msi, "reference": str(ref)}]


def real_cases(work: Path, keys: List[str]) -> List[Dict]:
    """The Paris cases of benchmarks/real_pairs.py (absent: none)."""
    try:
        import real_pairs
    except ImportError:
        log("benchmarks/real_pairs.py not present: real pairs skipped")
        return []
    cases = [c for c in real_pairs.build_cases(work / "real") if not keys or c["key"] in keys]
    if not cases:
        log("../shared/data/real/paris_hyperion_ali absent: real pairs skipped")
    return cases


def params_of(method: str) -> Dict:
    if method == "upsample":
        return {"mode": "bicubic"}
    return {"device": "cpu", "seed": SEED} if method in NETWORKS else {}


def run(work: Path, methods: List[str], keys: List[str], merge: bool = False, without_step_6: bool = False) -> Dict:
    register_package()
    work.mkdir(parents=True, exist_ok=True)
    if without_step_6:  # what the networks would write without the full-resolution consistency check
        from hsifusion.engine.methods import anchored

        anchored.MIN_CONSISTENCY_DB = -math.inf
    cases = ([sample_case()] if not keys or "sample" in keys else [])
    cases += [enmap_256_case(work)] if not keys or "enmap_256" in keys else []
    cases += enmap_mosaic_case(work) if not keys or "enmap_mosaic" in keys else []
    cases += real_cases(work, [k for k in keys if k.startswith("paris")]) if not keys or any(
        k.startswith("paris") for k in keys) else []
    rows = []
    for case in cases:
        for m in methods:
            out = work / f"{case['key']}_{m}.tif"
            label = m + (WITHOUT_STEP_6 if without_step_6 and m in NETWORKS else "")
            row = {"case": case["key"], "title": case["title"], "method": label}
            log(f"anchored_networks: {case['key']} {m}")
            fuse_and_assess(row, case["hsi"], case["msi"], case["reference"], case["ratio"], m, params_of(m), out,
                            extra=RESULT_KEYS)
            rows.append(row)
            log(f"  {row}")
    if merge:  # keep the saved rows of the (case, method) pairs not run now, in their order
        fresh = {(r["case"], r["method"]): r for r in rows}
        saved = (load_result("anchored_networks") or {}).get("rows", [])
        kept = [fresh.pop((r["case"], r["method"]), r) for r in saved]
        rows = kept + list(fresh.values())
    data = {"rows": rows, "budget_s": BUDGET_S}
    save_result("anchored_networks", data)
    return data


def outcome(row: Dict) -> str:
    """What the network's run produced: the refined base or the base, why, after how many steps."""
    if row.get("network_used") is None:
        return "—"
    steps = f"{row['iterations']} it" if row.get("iterations") is not None else ""
    stop = f", stopped by {row['stopped_by']}" if row.get("stopped_by") not in (None, "iterations") else ""
    gain = f"held-out {row.get('heldout_gain_db', 0.0):+.2f} dB"
    if row.get("consistency_gain_db") is not None:
        gain += f", consistency {row['consistency_gain_db']:+.2f} dB"
    return f"{'network' if row['network_used'] else 'base'} ({gain}; {steps}{stop})"


def markdown(data: Dict) -> str:
    """One table per case: each method's PSNR/SAM, its difference to GLP and bicubic, its wall time."""
    out = []
    for case in dict.fromkeys(r["case"] for r in data["rows"]):
        rows = [r for r in data["rows"] if r["case"] == case]
        ref = {r["method"]: r for r in rows if "PSNR" in r}
        glp, bic = ref.get("glp", {}), ref.get("upsample", {})
        table = []
        for r in rows:
            if "error" in r:
                table.append([r["method"], r["error"], "", "", "", "", "", ""])
                continue
            net = r["method"].split(" ")[0] in NETWORKS
            within = "" if not net else (" ✓" if r["seconds"] <= data["budget_s"] else " ✗")
            table.append([r["method"], fmt(r["PSNR"]), fmt(r["SAM"]),
                          fmt(r["PSNR"] - glp["PSNR"]) if glp else "—", fmt(r["PSNR"] - bic["PSNR"]) if bic else "—",
                          fmt(r["SAM"] - bic["SAM"]) if bic else "—", f"{r['seconds']:.0f}{within}", outcome(r)])
        out += [f"**{rows[0]['title']}**", "",
                md_table(["method", "PSNR dB", "SAM °", "Δ PSNR vs GLP", "Δ PSNR vs bicubic", "Δ SAM vs bicubic",
                          f"wall s (✓ ≤ {data['budget_s']:.0f})", "output"], table), ""]
    return "\n".join(out)


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK / "anchored")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--cases", default="", help="comma-separated case keys (default: all available)")
    ap.add_argument("--markdown", action="store_true", help="only print the table of the last saved results")
    ap.add_argument("--merge", action="store_true", help="keep the saved rows of the (case, method) pairs not run now")
    ap.add_argument("--without-step-6", action="store_true",
                    help="switch the full-resolution consistency check off (rows labelled so; for comparison)")
    a = ap.parse_args(argv)
    if a.markdown:
        data = load_result("anchored_networks")
        print(markdown(data))
        return data
    data = run(a.work, a.methods.split(","), [k for k in a.cases.split(",") if k], a.merge, a.without_step_6)
    print(markdown(data))
    return data


if __name__ == "__main__":
    main()
