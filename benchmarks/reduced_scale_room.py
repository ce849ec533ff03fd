"""What one scale down leaves to validate a network on, per shared scene, beside each network's measured held-out gain.

    .venv/bin/python benchmarks/reduced_scale_room.py [--work DIR] [--write-doc]

A network anchored on GLP is used only when it beats GLP on a held-out strip one scale down (Wald's protocol,
engine/methods/anchored.py). This script applies the engine's own rules (``split_holdout`` on the fit crop,
``reduced_scale_too_small``) to every simulated scene of quality.py and every real pair of real_pairs.py, and
prints, per case: the LR-HSI, the fit crop's training and held-out areas, what each keeps one scale down (the
networks' input there), whether the engine judges a network on it, and from results/network_defaults.json
(``network_vs_glp.py --defaults-only --result network_defaults``) the best held-out gain any network reached and
the best network's PSNR against GLP's. Sizes are read from the rasters; nothing is typed in.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DEFAULT_WORK,
    catalogue,
    command_line,
    fmt,
    load_result,
    md_table,
    register_package,
    save_result,
    write_doc_section,
)
from network_vs_glp import cases

SECTION = "## What one scale down leaves to validate a network on"
NEXT_SECTION = "## Spectral MLP against GLP"
INTRO = """A network anchored on GLP is used only when it beats GLP on a held-out strip of the fit crop one scale down
(engine/methods/anchored.py: the last {share:.0%} of the crop's longer side is held out, and both areas are degraded
once more by the ratio). The table applies the engine's own split and size rule to every scene of "Quality" and
"Real pairs" (fit crop: the networks' smallest, {crop} LR px a side), beside the best held-out gain and the best
result of the networks with their defaults (results/network_defaults.json, from "Every network with its defaults
on every scene"). "Too small" is the engine's rule (one scale down, at least {pixels} training px and {side} px a
side): at x8 on the 128 x 64 scene, before that rule, a network trained on 1 LR pixel read +6 dB held out and
lost 20 dB to GLP."""


def room(lr_h: int, lr_w: int, ratio: int, crop_lr: int) -> Dict:
    """The anchored fit's areas for an LR-HSI of ``lr_h`` x ``lr_w`` px, by the engine's own functions."""
    import numpy as np

    from hsifusion.engine.errors import InputError
    from hsifusion.engine.methods.anchored import reduced_scale_too_small, split_holdout

    h, w = min(lr_h, crop_lr), min(lr_w, crop_lr)
    y, z = np.zeros((1, h, w), np.float32), np.zeros((1, h * ratio, w * ratio), np.float32)
    out = {"crop": (w, h)}
    try:
        (yt, _), (yv, _) = split_holdout(y, z, ratio)
    except InputError as exc:
        return {**out, "verdict": f"no held-out strip ({exc})"}
    train, val = (SimpleNamespace(h=a.shape[1], w=a.shape[2]) for a in (yt, yv))
    out.update(train=(train.w, train.h), held=(val.w, val.h), train_down=(train.w // ratio, train.h // ratio),
               held_down=(val.w // ratio, val.h // ratio))
    why = reduced_scale_too_small(train, val, ratio)
    out["verdict"] = "too small: base written" if why else "judged"
    return out


def best_network(case: str, results: Optional[Dict]) -> Dict:
    """The largest held-out gain and the best PSNR minus GLP's among the default network rows of ``case``."""
    if not results:
        return {}
    rows = [r for r in results["rows"] if r["case"] == case and "PSNR" in r]
    glp = next((r["PSNR"] for r in rows if r["variant"] == "glp"), None)
    nets = [r for r in rows if "(base glp)" in r["variant"]]
    if not nets or glp is None:
        return {}
    gains = [r["heldout_gain_db"] for r in nets if r.get("heldout_gain_db") is not None]
    best = max(nets, key=lambda r: r["PSNR"])
    return {"heldout": max(gains) if gains else None, "vs_glp": best["PSNR"] - glp,
            "best": best["variant"].split(" ")[0]}


def run(work: Path) -> Dict:
    register_package()
    from osgeo import gdal

    crop_lr = min(catalogue.entry(n).fit_crop_lr for n in catalogue.network_ids())
    results = load_result("network_defaults")
    rows: List[Dict] = []
    for c in cases(work, ["quality", "real"]):
        ds = gdal.Open(str(c["hsi"]))
        lr_w, lr_h = ds.RasterXSize, ds.RasterYSize
        ds = None
        rows.append({"case": c["case"], "kind": c["kind"], "ratio": c["ratio"], "lr": (lr_w, lr_h),
                     **room(lr_h, lr_w, c["ratio"], crop_lr), **best_network(c["case"], results)})
    data = {"rows": rows, "crop_lr": crop_lr}
    save_result("reduced_scale_room", data)
    return data


def size(wh) -> str:
    return f"{wh[0]}x{wh[1]}" if wh else ""


def markdown(data: Dict) -> str:
    table = []
    for r in data["rows"]:
        table.append([r["case"], r["kind"], size(r["lr"]), size(r.get("train")), size(r.get("held")),
                      size(r.get("train_down")), size(r.get("held_down")), r["verdict"],
                      fmt(r.get("heldout")) if r.get("heldout") is not None else "",
                      f"{fmt(r['vs_glp'])} ({r['best']})" if "vs_glp" in r else ""])
    head = ["case", "pair", "LR-HSI px", "training area (LR px)", "held-out area (LR px)",
            "training LR-HSI one scale down", "held-out LR-HSI one scale down", "network",
            "best held-out gain dB (defaults)", "best network - GLP dB (full scale)"]
    from hsifusion.engine.methods.anchored import HOLDOUT_SHARE, MIN_REDUCED_PIXELS, MIN_REDUCED_SIDE

    intro = INTRO.format(share=HOLDOUT_SHARE, crop=data["crop_lr"], pixels=MIN_REDUCED_PIXELS, side=MIN_REDUCED_SIDE)
    return "\n\n".join([intro, md_table(head, table), summary(data["rows"]),
                        f"*Produced by `{command_line()}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.*"])


def summary(rows: List[Dict]) -> str:
    """What the table means for the goal 'best network >= GLP + 1 dB averaged over the simulated scenes'."""
    sim = [r for r in rows if r["kind"] == "simulated"]
    judged = [r for r in sim if r["verdict"] == "judged"]
    need = len(sim) / max(len(judged), 1)
    return (f"Of the {len(sim)} simulated cases, {len(judged)} leave a pair one scale down that the engine judges a "
            f"network on ({', '.join(r['case'] for r in judged) or 'none'}); on the others every network writes its "
            f"GLP base, as the anchoring rule requires (no validated gain, no network). For the best network to "
            f"average GLP + 1 dB over the {len(sim)} cases, it would have to gain about {need:.0f} dB over GLP on "
            f"each judged case, validated on a held-out LR-HSI of the size shown one scale down.")


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    a = ap.parse_args(argv)
    data = run(a.work)
    text = markdown(data)
    print(text)
    if a.write_doc:
        write_doc_section(SECTION, text, NEXT_SECTION)
    return data


if __name__ == "__main__":
    main()
