"""Throughput against the I/O limit on a large real-data pair, and CPU inference speed of the networks.

    .venv/bin/python benchmarks/throughput.py [--quick] [--size 2048] [--work DIR] [--methods ...]

1. The pair (benchmarks/bigpair.py): the real EnMAP block mirror-tiled to ``size``² x 224 bands, LR-HSI
   x4 and Sentinel-2A MSI from ``engine.api.simulate``. (--quick: 1024², default 2048².)
2. Every job is a separate process (benchmarks/job.py) run one after the other: the I/O limit (plain GDAL
   windowed read of both inputs on the engine's tiles + windowed write of a 224-band Float32 GeoTIFF of
   the output size with the engine's creation options, one thread), then each method through
   ``engine.api.fuse`` (tile 256), then the I/O limit again (the reported limit is the faster of the
   two runs, so page-cache warm-up does not flatter the methods), then GDAL's own
   ``gdal_pansharpen.py`` (weighted Brovey, cubic resampling, MSI band B4 as the PAN) as a reference.
3. Networks: CPU inference on a ``net_size``² crop of the pair (supervised nets from a checkpoint
   trained for a few iterations on the bundled sample, UDS2C2 after its per-pair fit, UMSFT whose
   per-tile optimisation *is* its inference, at the quick budget). Mpx/s counts the tile phase only.
4. Profile: the phases (summed thread time of reads, compute, writes) of every method, and a cProfile
   of the main thread for upsample and the slowest classical method.
"""
from __future__ import annotations

import argparse
import json
import pstats
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bigpair import build_pair
from common import (
    CLASSICAL,
    DEFAULT_WORK,
    NETWORKS,
    PER_TILE,
    SEED,
    SUPERVISED,
    available_methods,
    fmt,
    label,
    load_result,
    log,
    md_table,
    method_params,
    register_package,
    run_child,
    sample_checkpoints,
    save_result,
    time_v,
)

PANSHARPEN = "/usr/bin/gdal_pansharpen.py"
PAN_BAND = 4  # Sentinel-2A B4 (red, 665 nm) in the 12-band MSI


