"""Quality under Wald's protocol on every real scene available, x4 and x8, every method.

    .venv/bin/python benchmarks/quality.py [--quick] [--work DIR] [--methods a,b] [--scenes k1,k2]

For each scene (benchmarks/scenes.py) and ratio: ``engine.api.simulate`` makes the LR-HSI (Gaussian PSF,
FWHM = ratio HR px, block-centred, no noise, seed 0) and the MSI (a real SRF: Sentinel-2A for EnMAP and
Hyperion, an RGB camera for the VNIR-only Samson); the bundled sample's own x4 pair is used as is (it was
made the same way). Each method runs through ``engine.api.fuse`` (CPU, seed 0; networks in
scene-adaptive / unsupervised mode, i.e. trained or optimised on the pair itself) and is assessed by
``engine.api.assess`` against the reference: PSNR, SSIM, SAM, ERGAS, Q2n. Run time = wall time of the
fuse call (training included). Writes results/quality.json, a Markdown section and the PSNR-time plot.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DEFAULT_WORK,
    NETWORK_BUDGET,
    NETWORKS,
    ROOT,
    SEED,
    available_methods,
    fmt,
    label,
    load_result,
    log,
    md_table,
    method_params,
    register_package,
    save_result,
)
from scenes import scenes

PLOT = ROOT / "docs" / "benchmarks_psnr_time.png"
METRICS = ("PSNR", "SSIM", "SAM", "ERGAS", "Q2N")


def make_pair(scene: Dict, ratio: int, work: Path):
    if ratio in scene.get("bundled", {}):
        hsi, msi = scene["bundled"][ratio]
        return hsi, msi, "bundled sample pair"
    register_package()
    from hsifusion.engine import api

    hsi, msi = work / f"{scene['key']}_x{ratio}_lr_hsi.tif", work / f"{scene['key']}_x{ratio}_msi.tif"
    if not (hsi.exists() and msi.exists()):
        for p in (hsi, msi):
            if p.exists():
                p.unlink()
        api.simulate(scene["reference"], str(hsi), str(msi), ratio=ratio,
                     psf={"kind": "gaussian", "fwhm": float(ratio)}, sensor=scene["sensor"], bands=scene["bands"],
                     seed=SEED)
    return str(hsi), str(msi), "simulated"


def warm_up(work: Path) -> None:
    """Import everything once (torch, scipy, GDAL drivers) so the first timed method pays no imports."""
    register_package()
    from common import SAMPLE
    from hsifusion.engine import api

    out = work / "warmup.tif"
    for m in ("upsample", "gsa"):
        api.fuse(str(SAMPLE / "potsdam_lr_hsi_x4.tif"), str(SAMPLE / "potsdam_msi_s2a.tif"), str(out), m)
        out.unlink()


QUICK_NET_CASES = {("enmap_128x64", 4)}


def fuse_and_assess(row: Dict, hsi: str, msi: str, reference: str, ratio: int, method: str, params: Dict,
                    out: Path, extra: Sequence[str] = ()) -> Dict:
    """``row`` plus seconds (the fuse call), iterations and METRICS against ``reference``, or ``error``.

    ``extra``: further keys of the fuse result to copy into the row where the result has them.

    A failing method is a row, not a crash. The output is deleted afterwards. ``method`` "auto" runs
    ``api.fuse_auto`` (``params`` are its keyword arguments) and records the method it chose.
    """
    from hsifusion.engine import api

    try:
        t0 = time.perf_counter()
        if method == "auto":
            res = api.fuse_auto(hsi, msi, str(out), **params)
            row["chosen"] = res["CHOSEN"]
        else:
            res = api.fuse(hsi, msi, str(out), method, params)
        row["seconds"] = time.perf_counter() - t0
        row["iterations"] = res.get("iterations")
        row.update({k: res[k] for k in extra if k in res})
        a = api.assess(reference, str(out), ratio)
        row.update({k: float(a[k]) for k in METRICS})
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if out.exists():
            out.unlink()
    return row


def merged(new: Dict) -> Dict:
    """The previous results/quality.json with this run's rows replacing its rows of the same case.

    A case is a scene, ratio and method; each row keeps its own figures; ``remeasured`` names this
    run's methods.
    """
    old = load_result("quality")
    if not old:
        return new
    key = lambda r: (r["scene"], r["ratio"], r["method"])  # noqa: E731
    fresh = {key(r): r for r in new["rows"]}
    rows = [fresh.pop(key(r), r) for r in old["rows"]] + list(fresh.values())
    return {**old, "rows": rows, "methods": list(dict.fromkeys(old["methods"] + new["methods"])),
            "remeasured": {"methods": new["methods"], "quick": new["quick"]}}


def run(quick: bool, work: Path, methods: List[str], only_scenes=None, all_cases: bool = False,
        merge: bool = False) -> Dict:
    register_package()
    import torch


    torch.manual_seed(SEED)
    work = work / "quality"
    work.mkdir(parents=True, exist_ok=True)
    warm_up(work)
    rows = []
    for sc in scenes(work, quick):
        if only_scenes and sc["key"] not in only_scenes:
            continue
        for r in sc["ratios"]:
            hsi, msi, how = make_pair(sc, r, work)
            for m in methods:
                if quick and not all_cases and m in NETWORKS and (sc["key"], r) not in QUICK_NET_CASES:
                    continue  # quick mode: networks on the bundled sample x4 only
                params = method_params(m, quick)
                out = work / f"{sc['key']}_x{r}_{m}.tif"
                if out.exists():
                    out.unlink()
                row = {"scene": sc["key"], "title": sc["title"], "ratio": r, "method": m, "label": label(m, params),
                       "params": params, "pair": how, "sensor": sc["sensor"]}
                log(f"quality: {sc['key']} x{r} {m}")
                rows.append(fuse_and_assess(row, hsi, msi, sc["reference"], r, m, params, out))
    data = {"quick": quick, "rows": rows, "methods": methods,
            "network_cases": "all" if (all_cases or not quick) else sorted(QUICK_NET_CASES)}
    if merge:
        data = merged(data)
    save_result("quality", data)
    plot(data)
    return data


def plot(data: Dict, path: Path = PLOT) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in data["rows"] if "PSNR" in r and r.get("seconds")]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cases = list(dict.fromkeys((r["scene"], r["ratio"]) for r in rows))
    cmap = plt.get_cmap("tab10")
    markers = "os^vDP*Xhp<>"
    for i, m in enumerate(methods):
        for j, c in enumerate(cases):
            pts = [r for r in rows if r["method"] == m and (r["scene"], r["ratio"]) == c]
            if pts:
                ax.scatter([p["seconds"] for p in pts], [p["PSNR"] for p in pts], color=cmap(i % 10),
                           marker=markers[j % len(markers)], s=36, alpha=0.85,
                           label=m if j == 0 else None)
    for j, c in enumerate(cases):
        ax.scatter([], [], facecolors="none", edgecolors="black", marker=markers[j % len(markers)],
                   label=f"{c[0]} x{c[1]}")
    ax.set_xscale("log")
    ax.set_xlabel("run time of the fuse call, s (log; CPU, training included)")
    ax.set_ylabel("PSNR, dB (mean over bands)")
    ax.set_title("Wald protocol on real scenes: PSNR vs run time" + (" (quick mode)" if data.get("quick") else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown(data: Dict) -> str:
    out = []
    rows = data["rows"]
    cases = list(dict.fromkeys((r["scene"], r["ratio"]) for r in rows))
    for sc, ratio in cases:
        sub = [r for r in rows if (r["scene"], r["ratio"]) == (sc, ratio)]
        base = next((r for r in sub if r["method"] == "upsample" and "PSNR" in r), None)
        out.append(f"#### {sub[0]['title']}, x{ratio} (MSI: {sub[0]['sensor']}; pair: {sub[0]['pair']})\n")
        table = []
        for r in sub:
            if "error" in r:
                table.append([r["label"], "error: " + r["error"][:120], "", "", "", "", "", ""])
                continue
            gain = r["PSNR"] - base["PSNR"] if base else None
            table.append([r["label"], fmt(r["PSNR"]), fmt(gain), fmt(r["SSIM"], 4), fmt(r["SAM"]), fmt(r["ERGAS"]),
                          fmt(r["Q2N"], 4), fmt(r["seconds"], 1)])
        out.append(md_table(["method", "PSNR dB", "Δ bicubic dB", "SSIM", "SAM °", "ERGAS", "Q2n", "time s"], table))
        out.append("")
    # summary: mean PSNR gain over bicubic per method
    summ = []
    for m in data["methods"]:
        gains, times = [], []
        for sc, ratio in cases:
            base = next((r for r in rows if (r["scene"], r["ratio"], r["method"]) == (sc, ratio, "upsample")
                         and "PSNR" in r), None)
            me = next((r for r in rows if (r["scene"], r["ratio"], r["method"]) == (sc, ratio, m)
                       and "PSNR" in r), None)
            if base and me:
                gains.append(me["PSNR"] - base["PSNR"])
                times.append(me["seconds"])
        if gains:
            lab = next(r["label"] for r in rows if r["method"] == m)
            summ.append([lab, len(gains), fmt(sum(gains) / len(gains)), fmt(min(gains)),
                         fmt(sum(times) / len(times), 1)])
    if data.get("remeasured"):
        out.insert(0, f"Rows of {', '.join(data['remeasured']['methods'])} re-measured by the command named at the "
                      "end of this section (`--merge`); the other rows are from the run before it (git history of "
                      "benchmarks/results/quality.json).\n")
    if data.get("network_cases") != "all":
        out.insert(0, "Quick mode: the networks ran on the bundled sample x4 only (`--all-cases` runs them "
                      "everywhere; the full run does).\n")
    if summ:
        out.insert(0, "Summary over all scene/ratio cases (PSNR gain over bicubic upsampling):\n\n" +
                   md_table(["method", "cases", "mean Δ PSNR dB", "worst Δ PSNR dB", "mean time s"], summ) + "\n")
    return "\n".join(out)


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="networks with small budgets (see common.py)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--methods", help="comma-separated subset (default: every registered method)")
    ap.add_argument("--all-cases", action="store_true", help="with --quick: networks on every scene and ratio")
    ap.add_argument("--scenes", help="comma-separated scene keys (enmap_128x64, enmap_64x128, samson, paris)")
    ap.add_argument("--budget", choices=("sample", "default"), default="sample",
                    help="network budgets without --quick (see common.NETWORK_BUDGET)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the previous results' other rows (e.g. rerun only the classical methods)")
    a = ap.parse_args(argv)
    NETWORK_BUDGET["mode"] = a.budget
    methods = a.methods.split(",") if a.methods else available_methods()
    data = run(a.quick, a.work, methods, a.scenes.split(",") if a.scenes else None, a.all_cases, a.merge)
    print(markdown(data))
    return data


if __name__ == "__main__":
    main()
