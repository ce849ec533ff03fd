"""Throughput of the tile engine in-process and on Dask LocalClusters of 1 and 2 worker processes.

    .venv/bin/python tools/bench_distributed.py [--size 1024] [--bands 64] [--methods gsa,cofusion]

Synthetic pair: LR-HSI (size/4)^2 x bands, HR-MSI size^2 x 4, ratio 4. The network (CoFusion lite) runs
from a checkpoint trained for a few iterations (inference throughput; training is fit(), once, on the
client). Reports wall time, HR Mpixel/s, speedup over 1 worker, and where the time goes (Dask task
stream: compute / transfer / deserialise on the workers; cluster start-up and scatter on the client).
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _register() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from repo_package import register_package

    register_package()
    sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--bands", type=int, default=64)
    ap.add_argument("--methods", default="gsa,cofusion")
    ap.add_argument("--tile-size", type=int, default=256)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    _register()
    import numpy as np
    from distributed import get_task_stream

    from hsifusion.engine import api
    from hsifusion.engine.pipeline.distributed import open_cluster
    from rasterkit import synthetic_pair

    tmp = Path(tempfile.mkdtemp(prefix="hsif-bench-"))
    hsi, msi = synthetic_pair(tmp, ratio=4, lr_size=(args.size // 4, args.size // 4), bands=args.bands,
                              msi_bands=4)
    from hsifusion.models.catalogue import NETWORKS, SUPERVISED

    supervised = {e.id: e for e in NETWORKS if e.kind == SUPERVISED}
    mpix = args.size * args.size / 1e6
    rows = []
    for method in args.methods.split(","):
        params = {}
        if method in supervised:
            ck = str(tmp / f"{method}.pt")
            (tmp / "small").mkdir(exist_ok=True)
            small = synthetic_pair(tmp / "small", ratio=4, lr_size=(32, 32), bands=args.bands, msi_bands=4)
            train = {"iterations": 5, "device": "cpu", "save_checkpoint": ck, "patch_size": 32}
            if supervised[method].lite:
                train["lite"] = True
            api.fuse(*small, str(tmp / "train.tif"), method, train)
            params = {"checkpoint": ck, "device": "cpu"}
        t0 = time.perf_counter()
        r = api.fuse(hsi, msi, str(tmp / f"{method}_local.tif"), method, params, tile_size=args.tile_size)
        local = time.perf_counter() - t0
        rows.append((method, "in-process (reader/writer threads, torch 2 threads)", r["TILES"], 0.0, local,
                     mpix / local, None, ""))
        ref = None
        base = None
        for n in [int(w) for w in args.workers.split(",")]:
            t0 = time.perf_counter()
            with open_cluster(f"local:{n}") as session:
                start = time.perf_counter() - t0
                with get_task_stream(session.client) as ts:
                    t1 = time.perf_counter()
                    r = api.fuse(hsi, msi, str(tmp / f"{method}_{n}.tif"), method, params,
                                 tile_size=args.tile_size, scheduler=session)
                    wall = time.perf_counter() - t1
            acc = defaultdict(float)
            for task in ts.data:
                for ss in task.get("startstops", ()):
                    acc[ss["action"]] += ss["stop"] - ss["start"]
            busy = acc["compute"] / (n * wall)
            where = (f"compute {acc['compute']:.1f} s ({100 * busy:.0f} % of {n} worker(s)), transfer "
                     f"{acc['transfer']:.2f} s, deserialise {acc['deserialize']:.2f} s")
            base = base or wall
            rows.append((method, f"Dask local:{n}", r["TILES"], start, wall, mpix / wall, base / wall, where))
            from hsifusion.engine.io.raster import open_raster

            out = open_raster(str(tmp / f"{method}_{n}.tif")).ReadAsArray()
            ref = open_raster(str(tmp / f"{method}_local.tif")).ReadAsArray() if ref is None else ref
            err = float(np.abs(out - ref).max() / max(1e-12, np.abs(ref).max()))
            rows[-1] = rows[-1][:-1] + (where + f"; max rel. diff to in-process {err:.1e}",)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.size}x{args.size} HR px, {args.bands} bands, ratio 4, tile {args.tile_size}\n")
    print("| method | execution | tiles | cluster start (s) | wall (s) | HR Mpx/s | speedup vs 1 worker "
          "| where the time goes |")
    print("|---|---|---|---|---|---|---|---|")
    for m, how, tiles, start, wall, tp, sp, where in rows:
        print(f"| {m} | {how} | {tiles} | {start:.1f} | {wall:.1f} | {tp:.3f} | "
              f"{'' if sp is None else f'{sp:.2f}x'} | {where} |")


if __name__ == "__main__":
    main()