def crop_pair(pair: Dict, size: int, work: Path) -> Dict:
    """A ``size``² HR crop (top-left) of a pair, as VRTs (no copy)."""
    from osgeo import gdal

    r = pair["ratio"]
    out = {"hsi": str(work / f"crop_{size}_hsi.vrt"), "msi": str(work / f"crop_{size}_msi.vrt"), "size": size}
    if not Path(out["hsi"]).exists():
        gdal.Translate(out["hsi"], pair["hsi"], format="VRT", srcWin=[0, 0, size // r, size // r])
        gdal.Translate(out["msi"], pair["msi"], format="VRT", srcWin=[0, 0, size, size])
    return out


def pansharpen(pair: Dict, work: Path) -> Dict:
    from osgeo import gdal

    register_package()
    from hsifusion.engine.io.writer import DEFAULT_CREATION_OPTIONS

    if not Path(PANSHARPEN).exists():
        return {"error": f"{PANSHARPEN} not found"}
    pan = work / "pan_b4.vrt"
    gdal.Translate(str(pan), pair["msi"], format="VRT", bandList=[PAN_BAND])
    out = work / "pansharpen.tif"
    cmd = [sys.executable, PANSHARPEN, str(pan), pair["hsi"], str(out), "-of", "GTiff", "-r", "cubic",
           "-threads", "ALL_CPUS", "-q"]
    for o in DEFAULT_CREATION_OPTIONS:
        cmd += ["-co", o]
    res = time_v(cmd, timeout=3600)
    if out.exists():
        ds = gdal.Open(str(out))
        res.update(width=ds.RasterXSize, height=ds.RasterYSize, bands=ds.RasterCount)
        ds = None
        out.unlink()
        res["mpx"] = res["width"] * res["height"] / 1e6
        res["mpx_per_s"] = res["mpx"] / res["seconds"]
    res["method"] = "gdal_pansharpen (Brovey)"
    return res


def fastest(runs: List[Dict]) -> Optional[Dict]:
    """The run with the highest Mpx/s among those that did not fail."""
    ok = [j for j in runs if "mpx_per_s" in j]
    return max(ok, key=lambda j: j["mpx_per_s"]) if ok else None


def top_functions(prof_path: str, n: int = 12) -> List[List]:
    st = pstats.Stats(prof_path)
    rows = []
    for (fn, line, name), (cc, nc, tt, ct, callers) in sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:n]:
        short = fn.split("/main/")[-1] if "/main/" in fn else fn.split("/")[-1]
        rows.append([f"{short}:{line} {name}", nc, round(tt, 2), round(ct, 2)])
    return rows


def run(quick: bool, work: Path, size: int, methods: List[str], net_size: int, tile: int = 256,
        rounds: int = 3) -> Dict:
    work = work / "throughput"
    work.mkdir(parents=True, exist_ok=True)
    pair = build_pair(work.parent / "bigpair", size)
    log(f"throughput: pair {pair['how']}")
    out = str(work / "out.tif")
    base = ["--hsi", pair["hsi"], "--msi", pair["msi"], "--out", out, "--tile", tile]
    res: Dict = {"quick": quick, "size": size, "pair": pair, "tile": tile, "jobs": []}
    plain = [m for m in methods if m not in NETWORKS]
    io_runs: List[Dict] = []
    runs: Dict[str, List[Dict]] = {m: [] for m in plain}
    for k in range(rounds):  # interleaved rounds: the disk and page cache drift, every job sees the same
        io_runs.append(run_child(["io", *base]))
        log(f"throughput: round {k + 1}/{rounds}: I/O limit {fmt(io_runs[-1].get('mpx_per_s'), 3)} Mpx/s")
        for m in plain:
            params = method_params(m, quick)
            j = run_child(["fuse", *base, "--method", m, "--params", json.dumps(params), "--phases"])
            j["label"] = label(m, params)
            runs[m].append(j)
            log(f"  {m}: {fmt(j.get('mpx_per_s'), 3)} Mpx/s, peak {fmt(j.get('peak_rss_mib'), 0)} MiB "
                f"{j.get('error', '')}")
    io_runs.append(run_child(["io", *base]))
    for m in plain:  # best of the rounds, as for the I/O limit
        best = dict(fastest(runs[m]) or runs[m][-1])
        best["all_mpx_per_s"] = [j.get("mpx_per_s") for j in runs[m]]
        res["jobs"].append(best)
    res["rounds"] = rounds
    res["io_runs"] = io_runs
    res["io"] = fastest(io_runs) or {"error": "I/O reference failed"}
    log("throughput: gdal_pansharpen")
    res["pansharpen"] = pansharpen(pair, work)

    # Profile the upsample path and the slowest classical method (main thread; phases cover the threads).
    done = [j for j in res["jobs"] if "tile_mpx_per_s" in j]
    classical = [j for j in done if j["method"] in CLASSICAL]
    targets = ["upsample"] + ([min(classical, key=lambda j: j["tile_mpx_per_s"])["method"]] if classical else [])
    res["profiles"] = {}
    for m in targets:
        prof = str(work / f"profile_{m}.prof")  # binary, left in the work folder
        log(f"throughput: cProfile of {m}")
        j = run_child(["fuse", *base, "--method", m, "--params", json.dumps(method_params(m, quick)),
                       "--phases", "--profile", prof])
        res["profiles"][m] = {"job": j, "top": top_functions(prof) if Path(prof).exists() else []}

    # Networks: CPU inference on a crop, from checkpoints where the net has them.
    nets = [m for m in methods if m in NETWORKS]
    res["net_size"] = net_size
    res["networks"] = []
    if nets:
        crop = crop_pair(pair, net_size, work)
        cks = sample_checkpoints(work, [n for n in nets if n in SUPERVISED], 10, quick=True)
        for n in nets:
            # A per-tile net's optimisation at 10 iterations (+ 10 init steps): its speed per iteration is what
            # counts; UMSFT's quick budget (50 + 50 per 256-px tile, ~8 s a step on 2 cores) would run ~50 min
            params = method_params(n, True, iterations=10 if n in PER_TILE else None)
            if n in cks:
                params = {"checkpoint": cks[n], "device": "cpu", "seed": SEED,
                          **{k: params[k] for k in ("hyper", "lite") if k in params}}
            log(f"throughput: {n} inference on {net_size}²")
            j = run_child(["fuse", "--hsi", crop["hsi"], "--msi", crop["msi"], "--out", out, "--tile", tile,
                           "--method", n, "--params", json.dumps(params), "--phases"])
            j["label"] = (label(n, params) if n not in cks
                          else f"{n} (checkpoint{', lite' if 'hyper' in params else ''})")
            res["networks"].append(j)
            log(f"  -> tile phase {fmt(j.get('tile_mpx_per_s'), 4)} Mpx/s {j.get('error', '')}")
    save_result("throughput", res)
    return res


def markdown(res: Dict) -> str:
    io = res["io"]
    iom = io.get("mpx_per_s")
    out = [f"Pair: {res['size']}² HR px x 224 bands output (LR-HSI {res['size'] // 4}² x 224, "
           f"MSI {res['size']}² x 12), "
           f"{res['pair']['how']}. Tile {res['tile']} px. Each row is a separate process, run one after the "
           f"other after `sync`, in {res.get('rounds', 1)} interleaved rounds (I/O limit, then every method); "
           "each row is its best round (all rounds listed below). Mpx/s = HR output megapixels / wall time of "
           "the whole call (scene statistics, fit, tiles, flush); 'tile phase' excludes fit.\n"]
    rows = [["**I/O limit** (GDAL read + write, 1 thread)", fmt(iom, 3), "", "1.00", fmt(io.get("seconds"), 1), "",
             fmt(io.get("peak_rss_mib"), 0)]]
    for j in res["jobs"]:
        if "error" in j:
            rows.append([j.get("label", "?"), "error: " + j["error"][:100], "", "", "", "", ""])
            continue
        rows.append([j["label"], fmt(j["mpx_per_s"], 3), fmt(j.get("tile_mpx_per_s"), 3),
                     fmt(j["mpx_per_s"] / iom, 2) if iom else "—", fmt(j["seconds"], 1), fmt(j["fit_seconds"], 1),
                     fmt(j["peak_rss_mib"], 0)])
    p = res.get("pansharpen", {})
    if "mpx_per_s" in p:
        rows.append(["gdal_pansharpen.py (weighted Brovey, cubic, PAN = MSI B4; reference point)",
                     fmt(p["mpx_per_s"], 3), "", fmt(p["mpx_per_s"] / iom, 2) if iom else "—", fmt(p["seconds"], 1), "",
                     fmt(p.get("peak_rss_mib"), 0)])
    elif p:
        rows.append(["gdal_pansharpen.py", "error: " + str(p.get("error"))[:100], "", "", "", "", ""])
    out.append(md_table(["job", "Mpx/s", "tile phase Mpx/s", "ratio to I/O", "time s", "fit s", "peak RSS MiB"], rows))
    ios = ", ".join(f"{fmt(r.get('mpx_per_s'), 3)}" for r in res.get("io_runs", []))
    for j in res["jobs"]:
        if j.get("all_mpx_per_s"):
            ios += f"; {j.get('label')}: " + ", ".join(fmt(v, 3) for v in j["all_mpx_per_s"])
    out.append(f"\nAll rounds, Mpx/s — I/O limit (before each round and after the last): {ios}. "
               f"Best I/O run: read {fmt(io.get('read_seconds'), 1)} s, "
               f"write {fmt(io.get('write_seconds'), 1)} s, flush {fmt(io.get('flush_seconds'), 1)} s. "
               "Targets: bicubic ≥ 0.7x, GSA/GLP/SFIM ≥ 0.5x the I/O limit.\n")
    # phases
    ph_rows = []
    for j in res["jobs"]:
        ph = j.get("phases")
        if ph:
            ph_rows.append([j["label"], fmt(j["seconds"], 1)] + [fmt(ph.get(k), 1) for k in
                           ("scene statistics", "fit (training / statistics)", "read", "compute", "write",
                            "commit (flush)")])
    if ph_rows:
        out.append("Where the time goes (seconds; read / compute / write are summed over tiles in their own "
                   "threads, so they overlap and can add up to more than the wall time):\n")
        out.append(md_table(["method", "wall", "scene stats", "fit", "read", "compute", "write", "flush"], ph_rows))
    for m, p in res.get("profiles", {}).items():
        if p.get("top"):
            out.append(f"\ncProfile of `{m}` (main thread; top functions by own time):\n")
            out.append(md_table(["function", "calls", "own s", "cumulative s"], p["top"]))
    nets = res.get("networks") or []
    if nets:
        reused = (f" (rows from the run finished {res['networks_from']}, kept by `--reuse-networks`)"
                  if res.get("networks_from") else "")
        out.append(f"\n**CPU inference per network**{reused} on a {res['net_size']}² crop of the same pair "
                   f"(tile {res['tile']}, "
                   "2 torch threads). Supervised nets run from a checkpoint (trained 10 iterations on the sample: "
                   "speed only); UDS2C2's fit (per-pair optimisation on a crop) is excluded; UMSFT optimises "
                   "every tile, so its 'inference' is that optimisation (budget in the row's label).\n")
        rows = []
        for j in nets:
            if "error" in j:
                rows.append([j.get("label", "?"), "error: " + j["error"][:100], "", "", ""])
                continue
            v = j.get("tile_mpx_per_s")
            rows.append([j["label"], f"{v:.3g}" if v else "—", fmt(1.0 / v, 0) if v else "—", fmt(j["tile_seconds"], 1),
                         fmt(j["fit_seconds"], 1), fmt(j["peak_rss_mib"], 0)])
        out.append(md_table(["network", "inference Mpx/s (CPU)", "s per Mpx", "tile phase s", "fit s", "peak RSS MiB"],
                            rows))
    out.append("\nGPU inference: see 'Networks on one device' (benchmarks/device_speed.py).")
    return "\n".join(out)


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, help="HR side of the pair (default 2048; --quick 1024)")
    ap.add_argument("--net-size", type=int, help="HR side of the network crop (default 512; --quick 128)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--methods", help="comma-separated subset (default: every registered method)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of I/O + methods; best of each kept")
    ap.add_argument("--no-networks", action="store_true", help="skip the network inference part")
    ap.add_argument("--reuse-networks", action="store_true",
                    help="with --no-networks: keep the network rows of the previous results file (marked so)")
    a = ap.parse_args(argv)
    size = a.size or (1024 if a.quick else 2048)
    net_size = a.net_size or (128 if a.quick else 512)
    methods = a.methods.split(",") if a.methods else available_methods()
    if a.no_networks:
        methods = [m for m in methods if m not in NETWORKS]
    previous = load_result("throughput") if a.reuse_networks else None
    res = run(a.quick, a.work, size, methods, net_size, a.tile, a.rounds)
    if previous and previous.get("networks") and not res["networks"]:
        res["networks"], res["net_size"] = previous["networks"], previous.get("net_size")
        res["networks_from"] = (previous.get("networks_from")
                                or (previous.get("ran") or {}).get("finished", "an earlier run"))
        save_result("throughput", res)
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
