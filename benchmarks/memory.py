"""Peak resident memory of each method at two output sizes (goal: flat, <= 1.2x growth, under 2 GB).

    .venv/bin/python benchmarks/memory.py [--quick] [--sizes 1024,4096] [--work DIR] [--methods ...] [--networks]

Every (method, size) is a fresh process (benchmarks/job.py) that reports its own peak RSS
(VmHWM of /proc/self/status, not ru_maxrss, which Linux inherits across exec from a large parent; all
threads, GDAL's block cache included). Each is run twice:
with GDAL's default block cache (GDAL_CACHEMAX = 5 % of RAM unless the environment sets it) and with
GDAL_CACHEMAX=256 (MiB), the cap the ``hsifusion`` CLI sets unless the user set one.
Pairs: benchmarks/bigpair.py (sizes above 2048 repeat the simulated 2048² pair in VRTs).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bigpair import build_pair
from common import (
    DEFAULT_WORK,
    NETWORKS,
    SEED,
    SUPERVISED,
    available_methods,
    fmt,
    label,
    log,
    md_table,
    method_params,
    run_child,
    sample_checkpoints,
    save_result,
)

CACHES = (None, 256)  # GDAL's default (5 % of RAM) and the CLI's cap (engine/cli.py: cap_gdal_cache)
CHECKPOINT_ITERATIONS = 3  # --networks: supervised checkpoints trained this long on the sample (memory, not quality)
FIT_ITERATIONS = 10  # --networks: UDS2C2's per-pair fit (its stage 3 on the fit crop is its memory peak)


def network_params(net: str, checkpoints: Dict[str, str]) -> Dict:
    """A network alone (BASE=none): from its checkpoint, or a short per-pair fit / per-tile optimisation."""
    if net in checkpoints:
        return {"checkpoint": checkpoints[net], "base": "none", "device": "cpu", "seed": SEED}
    return dict(method_params(net, True, iterations=FIT_ITERATIONS), base="none")


def run(quick: bool, work: Path, sizes: List[int], methods: List[str], tile: int = 256,
        networks: bool = False) -> Dict:
    work = work / "memory"
    work.mkdir(parents=True, exist_ok=True)
    pairs = {s: build_pair(work.parent / "bigpair", s) for s in sizes}
    out = str(work / "out.tif")
    supervised = [m for m in methods if m in SUPERVISED]
    checkpoints = sample_checkpoints(work, supervised, CHECKPOINT_ITERATIONS) if networks else {}
    rows = []
    for m in ([] if networks else ["io"]) + methods:
        for cache in (256,) if networks else CACHES:
            row = {"method": m, "cache": cache,
                   "label": "I/O limit" if m == "io" else label(m, method_params(m, quick))}
            for s in sizes:
                p = pairs[s]
                args = ["--hsi", p["hsi"], "--msi", p["msi"], "--out", out, "--tile", tile]
                if m == "io":
                    args = ["io", *args]
                else:
                    params = method_params(m, quick)
                    if networks:
                        params = network_params(m, checkpoints)
                        row["label"] = label(m, params) if m not in checkpoints else f"{m} (checkpoint, BASE=none)"
                    elif m in NETWORKS:
                        params = dict(params, iterations=5, seed=SEED)  # memory of the tile phase, not of training
                    args = ["fuse", *args, "--method", m, "--params", json.dumps(params)]
                env = {"GDAL_CACHEMAX": str(cache)} if cache else None
                log(f"memory: {m} {s}² GDAL_CACHEMAX={cache or 'default'}")
                j = run_child(args, env=env)
                row[str(s)] = j
                log(f"  -> peak {fmt(j.get('peak_rss_mib'), 0)} MiB {j.get('error', '')}")
            rows.append(row)
    res = {"quick": quick, "sizes": sizes, "pairs": pairs, "rows": rows, "tile": tile, "networks": networks}
    save_result("memory_networks" if networks else "memory", res)
    return res


def markdown(res: Dict) -> str:
    s0, s1 = (str(s) for s in res["sizes"][:2])
    table = []
    for r in res["rows"]:
        a, b = r.get(s0, {}), r.get(s1, {})
        pa, pb = a.get("peak_rss_mib"), b.get("peak_rss_mib")
        growth = pb / pa if pa and pb else None
        ok = "yes" if growth and growth <= 1.2 and pb < 2048 else "no"
        err = a.get("error") or b.get("error")
        table.append([r["label"], "default (5 % of RAM)" if r["cache"] is None else f"{r['cache']} MiB (CLI cap)",
                      fmt(a.get("rss_after_import_mib"), 0), fmt(pa, 0), fmt(pb, 0), fmt(growth, 2),
                      ok if not err else "error: " + err[:80]])
    runs = (f"Networks alone (BASE=none): supervised ones from a checkpoint trained {CHECKPOINT_ITERATIONS} "
            f"iterations on the sample, the others with {FIT_ITERATIONS} iterations of their fit."
            if res.get("networks") else "Networks run with 5 training iterations (memory of the tile phase).")
    head = (f"Peak RSS (MiB) of one process per method and size: {s0}² and {s1}² HR output px x 224 bands, "
            f"tile {res['tile']}. 'after import' = RSS once Python, GDAL, torch and the engine are loaded. "
            f"{runs}\n\n")
    pairs = "; ".join(f"{k}²: {v['how']}" for k, v in res["pairs"].items())
    return head + md_table(["method", "GDAL cache", "after import", f"peak {s0}²", f"peak {s1}²", "growth",
                            "flat (≤1.2x) and < 2 GB"], table) + f"\n\nPairs: {pairs}.\n"


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", help="two HR sides (default 1024,4096; --quick 512,1024)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--methods", help="comma-separated (default: upsample and the classical methods)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--networks", action="store_true",
                    help="the networks alone instead (supervised: from a checkpoint), GDAL cache at the CLI's cap; "
                         "sizes default 1024,2048")
    a = ap.parse_args(argv)
    default_sizes = "512,1024" if a.quick else "1024,2048" if a.networks else "1024,4096"
    sizes = [int(s) for s in (a.sizes or default_sizes).split(",")]
    pool = [m for m in available_methods() if (m in NETWORKS) == a.networks]
    methods = a.methods.split(",") if a.methods else pool
    res = run(a.quick, a.work, sizes, methods, a.tile, a.networks)
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
